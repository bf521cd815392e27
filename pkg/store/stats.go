package store

import (
	"context"
	"sort"
	"time"

	"gorm.io/gorm"

	"github.com/piseduce/piseduce/pkg/process"
)

// Statistics for admins and metrics, computed from StateEvent (one row per state transition
// or notable attempt) and Deployment. Like Kadeploy's kastat: how often deployments on a node
// or of an environment succeed, how long each state takes, and the last failures with their
// reason, so a flaky node or a worn SD card is spotted.

// StateCount is the number of deployments that are now in one process and state.
type StateCount struct {
	Process string
	State   string
	Count   int64
}

// DeploymentCounts counts the deployments by process and state, in one GROUP BY; those
// waiting for a worker are counted in state "queued", not in the state they will start with.
func (s *Store) DeploymentCounts(ctx context.Context) ([]StateCount, error) {
	var out []StateCount
	err := s.db.WithContext(ctx).Model(&Deployment{}).
		Select("process, CASE WHEN queued THEN ? ELSE state END AS state, COUNT(*) AS count", OutcomeQueued).
		Group("process, 2").Order("process, 2").Scan(&out).Error
	return out, err
}

// StatsFilter narrows statistics to one node or one environment (zero: all).
type StatsFilter struct {
	NodeID        uint
	EnvironmentID uint
}

// scope applies f to a query on state_events aliased e, joined with deployments d.
func (f StatsFilter) scope(q *gorm.DB) *gorm.DB {
	q = q.Joins("JOIN deployments d ON d.id = e.deployment_id")
	if f.NodeID != 0 {
		q = q.Where("e.node_id = ?", f.NodeID)
	}
	if f.EnvironmentID != 0 {
		q = q.Where("d.environment_id = ?", f.EnvironmentID)
	}
	return q
}

// DeployStats sums up the deployments of one node or one environment.
type DeployStats struct {
	ID   uint
	Name string
	// Deployments is the number of deployments that ran at least one state.
	Deployments int64
	// Succeeded counts deploy runs that finished (their last state done); Failed counts deploy
	// states that ended lost or failed. A run that was lost, resumed and then finished counts
	// in both.
	Succeeded int64
	Failed    int64
	// Reboots are hard reboots given to a state that took too long; Retries failed attempts.
	Reboots int64
	Retries int64
}

// SuccessRate is Succeeded / (Succeeded + Failed) in percent; -1 when nothing ended yet.
func (d DeployStats) SuccessRate() float64 {
	if d.Succeeded+d.Failed == 0 {
		return -1
	}
	return 100 * float64(d.Succeeded) / float64(d.Succeeded+d.Failed)
}

// lastDeployState is the deploy state whose end means a finished deployment.
func lastDeployState() process.StateName {
	p, _ := process.Get(process.Deploy)
	return p.States[len(p.States)-2].Name
}

const statsColumns = `COUNT(DISTINCT e.deployment_id) AS deployments,
	SUM(CASE WHEN e.process = ? AND e.state = ? AND e.outcome = ? THEN 1 ELSE 0 END) AS succeeded,
	SUM(CASE WHEN e.process = ? AND e.outcome IN (?, ?) THEN 1 ELSE 0 END) AS failed,
	SUM(CASE WHEN e.outcome = ? THEN 1 ELSE 0 END) AS reboots,
	SUM(CASE WHEN e.outcome = ? THEN 1 ELSE 0 END) AS retries`

func statsArgs() []any {
	return []any{process.Deploy, lastDeployState(), OutcomeDone, process.Deploy, OutcomeLost, OutcomeFailed,
		OutcomeReboot, OutcomeRetry}
}

// NodeStats returns one row per node, in name order (nodes without events have zeros).
func (s *Store) NodeStats(ctx context.Context) ([]DeployStats, error) {
	var rows []DeployStats
	err := s.db.WithContext(ctx).Table("state_events e").
		Select("e.node_id AS id, "+statsColumns, statsArgs()...).
		Where("e.outcome <> ?", OutcomeQueued).Group("e.node_id").Scan(&rows).Error
	if err != nil {
		return nil, err
	}
	var nodes []Node
	if err := s.db.WithContext(ctx).Select("id, name").Find(&nodes).Error; err != nil {
		return nil, err
	}
	names := make(map[uint]string, len(nodes))
	for _, n := range nodes {
		names[n.ID] = n.Name
	}
	return mergeStats(rows, names), nil
}

// EnvironmentStats returns one row per environment, in name order, counted by the
// environment of each event's deployment.
func (s *Store) EnvironmentStats(ctx context.Context) ([]DeployStats, error) {
	var rows []DeployStats
	err := s.db.WithContext(ctx).Table("state_events e").
		Joins("JOIN deployments d ON d.id = e.deployment_id").
		Select("d.environment_id AS id, "+statsColumns, statsArgs()...).
		Where("e.outcome <> ?", OutcomeQueued).Group("d.environment_id").Scan(&rows).Error
	if err != nil {
		return nil, err
	}
	var envs []Environment
	if err := s.db.WithContext(ctx).Select("id, name").Find(&envs).Error; err != nil {
		return nil, err
	}
	names := make(map[uint]string, len(envs))
	for _, e := range envs {
		names[e.ID] = e.Name
	}
	return mergeStats(rows, names), nil
}

