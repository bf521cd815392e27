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

// Discovery run states.
const (
	DiscoveryRequested = "requested"
	DiscoveryRunning   = "running"
	DiscoveryDone      = "done"
	DiscoveryFailed    = "failed"
)

// DiscoveryRun is an admin's request to discover the nodes of a switch ("analyze ports"): the
// web writes it, pitasks claims it (ClaimDiscovery), appends its progress lines to Output and
// finishes it (FinishDiscovery); the page shows Output live.
type DiscoveryRun struct {
	ID       uint   `gorm:"primaryKey"`
	SwitchID uint   `gorm:"index;not null"`
	Switch   Switch `gorm:"constraint:OnDelete:CASCADE"`
	// Ports to look at, comma-separated; empty: every port without a node.
	Ports       string `gorm:"size:1024"`
	RequestedBy uint
	State       string `gorm:"size:16;index;not null"`
	Owner       string `gorm:"size:64"`
	Output      string `gorm:"type:mediumtext"`
	Error       string `gorm:"type:text"`
	CreatedAt   time.Time
	StartedAt   *time.Time
	EndedAt     *time.Time
}

// webModels lists the tables that only the web interface uses.
func webModels() []any { return []any{&Session{}, &EmailToken{}, &DiscoveryRun{}} }
