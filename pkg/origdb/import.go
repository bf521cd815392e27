package origdb

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/ssh"

	"github.com/piseduce/piseduce/pkg/auth"
	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/store"
)

// Options of Import.
type Options struct {
	// DryRun does everything in a transaction that is rolled back: the report says what an
	// import would do, conflicts included, and nothing is written.
	DryRun bool
	// Now is the time of the import [time.Now].
	Now time.Time
}

// Problem is a row of the original's database that cannot come over, or that conflicts with
// what this database holds. Table and ID name the original's row.
type Problem struct {
	Table string
	ID    int64
	Msg   string
}

func (p Problem) String() string { return fmt.Sprintf("%s %d: %s", p.Table, p.ID, p.Msg) }

// ProblemsError lists every problem found; nothing was imported.
type ProblemsError struct{ Problems []Problem }

func (e *ProblemsError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "origdb: %d row(s) of the original's database cannot come over; nothing was imported:", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  " + p.String())
	}
	return b.String()
}

// Report says what Import did, or would do on a dry run: one line per row, notes the admin
// should read, and the counts.
type Report struct {
	Lines []string
	Notes []string
	// Created counts users, reservations and deployments; Updated, environments given their
	// owner; Unchanged, rows imported by an earlier run.
	Created, Updated, Unchanged int
}

func (r *Report) String() string {
	return fmt.Sprintf("%d created, %d updated, %d already imported", r.Created, r.Updated, r.Unchanged)
}

// Tables of the original, as problems and the bookkeeping name them.
const (
	tableUser       = "user"
	tableDeployment = "deployment"
)

// wholeCard is the original's system_size for "Whole SD_CARD".
const wholeCard = 8

var errDryRun = errors.New("origdb: dry run")

// Import brings snap into st in one transaction: users (matched by the original's id: a
// second run creates nothing), then each group of current deployments of one user with one
// name, start and end as a reservation of their nodes with a deployment per node, then the
// owners of user environments that save_env deployments name. Any problem, conflicts with
// what st holds included, is reported with the original's table and id, and nothing is
// written. The nodes and environments must be in st already (pitasks import-cluster).
func Import(ctx context.Context, st *store.Store, snap *Snapshot, o Options) (*Report, error) {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	o.Now = o.Now.UTC()
	if !o.DryRun {
		if err := st.CreateOriginalImports(ctx); err != nil {
			return nil, fmt.Errorf("origdb: %w", err)
		}
	}
	rep := &Report{}
	err := st.InTx(ctx, func(tx *store.Store) error {
		im := &importer{st: tx, o: o, rep: rep,
			done: map[string]map[int64]uint{tableUser: {}, tableDeployment: {}}, users: map[int64]uint{},
			origUsers: map[int64]*User{}, badUsers: map[int64]bool{}, emails: map[int64]string{}}
		if err := im.load(ctx); err != nil {
			return err
		}
		for _, step := range []func(context.Context, *Snapshot) error{im.importUsers, im.importDeployments, im.adoptEnvironments} {
			if err := step(ctx, snap); err != nil {
				return err
			}
		}
		if len(im.problems) > 0 {
			return &ProblemsError{Problems: im.problems}
		}
		if o.DryRun {
			return errDryRun
		}
		return nil
	})
	switch {
	case errors.Is(err, errDryRun):
		return rep, nil
	case err != nil:
		return nil, err
	}
	return rep, nil
}

type importer struct {
	st  *store.Store // in the import's transaction
	o   Options
	rep *Report
	// done: the original's ids already imported, by table, to the local id.
	done map[string]map[int64]uint
	// users: the original's user ids to the local ones; origUsers: the original's users.
	users     map[int64]uint
	origUsers map[int64]*User
	emails    map[int64]string // the original's users' e-mails as they are here
	badUsers  map[int64]bool
	nodes     map[string]store.Node
	envs      map[string]store.Environment
	problems  []Problem
}

func (im *importer) problem(table string, id int64, format string, args ...any) {
	im.problems = append(im.problems, Problem{Table: table, ID: id, Msg: fmt.Sprintf(format, args...)})
}

