package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/bits"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/piseduce/piseduce/pkg/process"
)

// ErrLeaseLost is returned by the engine's writes when the deployment is no longer ours: its
// lease was taken over, or the web asked for something new (Generation moved on).
var ErrLeaseLost = errors.New("store: lease lost or deployment changed by a new request")

// observedColumns are the columns only pitasks writes, with how to read each from a
// Deployment (get, the value written) and whether it differs from the snapshot (observed)
// of when it was last read or written; times by instant.
var observedColumns = []struct {
	name string
	get  func(*Deployment) any
	same func(*Deployment, *observed) bool
}{
	{"process", func(d *Deployment) any { return d.Process }, func(d *Deployment, o *observed) bool { return d.Process == o.Process }},
	{"state", func(d *Deployment) any { return d.State }, func(d *Deployment, o *observed) bool { return d.State == o.State }},
	{"resume_process", func(d *Deployment) any { return d.ResumeProcess }, func(d *Deployment, o *observed) bool { return d.ResumeProcess == o.ResumeProcess }},
	{"resume_state", func(d *Deployment) any { return d.ResumeState }, func(d *Deployment, o *observed) bool { return d.ResumeState == o.ResumeState }},
	{"state_started_at", func(d *Deployment) any { return d.StateStartedAt }, func(d *Deployment, o *observed) bool { return d.StateStartedAt.Equal(o.StateStartedAt) }},
	{"exec_done", func(d *Deployment) any { return d.ExecDone }, func(d *Deployment, o *observed) bool { return d.ExecDone == o.ExecDone }},
	{"rebooted", func(d *Deployment) any { return d.Rebooted }, func(d *Deployment, o *observed) bool { return d.Rebooted == o.Rebooted }},
	{"next_check_at", func(d *Deployment) any { return d.NextCheckAt }, func(d *Deployment, o *observed) bool { return d.NextCheckAt.Equal(o.NextCheckAt) }},
	{"failures", func(d *Deployment) any { return d.Failures }, func(d *Deployment, o *observed) bool { return d.Failures == o.Failures }},
	{"last_error", func(d *Deployment) any { return d.LastError }, func(d *Deployment, o *observed) bool { return d.LastError == o.LastError }},
	{"bytes_done", func(d *Deployment) any { return d.BytesDone }, func(d *Deployment, o *observed) bool { return d.BytesDone == o.BytesDone }},
	{"bytes_total", func(d *Deployment) any { return d.BytesTotal }, func(d *Deployment, o *observed) bool { return d.BytesTotal == o.BytesTotal }},
	{"throughput", func(d *Deployment) any { return d.Throughput }, func(d *Deployment, o *observed) bool { return d.Throughput == o.Throughput }},
	{"script_output", func(d *Deployment) any { return d.ScriptOutput }, func(d *Deployment, o *observed) bool { return d.ScriptOutput == o.ScriptOutput }},
	{"scratch", func(d *Deployment) any { return d.StepData }, func(d *Deployment, o *observed) bool { return d.StepData == o.StepData }},
	{"queued", func(d *Deployment) any { return d.Queued }, func(d *Deployment, o *observed) bool { return d.Queued == o.Queued }},
	{"silent_since", func(d *Deployment) any { return optTime(d.SilentSince) }, func(d *Deployment, o *observed) bool { return sameTime(d.SilentSince, o.Silent, o.SilentSince) }},
	{"waiting_since", func(d *Deployment) any { return optTime(d.WaitingSince) }, func(d *Deployment, o *observed) bool { return sameTime(d.WaitingSince, o.Waiting, o.WaitingSince) }},
	{"waiting_for", func(d *Deployment) any { return d.WaitingFor }, func(d *Deployment, o *observed) bool { return d.WaitingFor == o.WaitingFor }},
	{"node_recovered", func(d *Deployment) any { return d.NodeRecovered }, func(d *Deployment, o *observed) bool { return d.NodeRecovered == o.NodeRecovered }},
}

// optTime is a nullable time column's value.
func optTime(t *time.Time) any {
	if t == nil {
		return nil
	}
	return *t
}

// sameTime reports whether the nullable t is the snapshot's value (set, at).
func sameTime(t *time.Time, set bool, at time.Time) bool {
	return (t != nil) == set && (t == nil || t.Equal(at))
}

