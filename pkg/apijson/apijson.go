// Package apijson holds the JSON objects of PiSeduce's API (/api/v1), as pkg/web/openapi.json
// names them: pifrontend answers with them and the piseduce command line (pkg/client) reads
// them. It links nothing of the daemons.
package apijson

import (
	"time"

	"github.com/piseduce/piseduce/pkg/process"
)

// TokenRequest asks for a token with an e-mail and password.
type TokenRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	Name     string `json:"name"`
	// Days is the token's lifetime, one of those the site offers (0: the default).
	Days     int  `json:"days,omitempty"`
	ReadOnly bool `json:"read_only,omitempty"`
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
	// Holder is the name (never the e-mail) of who holds it now.
	Holder    string            `json:"holder,omitempty"`
	Until     *time.Time        `json:"until,omitempty"`
	NextStart *time.Time        `json:"next_reservation,omitempty"`
	Process   string            `json:"process,omitempty"`
	State     process.StateName `json:"state,omitempty"`
	// ReservationID is set for the user's own nodes (for admins: everyone's).
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
	// TimeZone is the zone the reservation was entered in (empty: UTC).
	TimeZone string   `json:"time_zone,omitempty"`
	NodeIDs  []uint   `json:"node_ids"`
	Nodes    []string `json:"nodes"`
	// EndReason: an admin ended the reservation, at EndedAt, and said why.
	EndReason string     `json:"end_reason,omitempty"`
	EndedAt   *time.Time `json:"ended_at,omitempty"`
}

// ReservationRequest asks for nodes: NodeIDs, or Count nodes of Model; for Hours from
// StartsAt (now when nil). TimeZone is the IANA zone the user enters and reads times in
// (empty: UTC).
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

// Deployment is a system deployed, or being deployed, on one node, as pages, the live-status
// JSON and the API show it. The OS password is filled in only for the deployment's owner,
// once the node is deployed.
type Deployment struct {
	ID            uint              `json:"id"`
	Name          string            `json:"name"`
	ReservationID uint              `json:"reservation_id"`
	NodeID        uint              `json:"node_id"`
	Node          string            `json:"node"`
	NodeIP        string            `json:"node_ip"`
	NodeModel     string            `json:"node_model"`
	EnvironmentID uint              `json:"environment_id"`
	Environment   string            `json:"environment"`
	SSHUser       string            `json:"ssh_user"`
	WebURL        string            `json:"web_url,omitempty"`
	OSUpdate      bool              `json:"os_update"`
	SystemSizeMiB int64             `json:"system_size_mib"`
	PublicKey     string            `json:"public_key,omitempty"`
	OSPassword    string            `json:"os_password,omitempty"`
	Process       string            `json:"process"`
	State         process.StateName `json:"state"`
	// Description says what the state means, in words (pkg/process).
	Description string    `json:"description"`
	StateSince  time.Time `json:"state_since"`
	// Queued: the request waits for a pitasks worker (since StateSince); State is where it
	// will start.
	Queued bool `json:"queued"`
	// QueuedReason says why a queued deployment waits, when no pitasks runs ("queued: no
	// worker running").
	QueuedReason string `json:"queued_reason,omitempty"`
	// Waiting: the state waits its turn at something pitasks shares between nodes, its time
	// limits stopped meanwhile; WaitingFor says what ("its turn to boot": max_booting; "its
	// turn to copy an image": max_copying).
	Waiting    bool   `json:"waiting"`
	WaitingFor string `json:"waiting_for,omitempty"`
	// Label and StateClass are the state's badge: its text and CSS class.
	Label      string `json:"label"`
	StateClass string `json:"state_class"`
	// Reachable: the node runs the deployed system; how to log in is worth showing.
	Reachable bool   `json:"reachable"`
	LastError string `json:"last_error,omitempty"`
	// Copy progress: Copying is true while the image is being written.
	Copying    bool    `json:"copying"`
	BytesDone  int64   `json:"bytes_done"`
	BytesTotal int64   `json:"bytes_total"`
	Percent    float64 `json:"percent"`
	MiBps      float64 `json:"mib_per_s"`
	Speed      string  `json:"speed,omitempty"`
	ETASeconds int64   `json:"eta_s"`
	// Step is the position in its process of the state the deployment is in, or stopped in
	// when it is lost or failed (0: none, the state is not one of the process's); Steps the
	// count; StepText says it in words.
	Step     int    `json:"step"`
	Steps    int    `json:"steps"`
	StepText string `json:"step_text"`
	// Actions the owner may take now (process.Allowed).
	CanReboot   bool      `json:"can_reboot"`
	CanRedeploy bool      `json:"can_redeploy"`
	CanDestroy  bool      `json:"can_destroy"`
	CanSave     bool      `json:"can_save"`
	EndsAt      time.Time `json:"reservation_ends_at"`
	// TimeZone is the zone the reservation was entered in (empty: UTC).
	TimeZone  string    `json:"time_zone,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
	// SSHHost and SSHPort are where ssh reaches the node: its public address and port when
	// the admin gave both, else its IP and 22.
	SSHHost string `json:"ssh_host"`
	SSHPort int    `json:"ssh_port"`
	// HostKey is the deployed system's SSH host key, pinned by pitasks: only to the owner,
	// once deployed, in the answer about one deployment.
	HostKey string `json:"host_key,omitempty"`
	// Released: the node was given back before the end of its reservation; the deployment
	// is only destroyed. EndReason: an admin ended the reservation, for that reason.
	Released  bool   `json:"released"`
	EndReason string `json:"end_reason,omitempty"`
}

// Stopped: the engine gave the deployment up (lost or failed).
func (d *Deployment) Stopped() bool { return d.State.Stopped() }

// Done: nothing more will happen to the deployment without a new request.
func (d *Deployment) Done() bool { return d.Reachable && !d.Queued || d.Stopped() }
