#!/usr/bin/python3
"""pilab stand-in for cloud-init with a NoCloud seed on the boot partition.

It applies the seed keys the real cloud-init honours, with the real one's defaults and
frequencies (see lab/README.md for the sources):
  cloud-init init            hostname (per boot); per instance: write_files, users and groups,
                             ssh_authorized_keys, password/chpasswd, ssh_deletekeys/ssh_keys/
                             ssh_genkeytypes, disable_root
  cloud-init modules --mode final
                             per instance: runcmd, deferred write_files; then boot-finished
  cloud-init status [--wait]
A new instance-id in meta-data is a new instance: everything per instance runs again.
The real one mounts the FAT seed (label system-boot or cidata); the lab's kernel cannot, so
this one reads it with mtools.
"""
import base64, gzip, os, shlex, subprocess, sys, time
import yaml

BOOT = "/dev/mmcblk0p1"
CLOUD = "/var/lib/cloud"
OUTPUT_LOG = "/var/log/cloud-init-output.log"
GENKEYS = ["rsa", "ecdsa", "ed25519"]
DISABLE_ROOT_OPTS = ('no-port-forwarding,no-agent-forwarding,no-X11-forwarding,command="echo \'Please login as '
                     'the user \\"$USER\\" rather than the user \\"$DISABLE_USER\\".\';echo;sleep 10;exit 142"')


def log(msg):
    print("cloud-init: " + msg, flush=True)
    with open("/var/log/cloud-init.log", "a") as f:
        f.write(time.strftime("%Y-%m-%dT%H:%M:%SZ ", time.gmtime()) + msg + "\n")


def seed_file(name):
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    r = subprocess.run(["mtype", "-i", BOOT, "::" + name], capture_output=True, env=env)
    return r.stdout.decode() if r.returncode == 0 else None


def load_seed():
    meta = yaml.safe_load(seed_file("meta-data") or "") or {}
    text = seed_file("user-data") or ""
    user = {}
    if text.startswith("#cloud-config"):
        user = yaml.safe_load(text) or {}
    elif text.strip():
        log("user-data is not #cloud-config: ignored by this stand-in")
    cfg = yaml.safe_load(open("/etc/cloud/cloud.cfg")) or {}
    return meta, user, cfg


def sh(*argv, stdin=None):
    subprocess.run(list(argv), input=stdin, check=True, capture_output=True)


def exists(user):
    return subprocess.run(["getent", "passwd", user], capture_output=True).returncode == 0


def home_of(user):
    out = subprocess.run(["getent", "passwd", user], capture_output=True, text=True).stdout
    f = out.strip().split(":")
    return f[5], int(f[2]), int(f[3])


def as_list(v):
    if v is None:
        return []
    if isinstance(v, str):
        return [x.strip() for x in v.split(",") if x.strip()]
    return list(v)


def create_user(u, default_name):
    name = u["name"]
    if not exists(name):
        argv = ["useradd", "-m", "-s", u.get("shell", "/bin/sh")]
        if u.get("gecos"):
            argv += ["-c", u["gecos"]]
        if u.get("homedir"):
            argv += ["-d", u["homedir"]]
        if u.get("uid") is not None:
            argv += ["-u", str(u["uid"])]
        groups = [g for g in as_list(u.get("groups")) if subprocess.run(["getent", "group", g], capture_output=True).returncode == 0]
        if groups:
            argv += ["-G", ",".join(groups)]
        sh(*argv, name)
        log("user %s created" % name)
    pw = u.get("hashed_passwd") or u.get("passwd")
    if pw:
        sh("usermod", "-p", pw, name)
    elif u.get("plain_text_passwd"):
        sh("chpasswd", stdin=("%s:%s\n" % (name, u["plain_text_passwd"])).encode())
    if u.get("lock_passwd", True):  # cloud-init locks the password unless told not to
        sh("passwd", "-l", name)
    if u.get("sudo"):
        os.makedirs("/etc/sudoers.d", mode=0o750, exist_ok=True)
        with open("/etc/sudoers.d/90-cloud-init-users", "a") as f:
            for rule in as_list(u["sudo"]) if not isinstance(u["sudo"], str) else [u["sudo"]]:
                f.write("%s %s\n" % (name, rule))
    add_keys(name, u.get("ssh_authorized_keys") or [])