// observed is a snapshot of a deployment's observed columns, by value: a copy, not boxed
// values (a busy tick takes 400), and nothing shared with what the engine changes in place
// (SilentSince, WaitingSince). TestObservedColumns checks it against observedColumns.
type observed struct {
	Process, ResumeProcess, LastError, ScriptOutput, StepData, WaitingFor string
	State, ResumeState                                                    process.StateName
	StateStartedAt, NextCheckAt, SilentSince, WaitingSince                time.Time
	Silent, Waiting, ExecDone, Rebooted, Queued, NodeRecovered            bool
	Failures                                                              int
	BytesDone, BytesTotal, Throughput                                     int64
}

// observe takes d's snapshot.
func observe(d *Deployment) {
	d.saved = observed{Process: d.Process, ResumeProcess: d.ResumeProcess, LastError: d.LastError, ScriptOutput: d.ScriptOutput,
		StepData: d.StepData, WaitingFor: d.WaitingFor, State: d.State, ResumeState: d.ResumeState, StateStartedAt: d.StateStartedAt,
		NextCheckAt: d.NextCheckAt, Silent: d.SilentSince != nil, Waiting: d.WaitingSince != nil, ExecDone: d.ExecDone, Rebooted: d.Rebooted, Queued: d.Queued,
		NodeRecovered: d.NodeRecovered, Failures: d.Failures, BytesDone: d.BytesDone, BytesTotal: d.BytesTotal, Throughput: d.Throughput}
	if d.SilentSince != nil {
		d.saved.SilentSince = *d.SilentSince
	}
	if d.WaitingSince != nil {
		d.saved.WaitingSince = *d.WaitingSince
	}
	d.read = true
}

// terminalStates are the states the engine never advances by itself.
func terminalStates() []process.StateName {
	out := []process.StateName{process.Lost, process.Failed}
	for _, p := range process.All() {
		if last := p.States[len(p.States)-1].Name; p.Terminal(last) {
			out = append(out, last)
		}
	}
	return out
}

// Deployment returns one deployment with its node, switch, environment and reservation.
func (s *Store) Deployment(ctx context.Context, id uint) (*Deployment, error) {
	var d Deployment
	err := s.db.WithContext(ctx).Preload("Node.Switch").Preload("Environment").Preload("Reservation").Preload("User").
		First(&d, id).Error
	if err != nil {
		return nil, notFound(err)
	}
	return &d, nil
}

// CreateDeployments inserts new deploy requests, all or none.
func (s *Store) CreateDeployments(ctx context.Context, ds []Deployment) error {
	if len(ds) == 0 {
		return nil
	}
	p, _ := process.Get(process.Deploy)
	now := time.Now().UTC()
	for i := range ds {
		ds[i].Process = process.Deploy
		ds[i].State = p.First()
		ds[i].StateStartedAt = now
		ds[i].NextCheckAt = now
		ds[i].Queued = true
	}
	if err := s.db.WithContext(ctx).Omit("Node", "Environment", "Reservation", "User").Create(&ds).Error; err != nil {
		return fmt.Errorf("store: unable to create deployments: %w", err)
	}
	return nil
}

// RequestProcess asks pitasks to run proc on deployment id, from its first state. A reboot
// remembers where the deployment was, to go back there once the node is up again.
func (s *Store) RequestProcess(ctx context.Context, id uint, proc string) error {
	p, err := process.Get(proc)
	if err != nil {
		return err
	}
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var d Deployment
		if err := tx.Preload("Node").Preload("Environment").First(&d, id).Error; err != nil {
			return notFound(err)
		}
		if err := canRun(proc, []Node{d.Node}, &d.Environment); err != nil {
			return err
		}
		if d.Released && proc != process.Destroy {
			return &ConflictError{Nodes: []string{d.Node.Name}, Reason: "given back before the end of the reservation: only destroyed now"}
		}
		updates := requestUpdates(p.Name, p.First(), time.Now().UTC())
		if !p.Resumes {
			updates["scratch"] = "" // a new run: the step data of the last one is no use (a reboot goes back to it)
		}
		if proc == process.Reboot && d.Hold != "" {
			return fmt.Errorf("store: deployment %d is held (%s): it has nothing to reboot back to; destroy it or deploy it again", id, d.Hold)
		}
		if proc == process.Reboot {
			resumeP, resumeS := d.Process, d.State
			switch {
			case d.State == process.Lost || d.State == process.Failed || d.Process == process.Reboot:
				resumeP, resumeS = d.ResumeProcess, d.ResumeState
			}
			if resumeP == "" {
				return fmt.Errorf("store: deployment %d has nothing to reboot back to", id)
			}
			updates["resume_process"], updates["resume_state"] = resumeP, resumeS
		}
		return tx.Model(&Deployment{}).Where("id = ?", id).Updates(updates).Error
	})
}

