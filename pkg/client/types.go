package client

import "time"

// The API's objects, as openapi.json names them.

// TokenRequest asks for a token with an e-mail and password.
type TokenRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	Name     string `json:"name"`
	Days     int    `json:"days,omitempty"`
	ReadOnly bool   `json:"read_only,omitempty"`
}

// NewToken is a token just made; Token is shown this once.
type NewToken struct {
	ID        uint      `json:"id"`
	Name      string    `json:"name"`
	Token     string    `json:"token"`
	ReadOnly  bool      `json:"read_only"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Node is a node and who holds it.
type Node struct {
	ID     uint   `json:"id"`
	Name   string `json:"name"`
	Model  string `json:"model"`
	Switch string `json:"switch"`
	Port   int    `json:"port"`
	IP     string `json:"ip"`
	Free   bool   `json:"free"`
	Held   bool   `json:"held"`
	// Holder is the name of who holds it now.
	Holder    string     `json:"holder,omitempty"`
	Until     *time.Time `json:"until,omitempty"`
	NextStart *time.Time `json:"next_reservation,omitempty"`
	Process   string     `json:"process,omitempty"`
	State     string     `json:"state,omitempty"`
	// ReservationID is set for the user's own nodes.
	ReservationID uint `json:"reservation_id,omitempty"`
}

// Environment is a system that may be deployed.
type Environment struct {
	ID          uint   `json:"id"`
	Name        string `json:"name"`
	Type        string `json:"type"`
	Description string `json:"description"`
	SSHUser     string `json:"ssh_user"`
	Web         bool   `json:"web"`
	ImageSize   int64  `json:"image_size"`
}

// Reservation is nodes held for a time.
type Reservation struct {
	ID       uint      `json:"id"`
	UserID   uint      `json:"user_id"`
	User     string    `json:"user"`
	StartsAt time.Time `json:"starts_at"`
	EndsAt   time.Time `json:"ends_at"`
	TimeZone string    `json:"time_zone,omitempty"`
	NodeIDs  []uint    `json:"node_ids"`
	Nodes    []string  `json:"nodes"`
}

// ReservationRequest reserves NodeIDs, or Count nodes of Model, for Hours.
type ReservationRequest struct {
	NodeIDs  []uint     `json:"node_ids,omitempty"`
	Model    string     `json:"model,omitempty"`
	Count    int        `json:"count,omitempty"`
	Hours    int        `json:"hours"`
	StartsAt *time.Time `json:"starts_at,omitempty"`
	TimeZone string     `json:"time_zone,omitempty"`
}

// DeploymentRequest deploys EnvironmentID on the nodes of ReservationID.
type DeploymentRequest struct {
	ReservationID uint   `json:"reservation_id"`
	Name          string `json:"name"`
	EnvironmentID uint   `json:"environment_id"`
	OSUpdate      bool   `json:"os_update,omitempty"`
	SystemSizeMiB int64  `json:"system_size_mib,omitempty"`
	// OSPassword: empty for a random one.
	OSPassword string `json:"os_password,omitempty"`
	PublicKey  string `json:"public_key,omitempty"`
	InitScript string `json:"init_script,omitempty"`
}

// Deployment is a system deployed, or being deployed, on one node.
type Deployment struct {
	ID            uint      `json:"id"`
	Name          string    `json:"name"`
	ReservationID uint      `json:"reservation_id"`
	NodeID        uint      `json:"node_id"`
	Node          string    `json:"node"`
	NodeIP        string    `json:"node_ip"`
	NodeModel     string    `json:"node_model"`
	EnvironmentID uint      `json:"environment_id"`
	Environment   string    `json:"environment"`
	SSHUser       string    `json:"ssh_user"`
	SSHHost       string    `json:"ssh_host"`
	SSHPort       int       `json:"ssh_port"`
	HostKey       string    `json:"host_key,omitempty"`
	WebURL        string    `json:"web_url,omitempty"`
	OSPassword    string    `json:"os_password,omitempty"`
	Process       string    `json:"process"`
	State         string    `json:"state"`
	Description   string    `json:"description"`
	StateSince    time.Time `json:"state_since"`
	Queued        bool      `json:"queued"`
	Label         string    `json:"label"`
	Reachable     bool      `json:"reachable"`
	LastError     string    `json:"last_error,omitempty"`
	Copying       bool      `json:"copying"`
	BytesDone     int64     `json:"bytes_done"`
	BytesTotal    int64     `json:"bytes_total"`
	Percent       float64   `json:"percent"`
	MiBps         float64   `json:"mib_per_s"`
	// Speed is the copy's rate as the web shows it ("9.5 MiB/s").
	Speed      string    `json:"speed,omitempty"`
	ETASeconds int64     `json:"eta_s"`
	Step       int       `json:"step"`
	Steps      int       `json:"steps"`
	StepText   string    `json:"step_text"`
	CanDestroy bool      `json:"can_destroy"`
	EndsAt     time.Time `json:"reservation_ends_at"`
}

// Stopped: the engine gave the deployment up (lost or failed).
func (d *Deployment) Stopped() bool { return d.State == "lost" || d.State == "failed" }

// Done: nothing more will happen to the deployment without a new request.
func (d *Deployment) Done() bool { return d.Reachable && !d.Queued || d.Stopped() }
