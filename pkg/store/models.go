package store

import (
	"time"

	"github.com/piseduce/piseduce/pkg/power/powerconf"
	"github.com/piseduce/piseduce/pkg/process"
)

// User is a person who signs up on pifrontend. Password is a bcrypt hash.
type User struct {
	ID             uint   `gorm:"primaryKey"`
	Email          string `gorm:"size:255;uniqueIndex;not null"`
	PasswordHash   string `gorm:"size:255;not null"`
	FirstName      string `gorm:"size:100"`
	LastName       string `gorm:"size:100"`
	SSHKey         string `gorm:"type:text"`
	EmailConfirmed bool
	Authorized     bool
	Admin          bool
	// MustChangePassword: the password is a one-time password (given by an admin or pitasks);
	// the user can do nothing but choose a new one until they do.
	MustChangePassword bool
	// NotifySince: the user asked for e-mail notifications at that time (nil: none); only
	// events from then on are mailed.
	NotifySince *time.Time
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// Switch is a PoE switch that powers nodes through SNMP.
type Switch struct {
	ID   uint   `gorm:"primaryKey"`
	Name string `gorm:"size:100;uniqueIndex;not null"`
	// IP is the management address; SNMPPort the UDP port (161 when zero).
	IP       string `gorm:"size:64;not null"`
	SNMPPort int
	// SNMPVersion is "2c" (Community) or "3" (V3User, V3AuthProto, V3AuthPass, V3PrivProto, V3PrivPass).
	SNMPVersion string `gorm:"size:4;not null;default:2c"`
	Community   string `gorm:"size:255"`
	V3User      string `gorm:"size:100"`
	V3AuthProto string `gorm:"size:16"`
	V3AuthPass  string `gorm:"size:255"`
	V3PrivProto string `gorm:"size:16"`
	V3PrivPass  string `gorm:"size:255"`
	PortCount   int
	// MasterPort is the pimaster's own port: never powered off. 0 = none.
	MasterPort int
	// OID is the admin-enable column base (pethPsePortAdminEnable); OIDOffset is added to the port number.
	OID       string `gorm:"size:255;not null"`
	OIDOffset int
	// Driver is the power driver's kind (powerconf.Drivers): "snmp" uses the SNMP settings above;
	// the other kinds' settings are Power, one JSON document.
	Driver    string             `gorm:"size:16;not null;default:snmp"`
	Power     powerconf.Settings `gorm:"column:power;type:text;serializer:json"`
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Node is one Raspberry Pi on a switch port.
type Node struct {
	ID   uint   `gorm:"primaryKey"`
	Name string `gorm:"size:100;uniqueIndex;not null"`
	// One node per switch port.
	SwitchID uint   `gorm:"uniqueIndex:idx_switch_port;not null"`
	Switch   Switch `gorm:"constraint:OnDelete:RESTRICT"`
	Port     int    `gorm:"uniqueIndex:idx_switch_port;not null"`
	IP       string `gorm:"size:64"`
	MAC      string `gorm:"size:17"`
	// Serial is the last 8 hex digits of the Pi's serial: the name of its TFTP folder. Empty
	// until known: such a node cannot be deployed.
	Serial string `gorm:"size:16;index"`
	Model  string `gorm:"size:64"`
	// PublicIP and PublicPort are how the node is reached from outside (the original's
	// public_ip and public_port): a host name or address, a TCP port (0: none).
	PublicIP   string `gorm:"size:255"`
	PublicPort int
	// CardDevice is the node's card as its Linux sees it: DefaultCardDevice, /dev/nvme0n1 for
	// an NVMe Pi 5 (see CardDeviceRE).
	CardDevice string `gorm:"size:64"`
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// Environment types, as in the original's environment JSON.
const (
	EnvDefault = "default"
	EnvUser    = "user"
	EnvHidden  = "hidden"
)

// Environment is an OS image that can be deployed on nodes.
type Environment struct {
	ID          uint   `gorm:"primaryKey"`
	Name        string `gorm:"size:100;uniqueIndex;not null"`
	Type        string `gorm:"size:16;not null;default:default"`
	Description string `gorm:"type:text"`
	// ImageName is a file name inside the configured img_dir (never a path); empty for an
	// environment that only serves boot tests (never offered for deployment).
	ImageName string `gorm:"size:255;not null"`
	// ImageSize is the uncompressed size in bytes; ImageFormat raw, gz, xz, zst or tar.gz.
	ImageSize   int64
	ImageFormat string `gorm:"size:16"`
	ImageSHA256 string `gorm:"size:64"`
	// DecompressOn is "node" or "pimaster": where a compressed image is inflated.
	DecompressOn string `gorm:"size:16"`
	// SectorStart is the first sector of the root partition.
	SectorStart int64
	SSHUser     string `gorm:"size:64;not null;default:root"`
	Shell       string `gorm:"size:255;not null;default:bash"`
	// OSFamily is how the image configures itself at first boot (image.Families): plain,
	// raspios-firstboot or cloud-init. Deployments configure each family its own way.
	OSFamily   string `gorm:"size:32;not null;default:plain"`
	Web        bool
	ScriptTest string `gorm:"type:text"`
	// OwnerID is the user who captured it (0: admin-provided).
	OwnerID   uint `gorm:"index"`
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Reservation gives a user a set of nodes from StartsAt to EndsAt.
type Reservation struct {
	ID        uint      `gorm:"primaryKey"`
	UserID    uint      `gorm:"index;not null"`
	User      User      `gorm:"constraint:OnDelete:RESTRICT"`
	StartsAt  time.Time `gorm:"index"`
	EndsAt    time.Time `gorm:"index"`
	Nodes     []Node    `gorm:"many2many:reservation_nodes;constraint:OnDelete:CASCADE"`
	CreatedAt time.Time
	UpdatedAt time.Time

	// TimeZone is the IANA zone its start was entered in (empty: UTC); pages show its times there.
	TimeZone string `gorm:"size:64"`

	// EndedBy is the admin who ended the reservation (0: it was not ended by an admin), at
	// EndedAt, for EndReason: the holder's pages show it.
	EndedBy   uint `gorm:"not null;default:0"`
	EndedAt   *time.Time
	EndReason string `gorm:"type:text"`
}

// Deployment is one node of one reservation going through a process. The web writes the
// desired columns (Process, State on a new request, the user's options); pitasks alone writes
// the observed ones (progress, errors, timers, lease).
type Deployment struct {
	ID            uint        `gorm:"primaryKey"`
	ReservationID uint        `gorm:"index;not null"`
	Reservation   Reservation `gorm:"constraint:OnDelete:CASCADE"`
	NodeID        uint        `gorm:"index;not null"`
	Node          Node        `gorm:"constraint:OnDelete:RESTRICT"`
	UserID        uint        `gorm:"index;not null"`
	User          User        `gorm:"constraint:OnDelete:RESTRICT"`
	Name          string      `gorm:"size:100"`
	EnvironmentID uint        `gorm:"index"`
	Environment   Environment `gorm:"constraint:OnDelete:RESTRICT"`

	// The user's options.
	OSUpdate bool
	// SystemSize is the root partition size in MiB; 0 means the whole card.
	SystemSize     int64
	SystemPassword string `gorm:"size:255" json:"-"`
	PublicKey      string `gorm:"type:text"`
	InitScript     string `gorm:"type:text"`
	// CaptureName and CaptureDescription: the environment a save_env request makes.
	CaptureName        string `gorm:"size:63;not null;default:''"`
	CaptureDescription string `gorm:"type:text"`

	// The state machine. Generation is bumped by every request from the web; the engine's
	// writes are conditional on it, so a user's new request always wins over a running step.
	Generation int64             `gorm:"not null;default:0"`
	Process    string            `gorm:"size:16;not null;index:idx_due,priority:1"`
	State      process.StateName `gorm:"size:32;not null;index:idx_due,priority:2"`
	// ResumeProcess/ResumeState: where a reboot or a lost node goes back to.
	ResumeProcess  string            `gorm:"size:16"`
	ResumeState    process.StateName `gorm:"size:32"`
	StateStartedAt time.Time
	ExecDone       bool
	Rebooted       bool
	NextCheckAt    time.Time `gorm:"index:idx_due,priority:3"`
	Failures       int
	LastError      string `gorm:"type:text"`
	// SilentSince: since when the node has not answered the state that needs it, or, in a
	// state that needs none, its switch has not answered (nil: it answers). The engine
	// power-cycles a node silent too long; a switch's silence stops the state's clock.
	SilentSince *time.Time
	// WaitingSince: since when the state waits its turn at something pitasks shares between
	// nodes, a boot or copy slot ([tasks] max_booting, max_copying); the state's clock stops meanwhile (nil: it
	// does not wait). A turn is not the node's business: no hard reboot, no loss for it.
	WaitingSince *time.Time
	// WaitingFor says what it waits for, to the node's user: engine.Wait's what.
	WaitingFor string `gorm:"size:100;not null;default:''"`
	// NodeRecovered: the node stopped answering once in this run and was power-cycled; a
	// second time it is lost. A new request clears it.
	NodeRecovered bool `gorm:"not null;default:false"`
	// Hold, when not empty, says why pitasks leaves the deployment alone until a user or an
	// admin asks for a process (destroy, deploy): it came from the original PiSeduce in a
	// state that none of our processes can take over (see pkg/origdb). Any request clears it;
	// the end of its reservation still destroys it.
	Hold string `gorm:"size:500;not null;default:''"`

	// Queued: the request waits for a pitasks worker, since StateStartedAt. The first worker to
	// take it records the wait as an OutcomeQueued event and starts the state's clock then, so
	// the wait counts neither in the state's time nor against its timeouts.
	Queued bool `gorm:"not null;default:false"`

	// Released: the user gave the node back before the end of the reservation, which no longer
	// holds it; the deployment only goes on to be destroyed.
	Released bool `gorm:"not null;default:false"`

	// Progress of the image copy.
	BytesDone  int64
	BytesTotal int64
	// Throughput in bytes per second.
	Throughput int64
	// Output of the user's init script.
	ScriptOutput string `gorm:"type:mediumtext"`
	// StepData is the process's step data (pkg/process, data.go) as JSON: pitasks' engine
	// alone reads and writes it (engine.Data). The column kept its first name.
	StepData string `gorm:"column:scratch;type:text"`

	// Lease: the pitasks process working on this row, until LeaseUntil.
	LeaseOwner string `gorm:"size:64;index"`
	LeaseUntil time.Time

	CreatedAt time.Time
	UpdatedAt time.Time

	// saved are the observed columns as ClaimDue read them or SaveObserved last wrote them
	// (read: they were): only what differs is written.
	saved observed
	read  bool
}

// Active reports whether the engine still has work to do on the deployment.
func (d *Deployment) Active() bool {
	if d.State == process.Lost || d.State == process.Failed || d.Hold != "" {
		return false
	}
	p, err := process.Get(d.Process)
	return err == nil && !p.Terminal(d.State)
}

// Situation is what decides the actions a user may request of d now (process.Allowed); d's
// Reservation must be loaded.
func (d *Deployment) Situation(now time.Time) process.Situation {
	return process.Situation{Process: d.Process, State: d.State, ResumeProcess: d.ResumeProcess, Held: d.Hold != "",
		Running: !d.Released && !d.Reservation.StartsAt.After(now) && d.Reservation.EndsAt.After(now)}
}

// Outcomes of a state, recorded in StateEvent.
const (
	OutcomeDone    = "done"
	OutcomeReboot  = "reboot"
	OutcomeLost    = "lost"
	OutcomeFailed  = "failed"
	OutcomeRetry   = "retry"
	OutcomeForced  = "forced"
	OutcomeResumed = "resumed"
	// OutcomeQueued: the time a request waited for a worker before its first state started;
	// it is no state's time and stays out of the statistics.
	OutcomeQueued = "queued"
)

// StateEvent is one row per state transition or notable attempt: the source of per-state statistics.
type StateEvent struct {
	ID           uint              `gorm:"primaryKey"`
	DeploymentID uint              `gorm:"index;not null"`
	NodeID       uint              `gorm:"index"`
	Process      string            `gorm:"size:16"`
	State        process.StateName `gorm:"size:32;index"`
	Outcome      string            `gorm:"size:16"`
	Message      string            `gorm:"type:text"`
	StartedAt    time.Time
	EndedAt      time.Time
	// Duration in milliseconds, for statistics.
	DurationMS int64
}

// APIToken authenticates /api/v1 calls. Only a SHA-256 of the token is stored. A token ends
// at ExpiresAt, when its owner's password changes, or when its owner is revoked or deleted.
type APIToken struct {
	ID     uint   `gorm:"primaryKey"`
	UserID uint   `gorm:"index;not null"`
	Name   string `gorm:"size:100"`
	Hash   string `gorm:"size:64;uniqueIndex;not null"`
	// ReadOnly tokens may only read: the API refuses them any other method than GET.
	ReadOnly  bool `gorm:"not null;default:false"`
	CreatedAt time.Time
	// ExpiresAt is never zero once stored (Open gives the tokens of older versions APITokenTTL).
	ExpiresAt  time.Time
	LastUsedAt *time.Time
}

// APITokenTTL is the lifetime of an API token unless its owner chooses another.
const APITokenTTL = 90 * 24 * time.Hour

// Keys of the Setting table shared by more than one package.
const (
	// SettingSignupDomains: the e-mail domains allowed to sign up, one per line (empty: any).
	SettingSignupDomains = "signup_domains"
	// SettingEmailSignup: "true" when sign-up needs a confirmation e-mail.
	SettingEmailSignup = "email_signup"
)

// Setting is a key/value row for admin settings and generated secrets.
type Setting struct {
	Key   string `gorm:"primaryKey;size:64"`
	Value string `gorm:"type:text"`
}

// HostKey pins an SSH host key: Role is "nfs" (one key for the shared NFS system) or
// "system" (the deployed system of NodeID, made and pinned by pitasks before its card boots).
type HostKey struct {
	ID        uint   `gorm:"primaryKey"`
	Role      string `gorm:"size:16;uniqueIndex:idx_hostkey"`
	NodeID    uint   `gorm:"uniqueIndex:idx_hostkey"`
	Key       string `gorm:"type:text;not null"`
	CreatedAt time.Time
}

func allModels() []any {
	return []any{&User{}, &Switch{}, &Node{}, &Environment{}, &Reservation{}, &Deployment{},
		&StateEvent{}, &APIToken{}, &Setting{}, &HostKey{}, &Heartbeat{}, &Notification{}}
}