// canRun refuses to run proc on nodes whose serial is not known yet (they have no TFTP
// folder: nothing can boot them) and to deploy an environment without an image.
func canRun(proc string, nodes []Node, env *Environment) error {
	if proc != process.Deploy && proc != process.BootTest {
		return nil
	}
	var unknown []string
	for _, n := range nodes {
		if n.Serial == "" {
			unknown = append(unknown, n.Name)
		}
	}
	if len(unknown) > 0 {
		return &ConflictError{Nodes: unknown, Reason: "serial not known yet, so they cannot be booted over the network: an admin sets it on the node's page, or runs discovery"}
	}
	if proc == process.Deploy && !env.Deployable() {
		return &ConflictError{Reason: fmt.Sprintf("environment %s has no image: it only serves boot tests", label(env.Name))}
	}
	return nil
}

// ForceState puts deployment id in the given process and state (an admin's repair), with the
// reason recorded as an event.
func (s *Store) ForceState(ctx context.Context, id uint, proc string, state process.StateName, reason string) error {
	p, err := process.Get(proc)
	if err != nil {
		return err
	}
	if p.Index(state) < 0 && !state.Stopped() {
		return fmt.Errorf("store: %q is not a state of process %s", state, proc)
	}
	now := time.Now().UTC()
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var d Deployment
		if err := tx.First(&d, id).Error; err != nil {
			return notFound(err)
		}
		if err := tx.Model(&Deployment{}).Where("id = ?", id).Updates(requestUpdates(proc, state, now)).Error; err != nil {
			return err
		}
		return tx.Create(&StateEvent{DeploymentID: id, NodeID: d.NodeID, Process: proc, State: state,
			Outcome: OutcomeForced, Message: reason, StartedAt: now, EndedAt: now}).Error
	})
}

// requestUpdates are the columns a new request resets; bumping generation fences off any
// step still running for the previous request. A state the engine has work in waits for a
// worker (queued) from now.
func requestUpdates(proc string, state process.StateName, now time.Time) map[string]any {
	return map[string]any{
		"generation": gorm.Expr("generation + 1"), "process": proc, "state": state,
		"state_started_at": now, "next_check_at": now, "exec_done": false, "rebooted": false,
		"failures": 0, "last_error": "", "hold": "", "silent_since": nil, "waiting_since": nil, "waiting_for": "", "node_recovered": false, "queued": (&Deployment{Process: proc, State: state}).Active(), "updated_at": now,
	}
}