def add_keys(name, keys, options=None):
    if not keys:
        return
    home, uid, gid = home_of(name)
    d = os.path.join(home, ".ssh")
    os.makedirs(d, mode=0o700, exist_ok=True)
    os.chown(d, uid, gid)
    path = os.path.join(d, "authorized_keys")
    lines = open(path).read().splitlines() if os.path.exists(path) else []
    for k in keys:
        k = k.strip()
        entry = "%s %s" % (options, k) if options else k
        body = " ".join(k.split()[:2])
        lines = [l for l in lines if body not in l] + [entry]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.chmod(path, 0o600)
    os.chown(path, uid, gid)


def write_files(entries, deferred):
    for w in entries or []:
        if bool(w.get("defer", False)) != deferred:
            continue
        content = w.get("content", "")
        enc = (w.get("encoding") or "").lower()
        data = content.encode() if isinstance(content, str) else content
        if enc in ("b64", "base64"):
            data = base64.b64decode(content)
        elif enc in ("gz+b64", "gzip+base64", "gz+base64", "gzip+b64"):
            data = gzip.decompress(base64.b64decode(content))
        path = w["path"]
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "ab" if w.get("append") else "wb") as f:
            f.write(data)
        os.chmod(path, int(str(w.get("permissions", "0644")), 8))
        owner = w.get("owner", "root:root")
        sh("chown", owner, path)
        log("wrote " + path)


def ssh_keys(user, cfg_users):
    if user.get("ssh_deletekeys", True):
        for f in os.listdir("/etc/ssh"):
            if f.startswith("ssh_host_") and "key" in f:
                os.remove(os.path.join("/etc/ssh", f))
        log("ssh host keys deleted")
    given = user.get("ssh_keys") or {}
    for k, v in given.items():
        if k.endswith("_private"):
            path = "/etc/ssh/ssh_host_%s_key" % k[: -len("_private")]
            with open(path, "w") as f:
                f.write(v if v.endswith("\n") else v + "\n")
            os.chmod(path, 0o600)
        elif k.endswith("_public"):
            with open("/etc/ssh/ssh_host_%s_key.pub" % k[: -len("_public")], "w") as f:
                f.write(v.strip() + "\n")
    for t in user.get("ssh_genkeytypes", GENKEYS):
        path = "/etc/ssh/ssh_host_%s_key" % t
        if not os.path.exists(path):
            sh("ssh-keygen", "-q", "-t", t, "-N", "", "-f", path)
            log("ssh host key %s generated" % t)


def chpasswd(user, default_name):
    c = user.get("chpasswd") or {}
    pairs = []
    if user.get("password") and default_name:
        pairs.append((default_name, user["password"], "text"))
    for u in c.get("users") or []:
        pairs.append((u["name"], str(u.get("password", "")), u.get("type", "hash" if str(u.get("password", "")).startswith("$") else "text")))
    legacy = c.get("list") or []
    if isinstance(legacy, str):
        legacy = legacy.splitlines()
    for l in legacy:
        n, p = l.split(":", 1)
        pairs.append((n, p, "hash" if p.startswith("$") else "text"))
    for name, pw, typ in pairs:
        if typ == "hash":
            sh("chpasswd", "-e", stdin=("%s:%s\n" % (name, pw)).encode())
        else:
            sh("chpasswd", stdin=("%s:%s\n" % (name, pw)).encode())
        if c.get("expire", True):
            sh("passwd", "--expire", name)
        log("password of %s set%s" % (name, " (expired)" if c.get("expire", True) else ""))


