package store

import "time"

// Session is a logged-in browser. The cookie holds a random token; only its SHA-256 is stored,
// so a copy of the database does not let anyone log in.
type Session struct {
	ID         uint   `gorm:"primaryKey"`
	Hash       string `gorm:"size:64;uniqueIndex;not null"`
	UserID     uint   `gorm:"index;not null"`
	User       User   `gorm:"constraint:OnDelete:CASCADE"`
	IP         string `gorm:"size:64"`
	UserAgent  string `gorm:"size:255"`
	CreatedAt  time.Time
	ExpiresAt  time.Time `gorm:"index"`
	LastSeenAt time.Time
}

// Email token purposes.
const (
	// TokenConfirmEmail confirms the address given at sign-up.
	TokenConfirmEmail = "confirm_email"
	// TokenResetPassword lets its holder choose a new password.
	TokenResetPassword = "reset_password"
)

// EmailToken is a single-use, expiring token sent by e-mail (only its SHA-256 is stored).
type EmailToken struct {
	ID        uint   `gorm:"primaryKey"`
	Hash      string `gorm:"size:64;uniqueIndex;not null"`
	UserID    uint   `gorm:"index;not null"`
	User      User   `gorm:"constraint:OnDelete:CASCADE"`
	Purpose   string `gorm:"size:32;not null"`
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    *time.Time
}

// Request states, of discovery runs and port requests alike.
const (
	RequestPending = "requested"
	RequestRunning = "running"
	RequestDone    = "done"
	RequestFailed  = "failed"
)

// Discovery run states.
const (
	DiscoveryRequested = RequestPending
	DiscoveryRunning   = RequestRunning
	DiscoveryDone      = RequestDone
	DiscoveryFailed    = RequestFailed
)

// DiscoveryRun is an admin's request to discover the nodes of a switch ("analyze ports"): the
// web writes it, pitasks claims it (ClaimDiscovery), appends its progress lines to Output and
// finishes it (FinishDiscovery); the page shows Output live. The owner renews LeaseUntil while it
// runs: a run whose lease ran out is ended by the next pitasks that claims (see ClaimDiscovery).
type DiscoveryRun struct {
	ID       uint   `gorm:"primaryKey"`
	SwitchID uint   `gorm:"index;not null"`
	Switch   Switch `gorm:"constraint:OnDelete:CASCADE"`
	// Ports to look at, comma-separated; empty: every port without a node.
	Ports       string `gorm:"size:1024"`
	RequestedBy uint
	State       string `gorm:"size:16;index;not null"`
	Owner       string `gorm:"size:64"`
	LeaseUntil  *time.Time
	Output      string `gorm:"type:mediumtext"`
	Error       string `gorm:"type:text"`
	CreatedAt   time.Time
	StartedAt   *time.Time
	EndedAt     *time.Time
}

// Port request actions.
const (
	PortOn     = "on"
	PortOff    = "off"
	PortCycle  = "cycle"
	PortStatus = "status" // every port of the switch; Port is 0
)

// PortRequest is an admin's request to switch a PoE port, or to read every port of a switch:
// the web writes it, pitasks carries it out under a lease (ClaimPortRequest, RenewPortRequest,
// FinishPortRequest) and records the ports' states it read afterwards, or the error.
type PortRequest struct {
	ID          uint   `gorm:"primaryKey"`
	SwitchID    uint   `gorm:"index;not null"`
	Switch      Switch `gorm:"constraint:OnDelete:CASCADE"`
	Port        int
	Action      string `gorm:"size:8;not null"`
	RequestedBy uint
	State       string `gorm:"size:16;index;not null"`
	Owner       string `gorm:"size:64"`
	LeaseUntil  *time.Time
	// Attempts counts the claims: a request whose pitasks stopped is taken over, a few times.
	Attempts int
	// States: JSON of the ports read after the action (PortStates decodes it).
	States    string `gorm:"type:text"`
	Error     string `gorm:"type:text"`
	CreatedAt time.Time
	StartedAt *time.Time
	EndedAt   *time.Time
}

// PortState is what pitasks read of one port.
type PortState struct {
	// On: the port's power is enabled.
	On bool `json:"on"`
	// Detail is the switch's own word on the port (e.g. "delivering power"), if any.
	Detail string `json:"detail,omitempty"`
}

// webModels lists the tables that only the web interface and the requests it writes use.
func webModels() []any { return []any{&Session{}, &EmailToken{}, &DiscoveryRun{}, &PortRequest{}} }
