#!/usr/bin/env bash
# Checks a PiSeduce pimaster's set-up and lists what is wrong; changes nothing. See --help.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# shellcheck disable=SC2317 # called by parse_common
usage() {
	cat <<'USAGE'
usage: admin/check.sh [--config FILE] [--bin-dir DIR] [--dry-run]

Checks the pimaster and prints one line per check, PROBLEM lines for what is wrong, and a
summary. Changes nothing. The exit status is the number of problems (at most 100), 0 when
all is right.

Checks: the configuration parses and the database is reachable (pitasks check, pifrontend
-check), its file is not readable by others; pifrontend, pitasks, dnsmasq, the NFS server and
MariaDB run; something listens on the web port; /var/lib/piseduce, img_dir, the SSH key, the
tftp root and its NFS boot files (read-only root, the NFS system's first init), the NFS root
(/nfs/raspi: hostname, its own host key pinned by nfs_host_key, the pimaster's key, its first
init) exist with sane permissions; /nfs/raspi is exported read-only, root squashed, to the
nodes' network only (never writable, no_root_squash or open to everyone); the nodes' firewall
is loaded; dnsmasq's configuration passes dnsmasq --test and serves the tftp root; IP
forwarding is on; every switch answers SNMP (pitasks switches).

Options:
  --config FILE   the configuration (default: /etc/seducepp.conf)
  --bin-dir DIR   where pitasks and pifrontend are (default: /usr/bin, then PATH)
  --dry-run       print the checks and the commands they run, run none
  -h, --help      this help

Environment: PISEDUCE_ROOT=DIR looks for the files under DIR instead of / (tests).
USAGE
}

parse_common "$@"
[ ${#ARGS[@]} = 0 ] || die "unexpected argument '${ARGS[0]}' (see --help)"

R() { printf '%s%s' "${ROOT%/}" "$1"; }
PROBLEMS=0
problem() {
	printf '  PROBLEM: %s\n' "$*"
	PROBLEMS=$((PROBLEMS + 1))
}
good() { printf '  ok: %s\n' "$*"; }
section() { printf '== %s\n' "$*"; }
# probe CMD…: runs a read-only command with a time limit (only printed with --dry-run).
probe() {
	if [ "$DRY_RUN" = 1 ]; then
		show "$@"
		return 0
	fi
	timeout 30 "$@"
}

# ini_get SECTION KEY DEFAULT: the value of KEY in [SECTION] of the config.
ini_get() {
	local v
	v=$(ini_value "$CONFIG" "$1" "$2")
	printf '%s' "${v:-$3}"
}

# mode_ok PATH: PATH exists and nobody but its owner and group may write it.
mode_ok() {
	local p=$1 what=$2 perm
	if [ ! -e "$p" ]; then
		problem "$what $p is missing"
		return 1
	fi
	perm=$(stat -c '%a' "$p")
	if (((8#$perm & 8#002) != 0)) && [ ! -k "$p" ]; then
		problem "$what $p is writable by everyone (mode $perm)"
		return 1
	fi
	return 0
}

systemd_running() { [ "$ROOT" = / ] && [ -d /run/systemd/system ]; }

# config_of PID: the configuration a PiSeduce daemon was started with (-config FILE, resolved
# from its working directory), or the default when it was given none.
config_of() {
	local a prev='' conf=/etc/seducepp.conf
	while IFS= read -r -d '' a; do
		case $prev in -config | --config) conf=$a ;; esac
		case $a in -config=* | --config=*) conf=${a#*=} ;; esac
		prev=$a
	done <"/proc/$1/cmdline"
	(cd "/proc/$1/cwd" 2>/dev/null && realpath -m -- "$conf")
}

# ours PROCESS: a process of that name runs with this check's configuration (a daemon of
# another configuration on the same machine, e.g. a test's, is not this site's).
ours() {
	local pid want
	want=$(realpath -m -- "$CONFIG")
	for pid in $(pgrep -x "$1"); do
		[ "$(config_of "$pid")" = "$want" ] && return 0
	done
	return 1
}

# running NAME PROCESS…: the service NAME runs (systemd unit, else one of the processes; for
# PiSeduce's own daemons, one started with this configuration).
running() {
	local name=$1 p
	shift
	if [ "$DRY_RUN" = 1 ]; then
		if systemd_running; then show systemctl is-active "$name"; else show pgrep -x "$1"; fi
		return 0
	fi
	if systemd_running; then
		if systemctl is-active -q "$name"; then good "$name is running"; else problem "$name is not running (systemctl status $name)"; fi
		return 0
	fi
	for p in "$@"; do
		case $p in
		pitasks | pifrontend) ours "$p" ;;
		*) pgrep -x "$p" >/dev/null 2>&1 ;;
		esac && { good "$name is running ($p)"; return 0; }
	done
	problem "$name is not running (no $* process)"
}

PITASKS=$(pitasks_path)
PIFRONTEND=${PITASKS%/pitasks}/pifrontend
[ "$DRY_RUN" = 1 ] && printf 'DRY RUN: the checks and their commands; nothing is run.\n'

section "configuration $CONFIG"
if [ ! -f "$CONFIG" ]; then
	problem "$CONFIG is missing (admin/install.sh writes it)"
else
	perm=$(stat -c '%a' "$CONFIG")
	if (((8#$perm & 8#007) != 0)); then
		problem "$CONFIG has mode $perm: others may read the database password (chmod 640)"
	else
		good "$CONFIG has mode $perm"
	fi
	if getent group piseduce >/dev/null && [ "$(stat -c '%G' "$CONFIG")" != piseduce ]; then
		problem "$CONFIG belongs to group $(stat -c '%G' "$CONFIG"), pifrontend (group piseduce) cannot read it"
	fi
fi
if [ "$DRY_RUN" = 0 ] && [ ! -x "$PITASKS" ]; then
	problem "no pitasks at $PITASKS nor on PATH: the checks that need it are skipped"
else
	if out=$(probe "$PITASKS" -config "$CONFIG" check 2>&1); then
		good "pitasks check: ${out:-(dry run)}"
	else
		problem "pitasks check fails: $out"
	fi
	if [ -x "$PIFRONTEND" ] || [ "$DRY_RUN" = 1 ]; then
		if out=$(probe "$PIFRONTEND" -config "$CONFIG" -check 2>&1); then
			good "pifrontend -check: ${out:-(dry run)}"
		else
			problem "pifrontend -check fails: $out"
		fi
	fi
fi

PORT=$(ini_get frontend port 9000)
TFTP=$(ini_get cluster tftp_root /tftpboot)
NFSBOOT=$(ini_get cluster nfs_boot_dir /tftpboot/rpiboot_uboot)
IMG=$(ini_get cluster img_dir /var/lib/piseduce/img)
KEY=$(ini_get cluster ssh_key /var/lib/piseduce/id_ed25519)
NFSNAME=$(ini_get cluster nfs_hostname nfspi)
DBURL=$(ini_get db connection_url sqlite://./data/piseduce.db)
NFSKEY=$(ini_get cluster nfs_host_key "")
NODESNET=$(ini_get cluster nodes_network "")
NFS=/nfs/raspi
NFS_INIT=/usr/local/sbin/piseduce-nfs-init

section "services"
running pitasks pitasks
running pifrontend pifrontend
running dnsmasq dnsmasq
running nfs-server nfsd rpc.mountd
if [ "${DBURL%%://*}" = mysql ]; then
	running mariadb mariadbd mysqld
fi
if [ "$DRY_RUN" = 1 ]; then
	show ss -Hltn "sport = :$PORT"
elif [[ $PORT =~ ^[0-9]+$ ]] && [ -n "$(ss -Hltn "sport = :$PORT" 2>/dev/null)" ]; then
	good "something listens on TCP port $PORT"
else
	problem "nothing listens on TCP port $PORT (pifrontend's [frontend] port)"
fi
if systemd_running; then
	for u in pifrontend pitasks; do
		if systemctl is-enabled -q "$u" 2>/dev/null; then good "$u.service enabled"; else problem "$u.service is not enabled (systemctl enable $u)"; fi
	done
fi

section "paths"
if mode_ok "$(R /var/lib/piseduce)" "the state folder"; then good "$(R /var/lib/piseduce)"; fi
if mode_ok "$(R "$IMG")" "img_dir"; then good "img_dir $(R "$IMG")"; fi
if mode_ok "$(R "$KEY")" "ssh_key"; then
	perm=$(stat -c '%a %U' "$(R "$KEY")")
	if [ "$perm" != "600 root" ]; then
		problem "ssh_key $(R "$KEY") has mode and owner $perm, want 600 root (it opens every node)"
	else
		good "ssh_key $(R "$KEY")"
	fi
fi
if mode_ok "$(R "$TFTP")" "tftp_root"; then
	if [ "$(($(stat -c '8#%a' "$(R "$TFTP")") & 8#005))" != 5 ]; then
		problem "tftp_root $(R "$TFTP") is not readable by everyone: dnsmasq's TFTP cannot serve it"
	else
		good "tftp_root $(R "$TFTP")"
	fi
fi
if mode_ok "$(R "$NFSBOOT")" "nfs_boot_dir"; then
	if ! compgen -G "$(R "$NFSBOOT")/start*.elf" >/dev/null && [ ! -f "$(R "$NFSBOOT")/config.txt" ]; then
		problem "nfs_boot_dir $(R "$NFSBOOT") holds no Raspberry Pi boot files (start*.elf, config.txt)"
	elif [ -e "$(R "$NFSBOOT")/bootcode.bin" ]; then
		problem "nfs_boot_dir $(R "$NFSBOOT") holds a bootcode.bin (the nodes must get /tftpboot's)"
	else
		good "nfs_boot_dir $(R "$NFSBOOT")"
	fi
	if [ ! -f "$(R "$NFSBOOT")/cmdline.txt" ]; then
		problem "nfs_boot_dir $(R "$NFSBOOT") has no cmdline.txt (root=/dev/nfs nfsroot=PIMASTER:$NFS)"
	elif ! grep -qwF ro "$(R "$NFSBOOT")/cmdline.txt" || ! grep -qF "init=$NFS_INIT" "$(R "$NFSBOOT")/cmdline.txt"; then
		problem "nfs_boot_dir $(R "$NFSBOOT")/cmdline.txt does not boot the NFS root read-only (ro) with its first init (init=$NFS_INIT): pitasks dnsmasq -cmdline rewrites it"
	fi
fi

section "NFS root $(R $NFS)"
if mode_ok "$(R $NFS)" "the NFS root"; then
	if [ "$(cat "$(R $NFS)/etc/hostname" 2>/dev/null)" != "$NFSNAME" ]; then
		problem "$(R $NFS)/etc/hostname is not $NFSNAME (pitasks checks it to know a node runs the NFS system)"
	else
		good "hostname $NFSNAME"
	fi
	hk=$(R $NFS)/etc/ssh/ssh_host_ed25519_key.pub
	if [ ! -f "$hk" ]; then
		problem "$hk is missing: the NFS system has no SSH host key"
	elif cmp -s "$hk" /etc/ssh/ssh_host_ed25519_key.pub && [ "$ROOT" = / ]; then
		problem "the NFS system has the pimaster's own SSH host key (regenerate it: admin/install.sh --only nfs-root)"
	elif [ -z "$NFSKEY" ]; then
		problem "[cluster] nfs_host_key is not set: pitasks reaches no NFS system (no host key is trusted on first use); set it to $NFS/etc/ssh/ssh_host_ed25519_key.pub"
	elif ! served=$(ssh-keygen -y -f "${hk%.pub}" 2>/dev/null); then
		problem "cannot read the NFS system's private host key ${hk%.pub} (run check.sh as root)"
	elif [ "$(cut -d' ' -f1,2 "$(R "$NFSKEY")" 2>/dev/null)" != "$(printf '%s\n' "$served" | cut -d' ' -f1,2)" ]; then
		problem "[cluster] nfs_host_key $NFSKEY is not the key the NFS system serves (${hk%.pub}): pitasks would refuse every node"
	else
		good "own SSH host key, pinned by nfs_host_key"
	fi
	if [ -f "$(R "$KEY").pub" ] && ! grep -qF -- "$(cut -d' ' -f2 "$(R "$KEY").pub")" "$(R $NFS)/root/.ssh/authorized_keys" 2>/dev/null; then
		problem "$(R $NFS)/root/.ssh/authorized_keys lacks pitasks' key $(R "$KEY").pub"
	fi
	if [ -x "$(R $NFS)$NFS_INIT" ]; then
		good "first init $NFS_INIT"
	else
		problem "$(R $NFS)$NFS_INIT is missing: the nodes would get no writable layer over the read-only NFS root (admin/install.sh --only nfs-root)"
	fi
fi

# check_export SOURCE CLIENT OPTIONS: one client of the NFS root's export, as /etc/exports or
# exportfs -v lists it. Without options nfs-utils exports ro, root_squash.
check_export() {
	local src=$1 client=$2 opts=",$3," bad=0
	if [ "$client" = "*" ] || [ -z "$client" ]; then
		problem "$src: $NFS is exported to everyone: anyone who reaches this machine may mount it (export it to the nodes' network only)"
		bad=1
	elif [ -z "$NODESNET" ]; then
		problem "$src: $NFS is exported to $client, but [cluster] nodes_network is not set to say whether that is the nodes' network"
		bad=1
	elif [ "$client" != "$NODESNET" ]; then
		problem "$src: $NFS is exported to $client, not to the nodes' network $NODESNET only"
		bad=1
	fi
	case $opts in *,rw,*)
		problem "$src: $NFS is exported read-write to $client: a node could change what every other node boots (export it ro)"
		bad=1
		;;
	esac
	case $opts in *,no_root_squash,*)
		problem "$src: $NFS is exported with no_root_squash to $client: root on a node would be root on the export"
		bad=1
		;;
	esac
	[ "$bad" = 1 ] || good "$src: $NFS is exported read-only, root squashed, to $client"
}

# check_export_line SOURCE LINE: every client of an export line "PATH CLIENT(OPTS) …".
check_export_line() {
	local src=$1 spec opts
	local -a specs
	read -ra specs <<<"$2"
	for spec in "${specs[@]:1}"; do
		opts=""
		[[ $spec != *"("* ]] || opts=${spec#*(} opts=${opts%)}
		check_export "$src" "${spec%%(*}" "$opts"
	done
}

lines=$(grep -sE "^[[:space:]]*${NFS}[[:space:]]" "$(R /etc/exports)" || true)
if [ -z "$lines" ]; then
	problem "$(R /etc/exports) has no line for $NFS"
else
	while read -r line; do check_export_line "$(R /etc/exports)" "$line"; done <<<"$lines"
fi
if [ "$DRY_RUN" = 1 ]; then
	show exportfs -v
elif command -v exportfs >/dev/null && [ "$ROOT" = / ]; then
	# exportfs -v puts a long path alone on its line, its clients on the next.
	lines=$(exportfs -v 2>/dev/null | awk '/^[^ \t]/ { if (l != "") print l; l = $0; next } { l = l " " $0 } END { if (l != "") print l }' |
		grep -E "^${NFS}[[:space:]]" || true)
	if [ -z "$lines" ]; then
		problem "$NFS is not exported (exportfs -ra)"
	else
		while read -r line; do check_export_line "exportfs -v" "$line"; done <<<"$lines"
	fi
elif [ "$ROOT" = / ]; then
	problem "exportfs is missing (apt-get install nfs-kernel-server)"
fi

section "the nodes' firewall"
if [ "$DRY_RUN" = 1 ]; then
	show nft list table inet piseduce
elif [ "$ROOT" != / ]; then
	if [ -f "$(R /etc/nftables.d/piseduce.nft)" ]; then good "$(R /etc/nftables.d/piseduce.nft)"; else problem "$(R /etc/nftables.d/piseduce.nft) is missing (admin/install.sh --only firewall)"; fi
elif ! command -v nft >/dev/null; then
	problem "nft is missing: the nodes reach every service of this machine and the switches' management (apt-get install nftables; admin/install.sh --only firewall)"
elif nft list table inet piseduce >/dev/null 2>&1; then
	good "table inet piseduce is loaded"
else
	problem "the nodes' firewall (table inet piseduce) is not loaded: the nodes reach every service of this machine (admin/install.sh --only firewall)"
fi

section "dnsmasq"
if [ "$DRY_RUN" = 1 ]; then
	show dnsmasq --test
elif ! command -v dnsmasq >/dev/null && [ ! -x /usr/sbin/dnsmasq ]; then
	problem "dnsmasq is not installed"
else
	if out=$(probe "$(command -v dnsmasq || echo /usr/sbin/dnsmasq)" --test 2>&1); then
		good "dnsmasq --test: $out"
	else
		problem "dnsmasq --test fails: $out"
	fi
	if grep -rqsE "^[[:space:]]*tftp-root=$TFTP/?$" "$(R /etc/dnsmasq.conf)" "$(R /etc/dnsmasq.d)"; then
		good "dnsmasq serves $TFTP over TFTP"
	else
		problem "no dnsmasq configuration has tftp-root=$TFTP (the dnsmasq snippet is generated from the database)"
	fi
fi

section "network"
if [ "$(cat /proc/sys/net/ipv4/ip_forward 2>/dev/null)" = 1 ]; then
	good "IP forwarding is on"
else
	problem "IP forwarding is off: the nodes have no gateway (admin/install.sh --only forward)"
fi

section "switches"
if [ "$DRY_RUN" = 0 ] && [ ! -x "$PITASKS" ]; then
	problem "no pitasks: the switches are not checked"
elif out=$(probe "$PITASKS" -config "$CONFIG" switches 2>&1); then
	[ -z "$out" ] || printf '%s\n' "$out" | sed 's/^/  /'
else
	printf '%s\n' "$out" | sed 's/^/  /'
	n=$(printf '%s\n' "$out" | grep -c 'PROBLEM:' || true)
	[ "$n" -gt 0 ] || n=1
	PROBLEMS=$((PROBLEMS + n))
fi

echo
if [ "$DRY_RUN" = 1 ]; then
	echo "dry run: nothing checked."
	exit 0
fi
if [ "$PROBLEMS" = 0 ]; then
	echo "all checks passed."
else
	echo "$PROBLEMS problem(s) found."
fi
exit $((PROBLEMS > 100 ? 100 : PROBLEMS))