func (im *importer) line(format string, args ...any) {
	im.rep.Lines = append(im.rep.Lines, fmt.Sprintf(format, args...))
}

func (im *importer) note(format string, args ...any) {
	im.rep.Notes = append(im.rep.Notes, fmt.Sprintf(format, args...))
}

func (im *importer) record(ctx context.Context, table string, orig int64, local uint) error {
	if im.o.DryRun {
		return nil
	}
	return im.st.RecordOriginalImport(ctx, table, orig, local)
}

// load reads what an earlier import recorded, and the nodes and environments by name.
func (im *importer) load(ctx context.Context) error {
	rows, err := im.st.OriginalImports(ctx)
	if err != nil {
		return fmt.Errorf("origdb: %w", err)
	}
	for _, r := range rows {
		if m := im.done[r.OrigTable]; m != nil {
			m[r.OrigID] = r.LocalID
		}
	}
	nodes, err := im.st.Nodes(ctx)
	if err != nil {
		return err
	}
	im.nodes = map[string]store.Node{}
	for _, n := range nodes {
		im.nodes[n.Name] = n
	}
	envs, err := im.st.Environments(ctx)
	if err != nil {
		return err
	}
	im.envs = map[string]store.Environment{}
	for _, e := range envs {
		im.envs[e.Name] = e
	}
	return nil
}

// importUsers creates the users the original has and an earlier run did not import. The
// original let an authorized user log in whether or not the e-mail address was confirmed
// (without a mail server, none ever is); here login needs both, so an authorized user comes
// over confirmed.
func (im *importer) importUsers(ctx context.Context, snap *Snapshot) error {
	seen := map[string]int64{}
	for i := range snap.Users {
		u := &snap.Users[i]
		im.origUsers[u.ID] = u
		email, err := auth.ParseEmail(u.Email)
		if err != nil {
			im.problem(tableUser, u.ID, "e-mail %q: %v", u.Email, err)
			im.badUsers[u.ID] = true
			continue
		}
		if other, dup := seen[email]; dup {
			im.problem(tableUser, u.ID, "e-mail %s is user %d's too (e-mails are compared in lower case here)", email, other)
			im.badUsers[u.ID] = true
			continue
		}
		seen[email] = u.ID
		im.emails[u.ID] = email
		if local, ok := im.done[tableUser][u.ID]; ok {
			if _, err := im.st.User(ctx, local); err == nil {
				im.users[u.ID] = local
			} else {
				im.note("user %d %s: imported before as user %d, deleted here since: not imported again", u.ID, email, local)
			}
			im.rep.Unchanged++
			continue
		}
		bad := false
		if _, err := bcrypt.Cost([]byte(u.Hash)); err != nil {
			im.problem(tableUser, u.ID, "_password is not a bcrypt hash")
			bad = true
		}
		for _, f := range [][2]string{{"firstname", u.FirstName}, {"lastname", u.LastName}} {
			if utf8.RuneCountInString(f[1]) > 100 {
				im.problem(tableUser, u.ID, "%s has more than 100 characters", f[0])
				bad = true
			}
		}
		key, err := authorizedKeys(u.SSHKey)
		if err != nil {
			im.problem(tableUser, u.ID, "ssh_key: %v", err)
			bad = true
		}
		if existing, err := im.st.UserByEmail(ctx, email); err == nil {
			im.problem(tableUser, u.ID, "e-mail %s already has an account here (user %d): not merged", email, existing.ID)
			bad = true
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if bad {
			im.badUsers[u.ID] = true
			continue
		}
		nu := store.User{Email: email, PasswordHash: u.Hash, FirstName: u.FirstName, LastName: u.LastName, SSHKey: key,
			EmailConfirmed: u.EmailConfirmed || u.Authorized, Authorized: u.Authorized, Admin: u.Admin}
		if err := im.st.CreateUser(ctx, &nu); err != nil {
			return fmt.Errorf("origdb: user %d: %w", u.ID, err)
		}
		if err := im.record(ctx, tableUser, u.ID, nu.ID); err != nil {
			return err
		}
		im.users[u.ID] = nu.ID
		im.rep.Created++
		im.line("user %d %s: new user%s", u.ID, email, flags(u))
		if u.Authorized && !u.EmailConfirmed {
			im.note("user %d %s: authorized but never confirmed the e-mail address, which the original did not ask for: imported as confirmed", u.ID, email)
		}
	}
	return nil
}

func flags(u *User) string {
	var f []string
	for _, x := range []struct {
		on   bool
		name string
	}{{u.EmailConfirmed, "e-mail confirmed"}, {u.Authorized, "authorized"}, {u.Admin, "admin"}} {
		if x.on {
			f = append(f, x.name)
		}
	}
	if !u.Authorized {
		f = append(f, "waiting for an admin's approval")
	}
	return " (" + strings.Join(f, ", ") + ")"
}

// authorizedKeys checks that every line of text is an SSH public key (no options) and returns
// them one per line; the original took what its text areas were given.
func authorizedKeys(text string) (string, error) {
	var keys []string
	for _, line := range strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n") {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		_, _, options, rest, err := ssh.ParseAuthorizedKey([]byte(line))
		if err != nil || len(options) > 0 || strings.TrimSpace(string(rest)) != "" {
			return "", fmt.Errorf("line %d is not an SSH public key", len(keys)+1)
		}
		keys = append(keys, line)
	}
	return strings.Join(keys, "\n"), nil
}

