package process

import "testing"

// A state lost with its node goes back to a wait for the system it needs, earlier in its
// own process: a Recover elsewhere would send the deployment into another process or forward.
func TestRecoverGoesBackToAWaitOfTheSameProcess(t *testing.T) {
	found := 0
	for _, p := range All() {
		for i, st := range p.States {
			if st.Recover == "" {
				continue
			}
			found++
			j := p.Index(st.Recover)
			if j < 0 || j >= i {
				t.Errorf("%s.%s recovers to %s, not an earlier state of %s", p.Name, st.Name, st.Recover, p.Name)
			}
			if st.Recover != SSHNFS && st.Recover != SSHSystem {
				t.Errorf("%s.%s recovers to %s, not a wait for SSH", p.Name, st.Name, st.Recover)
			}
		}
	}
	if found == 0 {
		t.Fatal("no state recovers its node")
	}
	deploy, _ := Get(Deploy)
	for name, want := range map[StateName]StateName{EnvCopy: SSHNFS, SystemConf: SSHNFS, UserScript: SSHSystem, BootFiles: ""} {
		if st, _ := deploy.State(name); st.Recover != want {
			t.Errorf("deploy.%s recovers to %q, want %q", name, st.Recover, want)
		}
	}
}
