// Package process lists PiSeduce's processes, the ordered states of each, what each state
// means to a user and its default timeouts, and what a user may request in each state. It is
// plain data shared by the web (which requests a process) and the engine (which runs it).
package process

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Process names.
const (
	Deploy   = "deploy"
	Destroy  = "destroy"
	Reboot   = "reboot"
	BootTest = "boot_test"
	// SaveEnv captures a deployed node's card as a new environment, then boots the node back
	// on its card: it ends in Deployed again (the original's save_env).
	SaveEnv = "save_env"
)

// StateName names a state. A name may be shared by several processes (turn_off is in four):
// the step that does its work is the same, its timeouts and description are per process.
type StateName string

// The states of all processes, in the order of the deploy process where they are in it.
const (
	BootConf     StateName = "boot_conf"
	TurnOff      StateName = "turn_off"
	TurnOn       StateName = "turn_on"
	SSHNFS       StateName = "ssh_nfs"
	EnvCopy      StateName = "env_copy"
	EnvCheck     StateName = "env_check"
	Partition    StateName = "partition"
	SystemConf   StateName = "system_conf"
	BootFiles    StateName = "boot_files"
	SSHSystem    StateName = "ssh_system"
	SystemUpdate StateName = "system_update"
	BootUpdate   StateName = "boot_update"
	UserConf     StateName = "user_conf"
	UserScript   StateName = "user_script"
	Deployed     StateName = "deployed"
	Destroying   StateName = "destroying"
	Destroyed    StateName = "destroyed"
	ComingBack   StateName = "coming_back"
	Booted       StateName = "booted"
	ImgNetboot   StateName = "img_netboot"
	ImgCopy      StateName = "img_copy"
	ImgCheck     StateName = "img_check"

	// Lost and Failed are no process's states: the engine puts a deployment there when it
	// gives it up (a state timed out; a step failed for good). ResumeProcess and ResumeState
	// say where it stopped.
	Lost   StateName = "lost"
	Failed StateName = "failed"
)

// Stopped reports whether s is one of the states the engine gives a deployment up in.
func (s StateName) Stopped() bool { return s == Lost || s == Failed }

// Kind says what a state means for the node's user.
type Kind int

const (
	// Working: pitasks is working on the node; the user waits.
	Working Kind = iota
	// OnCard: the process is over and the node runs the system deployed on its card.
	OnCard
	// OnNFS: the process is over and the node runs the shared NFS system (a boot test).
	OnNFS
	// Released: the node was wiped and powered off; nothing runs on it.
	Released
)

// Timeout is a state's pair of timeouts: a node that stays in the state longer than
// BeforeReboot is power-cycled once; longer than Lost, it is given up as lost. Zero means
// no such timeout.
type Timeout struct {
	BeforeReboot time.Duration
	Lost         time.Duration
}

// State is one step of a process.
type State struct {
	Name StateName
	Timeout
	// Description tells a user what the node is doing (or, at the end, what it is).
	Description string
	Kind        Kind
	// Progress: the deployment's byte counts tell how far this state is (a copy).
	Progress bool
	// Recover, when set, says the state needs its node up (it drives it over SSH) and where
	// the node boots again from when it stops answering: after a power cycle, the deployment
	// goes back to this state (the wait for the NFS system or for the card's).
	Recover StateName
}

// Process is an ordered list of states. The last one is terminal, unless the process Resumes:
// then, once its last state is done, the deployment goes back to where it was before
// (Deployment.ResumeProcess and ResumeState).
type Process struct {
	Name    string
	States  []State
	Resumes bool
	// NewData makes an empty value of the process's step data (a pointer to one of the types
	// of data.go); nil when its steps keep none. A process that Resumes keeps none of its own:
	// the data of the process it goes back to is left as it is.
	NewData func() any
}

func s(name StateName, beforeReboot, lost int, description string) State {
	return State{Name: name, Description: description,
		Timeout: Timeout{BeforeReboot: time.Duration(beforeReboot) * time.Second, Lost: time.Duration(lost) * time.Second}}
}

// copying is a state whose progress is counted in bytes.
func copying(st State) State {
	st.Progress = true
	return st
}

// onNFS is a state that drives the node's NFS system: a node lost there boots it again.
func onNFS(st State) State {
	st.Recover = SSHNFS
	return st
}

// onCard is a state that drives the system on the node's card: a node lost there boots it again.
func onCard(st State) State {
	st.Recover = SSHSystem
	return st
}

func end(name StateName, kind Kind, description string) State {
	return State{Name: name, Kind: kind, Description: description}
}

// The states that several processes share, with the same timeouts and description.
var (
	bootConf  = s(BootConf, 0, 30, "Setting the node up to boot the network system")
	turnOff   = s(TurnOff, 0, 30, "Powering the node off")
	turnOnNFS = s(TurnOn, 60, 90, "Powering the node on")
	sshNFS    = s(SSHNFS, 45, 120, "Waiting for the network system to answer")
	bootFiles = s(BootFiles, 0, 60, "Setting the node up to boot its card")
	sshSystem = s(SSHSystem, 300, 330, "Waiting for the system on the card to answer")
	deployed  = end(Deployed, OnCard, "Deployed: the node runs the system on its card")
)