// row is a current deployment of the original, checked and resolved to local ids.
type row struct {
	d          *Deployment
	user       uint
	node       store.Node
	env        store.Environment
	start, end time.Time
	size       int64
	publicKey  string
	proc       string
	state      process.StateName
	hold       string
}

// importDeployments brings the current deployments over, a reservation per group.
func (im *importer) importDeployments(ctx context.Context, snap *Snapshot) error {
	type groupKey struct {
		user       uint
		name       string
		start, end time.Time
	}
	var order []groupKey
	groups := map[groupKey][]*row{}
	onNode := map[string]int64{}
	for i := range snap.Deployments {
		d := &snap.Deployments[i]
		if d.Environment == "" && d.StartDate == nil {
			im.line("deployment %d %s: skipped: state %s, the node was taken but never deployed (the original drops such rows); it is free here",
				d.ID, d.NodeName, d.State)
			continue
		}
		if other, dup := onNode[d.NodeName]; dup {
			im.problem(tableDeployment, d.ID, "node %q is held by deployment %d too", d.NodeName, other)
			continue
		}
		onNode[d.NodeName] = d.ID
		if _, done := im.done[tableDeployment][d.ID]; done {
			im.rep.Unchanged++
			continue
		}
		r, ok := im.check(d)
		if !ok {
			continue
		}
		k := groupKey{r.user, d.Name, r.start, r.end}
		if groups[k] == nil {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	for _, k := range order {
		if err := im.createGroup(ctx, groups[k]); err != nil {
			return err
		}
	}
	return nil
}

// check validates d and resolves its user, node and environment; problems are recorded.
func (im *importer) check(d *Deployment) (*row, bool) {
	before := len(im.problems)
	bad := func(format string, args ...any) { im.problem(tableDeployment, d.ID, format, args...) }
	r := &row{d: d}
	var ok bool
	switch r.user, ok = im.users[d.UserID]; {
	case im.badUsers[d.UserID]:
		return nil, false // reported once, as a user
	case im.origUsers[d.UserID] == nil:
		bad("user_id %d is not in the original's user table", d.UserID)
	case !ok:
		bad("its user %d was imported before and deleted here since", d.UserID)
	}
	if r.node, ok = im.nodes[d.NodeName]; !ok {
		bad("node %q is not in this database: import the original's cluster_desc/ first (pitasks import-cluster)", d.NodeName)
	}
	if r.env, ok = im.envs[d.Environment]; !ok {
		bad("environment %q is not in this database: import the original's cluster_desc/ first (pitasks import-cluster)", d.Environment)
	}
	switch {
	case d.State == "" || d.Process == "":
		bad("no state or no process")
	case len(d.State) > 32 || len(d.Process) > 16:
		bad("state %.40q or process %.40q is longer than this database keeps", d.State, d.Process)
	}
	if utf8.RuneCountInString(d.Name) > 100 {
		bad("name has more than 100 characters")
	}
	if d.StartDate == nil {
		bad("no start_date")
	} else {
		r.start = d.StartDate.UTC().Truncate(time.Second)
		if d.EndDate != nil {
			r.end = d.EndDate.UTC().Truncate(time.Second)
		} else if h, err := strconv.ParseFloat(strings.TrimSpace(d.Duration), 64); err == nil && h > 0 && h < 1e5 {
			r.end = r.start.Add(time.Duration(h * float64(time.Hour))).Truncate(time.Second)
		} else {
			bad("no end_date, and duration %.20q is not a number of hours", d.Duration)
		}
		if !r.end.IsZero() && !r.end.After(r.start) {
			bad("end date %s is not after start date %s", r.end.Format(time.DateTime), r.start.Format(time.DateTime))
		}
	}
	var err error
	if r.size, err = systemSize(d.SystemSize, r.env); err != nil {
		bad("system_size %.20q: %v", d.SystemSize, err)
	}
	if strings.IndexFunc(d.SystemPassword, unicode.IsControl) >= 0 {
		bad("system_pwd holds a control character") // never the password itself
	}
	if r.publicKey, err = authorizedKeys(d.PublicKey); err != nil {
		bad("public_key: %v", err)
	}
	if !utf8.ValidString(d.InitScript) {
		bad("init_script is not text")
	}
	r.proc, r.state, r.hold = adopt(d)
	return r, len(im.problems) == before
}

// adopt says how d goes on here: a deployment at the end of a process we have (deployed,
// booted) as it is; any other (in the middle of a process, lost, in a process or state of
// the original's only) held, as what it is, until its user or an admin acts.
func adopt(d *Deployment) (proc string, state process.StateName, hold string) {
	state = process.StateName(d.State) // the original's state names are ours
	if p, err := process.Get(d.Process); err == nil && p.Index(state) >= 0 && p.Terminal(state) {
		return d.Process, state, ""
	}
	where := d.Process + "/" + d.State
	if state == process.Lost && d.TempInfo != "" && len(d.TempInfo) <= 32 {
		where = fmt.Sprintf("%s/%s (in %s)", d.Process, d.State, d.TempInfo)
	}
	return d.Process, state, "Imported from the original PiSeduce in " + where +
		": nothing runs on this node until it is destroyed or deployed again."
}

// systemSize turns the original's "additional free space" (MiB more than the image's root
// partition, 8 for the whole card) into our root partition size in MiB (0: whole card).
func systemSize(text string, env store.Environment) (int64, error) {
	text = strings.TrimSpace(text)
	if text == "" {
		return 0, nil
	}
	more, err := strconv.ParseInt(text, 10, 64)
	switch {
	case err != nil || more < 0 || more > 1<<30:
		return 0, errors.New("not a number of MB")
	case more == wholeCard:
		return 0, nil
	}
	root := env.ImageSize - env.SectorStart*512
	if env.ImageSize == 0 || root <= 0 {
		return 0, nil // the image's size is unknown: the whole card is at least what was asked
	}
	return int64(math.Ceil(float64(root)/(1<<20))) + more, nil
}

// createGroup reserves the nodes of rows (one user, one name, one start and end) and creates
// their deployments. A conflict with a reservation here is a problem of each row it touches.
func (im *importer) createGroup(ctx context.Context, rows []*row) error {
	ids := make([]uint, len(rows))
	for i, r := range rows {
		ids[i] = r.node.ID
	}
	first := rows[0]
	res, err := im.st.CreateReservation(ctx, store.ReservationRequest{UserID: first.user, NodeIDs: ids,
		StartsAt: first.start, EndsAt: first.end}, im.o.Now)
	var conflict *store.ConflictError
	if errors.As(err, &conflict) {
		for _, r := range rows {
			im.problem(tableDeployment, r.d.ID, "node %s is reserved or still in use here between %s and %s",
				r.node.Name, r.start.Format(time.DateTime), r.end.Format(time.DateTime))
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("origdb: deployment %d: %w", first.d.ID, err)
	}
	im.rep.Created++
	ends := fmt.Sprintf("until %s UTC", first.end.Format(time.DateTime))
	if !first.end.After(im.o.Now) {
		ends = fmt.Sprintf("which ended %s UTC: pitasks destroys it at once", first.end.Format(time.DateTime))
	}
	for _, r := range rows {
		started := r.start
		if r.d.Updated != nil {
			started = r.d.Updated.UTC()
		}
		dep := store.Deployment{ReservationID: res.ID, NodeID: r.node.ID, UserID: r.user, Name: r.d.Name,
			EnvironmentID: r.env.ID, OSUpdate: r.d.OSUpdate, SystemSize: r.size, SystemPassword: r.d.SystemPassword,
			PublicKey: r.publicKey, InitScript: r.d.InitScript, Process: r.proc, State: r.state, Hold: r.hold,
			StateStartedAt: started, NextCheckAt: im.o.Now}
		if err := im.st.ImportDeployment(ctx, &dep); err != nil {
			return fmt.Errorf("origdb: deployment %d: %w", r.d.ID, err)
		}
		if err := im.record(ctx, tableDeployment, r.d.ID, dep.ID); err != nil {
			return err
		}
		im.rep.Created++
		how := "as it is"
		if r.hold != "" {
			how = "held: nothing runs until its user or an admin destroys it or deploys it again"
		}
		im.line("deployment %d %s: %s's %q, %s %s/%s, %s; reservation %s", r.d.ID, r.node.Name,
			im.emails[r.d.UserID], r.d.Name, r.env.Name, r.proc, r.state, how, ends)
	}
	return nil
}

// savedEnvironment is the name of the environment a save_env deployment is making, where the
// original's temp_info still holds it: the name alone before img_part, then followed by the
// last sector (img_format) and the partition (img_copy); in upload, the image file and its
// size. Empty when the row does not say.
func savedEnvironment(d *Deployment) string {
	if d.Process != process.SaveEnv {
		return ""
	}
	f := strings.Fields(d.TempInfo)
	trailing := map[string]int{"img_part": 0, "img_format": 1, "img_copy": 2, "upload": 1}
	n, ok := trailing[d.State]
	if !ok || len(f) <= n {
		return ""
	}
	name := strings.Join(f[:len(f)-n], " ")
	if d.State == "upload" {
		name = strings.TrimSuffix(name, ".img.gz")
	}
	return name
}

// adoptEnvironments gives each user environment its maker as owner, where the original's
// database names one (see savedEnvironment), and notes the user environments left without.
func (im *importer) adoptEnvironments(ctx context.Context, snap *Snapshot) error {
	owned := map[string]bool{}
	for i := range snap.Deployments {
		d := &snap.Deployments[i]
		name := savedEnvironment(d)
		owner, known := im.users[d.UserID]
		if name == "" || !known {
			continue
		}
		e, ok := im.envs[name]
		if !ok {
			im.note("deployment %d saves environment %q, which is not in this database: its description is written at once in the original's cluster_desc/environments/, import-cluster brings it over", d.ID, name)
			continue
		}
		switch e.OwnerID {
		case owner:
			owned[name] = true
			continue
		case 0:
		default:
			im.problem(tableDeployment, d.ID, "environment %q, which it saves, belongs to user %d here", name, e.OwnerID)
			continue
		}
		if err := im.st.AdoptEnvironment(ctx, e.ID, owner); err != nil {
			return fmt.Errorf("origdb: environment %s: %w", name, err)
		}
		owned[name] = true
		im.rep.Updated++
		im.line("environment %s: owned by %s, whose save_env (deployment %d, in %s) makes it; its image is not complete",
			name, im.emails[d.UserID], d.ID, d.State)
	}
	for _, e := range im.envs {
		if e.Type == store.EnvUser && e.OwnerID == 0 && !owned[e.Name] {
			im.note("environment %s: a user environment, but the original's database does not say whose: it stays offered to every user, as in the original", e.Name)
		}
	}
	return nil
}
