// Package process lists PiSeduce's processes, the ordered states of each and their default
// timeouts. It is plain data shared by the web (which requests a process) and the engine
// (which runs it).
package process

import (
	"fmt"
	"time"
)

// Process names.
const (
	Deploy   = "deploy"
	Destroy  = "destroy"
	Reboot   = "reboot"
	BootTest = "boot_test"
	// SaveEnv captures a deployed node's card as a new environment, then boots the node back
	// on its card: it ends in "deployed" again (the original's save_env).
	SaveEnv = "save_env"
)

// State is one step of a process. A node that stays in a state longer than BeforeReboot is
// power-cycled once; longer than Lost, it is given up as lost. Zero means no such timeout.
type State struct {
	Name         string
	BeforeReboot time.Duration
	Lost         time.Duration
}

// Process is an ordered list of states. The last one is terminal, unless the process Resumes:
// then, once its last state is done, the deployment goes back to where it was before
// (Deployment.ResumeProcess and ResumeState).
type Process struct {
	Name    string
	States  []State
	Resumes bool
}

func s(name string, beforeReboot, lost int) State {
	return State{Name: name, BeforeReboot: time.Duration(beforeReboot) * time.Second, Lost: time.Duration(lost) * time.Second}
}

// All returns every process by name. The timeouts follow the original system's; the SSH waits
// use its later agent's 300/330 because a Pi 3B+ rebooting from a fresh card is slow.
func All() map[string]Process {
	return map[string]Process{
		Deploy: {Name: Deploy, States: []State{
			s("boot_conf", 0, 30), s("turn_off", 0, 30), s("turn_on", 60, 90), s("ssh_nfs", 45, 120),
			s("env_copy", 0, 3600), s("env_check", 0, 400),
			s("partition", 0, 120), s("system_conf", 0, 60), s("boot_files", 0, 60),
			s("ssh_system", 300, 330), s("system_update", 0, 3600), s("boot_update", 0, 120),
			s("user_conf", 0, 60), s("user_script", 0, 1800), s("deployed", 0, 0),
		}},
		Destroy: {Name: Destroy, States: []State{s("destroying", 0, 60), s("turn_off", 0, 30), s("destroyed", 0, 0)}},
		Reboot:  {Name: Reboot, Resumes: true, States: []State{s("turn_off", 0, 30), s("turn_on", 0, 30), s("coming_back", 0, 330)}},
		BootTest: {Name: BootTest, States: []State{
			s("boot_conf", 0, 30), s("turn_off", 0, 30), s("turn_on", 60, 90), s("ssh_nfs", 45, 120), s("booted", 0, 0),
		}},
		// img_netboot reboots the deployed system cleanly (not a power cut: the card must be
		// consistent) into the NFS system; the card then goes to the pimaster (img_copy), is
		// checked (img_check), and the node boots its card again, unchanged.
		SaveEnv: {Name: SaveEnv, States: []State{
			s("img_netboot", 0, 60), s("ssh_nfs", 45, 120), s("img_copy", 0, 3600), s("img_check", 0, 400),
			s("boot_files", 0, 60), s("ssh_system", 300, 330), s("deployed", 0, 0),
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

// First is the state a new request of this process starts in.
func (p Process) First() string { return p.States[0].Name }

// Index returns the position of state in p, or -1.
func (p Process) Index(state string) int {
	for i, st := range p.States {
		if st.Name == state {
			return i
		}
	}
	return -1
}

// Next returns the state after state; ok is false when state is not in p or is the last one.
func (p Process) Next(state string) (next string, ok bool) {
	i := p.Index(state)
	if i < 0 || i+1 >= len(p.States) {
		return "", false
	}
	return p.States[i+1].Name, true
}

// Terminal reports whether state ends p: its last state, unless p resumes.
func (p Process) Terminal(state string) bool {
	return !p.Resumes && p.States[len(p.States)-1].Name == state
}

// State returns the definition of the named state of p.
func (p Process) State(name string) (State, bool) {
	if i := p.Index(name); i >= 0 {
		return p.States[i], true
	}
	return State{}, false
}
