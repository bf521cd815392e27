package store_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
)

// statsFixture: three nodes; node-1 deploys "tiny" twice (one success, one lost then failed),
// node-2 deploys "other" once with a hard reboot and a retry, node-3 never ran: its deployment
// only waited for a worker. Waits for a worker (queued) are in no statistic.
type statsFixture struct {
	c     *storetest.Cluster
	other store.Environment
	ds    []store.Deployment
}

func seedStats(t *testing.T, s *store.Store) *statsFixture {
	t.Helper()
	ctx := context.Background()
	c := storetest.Seed(t, s, 3)
	other := store.Environment{Name: "other", Type: store.EnvDefault, ImageName: "other.img", SSHUser: "pi", Shell: "bash"}
	check(t, s.CreateEnvironment(ctx, &other))
	ds := c.Deploy(t, s, 2)
	check(t, storetest.DB(s).Model(&store.Deployment{}).Where("id = ?", ds[1].ID).Update("environment_id", other.ID).Error)
	// A second deployment of tiny on node-1.
	d3 := store.Deployment{ReservationID: c.Reservation.ID, NodeID: c.Nodes[0].ID, UserID: c.User.ID,
		EnvironmentID: c.Environment.ID, Name: "again", Process: "destroy", State: "destroyed"}
	check(t, storetest.DB(s).Create(&d3).Error)
	ds = append(ds, d3)
	// node-3's request still waits for a worker; node-2's was taken by one.
	d4 := store.Deployment{ReservationID: c.Reservation.ID, NodeID: c.Nodes[2].ID, UserID: c.User.ID,
		EnvironmentID: c.Environment.ID, Name: "waiting", Process: "deploy", State: "boot_conf", Queued: true}
	check(t, storetest.DB(s).Create(&d4).Error)
	check(t, storetest.DB(s).Model(&store.Deployment{}).Where("id = ?", ds[1].ID).Update("queued", false).Error)

	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	n := 0
	ev := func(d store.Deployment, proc string, state process.StateName, outcome string, ms int64, msg string) {
		n++
		start := t0.Add(time.Duration(n) * time.Minute)
		check(t, storetest.DB(s).Create(&store.StateEvent{DeploymentID: d.ID, NodeID: d.NodeID, Process: proc, State: state,
			Outcome: outcome, Message: msg, StartedAt: start, EndedAt: start.Add(time.Duration(ms) * time.Millisecond),
			DurationMS: ms}).Error)
	}
	// node-1, tiny, run 1: ten minutes in the queue, then success.
	ev(ds[0], "deploy", "boot_conf", store.OutcomeQueued, 600000, "")
	ev(ds[0], "deploy", "boot_conf", store.OutcomeDone, 1000, "")
	ev(ds[0], "deploy", "env_copy", store.OutcomeDone, 60000, "")
	ev(ds[0], "deploy", "user_script", store.OutcomeDone, 2000, "")
	// node-1, tiny, run 2: a retry, lost, then a failure.
	ev(ds[2], "deploy", "boot_conf", store.OutcomeDone, 3000, "")
	ev(ds[2], "deploy", "env_copy", store.OutcomeRetry, 5000, "env_copy: short write")
	ev(ds[2], "deploy", "env_copy", store.OutcomeLost, 30000, "no progress in env_copy after 30s")
	ev(ds[2], "deploy", "env_check", store.OutcomeFailed, 10, "env_check: checksum mismatch")
	// node-2, other: a hard reboot in turn_on, then success.
	ev(ds[1], "deploy", "turn_on", store.OutcomeReboot, 60000, "turn_on not done after 1m0s: hard reboot")
	ev(ds[1], "deploy", "turn_on", store.OutcomeDone, 70000, "")
	ev(ds[1], "deploy", "user_script", store.OutcomeDone, 4000, "")
	ev(ds[1], "destroy", "destroying", store.OutcomeDone, 500, "")
	ev(d4, "deploy", "boot_conf", store.OutcomeQueued, 5000, "")
	return &statsFixture{c: c, other: other, ds: ds}
}

