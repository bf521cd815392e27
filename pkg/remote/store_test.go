package remote_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/remote"
	"github.com/piseduce/piseduce/pkg/remote/internal/sshdtest"
	"github.com/piseduce/piseduce/pkg/store"
)

// The store implements the interface with no adapter.
var _ remote.HostKeyStore = (*store.Store)(nil)

// TestTrustOnFirstUseRace dials two nodes with different keys for one shared role at once,
// through the real store: one key wins, and no connection is ever accepted with the other.
func TestTrustOnFirstUseRace(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite://"+t.TempDir()+"/t.db")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	signer, _ := sshdtest.NewKey(t)
	servers := []*sshdtest.Server{
		sshdtest.StartWith(t, sshdtest.Config{Signer: signer}),
		sshdtest.StartWith(t, sshdtest.Config{Signer: signer}),
	}
	d := &remote.Dialer{Signer: signer, Timeout: 10 * time.Second, Keys: st}

	const dials = 8
	var wg sync.WaitGroup
	errs := make([]error, dials)
	for i := range dials {
		wg.Go(func() {
			srv := servers[i%2]
			c, err := d.Dial(ctx, remote.Target{Addr: srv.Addr, Role: remote.RoleNFS, NodeID: uint(i + 1),
				Policy: remote.TrustOnFirstUse})
			if err == nil {
				_, err = c.Output(ctx, "true")
				c.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	won, found, err := st.HostKey(ctx, remote.RoleNFS, 0)
	if err != nil || !found {
		t.Fatalf("no key learned: %v", err)
	}
	for i, err := range errs {
		srv := servers[i%2]
		switch {
		case srv.HostKey == won && err != nil:
			t.Errorf("dial %d to the winning key failed: %v", i, err)
		case srv.HostKey != won && !errors.Is(err, remote.ErrHostKeyMismatch):
			t.Errorf("dial %d to the losing key: err = %v, want ErrHostKeyMismatch", i, err)
		}
	}
	// Forgotten, the other key can be learned (a new deployment).
	if err := st.ForgetHostKey(ctx, remote.RoleNFS, 0); err != nil {
		t.Fatal(err)
	}
	loser := servers[0]
	if loser.HostKey == won {
		loser = servers[1]
	}
	c, err := d.Dial(ctx, remote.Target{Addr: loser.Addr, Role: remote.RoleNFS, Policy: remote.TrustOnFirstUse})
	if err != nil {
		t.Fatalf("after forget: %v", err)
	}
	c.Close()
	if k, _, _ := st.HostKey(ctx, remote.RoleNFS, 0); k != loser.HostKey {
		t.Fatalf("learned %q, want %q", k, loser.HostKey)
	}
}