// All returns every process by name. The timeouts follow the original system's; the SSH waits
// use its later agent's 300/330 because a Pi 3B+ rebooting from a fresh card is slow.
// boot_files and boot_update reboot the node themselves and have no Recover: their own
// short limits bound them.
func All() map[string]Process {
	return map[string]Process{
		Deploy: {Name: Deploy, NewData: newData[DeployData](), States: []State{
			bootConf, turnOff, turnOnNFS, sshNFS,
			onNFS(copying(s(EnvCopy, 0, 3600, "Copying the image onto the card"))),
			onNFS(copying(s(EnvCheck, 0, 400, "Checking the copy on the card"))),
			onNFS(s(Partition, 0, 120, "Sizing the system's partition")),
			onNFS(s(SystemConf, 0, 60, "Configuring the system on the card")),
			bootFiles, sshSystem,
			onCard(s(SystemUpdate, 0, 3600, "Updating the system's packages")),
			s(BootUpdate, 0, 120, "Rebooting on the updated boot files"),
			onCard(s(UserConf, 0, 60, "Installing the user's keys and password")),
			onCard(s(UserScript, 0, 1800, "Running the user's init script")),
			deployed,
		}},
		Destroy: {Name: Destroy, States: []State{
			s(Destroying, 0, 60, "Removing the node's boot files"), turnOff,
			end(Destroyed, Released, "Destroyed: the node is off and free"),
		}},
		Reboot: {Name: Reboot, Resumes: true, States: []State{
			turnOff, s(TurnOn, 0, 30, "Powering the node on"),
			s(ComingBack, 0, 330, "Waiting for the node's system to answer again"),
		}},
		BootTest: {Name: BootTest, States: []State{
			bootConf, turnOff, turnOnNFS, sshNFS,
			end(Booted, OnNFS, "Booted: the node runs the network system"),
		}},
		// img_netboot reboots the deployed system cleanly (not a power cut: the card must be
		// consistent) into the NFS system; the card then goes to the pimaster (img_copy), is
		// checked (img_check), and the node boots its card again, unchanged.
		SaveEnv: {Name: SaveEnv, NewData: newData[SaveEnvData](), States: []State{
			s(ImgNetboot, 0, 60, "Rebooting the node into the network system"), sshNFS,
			onNFS(copying(s(ImgCopy, 0, 3600, "Copying the card into a new environment"))),
			onNFS(copying(s(ImgCheck, 0, 400, "Checking the copy of the card"))),
			bootFiles, sshSystem, deployed,
		}},
	}
}

// Get returns the named process.
func Get(name string) (Process, error) {
	p, ok := All()[name]
	if !ok {
		return Process{}, fmt.Errorf("process: unknown process %q", name)
	}
	return p, nil
}

// Names returns the names of all processes, sorted.
func Names() []string {
	var out []string
	for name := range All() {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// First is the state a new request of this process starts in.
func (p Process) First() StateName { return p.States[0].Name }

// Index returns the position of state in p, or -1.
func (p Process) Index(state StateName) int {
	for i, st := range p.States {
		if st.Name == state {
			return i
		}
	}
	return -1
}

// Next returns the state after state; ok is false when state is not in p or is the last one.
func (p Process) Next(state StateName) (next StateName, ok bool) {
	i := p.Index(state)
	if i < 0 || i+1 >= len(p.States) {
		return "", false
	}
	return p.States[i+1].Name, true
}

// Terminal reports whether state ends p: its last state, unless p resumes.
func (p Process) Terminal(state StateName) bool {
	return !p.Resumes && p.States[len(p.States)-1].Name == state
}

// State returns the definition of the named state of p.
func (p Process) State(name StateName) (State, bool) {
	if i := p.Index(name); i >= 0 {
		return p.States[i], true
	}
	return State{}, false
}

// Key names one state of one process, as "deploy.turn_on".
type Key struct {
	Process string
	State   StateName
}

func (k Key) String() string { return k.Process + "." + string(k.State) }

// ParseKey reads "process.state" and checks that the process has that state.
func ParseKey(s string) (Key, error) {
	proc, state, ok := strings.Cut(s, ".")
	if !ok {
		return Key{}, fmt.Errorf("process: want process.state, like deploy.turn_on, got %q", s)
	}
	p, err := Get(proc)
	if err != nil {
		return Key{}, fmt.Errorf("%w (processes: %s)", err, strings.Join(Names(), ", "))
	}
	k := Key{Process: proc, State: StateName(state)}
	if p.Index(k.State) < 0 {
		return Key{}, fmt.Errorf("process: %s has no state %q (its states: %s)", proc, state, strings.Join(p.stateNames(), ", "))
	}
	return k, nil
}

// KeysOf returns the key of state in every process that has it, sorted (none: state is no
// process's).
func KeysOf(state StateName) []Key {
	var out []Key
	for _, name := range Names() {
		p, _ := Get(name)
		if p.Index(state) >= 0 {
			out = append(out, Key{Process: name, State: state})
		}
	}
	return out
}

func (p Process) stateNames() []string {
	out := make([]string, len(p.States))
	for i, st := range p.States {
		out[i] = string(st.Name)
	}
	return out
}

// WithTimeouts returns every process with the timeouts of the states in t replaced; a key
// that names no state of a process is an error.
func WithTimeouts(t map[Key]Timeout) (map[string]Process, error) {
	all := All()
	for k, to := range t {
		p, ok := all[k.Process]
		i := p.Index(k.State)
		if !ok || i < 0 {
			return nil, fmt.Errorf("process: timeout given for %s, which is not a state of any process", k)
		}
		states := slices.Clone(p.States)
		states[i].Timeout = to
		p.States = states
		all[k.Process] = p
	}
	return all, nil
}
