package deploy

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/piseduce/piseduce/pkg/engine"
	"github.com/piseduce/piseduce/pkg/image"
	"github.com/piseduce/piseduce/pkg/remote"
	"github.com/piseduce/piseduce/pkg/shadow"
)

// Each OS family is configured its own way (image.Families). system_conf writes on the card
// what the family's first boot reads; user_conf waits for the booted system to have applied
// it; user_script runs the init script (or, for cloud-init, collects what its runcmd wrote).
//
//   - plain: pitasks edits the card: the account's authorized_keys and /etc/shadow entry.
//     Nothing is asked of the card's own programs (a busybox system has no getent, chpasswd,
//     install or bash).
//   - raspios-firstboot: init= is taken out of cmdline.txt (its program regenerates the host
//     keys, with no switch to keep them; pitasks' partition step has already resized the root
//     to the size asked), userconf.txt names the user and its password hash (userconfig.service
//     renames the first user, uid 1000, and sets it), the keys go into that user's home.
//   - cloud-init: a NoCloud seed (user-data, meta-data) on the boot partition: hostname, the
//     user with its hash and keys, ssh_deletekeys false with the pinned host key as ssh_keys,
//     and the init script as write_files + runcmd, its output in the same log as the others'.

// cloudFinished is written by cloud-init's last module at the end of every boot.
const cloudFinished = "/var/lib/cloud/instance/boot-finished"

// accountConf is what a deployment asks of the environment's account.
type accountConf struct {
	user string   // the environment's SSH user
	keys []string // authorized_keys lines
	hash string   // shadow hash of the OS password; "" keeps the image's
}

func (d *Deployer) accountOf(t *engine.Task) (accountConf, error) {
	a := accountConf{user: t.D.Environment.SSHUser}
	if a.user == "" {
		a.user = "root"
	}
	if a.user == "root" {
		a.keys = append(a.keys, d.PimasterKey) // pitasks must keep its way in
	}
	for _, k := range []string{t.D.User.SSHKey, t.D.PublicKey} {
		if k = strings.TrimSpace(k); k != "" {
			a.keys = append(a.keys, k)
		}
	}
	if pw := t.D.SystemPassword; pw != "" {
		if strings.ContainsAny(pw, "\n\r") {
			return a, engine.Permanent(errors.New("the OS password must be one line"))
		}
		h, err := shadow.Hash(pw)
		if err != nil {
			return a, err
		}
		a.hash = h
	}
	return a, nil
}

// configureFamily writes the account and the family's first-boot configuration; the card's
// root is mounted at rootMount.
func (d *Deployer) configureFamily(ctx context.Context, sh Shell, t *engine.Task, hostKey []byte, hostPub ssh.PublicKey) error {
	a, err := d.accountOf(t)
	if err != nil {
		return err
	}
	switch t.D.Environment.OSFamily {
	case image.FamilyCloudInit:
		if a.user == "root" { // cloud-init leaves root's keys alone with disable_root: false
			if err := cardKeys(ctx, sh, account{name: "root", uid: "0", gid: "0", home: "/root"}, a.keys); err != nil {
				return err
			}
		}
		return writeSeed(ctx, sh, t, a, hostKey, hostPub)
	case image.FamilyFirstboot:
		if a.user != "root" {
			return firstbootAccount(ctx, sh, cardOf(t), a)
		}
	}
	acct, err := cardAccount(ctx, sh, func(f []string) bool { return f[0] == a.user })
	if err != nil {
		return err
	}
	if acct.name == "" {
		return engine.Permanent(fmt.Errorf("the environment's user %q does not exist on the system", a.user))
	}
	if err := cardKeys(ctx, sh, acct, a.keys); err != nil {
		return err
	}
	if a.hash == "" {
		return nil
	}
	return cardPassword(ctx, sh, a.user, a.hash)
}

// firstbootAccount: userconf.txt renames the first user (uid 1000) at first boot, moving its
// home, so the keys go into that home now.
func firstbootAccount(ctx context.Context, sh Shell, card cardDev, a accountConf) error {
	acct, err := cardAccount(ctx, sh, func(f []string) bool { return f[0] == a.user })
	if err != nil {
		return err
	}
	if acct.name == "" {
		if acct, err = cardAccount(ctx, sh, func(f []string) bool { return f[2] == "1000" }); err != nil {
			return err
		}
	}
	switch {
	case acct.name == "":
		return engine.Permanent(fmt.Errorf("the image has neither the user %q nor a first user (uid 1000) for userconf.txt to rename", a.user))
	case acct.name == a.user && acct.uid != "1000":
		return engine.Permanent(fmt.Errorf("the user %q is not the image's first user (uid 1000): userconf.txt cannot name it", a.user))
	}
	if err := cardKeys(ctx, sh, acct, a.keys); err != nil {
		return err
	}
	hash := a.hash
	if hash == "" {
		hash = "*" // no password: locked (userconf.txt must name one)
	}
	return card.bootFile(ctx, sh, "userconf.txt", a.user+":"+hash+"\n")
}

