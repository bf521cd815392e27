package store_test

import (
	"context"
	"testing"

	"github.com/piseduce/piseduce/pkg/store"
)

func TestHostKeys(t *testing.T) {
	forEachDialect(t, testHostKeys)
}

func testHostKeys(t *testing.T, s *store.Store) {
	ctx := context.Background()
	const k1, k2 = "ssh-ed25519 AAAAkey1", "ssh-ed25519 AAAAkey2"

	if k, found, err := s.HostKey(ctx, "system", 3); err != nil || found || k != "" {
		t.Fatalf("missing key: %q %v %v", k, found, err)
	}
	if err := s.PinHostKey(ctx, "system", 3, k2); err != nil {
		t.Fatal(err)
	}
	if k, found, err := s.HostKey(ctx, "system", 3); err != nil || !found || k != k2 {
		t.Fatalf("stored key: %q %v %v", k, found, err)
	}
	// Pinning again replaces the key (a new deployment's system).
	if err := s.PinHostKey(ctx, "system", 3, k1); err != nil {
		t.Fatal(err)
	}
	if k, _, _ := s.HostKey(ctx, "system", 3); k != k1 {
		t.Fatalf("key not replaced: %q", k)
	}
	// Role and node are both part of the key.
	if err := s.PinHostKey(ctx, "nfs", 0, k2); err != nil {
		t.Fatal(err)
	}
	if err := s.PinHostKey(ctx, "system", 4, k2); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		role string
		node uint
		want string
	}{{"system", 3, k1}, {"system", 4, k2}, {"nfs", 0, k2}} {
		if k, found, _ := s.HostKey(ctx, c.role, c.node); !found || k != c.want {
			t.Errorf("%s/%d = %q %v, want %q", c.role, c.node, k, found, c.want)
		}
	}
	if _, found, _ := s.HostKey(ctx, "nfs", 3); found {
		t.Error("nfs/3 found")
	}
	// Pinning one node's key leaves the others alone.
	if err := s.PinHostKey(ctx, "system", 3, k2); err != nil {
		t.Fatal(err)
	}
	if k, _, _ := s.HostKey(ctx, "system", 4); k != k2 {
		t.Fatalf("other node touched: %q", k)
	}
	if err := s.PinHostKey(ctx, "system", 5, ""); err == nil {
		t.Fatal("empty key accepted")
	}
	// Cancelled contexts are errors, not "not found".
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, found, err := s.HostKey(cctx, "system", 4); err == nil || found {
		t.Fatalf("cancelled: %v %v", found, err)
	}
}
