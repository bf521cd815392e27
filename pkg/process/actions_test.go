package process

import (
	"strings"
	"testing"
)

// TestAllowedInEveryState walks every state of every process (and the stopped ones), held or
// not, with the reservation running or not, and checks each action against the rules written
// out here once more: destroy unless a destroy is under way; redeploy while the reservation
// runs; reboot while it runs, except a destroyed or held node or one with nowhere to go back
// to; save only a node on its deployed card.
func TestAllowedInEveryState(t *testing.T) {
	onCard := map[Key]bool{{Deploy, Deployed}: true, {SaveEnv, Deployed}: true}
	type sit struct {
		Situation
		name string
	}
	var all []sit
	for _, proc := range Names() {
		p, _ := Get(proc)
		states := []StateName{Lost, Failed}
		for _, st := range p.States {
			states = append(states, st.Name)
		}
		for _, state := range states {
			for _, held := range []bool{false, true} {
				for _, running := range []bool{false, true} {
					for _, resume := range []string{"", Deploy} {
						s := Situation{Process: proc, State: state, Held: held, Running: running, ResumeProcess: resume}
						all = append(all, sit{s, strings.Join([]string{proc, string(state)}, ".")})
					}
				}
			}
		}
	}
	// What the original's or a future program's rows may hold: nothing is saved, all else as above.
	all = append(all, sit{Situation{Process: "img_deploy", State: "ready", Running: true}, "unknown process"},
		sit{Situation{Process: Deploy, State: "wait_resizing", Running: true, ResumeProcess: Deploy}, "unknown state"})
	counts := map[Action]int{}
	for _, s := range all {
		nowhere := (s.State.Stopped() || s.Process == Reboot) && s.ResumeProcess == ""
		want := map[Action]bool{
			ActDestroy:  !(s.Process == Destroy && !s.State.Stopped() && !s.Held),
			ActRedeploy: s.Running,
			ActReboot:   s.Running && s.Process != Destroy && !s.Held && !nowhere,
			ActSave:     s.Running && !s.Held && onCard[Key{s.Process, s.State}],
		}
		for _, a := range Actions {
			r := Allowed(s.Situation, a)
			if got := r == nil; got != want[a] {
				t.Errorf("%s %+v: %s allowed %v, want %v (%v)", s.name, s.Situation, a, got, want[a], r)
			}
			if r != nil && (r.Reason == "" || !strings.HasSuffix(r.Reason, ".")) {
				t.Errorf("%s: %s refused without a sentence: %q", s.name, a, r.Reason)
			}
			if r == nil {
				counts[a]++
			}
		}
	}
	for _, a := range Actions {
		if counts[a] == 0 {
			t.Errorf("%s is allowed nowhere", a)
		}
		if a.Process() == "" {
			t.Errorf("%s requests no process", a)
		}
	}
	if r := Allowed(Situation{Process: Deploy, State: Deployed, Running: true}, "extend-forever"); r == nil {
		t.Error("an unknown action was allowed")
	}
}

// TestStateMetadata: every state has a description; a process ends in a state that says what
// the node is then (OnCard, OnNFS, Released), and only there, unless it resumes.
func TestStateMetadata(t *testing.T) {
	for _, name := range Names() {
		p, _ := Get(name)
		for i, st := range p.States {
			if st.Description == "" {
				t.Errorf("%s.%s has no description", name, st.Name)
			}
			last := i == len(p.States)-1
			if done := st.Kind != Working; done != (last && !p.Resumes) {
				t.Errorf("%s.%s: kind %d, but it is %s", name, st.Name, st.Kind, map[bool]string{true: "terminal", false: "not terminal"}[p.Terminal(st.Name)])
			}
			if st.Name.Stopped() {
				t.Errorf("%s has the engine's state %s", name, st.Name)
			}
		}
	}
}

func TestParseKey(t *testing.T) {
	if k, err := ParseKey("save_env.img_copy"); err != nil || k != (Key{SaveEnv, ImgCopy}) || k.String() != "save_env.img_copy" {
		t.Errorf("ParseKey = %v, %v", k, err)
	}
	for in, want := range map[string]string{
		"turn_on":          "want process.state",
		"nope.turn_on":     `unknown process "nope"`,
		"destroy.turn_on":  `destroy has no state "turn_on" (its states: destroying, turn_off, destroyed)`,
		"deploy.":          `deploy has no state ""`,
		"boot_test.booted": "",
	} {
		_, err := ParseKey(in)
		if (want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("ParseKey(%q) = %v, want %q", in, err, want)
		}
	}
	if got := KeysOf(TurnOff); len(got) != 4 {
		t.Errorf("KeysOf(turn_off) = %v, want its 4 processes", got)
	}
	if _, err := WithTimeouts(map[Key]Timeout{{Reboot, EnvCopy}: {}}); err == nil {
		t.Error("a timeout for a state the process lacks was accepted")
	}
}