func TestStats(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			s := storetest.Open(t, dialect)
			ctx := context.Background()
			f := seedStats(t, s)

			counts, err := s.DeploymentCounts(ctx)
			check(t, err)
			got := map[string]int64{}
			for _, c := range counts {
				got[c.Process+"/"+c.State] = c.Count
			}
			if got["deploy/boot_conf"] != 1 || got["deploy/queued"] != 2 || got["destroy/destroyed"] != 1 || len(got) != 3 {
				t.Errorf("DeploymentCounts = %v", counts)
			}

			nodes, err := s.NodeStats(ctx)
			check(t, err)
			if len(nodes) != 3 || nodes[0].Name != "node-1" || nodes[2].Name != "node-3" {
				t.Fatalf("NodeStats = %+v", nodes)
			}
			n1, n2, n3 := nodes[0], nodes[1], nodes[2]
			if n1.Deployments != 2 || n1.Succeeded != 1 || n1.Failed != 2 || n1.Retries != 1 || n1.Reboots != 0 {
				t.Errorf("node-1 = %+v", n1)
			}
			if r := n1.SuccessRate(); math.Abs(r-100.0/3) > 0.01 {
				t.Errorf("node-1 success rate %.2f", r)
			}
			if n2.Deployments != 1 || n2.Succeeded != 1 || n2.Failed != 0 || n2.Reboots != 1 || n2.SuccessRate() != 100 {
				t.Errorf("node-2 = %+v", n2)
			}
			if n3.Deployments != 0 || n3.SuccessRate() != -1 {
				t.Errorf("node-3 = %+v", n3)
			}

			envs, err := s.EnvironmentStats(ctx)
			check(t, err)
			if len(envs) != 2 || envs[0].Name != "other" || envs[1].Name != "tiny" {
				t.Fatalf("EnvironmentStats = %+v", envs)
			}
			if envs[0].Succeeded != 1 || envs[0].Reboots != 1 || envs[1].Deployments != 2 || envs[1].Failed != 2 {
				t.Errorf("EnvironmentStats = %+v", envs)
			}

			times, err := s.StateTimes(ctx, store.StatsFilter{NodeID: f.c.Nodes[0].ID})
			check(t, err)
			var order []string
			byState := map[process.StateName]store.StateTime{}
			for _, st := range times {
				order = append(order, st.Process+"/"+string(st.State))
				byState[st.State] = st
			}
			want := []string{"deploy/boot_conf", "deploy/env_copy", "deploy/env_check", "deploy/user_script"}
			if len(order) != len(want) {
				t.Fatalf("StateTimes order %v, want %v", order, want)
			}
			for i := range want {
				if order[i] != want[i] {
					t.Fatalf("StateTimes order %v, want %v", order, want)
				}
			}
			if bc := byState["boot_conf"]; bc.Count != 2 || bc.MeanMS != 2000 || bc.MaxMS != 3000 {
				t.Errorf("boot_conf = %+v", bc)
			}
			if ec := byState["env_copy"]; ec.Count != 1 || ec.MeanMS != 60000 || ec.Retries != 1 || ec.Failures != 1 {
				t.Errorf("env_copy = %+v", ec)
			}
			if ck := byState["env_check"]; ck.Count != 0 || ck.MeanMS != 0 || ck.Failures != 1 {
				t.Errorf("env_check = %+v", ck)
			}

			all, err := s.StateTimes(ctx, store.StatsFilter{})
			check(t, err)
			if last := all[len(all)-1]; last.Process != "destroy" {
				t.Errorf("destroy should come after deploy: %+v", all)
			}
			byEnv, err := s.StateTimes(ctx, store.StatsFilter{EnvironmentID: f.other.ID})
			check(t, err)
			if len(byEnv) != 3 || byEnv[0].State != "turn_on" || byEnv[0].Reboots != 1 || byEnv[0].MeanMS != 70000 {
				t.Errorf("StateTimes(other) = %+v", byEnv)
			}

			fails, err := s.Failures(ctx, store.StatsFilter{}, 3)
			check(t, err)
			if len(fails) != 3 {
				t.Fatalf("Failures = %+v", fails)
			}
			if fails[0].State != "turn_on" || fails[0].Outcome != store.OutcomeReboot || fails[0].NodeName != "node-2" ||
				fails[0].EnvironmentName != "other" || fails[0].EnvironmentID != f.other.ID {
				t.Errorf("newest failure = %+v", fails[0])
			}
			if fails[1].Message != "env_check: checksum mismatch" || fails[1].NodeName != "node-1" || fails[1].EnvironmentName != "tiny" {
				t.Errorf("second failure = %+v", fails[1])
			}
			nf, err := s.Failures(ctx, store.StatsFilter{NodeID: f.c.Nodes[1].ID}, 10)
			check(t, err)
			if len(nf) != 1 || nf[0].DeploymentID != f.ds[1].ID || nf[0].EndedAt.IsZero() {
				t.Errorf("Failures(node-2) = %+v", nf)
			}
			ef, err := s.Failures(ctx, store.StatsFilter{EnvironmentID: f.c.Environment.ID}, 10)
			check(t, err)
			if len(ef) != 3 {
				t.Errorf("Failures(tiny) = %+v", ef)
			}
		})
	}
}

// TestDeployOutcomes: the outcomes behind the success rate over time are those DeployStats
// counts, oldest first, narrowed like the other statistics.
func TestDeployOutcomes(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			s := storetest.Open(t, dialect)
			ctx := context.Background()
			f := seedStats(t, s)
			all, err := s.DeployOutcomes(ctx, store.StatsFilter{}, time.Time{})
			check(t, err)
			var got []bool
			for i, o := range all {
				got = append(got, o.Succeeded)
				if i > 0 && o.EndedAt.Before(all[i-1].EndedAt) {
					t.Errorf("not oldest first: %+v", all)
				}
			}
			// node-1 run 1 finished, run 2 was lost then failed; node-2's run finished.
			if len(got) != 4 || !got[0] || got[1] || got[2] || !got[3] {
				t.Fatalf("DeployOutcomes = %+v", all)
			}
			n1, err := s.DeployOutcomes(ctx, store.StatsFilter{NodeID: f.c.Nodes[0].ID}, time.Time{})
			check(t, err)
			other, err := s.DeployOutcomes(ctx, store.StatsFilter{EnvironmentID: f.other.ID}, time.Time{})
			check(t, err)
			if len(n1) != 3 || len(other) != 1 || !other[0].Succeeded {
				t.Errorf("node-1 %+v, other %+v", n1, other)
			}
			late, err := s.DeployOutcomes(ctx, store.StatsFilter{}, all[2].EndedAt)
			check(t, err)
			if len(late) != 2 || !late[0].EndedAt.Equal(all[2].EndedAt) {
				t.Errorf("since the third: %+v", late)
			}
		})
	}
}