def instance(meta):
    iid = str(meta.get("instance-id", "iid-datasource-none"))
    prev = open(CLOUD + "/data/instance-id").read().strip() if os.path.exists(CLOUD + "/data/instance-id") else ""
    return iid, iid != prev


def init_stage():
    meta, user, cfg = load_seed()
    iid, new = instance(meta)
    os.makedirs(CLOUD + "/data", exist_ok=True)
    os.makedirs(CLOUD + "/instances/" + iid, exist_ok=True)
    if os.path.lexists(CLOUD + "/instance"):
        os.remove(CLOUD + "/instance")
    os.symlink(CLOUD + "/instances/" + iid, CLOUD + "/instance")
    if not user.get("preserve_hostname", cfg.get("preserve_hostname", False)):
        name = user.get("hostname") or (user.get("fqdn") or "").split(".")[0] or meta.get("local-hostname")
        if name:
            with open("/etc/hostname", "w") as f:
                f.write(name + "\n")
            subprocess.run(["hostname", name])
            log("hostname " + name)
    if not new:
        log("instance %s: already configured, per-instance modules skipped" % iid)
        return
    log("new instance " + iid)
    default = dict((cfg.get("system_info") or {}).get("default_user") or {})
    default_name = default.get("name")
    write_files(user.get("write_files"), False)
    users = user.get("users", ["default"])
    if isinstance(users, (str, dict)):
        users = [users]
    for u in users:
        if u == "default":
            if default_name:
                create_user(default, default_name)
            continue
        if isinstance(u, str):
            u = {"name": u}
        create_user(u, default_name)
    if default_name and exists(default_name):
        add_keys(default_name, user.get("ssh_authorized_keys") or [])
    chpasswd(user, default_name if default_name and exists(default_name) else None)
    ssh_keys(user, users)
    if user.get("disable_root", True) and default_name:
        opts = DISABLE_ROOT_OPTS.replace("$USER", default_name).replace("$DISABLE_USER", "root")
        add_keys("root", user.get("ssh_authorized_keys") or [], opts)
    with open(CLOUD + "/data/instance-id", "w") as f:
        f.write(iid + "\n")


def final_stage():
    meta, user, cfg = load_seed()
    iid = str(meta.get("instance-id", "iid-datasource-none"))
    sem = CLOUD + "/instances/%s/sem/config_runcmd" % iid
    if not os.path.exists(sem):
        os.makedirs(os.path.dirname(sem), exist_ok=True)
        cmds = user.get("runcmd") or []
        script = "#!/bin/sh\n" + "".join((c if isinstance(c, str) else " ".join(shlex.quote(str(a)) for a in c)) + "\n" for c in cmds)
        path = CLOUD + "/instances/%s/scripts/runcmd" % iid
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(script)
        os.chmod(path, 0o700)
        open(sem, "w").close()
        if cmds:
            with open(OUTPUT_LOG, "a") as out:
                rc = subprocess.run([path], stdout=out, stderr=out).returncode
            log("runcmd ended with exit status %d" % rc)
        write_files(user.get("write_files"), True)
    with open(CLOUD + "/instances/%s/boot-finished" % iid, "w") as f:
        f.write(time.strftime("%Y-%m-%dT%H:%M:%SZ\n", time.gmtime()))
    log("boot finished")


def main():
    a = sys.argv[1:]
    if a[:1] == ["init"]:
        init_stage()
    elif a[:1] == ["modules"] and "--mode=final" in a or a[:3] == ["modules", "--mode", "final"]:
        final_stage()
    elif a[:1] == ["status"]:
        while "--wait" in a and not os.path.exists(CLOUD + "/instance/boot-finished"):
            time.sleep(0.5)
        print("status: " + ("done" if os.path.exists(CLOUD + "/instance/boot-finished") else "running"))
    else:
        print("usage: cloud-init init | modules --mode final | status [--wait]", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