// cardAccount is the first passwd entry of the card's system that match accepts (name ""
// when none): read from the file, the card's getent is not run.
func cardAccount(ctx context.Context, sh Shell, match func(fields []string) bool) (account, error) {
	out, err := sh.Output(ctx, "cat", rootMount+"/etc/passwd")
	if err != nil {
		return account{}, err
	}
	return findAccount(out, match)
}

func findAccount(passwd string, match func(fields []string) bool) (account, error) {
	for _, l := range strings.Split(passwd, "\n") {
		f := strings.Split(strings.TrimSpace(l), ":")
		if len(f) < 7 || !match(f) {
			continue
		}
		if !strings.HasPrefix(f[5], "/") {
			return account{}, fmt.Errorf("unexpected passwd entry for %q", f[0])
		}
		return account{name: f[0], uid: f[2], gid: f[3], home: f[5]}, nil
	}
	return account{}, nil
}

// cardKeys writes the account's authorized_keys on the card.
func cardKeys(ctx context.Context, sh Shell, acct account, keys []string) error {
	sshDir := path.Join(rootMount, acct.home, ".ssh")
	if err := run(ctx, sh, "install", "-d", "-m", "700", "-o", acct.uid, "-g", acct.gid, sshDir); err != nil {
		return err
	}
	authz := path.Join(sshDir, "authorized_keys")
	if err := sh.Upload(ctx, authz, strings.NewReader(strings.Join(keys, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	return run(ctx, sh, "chown", acct.uid+":"+acct.gid, authz)
}

// cardPassword puts hash in the user's /etc/shadow entry on the card, keeping the file's owner.
func cardPassword(ctx context.Context, sh Shell, user, hash string) error {
	const file = rootMount + "/etc/shadow"
	owner, err := sh.Output(ctx, "stat", "-c", "%u:%g", file)
	if err != nil {
		return err
	}
	old, err := sh.Output(ctx, "cat", file)
	if err != nil {
		return err
	}
	text, err := withHash(old, user, hash)
	if err != nil {
		return engine.Permanent(err)
	}
	if err := sh.Upload(ctx, file, strings.NewReader(text), 0o640); err != nil {
		return err
	}
	return run(ctx, sh, "chown", strings.TrimSpace(owner), file)
}

// withHash is a shadow file with user's password hash replaced (and the date of its last
// change kept: the account must not be made to change it at login).
func withHash(shadowText, user, hash string) (string, error) {
	lines := strings.Split(strings.TrimRight(shadowText, "\n"), "\n")
	for i, l := range lines {
		f := strings.Split(l, ":")
		if len(f) >= 2 && f[0] == user {
			f[1] = hash
			lines[i] = strings.Join(f, ":")
			return strings.Join(lines, "\n") + "\n", nil
		}
	}
	return "", fmt.Errorf("the user %q has no entry in the system's /etc/shadow", user)
}

// bootFile writes a file on the card's boot partition (FAT, with mtools); the temporary copy
// on the node, which may hold a secret, is private and removed.
func (c cardDev) bootFile(ctx context.Context, sh Shell, name, content string) error {
	tmp := "/tmp/piseduce-" + name
	if err := sh.Upload(ctx, tmp, strings.NewReader(content), 0o600); err != nil {
		return err
	}
	err := run(ctx, sh, c.mtools("mcopy", "-o", tmp, "::"+name)...)
	run(ctx, sh, "rm", "-f", tmp)
	return err
}

// cloudUser is a user of cloud-init's users key.
type cloudUser struct {
	Name         string   `json:"name"`
	Shell        string   `json:"shell"`
	Groups       []string `json:"groups"`
	Sudo         string   `json:"sudo"`
	LockPasswd   bool     `json:"lock_passwd"`
	HashedPasswd string   `json:"hashed_passwd,omitempty"`
	Keys         []string `json:"ssh_authorized_keys,omitempty"`
}

type cloudFile struct {
	Path        string `json:"path"`
	Content     string `json:"content"`
	Encoding    string `json:"encoding"`
	Permissions string `json:"permissions"`
	Owner       string `json:"owner"`
}

// cloudConfig is the seed's user-data. JSON is YAML: cloud-init reads it after its
// #cloud-config line.
type cloudConfig struct {
	Hostname         string            `json:"hostname"`
	PreserveHostname bool              `json:"preserve_hostname"`
	Users            []cloudUser       `json:"users"`
	Chpasswd         map[string]any    `json:"chpasswd"`
	DisableRoot      bool              `json:"disable_root"`
	SSHDeleteKeys    bool              `json:"ssh_deletekeys"`
	SSHGenKeyTypes   []string          `json:"ssh_genkeytypes"`
	SSHKeys          map[string]string `json:"ssh_keys"`
	WriteFiles       []cloudFile       `json:"write_files,omitempty"`
	RunCmd           [][]string        `json:"runcmd,omitempty"`
}

// runInit runs the init script (argv: shell, script) once, its output in initLog in the
// format userScript writes.
const runInit = `"$0" "$1" >` + initLog + ` 2>&1; s=$?; printf '\n[piseduce: init script ended with exit status %d]\n' "$s" >>` + initLog

// writeSeed writes the NoCloud seed on the boot partition. The instance-id is the
// deployment's: cloud-init configures the system once per deployment, not at every boot.
func writeSeed(ctx context.Context, sh Shell, t *engine.Task, a accountConf, hostKey []byte, hostPub ssh.PublicKey) error {
	name := t.D.Node.Name
	cfg := cloudConfig{Hostname: name, Chpasswd: map[string]any{"expire": false}, SSHGenKeyTypes: []string{},
		SSHKeys: map[string]string{"ed25519_private": string(hostKey),
			"ed25519_public": remote.AuthorizedKey(hostPub) + " root@" + name}}
	if a.user != "root" {
		cfg.Users = []cloudUser{{Name: a.user, Shell: "/bin/bash", Groups: []string{"adm", "sudo"}, Sudo: "ALL=(ALL) NOPASSWD:ALL",
			LockPasswd: a.hash == "", HashedPasswd: a.hash, Keys: a.keys}}
	} else {
		cfg.Users = []cloudUser{}
		if a.hash != "" {
			cfg.Chpasswd["users"] = []map[string]string{{"name": "root", "password": a.hash, "type": "hash"}}
		}
	}
	if s := t.D.InitScript; strings.TrimSpace(s) != "" {
		shell := t.D.Environment.Shell
		if shell == "" {
			shell = "sh"
		}
		cfg.WriteFiles = []cloudFile{{Path: initScript, Content: base64.StdEncoding.EncodeToString([]byte(s)),
			Encoding: "b64", Permissions: "0700", Owner: "root:root"}}
		cfg.RunCmd = [][]string{{"sh", "-c", runInit, shell, initScript}}
	}
	var b strings.Builder
	b.WriteString("#cloud-config\n")
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", " ")
	if err := enc.Encode(cfg); err != nil {
		return err
	}
	meta, err := json.Marshal(map[string]string{"instance-id": fmt.Sprintf("piseduce-%d", t.D.ID), "local-hostname": name})
	if err != nil {
		return err
	}
	if err := cardOf(t).bootFile(ctx, sh, "meta-data", string(meta)+"\n"); err != nil {
		return err
	}
	return cardOf(t).bootFile(ctx, sh, "user-data", b.String())
}

// waitFirstBoot waits until the booted system has applied its family's configuration: cloud-init
// has finished, and the account exists (userconfig.service may still be renaming the first
// user when SSH answers).
func waitFirstBoot(ctx context.Context, sh Shell, t *engine.Task, user string) error {
	var last error
	for i := 0; ; i++ {
		last = nil
		if t.D.Environment.OSFamily == image.FamilyCloudInit {
			if _, err := sh.Output(ctx, "test", "-e", cloudFinished); err != nil {
				last = fmt.Errorf("cloud-init has not finished (no %s)", cloudFinished)
			}
		}
		if last == nil {
			out, err := sh.Output(ctx, "cat", "/etc/passwd")
			if err != nil {
				return err
			}
			acct, err := findAccount(out, func(f []string) bool { return f[0] == user })
			if err != nil {
				return err
			}
			if acct.name != "" {
				return nil
			}
			last = fmt.Errorf("the user %q does not exist on the system", user)
		}
		if i >= 90 {
			return fmt.Errorf("after the first boot: %w", last)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (%v)", ctx.Err(), last)
		case <-time.After(time.Second):
		}
	}
}
