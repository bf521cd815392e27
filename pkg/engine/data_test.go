package engine

import (
	"context"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
)

// TestStepDataIsTheEngines: what env_copy puts in deploy's typed step data is saved with its
// state and read back, from the database, by env_check in a later turn; a reboot in between
// keeps it, a new deploy request starts without it, and a step asking for another process's
// type fails the deployment at once.
func TestStepDataIsTheEngines(t *testing.T) {
	s := storetest.Open(t, "sqlite")
	c := storetest.Seed(t, s, 1)
	d := c.Deploy(t, s, 1)[0]
	ctx := context.Background()
	f := newFakeSteps()
	var mu sync.Mutex
	var checked []process.DeployData
	f.exec = func(_ context.Context, tk *Task) error {
		if tk.D.State != process.EnvCopy {
			return nil
		}
		data, err := Data[process.DeployData](tk)
		if err != nil {
			return err
		}
		data.Size, data.SHA256 = 42, "c0ffee"
		return nil
	}
	f.post = func(_ context.Context, tk *Task) (bool, error) {
		switch tk.D.State {
		case process.EnvCheck:
			data, err := Data[process.DeployData](tk)
			if err != nil {
				return false, err
			}
			mu.Lock()
			checked = append(checked, *data)
			mu.Unlock()
			return len(checked) > 1, nil // done in the second turn, after a reload
		case process.Partition:
			_, err := Data[process.SaveEnvData](tk)
			return err == nil, err
		}
		return true, nil
	}
	clock := newClock()
	e := newEngine(t, s, f, clock, nil)
	tickUntil(t, e, clock, time.Second, 5, func() bool { return load(t, s, d.ID).State == process.EnvCheck })
	if got := load(t, s, d.ID).StepData; got != `{"size":42,"sha256":"c0ffee"}` {
		t.Fatalf("step data saved %q", got)
	}
	// A reboot goes back to env_check with the data; env_check then asks for it again.
	if err := s.RequestProcess(ctx, d.ID, process.Reboot); err != nil {
		t.Fatal(err)
	}
	tickUntil(t, e, clock, 5*time.Second, 20, func() bool { return load(t, s, d.ID).State.Stopped() })
	got := load(t, s, d.ID)
	mu.Lock()
	defer mu.Unlock()
	want := process.DeployData{Size: 42, SHA256: "c0ffee"}
	if len(checked) < 2 || !reflect.DeepEqual(checked[0], want) || !reflect.DeepEqual(checked[len(checked)-1], want) {
		t.Errorf("env_check read %+v, want %+v each time", checked, want)
	}
	// partition asked for save_env's data: a bug in a step, failed at once.
	if got.State != process.Failed || got.ResumeState != process.Partition || !strings.Contains(got.LastError, "keeps *process.DeployData as step data, not *process.SaveEnvData") {
		t.Errorf("after partition: %s in %s: %q", got.State, got.ResumeState, got.LastError)
	}
	if err := s.RequestProcess(ctx, d.ID, process.Deploy); err != nil {
		t.Fatal(err)
	}
	if got := load(t, s, d.ID).StepData; got != "" {
		t.Errorf("a new deploy request kept the step data %q", got)
	}
	// Unreadable step data fails the deployment, saying so.
	if err := storetest.DB(s).Model(&store.Deployment{}).Where("id = ?", d.ID).Update("scratch", "{not json").Error; err != nil {
		t.Fatal(err)
	}
	tickUntil(t, e, clock, time.Second, 5, func() bool { return load(t, s, d.ID).State == process.Failed })
	if got := load(t, s, d.ID); !strings.Contains(got.LastError, "the step data of process deploy is unreadable") {
		t.Errorf("unreadable step data: %q", got.LastError)
	}
}
