package remote_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/remote"
	"github.com/piseduce/piseduce/pkg/remote/internal/sshdtest"
	"github.com/piseduce/piseduce/pkg/store"
)

// The store implements the interface with no adapter.
var _ remote.HostKeyStore = (*store.Store)(nil)

// TestKeysPinnedInTheStore follows a node's system key through the real store as deployments
// do: pinned, used, replaced by the next deployment's key (the old system is then refused).
// The NFS system's key is shared by every node.
func TestKeysPinnedInTheStore(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite://"+t.TempDir()+"/t.db")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	signer, _ := sshdtest.NewKey(t)
	first := sshdtest.StartWith(t, sshdtest.Config{Signer: signer})
	second := sshdtest.StartWith(t, sshdtest.Config{Signer: signer})
	d := &remote.Dialer{Signer: signer, Timeout: 10 * time.Second, Keys: st}
	dial := func(srv *sshdtest.Server, role string, node uint) error {
		c, err := d.Dial(ctx, remote.Target{Addr: srv.Addr, Role: role, NodeID: node})
		if err == nil {
			_, err = c.Output(ctx, "true")
			c.Close()
		}
		return err
	}

	if err := st.PinHostKey(ctx, remote.RoleSystem, 3, first.HostKey); err != nil {
		t.Fatal(err)
	}
	if err := dial(first, remote.RoleSystem, 3); err != nil {
		t.Fatalf("pinned key: %v", err)
	}
	if err := dial(first, remote.RoleSystem, 4); !errors.Is(err, remote.ErrNoHostKey) {
		t.Fatalf("another node's key used: %v", err)
	}
	if err := st.PinHostKey(ctx, remote.RoleSystem, 3, second.HostKey); err != nil {
		t.Fatal(err)
	}
	if err := dial(first, remote.RoleSystem, 3); !errors.Is(err, remote.ErrHostKeyMismatch) {
		t.Fatalf("the replaced key still works: %v", err)
	}
	if err := dial(second, remote.RoleSystem, 3); err != nil {
		t.Fatalf("the new key: %v", err)
	}

	if err := st.PinHostKey(ctx, remote.RoleNFS, 0, first.HostKey); err != nil {
		t.Fatal(err)
	}
	for _, node := range []uint{1, 7} {
		if err := dial(first, remote.RoleNFS, node); err != nil {
			t.Fatalf("NFS system as node %d: %v", node, err)
		}
	}
	if err := dial(second, remote.RoleNFS, 1); !errors.Is(err, remote.ErrHostKeyMismatch) {
		t.Fatalf("a stranger taken for the NFS system: %v", err)
	}
}
