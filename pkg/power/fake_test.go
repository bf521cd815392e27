package power_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/power"
)

func TestFake(t *testing.T) {
	f := power.NewFake(8, 1)
	var c power.Controller = f
	ctx := context.Background()
	boom := errors.New("boom")
	f.Fail(4, boom)
	f.Hang(5, true)

	var wg sync.WaitGroup
	for port := 2; port <= 8; port++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			defer cancel()
			err := c.Set(ctx, port, true)
			switch port {
			case 4:
				if !errors.Is(err, boom) {
					t.Errorf("port 4: %v", err)
				}
			case 5:
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("port 5: %v", err)
				}
			default:
				if err != nil {
					t.Errorf("port %d: %v", port, err)
				}
			}
		}()
	}
	wg.Wait()
	if err := c.Set(ctx, 1, true); !errors.Is(err, power.ErrMasterPort) {
		t.Errorf("master: %v", err)
	}
	if err := c.Set(ctx, 9, true); !errors.Is(err, power.ErrPortRange) {
		t.Errorf("range: %v", err)
	}
	f.Hang(5, false)
	for port, want := range map[int]bool{1: false, 2: true, 3: true, 4: false, 5: false, 6: true, 8: true} {
		st, err := c.Status(ctx, port)
		if port == 4 {
			if !errors.Is(err, boom) {
				t.Errorf("status 4: %v", err)
			}
			continue
		}
		if err != nil || st.On != want || st.Delivering != want {
			t.Errorf("status %d = %+v, %v; want on=%v", port, st, err, want)
		}
	}
	if n := len(f.Calls()); n != 7+2+7 {
		t.Errorf("%d calls recorded, want 16", n)
	}
	f.Fail(4, nil)
	if err := c.Set(ctx, 4, true); err != nil || !f.State(4).On {
		t.Errorf("port 4 after clearing failure: %v %+v", err, f.State(4))
	}
}