// ClaimDue leases up to limit deployments that have work due at now and no live lease,
// skipping the ids in exclude (those this process is already working on). The lease is taken
// with a conditional UPDATE, so two processes never both win the same row. They come with
// their node, its switch, their environment and user (not their reservation: the engine's
// steps do not need it). The result may reuse into's array, deployments no longer in use
// (nil: a new array).
func (s *Store) ClaimDue(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int, exclude []uint, into []Deployment) ([]Deployment, error) {
	if limit <= 0 {
		return nil, nil
	}
	db := s.db.WithContext(ctx)
	var ids []uint
	q := db.Model(&Deployment{}).
		Where("state NOT IN ?", terminalStates()).
		Where("hold = ''").
		Where("next_check_at <= ?", now).
		Where("(lease_owner = '' OR lease_until < ?)", now)
	if len(exclude) > 0 {
		q = q.Where("id NOT IN ?", exclude)
	}
	if err := q.Order("next_check_at").Limit(limit).Pluck("id", &ids).Error; err != nil {
		return nil, fmt.Errorf("store: unable to find due deployments: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	res := db.Model(&Deployment{}).
		Where("id IN ("+idList(ids)+")").
		Where("(lease_owner = '' OR lease_until < ?)", now).
		UpdateColumns(map[string]any{"lease_owner": owner, "lease_until": now.Add(lease)})
	if res.Error != nil {
		return nil, fmt.Errorf("store: unable to lease deployments: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return nil, nil
	}
	ds, err := s.leased(ctx, owner, ids, into)
	if err != nil {
		return nil, fmt.Errorf("store: unable to load leased deployments: %w", err)
	}
	for i := range ds {
		observe(&ds[i])
	}
	return ds, nil
}

// leased reads the deployments ids that owner leases, by next check, with their node (one
// query), then the few switches, environments and users they share, once each, whole: a
// deployment's Node.Switch, Environment and User are copies of those (their slices and
// strings shared: no step changes them). It reuses into's array if it is large enough.
func (s *Store) leased(ctx context.Context, owner string, ids []uint, into []Deployment) ([]Deployment, error) {
	sc, err := s.claimScanners()
	if err != nil {
		return nil, err
	}
	db := s.db.WithContext(ctx)
	rows, err := db.Raw("SELECT "+sc.deployment.list()+", "+sc.node.list()+
		" FROM deployments LEFT JOIN nodes ON nodes.id = deployments.node_id"+
		" WHERE deployments.id IN ("+idList(ids)+") AND deployments.lease_owner = ? ORDER BY deployments.next_check_at", owner).Rows()
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	ds := into[:0]
	if cap(ds) < len(ids) {
		ds = make([]Deployment, 0, len(ids))
	}
	dd, nd := sc.deployment.dests(), sc.node.dests()
	args := make([]any, 0, len(dd)+len(nd))
	for rows.Next() {
		ds = append(ds, Deployment{}) // zero: nothing of a reused element stays
		d := &ds[len(ds)-1]
		args = sc.deployment.point(dd, reflect.ValueOf(d).Elem(), args[:0])
		args = sc.node.point(nd, reflect.ValueOf(&d.Node).Elem(), args)
		if err := rows.Scan(args...); err != nil {
			return nil, err
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	switches, err := readByID(db, ds, func(d *Deployment) uint { return d.Node.SwitchID }, func(s *Switch) uint { return s.ID })
	if err != nil {
		return nil, err
	}
	envs, err := readByID(db, ds, func(d *Deployment) uint { return d.EnvironmentID }, func(e *Environment) uint { return e.ID })
	if err != nil {
		return nil, err
	}
	users, err := readByID(db, ds, func(d *Deployment) uint { return d.UserID }, func(u *User) uint { return u.ID })
	if err != nil {
		return nil, err
	}
	for i := range ds {
		d := &ds[i]
		d.Node.Switch, d.Environment, d.User = switches[d.Node.SwitchID], envs[d.EnvironmentID], users[d.UserID]
	}
	return ds, nil
}

// readByID reads the rows of T whose ids key gives for ds, each once; a missing one reads as
// T's zero value, as a left join would.
func readByID[T any](db *gorm.DB, ds []Deployment, key func(*Deployment) uint, id func(*T) uint) (map[uint]T, error) {
	var ids []uint
	for i := range ds {
		if k := key(&ds[i]); k != 0 && !slices.Contains(ids, k) {
			ids = append(ids, k)
		}
	}
	out := make(map[uint]T, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	var rows []T
	if err := db.Where("id IN ?", ids).Find(&rows).Error; err != nil {
		return nil, err
	}
	for i := range rows {
		out[id(&rows[i])] = rows[i]
	}
	return out, nil
}

// The lease columns are written without updated_at: a lease is nothing pifrontend shows, and
// updated_at moving would change its change stamp (ChangeStamp) at every claim.

// RenewLeases extends this owner's leases on ids until until.
func (s *Store) RenewLeases(ctx context.Context, owner string, ids []uint, until time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	return s.db.WithContext(ctx).Model(&Deployment{}).Where("id IN ? AND lease_owner = ?", ids, owner).
		UpdateColumn("lease_until", until).Error
}

// ReleaseLease gives deployment id back, if it is still ours.
func (s *Store) ReleaseLease(ctx context.Context, owner string, id uint) error {
	return s.db.WithContext(ctx).Model(&Deployment{}).Where("id = ? AND lease_owner = ?", id, owner).
		UpdateColumns(map[string]any{"lease_owner": "", "lease_until": time.Time{}}).Error
}

// ReleaseAll gives back every lease held by owner (clean stop).
func (s *Store) ReleaseAll(ctx context.Context, owner string) error {
	return s.db.WithContext(ctx).Model(&Deployment{}).Where("lease_owner = ?", owner).
		UpdateColumns(map[string]any{"lease_owner": "", "lease_until": time.Time{}}).Error
}

// Save is one write of the engine: its deployment's observed columns and, when not nil, the
// event that ends a state.
type Save struct {
	D     *Deployment
	Event *StateEvent
	// Release gives the lease back in the same statement: the engine's turn on D ends.
	Release bool
	// Err is the outcome of this save: nil, ErrLeaseLost, or the database's error.
	Err error
}

// SaveObserved writes saves in one transaction of a few statements, whatever their number:
// one read of the leases, one UPDATE for the saves that change the same columns, one INSERT
// of the events. Each save writes only the observed columns that changed since its
// deployment was read (ClaimDue) or last written (updated_at moves when a column other than
// next_check_at does: a node polled again changes nothing one sees), on condition that owner
// still holds the lease and no new request came (same Generation), else its Err is
// ErrLeaseLost; a save that changes nothing and releases nothing writes nothing. A released
// lease leaves D.LeaseOwner empty. The error is the transaction's (then every Err is it); a
// lease lost while the transaction ran fails it with ErrLeaseLost, for the caller to save one
// at a time.
func (s *Store) SaveObserved(ctx context.Context, owner string, saves []Save) error {
	ws := make([]observedWrite, 0, len(saves))
	for i := range saves {
		saves[i].Err = nil
		if w := planObserved(&saves[i]); w.cols != 0 || saves[i].Release {
			ws = append(ws, w)
		}
	}
	if len(ws) == 0 {
		return nil
	}
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		ids := make([]uint, len(ws))
		for i, w := range ws {
			ids[i] = w.s.D.ID
		}
		gen, err := leaseGenerations(tx, owner, ids)
		if err != nil {
			return fmt.Errorf("store: unable to read leases: %w", err)
		}
		ours := make([]observedWrite, 0, len(ws))
		for _, w := range ws {
			if g, ok := gen[w.s.D.ID]; !ok || g != w.s.D.Generation {
				w.s.Err = ErrLeaseLost
				continue
			}
			ours = append(ours, w)
		}
		// Saves that change the same columns go in one UPDATE (by id: one lock order).
		slices.SortStableFunc(ours, func(a, b observedWrite) int { return cmp.Compare(a.shape(), b.shape()) })
		var evs []*StateEvent
		for start := 0; start < len(ours); {
			end := start + 1
			for end < len(ours) && end-start < 100 && ours[end].shape() == ours[start].shape() {
				end++
			}
			q, args := observedUpdate(ours[start:end], owner)
			res, err := tx.Statement.ConnPool.ExecContext(tx.Statement.Context, q, args...) // not through gorm: nothing of it is needed here
			if err != nil {
				return fmt.Errorf("store: unable to save deployments: %w", err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("store: unable to save deployments: %w", err)
			}
			if n != int64(end-start) {
				return ErrLeaseLost // changed since read: which one, a save alone will tell
			}
			start = end
		}
		for _, w := range ours {
			if w.s.Event != nil {
				evs = append(evs, w.s.Event)
			}
		}
		if len(evs) > 0 {
			if err := tx.Create(evs).Error; err != nil {
				return fmt.Errorf("store: unable to record state events: %w", err)
			}
		}
		return nil
	})
	for _, w := range ws {
		switch {
		case err != nil:
			w.s.Err = err
		case w.s.Err == nil: // written
			observe(w.s.D) // as written: its worker waits for this save
			if w.s.Release {
				w.s.D.LeaseOwner, w.s.D.LeaseUntil = "", time.Time{}
			}
		}
	}
	return err
}

// leaseGenerations are the generations of the deployments ids that owner leases, by id.
func leaseGenerations(tx *gorm.DB, owner string, ids []uint) (map[uint]int64, error) {
	rows, err := tx.Raw("SELECT id, generation FROM deployments WHERE id IN ("+idList(ids)+") AND lease_owner = ?", owner).Rows()
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	gen := make(map[uint]int64, len(ids))
	var id, g any // as the driver gives them: a typed destination would cost a conversion each
	for rows.Next() {
		if err := rows.Scan(&id, &g); err != nil {
			return nil, err
		}
		i, err := intValue(id)
		if err != nil {
			return nil, err
		}
		if gen[uint(i)], err = intValue(g); err != nil {
			return nil, err
		}
	}
	return gen, rows.Err()
}

// idList is ids as SQL, "1, 2, 3": integers written by strconv need no arguments, and a
// claim's or a batch's 200 arguments cost more than the rest of its query.
func idList(ids []uint) string {
	b := make([]byte, 0, 8*len(ids))
	for i, id := range ids {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = strconv.AppendUint(b, uint64(id), 10)
	}
	return string(b)
}

// observedWrite is what one save writes: the observed columns that changed (a bit each, in
// the order of observedColumns).
type observedWrite struct {
	s    *Save
	cols uint32
}

// releaseBit marks, in a shape, the saves that give the lease back.
const releaseBit = 1 << 31

func (w observedWrite) shape() uint32 {
	if w.s.Release {
		return w.cols | releaseBit
	}
	return w.cols
}

func planObserved(s *Save) observedWrite {
	w := observedWrite{s: s}
	for i, c := range observedColumns {
		if !s.D.read || !c.same(s.D, &s.D.saved) {
			w.cols |= 1 << i
		}
	}
	return w
}

// nextCheckBit is the column a node polled again changes alone.
var nextCheckBit = func() uint32 {
	for i, c := range observedColumns {
		if c.name == "next_check_at" {
			return 1 << i
		}
	}
	panic("store: next_check_at is not an observed column")
}()

// observedUpdate is the one UPDATE of ws, saves of the same shape: a column's values by id,
// on condition of the lease and of each one's generation. The SQL is made of column names and
// of the ids and generations, integers written by strconv: only the values are arguments
// (a thousand arguments cost more than the rest of a busy tick's save).
func observedUpdate(ws []observedWrite, owner string) (string, []any) {
	var b strings.Builder
	b.Grow(256 + 64*len(ws)*bits.OnesCount32(ws[0].cols))
	args := make([]any, 0, 3+len(ws)*bits.OnesCount32(ws[0].cols))
	caseByID := func(value func(observedWrite) any) {
		b.WriteString("CASE id")
		for _, w := range ws {
			b.WriteString(" WHEN ")
			b.WriteString(strconv.FormatUint(uint64(w.s.D.ID), 10))
			b.WriteString(" THEN ?")
			args = append(args, value(w))
		}
		b.WriteString(" END")
	}
	b.WriteString("UPDATE deployments SET ")
	set := func(col string) {
		if len(args) > 0 {
			b.WriteString(", ")
		}
		b.WriteString(col + " = ")
	}
	cols := ws[0].cols
	for i, c := range observedColumns {
		if cols&(1<<i) != 0 {
			set(c.name)
			caseByID(func(w observedWrite) any { return c.get(w.s.D) })
		}
	}
	if cols&^nextCheckBit != 0 {
		now := time.Now().UTC()
		for _, w := range ws {
			w.s.D.UpdatedAt = now
		}
		set("updated_at")
		b.WriteString("?")
		args = append(args, now)
	}
	if ws[0].s.Release {
		set("lease_owner")
		b.WriteString("'', lease_until = ?")
		args = append(args, time.Time{})
	}
	ids := make([]uint, len(ws))
	for i, w := range ws {
		ids[i] = w.s.D.ID
	}
	b.WriteString(" WHERE lease_owner = ? AND id IN (" + idList(ids) + ") AND generation = CASE id")
	args = append(args, owner)
	for _, w := range ws {
		b.WriteString(" WHEN ")
		b.WriteString(strconv.FormatUint(uint64(w.s.D.ID), 10))
		b.WriteString(" THEN ")
		b.WriteString(strconv.FormatInt(w.s.D.Generation, 10))
	}
	b.WriteString(" END")
	return b.String(), args
}

// SaveProgress records copy progress, under the same lease condition as SaveObserved.
func (s *Store) SaveProgress(ctx context.Context, owner string, d *Deployment) error {
	res := s.db.WithContext(ctx).Model(&Deployment{}).
		Where("id = ? AND lease_owner = ? AND generation = ?", d.ID, owner, d.Generation).
		Updates(map[string]any{"bytes_done": d.BytesDone, "bytes_total": d.BytesTotal, "throughput": d.Throughput})
	if res.Error != nil {
		return fmt.Errorf("store: unable to save progress of deployment %d: %w", d.ID, res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrLeaseLost
	}
	d.saved.BytesDone, d.saved.BytesTotal, d.saved.Throughput = d.BytesDone, d.BytesTotal, d.Throughput
	return nil
}

// ExpiredDeployments returns the ids of deployments whose reservation ended before now and
// that are not being destroyed yet (a held one is not, whatever its process says).
func (s *Store) ExpiredDeployments(ctx context.Context, now time.Time) ([]uint, error) {
	var ids []uint
	err := s.db.WithContext(ctx).Model(&Deployment{}).
		Joins("JOIN reservations ON reservations.id = deployments.reservation_id").
		Where("reservations.ends_at < ? AND (deployments.process <> ? OR deployments.hold <> '')", now, process.Destroy).
		Pluck("deployments.id", &ids).Error
	if err != nil {
		return nil, fmt.Errorf("store: unable to find expired deployments: %w", err)
	}
	return ids, nil
}

// LostDeployments returns the ids of deployments given up as lost by pitasks (not the held
// ones: a node lost under the original PiSeduce waits for its user).
func (s *Store) LostDeployments(ctx context.Context) ([]uint, error) {
	var ids []uint
	err := s.db.WithContext(ctx).Model(&Deployment{}).Where("state = ? AND hold = ''", process.Lost).Pluck("id", &ids).Error
	return ids, err
}

// ResumeLost sends a lost deployment back to the state it was lost in, with fresh timers.
func (s *Store) ResumeLost(ctx context.Context, id uint) error {
	now := time.Now().UTC()
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var d Deployment
		if err := tx.First(&d, id).Error; err != nil {
			return notFound(err)
		}
		if d.State != process.Lost || d.ResumeProcess == "" {
			return nil
		}
		u := requestUpdates(d.ResumeProcess, d.ResumeState, now)
		if err := tx.Model(&Deployment{}).Where("id = ? AND state = ?", id, process.Lost).Updates(u).Error; err != nil {
			return err
		}
		return tx.Create(&StateEvent{DeploymentID: id, NodeID: d.NodeID, Process: d.ResumeProcess,
			State: d.ResumeState, Outcome: OutcomeResumed, Message: "resumed when pitasks started",
			StartedAt: now, EndedAt: now}).Error
	})
}

// BootWaits returns the deployments of the node whose MAC is mac or whose IP is ip (either
// may be empty) that are in one of states: the waits a boot of that node ends. pitasks wakes
// them when dnsmasq's log shows the node booting.
func (s *Store) BootWaits(ctx context.Context, mac, ip string, states []process.StateName) ([]uint, error) {
	if (mac == "" && ip == "") || len(states) == 0 {
		return nil, nil
	}
	nodes := s.db.WithContext(ctx).Model(&Node{}).Select("id")
	switch {
	case mac != "" && ip != "":
		nodes = nodes.Where("mac = ? OR ip = ?", strings.ToLower(mac), ip)
	case mac != "":
		nodes = nodes.Where("mac = ?", strings.ToLower(mac))
	default:
		nodes = nodes.Where("ip = ?", ip)
	}
	var ids []uint
	err := s.db.WithContext(ctx).Model(&Deployment{}).Where("node_id IN (?) AND state IN ? AND hold = ''", nodes, states).
		Order("id").Pluck("id", &ids).Error
	if err != nil {
		return nil, fmt.Errorf("store: unable to find the deployments waiting for a boot: %w", err)
	}
	return ids, nil
}

// MakeDue brings deployment id's next check forward to now if it was later: a boot seen in
// dnsmasq's log ends the wait sooner. It reports whether it changed anything. Whoever holds
// the lease may still write its own next check: a wake only ever costs or saves time.
func (s *Store) MakeDue(ctx context.Context, id uint, now time.Time) (bool, error) {
	res := s.db.WithContext(ctx).Model(&Deployment{}).Where("id = ? AND next_check_at > ?", id, now).
		UpdateColumn("next_check_at", now)
	if res.Error != nil {
		return false, fmt.Errorf("store: unable to make deployment %d due: %w", id, res.Error)
	}
	return res.RowsAffected > 0, nil
}