// mergeStats gives every named object a row (zeros when it has no events) and sorts by name.
func mergeStats(rows []DeployStats, names map[uint]string) []DeployStats {
	byID := make(map[uint]DeployStats, len(rows))
	for _, r := range rows {
		byID[r.ID] = r
	}
	out := make([]DeployStats, 0, len(names))
	for id, name := range names {
		r := byID[id]
		r.ID, r.Name = id, name
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return NameLess(out[i].Name, out[j].Name) })
	return out
}

// StateTime is how long one state of one process took when it was done.
type StateTime struct {
	Process string
	State   process.StateName
	// Count is the number of times the state was done; MeanMS and MaxMS their durations.
	Count  int64
	MeanMS float64
	MaxMS  int64
	// Retries, Reboots and Failures (lost or failed) are counted in the same state.
	Retries  int64
	Reboots  int64
	Failures int64
}

// MeanMillis is MeanMS rounded to a millisecond.
func (t StateTime) MeanMillis() int64 { return int64(t.MeanMS + 0.5) }

// StateTimes returns the time per state for f, in process order, then state order.
func (s *Store) StateTimes(ctx context.Context, f StatsFilter) ([]StateTime, error) {
	var rows []StateTime
	q := f.scope(s.db.WithContext(ctx).Table("state_events e")).
		Select(`e.process AS process, e.state AS state,
			SUM(CASE WHEN e.outcome = ? THEN 1 ELSE 0 END) AS count,
			AVG(CASE WHEN e.outcome = ? THEN e.duration_ms END) AS mean_ms,
			MAX(CASE WHEN e.outcome = ? THEN e.duration_ms END) AS max_ms,
			SUM(CASE WHEN e.outcome = ? THEN 1 ELSE 0 END) AS retries,
			SUM(CASE WHEN e.outcome = ? THEN 1 ELSE 0 END) AS reboots,
			SUM(CASE WHEN e.outcome IN (?, ?) THEN 1 ELSE 0 END) AS failures`,
			OutcomeDone, OutcomeDone, OutcomeDone, OutcomeRetry, OutcomeReboot, OutcomeLost, OutcomeFailed).
		Where("e.outcome IN ?", []string{OutcomeDone, OutcomeRetry, OutcomeReboot, OutcomeLost, OutcomeFailed}).
		Group("e.process, e.state")
	var raw []struct {
		Process                    string
		State                      process.StateName
		Count                      int64
		MeanMS                     *float64
		MaxMS                      *int64
		Retries, Reboots, Failures int64
	}
	if err := q.Scan(&raw).Error; err != nil {
		return nil, err
	}
	for _, r := range raw {
		st := StateTime{Process: r.Process, State: r.State, Count: r.Count, Retries: r.Retries, Reboots: r.Reboots, Failures: r.Failures}
		if r.MeanMS != nil {
			st.MeanMS = *r.MeanMS
		}
		if r.MaxMS != nil {
			st.MaxMS = *r.MaxMS
		}
		rows = append(rows, st)
	}
	procs := process.All()
	order := map[string]int{process.Deploy: 0, process.Destroy: 1, process.Reboot: 2, process.BootTest: 3}
	sort.Slice(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if a.Process != b.Process {
			oa, ok1 := order[a.Process]
			ob, ok2 := order[b.Process]
			if ok1 != ok2 {
				return ok1
			}
			if oa != ob {
				return oa < ob
			}
			return a.Process < b.Process
		}
		ia, ib := procs[a.Process].Index(a.State), procs[b.Process].Index(b.State)
		if ia != ib {
			return ia < ib
		}
		return a.State < b.State
	})
	return rows, nil
}

// Failure is one state that did not go well: lost, failed, hard-rebooted or retried.
type Failure struct {
	StateEvent
	NodeName        string
	EnvironmentID   uint
	EnvironmentName string
}

// Failures returns the last limit failures for f, newest first.
func (s *Store) Failures(ctx context.Context, f StatsFilter, limit int) ([]Failure, error) {
	var out []Failure
	err := f.scope(s.db.WithContext(ctx).Table("state_events e")).
		Joins("LEFT JOIN nodes n ON n.id = e.node_id").
		Joins("LEFT JOIN environments env ON env.id = d.environment_id").
		Select("e.*, n.name AS node_name, d.environment_id AS environment_id, env.name AS environment_name").
		Where("e.outcome IN ?", []string{OutcomeLost, OutcomeFailed, OutcomeReboot, OutcomeRetry}).
		Order("e.ended_at DESC, e.id DESC").Limit(limit).Scan(&out).Error
	return out, err
}

// DeployOutcome is one deploy run that finished (Succeeded) or one deploy state that ended
// lost or failed, counted as in DeployStats, with when it ended.
type DeployOutcome struct {
	EndedAt   time.Time
	Succeeded bool
}

// DeployOutcomes returns the outcomes for f that ended at since or later, oldest first: the
// success rate over time.
func (s *Store) DeployOutcomes(ctx context.Context, f StatsFilter, since time.Time) ([]DeployOutcome, error) {
	var out []DeployOutcome
	err := f.scope(s.db.WithContext(ctx).Table("state_events e")).
		Select("e.ended_at AS ended_at, e.outcome = ? AS succeeded", OutcomeDone).
		Where("e.process = ? AND e.ended_at >= ?", process.Deploy, since).
		Where("(e.state = ? AND e.outcome = ?) OR e.outcome IN ?", lastDeployState(), OutcomeDone,
			[]string{OutcomeLost, OutcomeFailed}).
		Order("e.ended_at, e.id").Scan(&out).Error
	return out, err
}
