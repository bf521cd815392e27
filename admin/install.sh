#!/usr/bin/env bash
# Sets up a PiSeduce pimaster on a fresh Raspberry Pi OS / Debian: packages, the piseduce
# package (binaries, units, user), the NFS root, the tftp root, the MariaDB database and user,
# /etc/seducepp.conf, and the daemons enabled. Idempotent: a second run changes nothing that is
# already right. See --help.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh" # ini_value; what else it sets is set again below

usage() {
	cat <<'EOF'
usage: admin/install.sh [options]

Sets up this machine as a PiSeduce pimaster, as root. Each step checks what is there first and
only changes what is not right, so running it again is safe. Steps, in order:

  packages   apt-get install dnsmasq nfs-kernel-server mariadb-server snmp pv mtools rsync …
  package    the piseduce .deb (make package): pifrontend and pitasks in /usr/bin, their
             systemd units, the system user piseduce (pifrontend runs as it),
             /var/lib/piseduce (0750 root:piseduce) and its img/ and db/ folders
  forward    IP forwarding (the nodes' gateway): /etc/sysctl.d/90-piseduce.conf
  ssh-key    pitasks' SSH key for the nodes, /var/lib/piseduce/id_ed25519
  nfs-root   /nfs/raspi: a copy of this system (rsync of / without /nfs /proc /sys /dev /tmp
             /run and secrets), hostname nfspi, its own SSH host key ([cluster] nfs_host_key),
             the pimaster's key in root's authorized_keys, the pimaster's services masked,
             and its first init /usr/local/sbin/piseduce-nfs-init (each node's writable layer
             is an overlay in its own RAM: the NFS root is read-only to the nodes)
  exports    /nfs/raspi exported read-only, root_squash, to the nodes' network only
             (/etc/exports), mountd on a fixed port (/etc/nfs.conf.d/piseduce.conf), exportfs -ra
  firewall   /etc/nftables.d/piseduce.nft, included by /etc/nftables.conf and loaded: from the
             nodes' interface, this machine answers DHCP, TFTP, DNS and NFS only, and nothing
             is routed to private, shared or link-local networks (the switches' management)
  tftp       /tftpboot and /tftpboot/rpiboot_uboot (the boot files of /boot/firmware or /boot
             without bootcode.bin and cmdline.txt)
  database   the MariaDB database and user, with a generated password
  nginx      nginx publishes deployed nodes (README, "Publishing nodes"): nginx.conf includes
             /etc/nginx/piseduce/stream.conf in a stream {} block, conf.d/piseduce.conf
             includes /etc/nginx/piseduce/http.conf in http {}; pitasks rewrites both files
             from the database and reloads nginx ([nginx] in /etc/seducepp.conf)
  config     /etc/seducepp.conf from the shipped one, with the mysql:// URL (0640 root:piseduce)
             and, with the nginx step, its [nginx] files and reload command
  units      pifrontend.service and pitasks.service enabled and started, when systemd runs
             this machine (the package starts nothing by itself)

Options:
  --dry-run            print every step it would run, change nothing
  --only STEP,…        run only these steps
  --skip STEP,…        run all steps but these
  --deb FILE           the piseduce package to install (default: the newest dist/piseduce_*_ARCH.deb
                       of the checkout for this machine's architecture; make package builds it)
  --pimaster-ip IP     the pimaster's address on the nodes' network ([cluster] pimaster_ip)
  --nodes-network NET  the nodes' network, e.g. 10.10.0.0/24 ([cluster] nodes_network; default:
                       the configured one, else the network of --pimaster-ip on this machine)
  --nodes-interface IF this machine's interface on the nodes' network ([cluster]
                       nodes_interface; default: the configured one, else the one holding
                       --pimaster-ip)
  --nodes-may-reach NET,…  networks the nodes may still be routed to despite the firewall
                       (e.g. an internal package mirror)
  --listen ADDR        [frontend] listen (the shipped 127.0.0.1 serves only this machine;
                       0.0.0.0 serves every network)
  --public-address HOST  the pimaster's name or address as users outside reach it ([nginx]
                       public_address: the deployment page's ssh -p PORT command names it)
  --http-domain DOMAIN web nodes are published as http://NODE.DOMAIN/ ([nginx] http_domain;
                       needs a wildcard DNS record *.DOMAIN naming this machine; without it
                       only SSH is published)
  --db-name NAME       MariaDB database (default: piseduce)
  --db-user NAME       MariaDB user (default: pipi)
  --refresh-nfs-root   copy this system into /nfs/raspi again (else only done once)
  --nfs-source DIR     the system to copy into the NFS root (default: /)
  --boot-source DIR    the Raspberry Pi boot files (default: /boot/firmware, else /boot)
  -h, --help           this help

Environment:
  PISEDUCE_ROOT=DIR    write every file under DIR instead of / (a throwaway root for tests);
                       steps that change the running system (apt-get, dpkg, mariadb,
                       exportfs, sysctl, systemctl) are then printed and skipped, and the
                       package's files are unpacked there without its maintainer scripts.

The database password is generated once (openssl rand) and kept only in /etc/seducepp.conf.
EOF
}

die() {
	printf 'install.sh: %s\n' "$*" >&2
	exit 1
}

ALL_STEPS="packages package forward ssh-key nfs-root exports firewall tftp database nginx config units"
PACKAGES=(dnsmasq nfs-kernel-server mariadb-server mariadb-client snmp pv mtools rsync openssl
	openssh-server fdisk e2fsprogs dosfstools gzip xz-utils zstd tar iproute2 procps nftables
	nginx libnginx-mod-stream)
# Services of the pimaster that must not start on a node booting the NFS copy of this system.
NFS_MASKED=(dnsmasq mariadb nfs-server nfs-kernel-server pifrontend pitasks nginx)

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CHECKOUT=$(dirname "$HERE")
ROOT=${PISEDUCE_ROOT:-/}
DRY_RUN=0
ONLY=""
SKIP=""
DEB=""
PIMASTER_IP=""
LISTEN=""
PUBLIC_ADDRESS=""
HTTP_DOMAIN=""
NODES_NETWORK=""
NODES_IF=""
NODES_MAY_REACH=""
DB_NAME=piseduce
DB_USER=pipi
REFRESH_NFS=0
NFS_SOURCE=/
BOOT_SOURCE=""

need_arg() {
	if [ $# -lt 2 ] || [ -z "$2" ]; then
		die "$1 needs a value (see --help)"
	fi
}
while [ $# -gt 0 ]; do
	case $1 in
	-h | --help) usage; exit 0 ;;
	--dry-run) DRY_RUN=1 ;;
	--only) need_arg "$@"; ONLY=${2//,/ }; shift ;;
	--skip) need_arg "$@"; SKIP=${2//,/ }; shift ;;
	--deb) need_arg "$@"; DEB=$2; shift ;;
	--pimaster-ip) need_arg "$@"; PIMASTER_IP=$2; shift ;;
	--listen) need_arg "$@"; LISTEN=$2; shift ;;
	--public-address) need_arg "$@"; PUBLIC_ADDRESS=$2; shift ;;
	--http-domain) need_arg "$@"; HTTP_DOMAIN=$2; shift ;;
	--nodes-network) need_arg "$@"; NODES_NETWORK=$2; shift ;;
	--nodes-interface) need_arg "$@"; NODES_IF=$2; shift ;;
	--nodes-may-reach) need_arg "$@"; NODES_MAY_REACH=${2//,/ }; shift ;;
	--db-name) need_arg "$@"; DB_NAME=$2; shift ;;
	--db-user) need_arg "$@"; DB_USER=$2; shift ;;
	--refresh-nfs-root) REFRESH_NFS=1 ;;
	--nfs-source) need_arg "$@"; NFS_SOURCE=$2; shift ;;
	--boot-source) need_arg "$@"; BOOT_SOURCE=$2; shift ;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
	shift
done

for s in $ONLY $SKIP; do
	case " $ALL_STEPS " in *" $s "*) ;; *) die "unknown step '$s' (steps: $ALL_STEPS)" ;; esac
done
# Values that end up in files, SQL or the exports line: checked here, never quoted later.
[[ $DB_NAME =~ ^[A-Za-z0-9_]{1,32}$ ]] || die "--db-name must be letters, digits and _ (at most 32)"
[[ $DB_USER =~ ^[A-Za-z0-9_]{1,32}$ ]] || die "--db-user must be letters, digits and _ (at most 32)"
[ -z "$LISTEN" ] || [[ $LISTEN =~ ^[0-9A-Za-z.:-]{1,64}$ ]] || die "--listen must be an address like 0.0.0.0"
[ -z "$PUBLIC_ADDRESS" ] || [[ $PUBLIC_ADDRESS =~ ^[0-9A-Za-z.-]{1,253}$ ]] || die "--public-address must be a host name or an IPv4 address"
[ -z "$HTTP_DOMAIN" ] || [[ $HTTP_DOMAIN =~ ^[0-9A-Za-z.-]{1,253}$ ]] || die "--http-domain must be a domain like nodes.example.org"
IPV4='([0-9]{1,3}\.){3}[0-9]{1,3}'
CIDR4="^$IPV4/([0-9]|[12][0-9]|3[0-2])$"
for n in $NODES_MAY_REACH; do
	[[ $n =~ $CIDR4 || $n =~ ^$IPV4$ ]] || die "--nodes-may-reach takes IPv4 addresses and networks, not '$n'"
done
[ "${ROOT:0:1}" = / ] || die "PISEDUCE_ROOT must be an absolute path"
if [ "$DRY_RUN" = 0 ] && [ "$(id -u)" != 0 ]; then
	die "run it as root (or with --dry-run)"
fi

REAL_ROOT=0
[ "$ROOT" = / ] && REAL_ROOT=1
# R PATH: PATH under the target root.
R() { printf '%s%s' "${ROOT%/}" "$1"; }

# network_of A.B.C.D/N: the network of that address, as NET/N.
network_of() {
	local a b c d bits=${1#*/} n
	IFS=. read -r a b c d <<<"${1%/*}"
	n=$(((a << 24 | b << 16 | c << 8 | d) & (0xffffffff << (32 - bits) & 0xffffffff)))
	printf '%d.%d.%d.%d/%d' $((n >> 24 & 255)) $((n >> 16 & 255)) $((n >> 8 & 255)) $((n & 255)) "$bits"
}

# The nodes' network and interface: the options, else the configuration, else this machine's
# interface holding the pimaster's address. Both are checked again: the file may say anything.
CONF_FILE=$(R /etc/seducepp.conf)
[ -n "$PIMASTER_IP" ] || PIMASTER_IP=$(ini_value "$CONF_FILE" cluster pimaster_ip)
[ -n "$NODES_NETWORK" ] || NODES_NETWORK=$(ini_value "$CONF_FILE" cluster nodes_network)
[ -n "$NODES_IF" ] || NODES_IF=$(ini_value "$CONF_FILE" cluster nodes_interface)
if [ "$REAL_ROOT" = 1 ] && [ -n "$PIMASTER_IP" ] && { [ -z "$NODES_NETWORK" ] || [ -z "$NODES_IF" ]; }; then
	# "2: eth0    inet 10.10.0.2/24 brd 10.10.0.255 scope global eth0"
	read -r found_if found_cidr < <(ip -o -4 addr show 2>/dev/null |
		awk -v ip="$PIMASTER_IP" '{ split($4, a, "/"); if (a[1] == ip) { print $2, $4; exit } }') || true
	[ -n "$NODES_IF" ] || NODES_IF=${found_if:-}
	[ -n "$NODES_NETWORK" ] || NODES_NETWORK=${found_cidr:-}
fi
[ -z "$PIMASTER_IP" ] || [[ $PIMASTER_IP =~ ^$IPV4$ ]] || die "the pimaster's address '$PIMASTER_IP' is not an IPv4 address"
if [ -n "$NODES_NETWORK" ]; then
	[[ $NODES_NETWORK =~ $CIDR4 ]] || die "the nodes' network '$NODES_NETWORK' is not an IPv4 network like 10.10.0.0/24"
	NODES_NETWORK=$(network_of "$NODES_NETWORK")
fi
[ -z "$NODES_IF" ] || [[ $NODES_IF =~ ^[A-Za-z0-9_.-]{1,15}$ ]] || die "the nodes' interface '$NODES_IF' is not an interface name"

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

CHANGED=0  # something the daemons read changed: restart them
PROBLEMS=0 # warnings the admin must act on

say() { printf '%s\n' "$*"; }
ok() { printf '   ok: %s\n' "$*"; }
warn() {
	printf '   WARNING: %s\n' "$*"
	PROBLEMS=$((PROBLEMS + 1))
}
show() {
	local q
	q=$(printf '%q ' "$@")
	printf ' + %s\n' "${q% }"
}
# run CMD…: a change to the target's files.
run() {
	show "$@"
	[ "$DRY_RUN" = 1 ] || "$@"
}
# sys CMD…: a change to the running system, not to files under the target root.
sys() {
	if [ "$DRY_RUN" = 0 ] && [ "$REAL_ROOT" = 0 ]; then
		printf ' - skipped (PISEDUCE_ROOT is not /): %s\n' "$(printf '%q ' "$@")"
		return 0
	fi
	run "$@"
}
want_step() {
	case " ${ONLY:-$ALL_STEPS} " in *" $1 "*) ;; *) return 1 ;; esac
	case " $SKIP " in *" $1 "*) return 1 ;; esac
	return 0
}

# The group that may read the config: piseduce, or root in a throwaway root without it.
group() {
	if [ "$REAL_ROOT" = 0 ] && ! getent group piseduce >/dev/null; then
		printf root
	else
		printf piseduce
	fi
}

# ensure_dir PATH MODE OWNER:GROUP: PATH is a folder with this mode (as stat %a prints it) and owner.
ensure_dir() {
	local p=$1 mode=$2 own=$3
	if [ -d "$p" ] && [ "$(stat -c '%a %U:%G' "$p")" = "$mode $own" ]; then
		ok "$p"
		return 0
	fi
	run install -d -m "$mode" -o "${own%%:*}" -g "${own##*:}" "$p"
	if [ "${mode:0:1}" = 2 ] || [ "${mode:0:1}" = 1 ]; then
		run chmod "$mode" "$p" # install -d does not set the setgid or sticky bit of an existing folder
	fi
	CHANGED=1
}

# mkdir_p PATH: a folder of the system that must exist; its mode and owner stay as they are.
mkdir_p() {
	[ -d "$1" ] || run mkdir -p "$1"
}

# install_file SRC DEST MODE OWNER:GROUP [SECRET]: DEST gets SRC's content, mode and owner.
# With SECRET the plan does not show where the content comes from.
install_file() {
	local src=$1 dest=$2 mode=$3 own=$4 secret=${5:-}
	if [ -f "$dest" ] && cmp -s "$src" "$dest" &&
		[ "$(stat -c '%a %U:%G' "$dest")" = "$mode $own" ]; then
		ok "$dest"
		return 0
	fi
	if [ -n "$secret" ]; then
		printf ' + write %s (mode %s, %s): %s\n' "$dest" "$mode" "$own" "$secret"
		[ "$DRY_RUN" = 1 ] || install -m "$mode" -o "${own%%:*}" -g "${own##*:}" "$src" "$dest"
	else
		run install -m "$mode" -o "${own%%:*}" -g "${own##*:}" "$src" "$dest"
	fi
	CHANGED=1
}

# write_file DEST MODE OWNER:GROUP: DEST gets stdin.
write_file() {
	local tmp
	tmp=$(mktemp "$TMP/file.XXXXXX")
	cat >"$tmp"
	install_file "$tmp" "$1" "$2" "$3" "${4:-$(head -c 100 "$tmp" | tr '\n' ' ')…}"
}

# ensure_line FILE LINE: FILE has LINE (appended when missing).
ensure_line() {
	local f=$1 line=$2
	if [ -f "$f" ] && grep -qxF -- "$line" "$f"; then
		ok "$f has: $line"
		return 1
	fi
	printf ' + append to %s: %s\n' "$f" "$line"
	[ "$DRY_RUN" = 1 ] || printf '%s\n' "$line" >>"$f"
	CHANGED=1
}

systemd_running() { [ "$REAL_ROOT" = 1 ] && [ -d /run/systemd/system ]; }

# ---- steps

step_packages() {
	say "== packages: ${PACKAGES[*]}"
	local missing=() p
	for p in "${PACKAGES[@]}"; do
		if [ "$REAL_ROOT" = 1 ] && [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ]; then
			continue
		fi
		missing+=("$p")
	done
	if [ ${#missing[@]} = 0 ]; then
		ok "all installed"
		return 0
	fi
	sys env DEBIAN_FRONTEND=noninteractive apt-get update -q
	sys env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# The package to install: --deb, else the newest one make package left in dist/ for this
# machine's architecture.
find_deb() {
	[ -n "$DEB" ] && return 0
	local arch
	arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
	DEB=$(find "$CHECKOUT/dist" -maxdepth 1 -name "piseduce_*_$arch.deb" 2>/dev/null | sort -V | tail -n 1)
	[ -n "$DEB" ] || DEB=$CHECKOUT/dist/piseduce_VERSION_$arch.deb
}

step_package() {
	find_deb
	say "== package: $DEB"
	if [ ! -f "$DEB" ]; then
		if [ "$DRY_RUN" = 1 ]; then
			printf ' + apt-get install %s   (not built yet: make package)\n' "$DEB"
			return 0
		fi
		die "no package $DEB: build it first (make package), or give --deb FILE"
	fi
	local want have
	want=$(dpkg-deb --field "$DEB" Version)
	if [ "$REAL_ROOT" = 1 ]; then
		have=$(dpkg-query -W -f='${Version}' piseduce 2>/dev/null || true)
		if [ "$have" = "$want" ]; then
			ok "piseduce $have is installed"
			return 0
		fi
		# apt-get brings its dependencies; an /etc/seducepp.conf already edited is kept.
		sys env DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o Dpkg::Options::=--force-confdef \
			-o Dpkg::Options::=--force-confold "$(realpath "$DEB")"
		CHANGED=1
		return 0
	fi
	# A throwaway root: the package's files, without its maintainer scripts (they would run
	# on this machine), and a /etc/seducepp.conf already there kept, as dpkg keeps a conffile.
	local tree=$TMP/package opts=(-rlpc)
	dpkg-deb --extract "$DEB" "$tree"
	[ ! -f "$(R /etc/seducepp.conf)" ] || opts+=(--exclude=/etc/seducepp.conf)
	if [ -z "$(rsync --dry-run --itemize-changes "${opts[@]}" "$tree/" "${ROOT%/}/" 2>/dev/null)" ]; then
		ok "the files of piseduce $want are in $ROOT"
		return 0
	fi
	run rsync "${opts[@]}" "$tree/" "${ROOT%/}/"
	printf ' - skipped (PISEDUCE_ROOT is not /): the maintainer scripts of piseduce %s (user piseduce, modes)\n' "$want"
	CHANGED=1
}

step_forward() {
	say "== forward: IP forwarding (the pimaster is the nodes' gateway)"
	mkdir_p "$(R /etc/sysctl.d)"
	printf '# PiSeduce: the pimaster routes for the nodes.\nnet.ipv4.ip_forward = 1\n' |
		write_file "$(R /etc/sysctl.d/90-piseduce.conf)" 644 root:root
	if [ "$REAL_ROOT" = 1 ] && [ "$(cat /proc/sys/net/ipv4/ip_forward 2>/dev/null)" = 1 ]; then
		ok "net.ipv4.ip_forward is 1"
	else
		sys sysctl -q -w net.ipv4.ip_forward=1
	fi
}

KEY=/var/lib/piseduce/id_ed25519
step_ssh_key() {
	say "== ssh-key: pitasks' key for the nodes ($KEY)"
	if [ -f "$(R $KEY)" ] && [ -f "$(R $KEY).pub" ]; then
		ok "$(R $KEY)"
	else
		[ -d "$(R /var/lib/piseduce)" ] || [ "$DRY_RUN" = 1 ] || die "$(R /var/lib/piseduce) is missing: run the dirs step"
		run ssh-keygen -q -t ed25519 -N "" -C "piseduce pitasks" -f "$(R $KEY)"
		CHANGED=1
	fi
	if [ -f "$(R $KEY)" ] && [ "$(stat -c '%a %U' "$(R $KEY)")" != "600 root" ]; then
		run chmod 600 "$(R $KEY)"
		run chown root:root "$(R $KEY)"
	fi
}

NFS=/nfs/raspi
NFS_INIT=/usr/local/sbin/piseduce-nfs-init # pkg/netboot's NFSInitPath
MOUNTD_PORT=20048
step_nfs_root() {
	say "== nfs-root: $NFS, a copy of $NFS_SOURCE booted by the nodes"
	local nfs marker
	nfs=$(R $NFS)
	marker=$nfs/.piseduce-nfs-root
	if [ -f "$marker" ] && [ "$REFRESH_NFS" = 0 ]; then
		ok "$nfs was copied (--refresh-nfs-root copies it again)"
	else
		mkdir_p "$(R /nfs)"
		ensure_dir "$nfs" 755 root:root
		# -x: this file system only; secrets of the pimaster stay out of a tree every node mounts.
		run rsync -aHx --numeric-ids --delete \
			--exclude=/nfs --exclude=/proc --exclude=/sys --exclude=/dev --exclude=/tmp --exclude=/run \
			--exclude=/mnt --exclude=/media --exclude=/lost+found --exclude=/tftpboot \
			--exclude=/var/lib/piseduce --exclude=/var/lib/mysql --exclude=/etc/seducepp.conf \
			--exclude='/root/.ssh/id_*' --exclude='/home/*/.ssh/id_*' --exclude='/etc/ssh/ssh_host_*' \
			--exclude=/swapfile --exclude=/var/swap --exclude='/var/cache/apt/archives/*.deb' \
			--exclude=/.piseduce-nfs-root \
			"${NFS_SOURCE%/}/" "$nfs/"
		run touch "$marker"
		CHANGED=1
	fi
	# The mount points rsync left out.
	local d
	for d in dev run mnt etc/ssh/sshd_config.d etc/systemd/system; do
		mkdir_p "$nfs/$d"
	done
	ensure_dir "$nfs/proc" 555 root:root
	ensure_dir "$nfs/sys" 555 root:root
	ensure_dir "$nfs/tmp" 1777 root:root
	# The nodes mount it with root_squash: their root is "nobody" on it, and must still reach
	# root's authorized_keys (public keys only) and the NFS system's host key.
	ensure_dir "$nfs/root" 755 root:root
	ensure_dir "$nfs/root/.ssh" 755 root:root
	ensure_dir "$nfs/mnt" 755 root:root # the node's writable layer (piseduce-nfs-init) goes there
	printf 'nfspi\n' | write_file "$nfs/etc/hostname" 644 root:root
	printf '# The NFS system of PiSeduce: its root comes from the kernel command line.\n' |
		write_file "$nfs/etc/fstab" 644 root:root
	printf '# PiSeduce NFS system\nUsePAM no\nPermitRootLogin prohibit-password\nHostKey /etc/ssh/ssh_host_ed25519_key\n' |
		write_file "$nfs/etc/ssh/sshd_config.d/piseduce.conf" 644 root:root
	# Its first init: each node's writable layer in its own RAM (the NFS root is read-only).
	mkdir_p "$nfs/usr/local/sbin"
	install_file "$CHECKOUT/pkg/netboot/nfs-init.sh" "$nfs$NFS_INIT" 755 root:root
	# One host key of its own, never the pimaster's: pitasks pins it ([cluster] nfs_host_key).
	# Owned by nobody, whom the nodes' root is on the export (root_squash).
	local hk=$nfs/etc/ssh/ssh_host_ed25519_key
	if [ -f "$hk" ] && [ -f "$hk.pub" ] && ! cmp -s "$hk" "${NFS_SOURCE%/}/etc/ssh/ssh_host_ed25519_key"; then
		ok "$nfs has its own SSH host key"
	else
		run find "$nfs/etc/ssh" -maxdepth 1 -name 'ssh_host_*' -delete
		run ssh-keygen -q -t ed25519 -N "" -C root@nfspi -f "$hk"
		CHANGED=1
	fi
	if [ ! -f "$hk" ] || [ "$(stat -c '%a %u' "$hk")" != "400 65534" ]; then
		run chown 65534:65534 "$hk"
		run chmod 400 "$hk"
	fi
	# The pimaster's keys may log in as root.
	local pub ak=$nfs/root/.ssh/authorized_keys
	[ -f "$ak" ] || run install -m 644 /dev/null "$ak"
	for pub in "$(R $KEY).pub" "$(R /root/.ssh/id_ed25519.pub)" "$(R /root/.ssh/id_rsa.pub)"; do
		if [ -f "$pub" ]; then
			ensure_line "$ak" "$(head -n1 "$pub")" || true
		elif [ "$pub" = "$(R $KEY).pub" ]; then
			printf ' + append to %s: the public key %s (made by the ssh-key step)\n' "$ak" "$pub"
		fi
	done
	# A node booting this copy must not start the pimaster's servers (a second DHCP server…).
	local s
	for s in "${NFS_MASKED[@]}"; do
		if [ "$(readlink "$nfs/etc/systemd/system/$s.service" 2>/dev/null)" = /dev/null ]; then
			ok "$s masked in the NFS system"
		else
			run ln -sfn /dev/null "$nfs/etc/systemd/system/$s.service"
		fi
	done
}

step_exports() {
	say "== exports: $NFS read-only to the nodes' network ${NODES_NETWORK:-(unknown)}"
	[ -n "$NODES_NETWORK" ] || die "the exports step needs the nodes' network: give --nodes-network (or --pimaster-ip, on this machine); it is never exported to everyone"
	local line="$NFS $NODES_NETWORK(ro,sync,no_subtree_check,root_squash)" f before=$CHANGED
	f=$(R /etc/exports)
	mkdir_p "$(R /etc)"
	CHANGED=0
	if [ -f "$f" ] && [ "$(grep -E "^[[:space:]]*${NFS}[[:space:]]" "$f")" = "$line" ]; then
		ok "$f has: $line"
	else
		# Any other line for $NFS goes: an earlier install exported it read-write to everyone.
		{
			[ ! -f "$f" ] || grep -vE "^[[:space:]]*${NFS}[[:space:]]" "$f" || true
			printf '%s\n' "$line"
		} >"$TMP/exports"
		install_file "$TMP/exports" "$f" 644 root:root "$line, and no other line for $NFS"
	fi
	# A fixed port for mountd: the nodes' firewall lets NFS through by port.
	mkdir_p "$(R /etc/nfs.conf.d)"
	printf '# PiSeduce: mountd on a fixed port, let through by the nodes firewall.\n[mountd]\nport = %s\n' "$MOUNTD_PORT" |
		write_file "$(R /etc/nfs.conf.d/piseduce.conf)" 644 root:root
	if [ "$CHANGED" = 0 ] && [ "$REAL_ROOT" = 1 ] && exportfs -v 2>/dev/null | grep -q "^${NFS}[[:space:]]"; then
		ok "$NFS is exported"
	elif systemd_running; then
		sys systemctl restart nfs-server
	else
		sys exportfs -ra
	fi
	CHANGED=$((before | CHANGED))
}

NFT_FILE=/etc/nftables.d/piseduce.nft
# nft_ruleset: the nodes' firewall, table inet piseduce (replaced whole when loaded again).
nft_ruleset() {
	local reach="" n
	for n in $NODES_MAY_REACH; do reach+="${reach:+, }$n"; done
	cat <<EOF
#!/usr/sbin/nft -f
# PiSeduce: what the nodes may reach. Written by admin/install.sh (its next run rewrites it).
# From the nodes' interface $NODES_IF, this machine answers DHCP, TFTP, DNS and the read-only
# NFS export only; nothing from it is routed to private, shared or link-local networks (the
# switches' management, this machine's other networks), only to the internet.
table inet piseduce
delete table inet piseduce
table inet piseduce {
	set internal4 {
		type ipv4_addr
		flags interval
		elements = { 0.0.0.0/8, 10.0.0.0/8, 100.64.0.0/10, 127.0.0.0/8, 169.254.0.0/16, 172.16.0.0/12,
			192.0.0.0/24, 192.168.0.0/16, 198.18.0.0/15, 224.0.0.0/3 }
	}
	set internal6 {
		type ipv6_addr
		flags interval
		elements = { ::/127, fc00::/7, fe80::/10, ff00::/8 }
	}
	set reachable4 {
		type ipv4_addr
		flags interval
$([ -z "$reach" ] || printf '\t\telements = { %s }\n' "$reach")
	}

	chain input {
		type filter hook input priority filter; policy accept;
		iifname "$NODES_IF" jump from_nodes
	}
	chain from_nodes {
		ct state established,related accept
		ct state invalid drop
		meta l4proto { icmp, ipv6-icmp } accept
		udp dport 67 accept comment "DHCP"
		ip saddr $NODES_NETWORK udp dport 69 accept comment "TFTP"
		ip saddr $NODES_NETWORK meta l4proto { tcp, udp } th dport 53 accept comment "DNS"
		ip saddr $NODES_NETWORK meta l4proto { tcp, udp } th dport { 111, 2049, $MOUNTD_PORT } accept comment "NFS, read-only"
		reject with icmpx type admin-prohibited
	}

	chain forward {
		type filter hook forward priority filter; policy accept;
		iifname "$NODES_IF" jump from_nodes_routed
	}
	chain from_nodes_routed {
		ct state established,related accept
		ip daddr @reachable4 accept
		ip daddr @internal4 reject with icmpx type admin-prohibited
		ip6 daddr @internal6 reject with icmpx type admin-prohibited
	}
}
EOF
}

step_firewall() {
	say "== firewall: what the nodes (${NODES_IF:-?} on ${NODES_NETWORK:-?}) may reach, $NFT_FILE"
	if [ -z "$NODES_IF" ] || [ -z "$NODES_NETWORK" ]; then
		die "the firewall step needs the nodes' interface and network: give --nodes-interface and --nodes-network (or --pimaster-ip, on this machine)"
	fi
	local before=$CHANGED
	CHANGED=0
	mkdir_p "$(R /etc/nftables.d)"
	nft_ruleset | write_file "$(R $NFT_FILE)" 644 root:root "table inet piseduce for $NODES_IF, $NODES_NETWORK${NODES_MAY_REACH:+, may reach $NODES_MAY_REACH}"
	ensure_line "$(R /etc/nftables.conf)" "include \"$NFT_FILE\"" || true
	if [ "$CHANGED" = 0 ] && [ "$REAL_ROOT" = 1 ] && nft list table inet piseduce >/dev/null 2>&1; then
		ok "table inet piseduce is loaded"
	else
		sys nft -f "$NFT_FILE"
	fi
	if systemd_running; then
		if systemctl is-enabled -q nftables 2>/dev/null; then ok "nftables.service enabled"; else sys systemctl enable nftables; fi
	fi
	CHANGED=$((before | CHANGED))
}

step_tftp() {
	local src=$BOOT_SOURCE dest
	if [ -z "$src" ]; then
		src=/boot
		[ -f /boot/firmware/config.txt ] && src=/boot/firmware
	fi
	dest=$(R /tftpboot/rpiboot_uboot)
	say "== tftp: /tftpboot and $dest from $src (without bootcode.bin and cmdline.txt)"
	ensure_dir "$(R /tftpboot)" 755 root:root
	ensure_dir "$dest" 755 root:root
	if ! compgen -G "$src/start*.elf" >/dev/null && [ ! -f "$src/config.txt" ]; then
		warn "$src holds no Raspberry Pi boot files: copy them into $dest yourself (or --boot-source DIR)"
		return 0
	fi
	# Without --delete: the NFS cmdline.txt (with the pimaster's address) is written there from
	# the database, not copied.
	# shellcheck disable=SC2054 # --chmod takes a comma-separated list
	local opts=(-rlt --chmod=D755,F644 --exclude=/bootcode.bin --exclude=/cmdline.txt)
	if [ -d "$dest" ] && [ -z "$(rsync --dry-run --itemize-changes "${opts[@]}" "${src%/}/" "$dest/" 2>/dev/null)" ]; then
		ok "$dest is up to date with $src"
	else
		run rsync "${opts[@]}" "${src%/}/" "$dest/"
		CHANGED=1
	fi
	# A node must get the bootcode.bin of /tftpboot, never one from this machine's boot folder.
	[ ! -e "$dest/bootcode.bin" ] || run rm -f "$dest/bootcode.bin"
}

# The database password: kept from /etc/seducepp.conf when it names this user and database,
# else generated.
DB_PASS=""
existing_password() {
	local url
	url=$(ini_value "$CONF_FILE" db connection_url)
	if [[ $url =~ ^mysql://${DB_USER}:([A-Za-z0-9]{16,128})@localhost/${DB_NAME}$ ]]; then
		printf '%s' "${BASH_REMATCH[1]}"
	fi
}
db_password() {
	[ -n "$DB_PASS" ] && return 0
	DB_PASS=$(existing_password)
	if [ -z "$DB_PASS" ]; then
		if command -v openssl >/dev/null; then
			DB_PASS=$(openssl rand -hex 24)
		else
			DB_PASS=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
		fi
		GENERATED=1
	fi
	[[ $DB_PASS =~ ^[A-Za-z0-9]{16,128}$ ]] || die "could not make a database password"
}
GENERATED=0

# mariadb_user_ok: the user logs in to the database over TCP, as the daemons do, with the
# password (given on a pipe, never on the command line).
mariadb_user_ok() {
	mariadb --defaults-extra-file=<(printf '[client]\nuser=%s\npassword=%s\n' "$DB_USER" "$DB_PASS") \
		--protocol=tcp --host=localhost -e 'SELECT 1' "$DB_NAME" >/dev/null 2>&1
}

step_database() {
	say "== database: MariaDB database $DB_NAME and user $DB_USER@localhost"
	db_password
	if [ "$GENERATED" = 1 ]; then
		say "   a new password is generated (openssl rand -hex 24) and kept in /etc/seducepp.conf"
		want_step config || warn "the config step is not run: the new password is not kept anywhere"
	fi
	if [ "$REAL_ROOT" = 1 ] && ! mariadb -e 'SELECT 1' >/dev/null 2>&1; then
		if systemd_running; then
			sys systemctl enable --now mariadb
		else
			sys service mariadb start
		fi
	fi
	if [ "$REAL_ROOT" = 1 ] && mariadb_user_ok; then
		ok "user $DB_USER logs in to $DB_NAME"
		return 0
	fi
	if [ "$DRY_RUN" = 0 ] && [ "$REAL_ROOT" = 0 ]; then
		say " - skipped (PISEDUCE_ROOT is not /): mariadb"
		return 0
	fi
	# The SQL is fixed; the names are checked against ^[A-Za-z0-9_]+$ and the password against
	# ^[A-Za-z0-9]+$ above, and it all goes through stdin.
	printf " + mariadb <<SQL  # as root: CREATE DATABASE IF NOT EXISTS \`%s\`; CREATE USER IF NOT EXISTS / ALTER USER '%s'@'localhost' IDENTIFIED BY <the password>; GRANT ALL PRIVILEGES ON \`%s\`.* TO '%s'@'localhost' (and @127.0.0.1, @::1)\n" \
		"$DB_NAME" "$DB_USER" "$DB_NAME" "$DB_USER"
	[ "$DRY_RUN" = 0 ] || return 0
	# The daemons connect over TCP to localhost: with skip-name-resolve MariaDB sees them as
	# 127.0.0.1 or ::1, not localhost, so the user exists for the three.
	local h
	{
		printf "CREATE DATABASE IF NOT EXISTS \`%s\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;\n" "$DB_NAME"
		for h in localhost 127.0.0.1 ::1; do
			printf "CREATE USER IF NOT EXISTS '%s'@'%s' IDENTIFIED BY '%s';\n" "$DB_USER" "$h" "$DB_PASS"
			printf "ALTER USER '%s'@'%s' IDENTIFIED BY '%s';\n" "$DB_USER" "$h" "$DB_PASS"
			printf "GRANT ALL PRIVILEGES ON \`%s\`.* TO '%s'@'%s';\n" "$DB_NAME" "$DB_USER" "$h"
		done
	} | mariadb --batch
	mariadb_user_ok || die "user $DB_USER cannot log in to $DB_NAME after its creation"
	CHANGED=1
}

# Where pitasks writes the nginx configuration that publishes the nodes (pkg/publish).
NGINX_DIR=/etc/nginx/piseduce

step_nginx() {
	say "== nginx: $NGINX_DIR/stream.conf in nginx.conf's stream {}, $NGINX_DIR/http.conf in its http {}"
	local main
	main=$(R /etc/nginx/nginx.conf)
	ensure_dir "$(R $NGINX_DIR)" 755 root:root
	# pitasks owns their content: written here only so that nginx starts before pitasks does.
	local f
	for f in stream.conf http.conf; do
		if [ -f "$(R $NGINX_DIR/$f)" ]; then
			ok "$NGINX_DIR/$f exists (pitasks rewrites it)"
		else
			printf '# Rewritten by pitasks from its database.\n' | write_file "$(R $NGINX_DIR/$f)" 644 root:root
		fi
	done
	mkdir_p "$(R /etc/nginx/conf.d)"
	printf '# PiSeduce: the web nodes (written by admin/install.sh).\ninclude %s/http.conf;\n' "$NGINX_DIR" |
		write_file "$(R /etc/nginx/conf.d/piseduce.conf)" 644 root:root
	if [ -f "$main" ]; then
		# At the end of nginx.conf: the main context, where stream {} belongs.
		ensure_line "$main" "stream { include $NGINX_DIR/stream.conf; } # PiSeduce: the nodes' SSH ports" || true
	else
		warn "no /etc/nginx/nginx.conf (nginx not installed: the packages step installs it): its stream {} include is not added"
	fi
	[ "$REAL_ROOT" = 1 ] && [ "$DRY_RUN" = 0 ] && ! nginx -t -q && die "nginx -t refuses the configuration (see above)"
	if systemd_running; then
		if systemctl is-enabled -q nginx 2>/dev/null; then ok "nginx.service enabled"; else sys systemctl enable nginx; fi
		if systemctl is-active -q nginx; then sys systemctl reload nginx; else sys systemctl start nginx; fi
	fi
	return 0
}

# ini_set SECTION KEY: stdin with [SECTION] KEY = $VALUE (environment), on stdout. The value
# reaches awk through the environment, never through its program text.
ini_set() {
	S=$1 K=$2 awk '
		function flush() { if (cur == ENVIRON["S"] && !done) { print ENVIRON["K"] " = " ENVIRON["VALUE"]; done = 1 } }
		/^[ \t]*\[.*\][ \t]*$/ { flush(); cur = $0; gsub(/[][ \t]/, "", cur); seen[cur] = 1; print; next }
		{
			line = $0; sub(/^[ \t]+/, "", line)
			if (cur == ENVIRON["S"] && index(line, ENVIRON["K"]) == 1) {
				rest = substr(line, length(ENVIRON["K"]) + 1)
				if (rest ~ /^[ \t]*=/) { if (!done) print ENVIRON["K"] " = " ENVIRON["VALUE"]; done = 1; next }
			}
			print
		}
		END {
			flush()
			if (!done) { print ""; print "[" ENVIRON["S"] "]"; print ENVIRON["K"] " = " ENVIRON["VALUE"] }
		}'
}

step_config() {
	local conf src g
	conf=$CONF_FILE
	src=$conf
	[ -f "$src" ] || src=$CHECKOUT/seducepp.conf
	[ -f "$src" ] || die "no $conf and no shipped seducepp.conf at $src"
	say "== config: $conf from $src"
	db_password
	g=$(group)
	local tmp=$TMP/seducepp.conf
	local -a sets=(
		"db connection_url mysql://$DB_USER:$DB_PASS@localhost/$DB_NAME"
		"cluster ssh_key $KEY"
		"cluster img_dir /var/lib/piseduce/img"
		"cluster nfs_host_key $NFS/etc/ssh/ssh_host_ed25519_key.pub"
	)
	[ -z "$PIMASTER_IP" ] || sets+=("cluster pimaster_ip $PIMASTER_IP")
	[ -z "$NODES_NETWORK" ] || sets+=("cluster nodes_network $NODES_NETWORK")
	[ -z "$NODES_IF" ] || sets+=("cluster nodes_interface $NODES_IF")
	[ -z "$LISTEN" ] || sets+=("frontend listen $LISTEN")
	if want_step nginx; then
		sets+=("nginx stream_conf $NGINX_DIR/stream.conf" "nginx reload /usr/sbin/nginx -s reload")
		[ -z "$HTTP_DOMAIN" ] || sets+=("nginx http_conf $NGINX_DIR/http.conf" "nginx http_domain $HTTP_DOMAIN")
	fi
	[ -z "$PUBLIC_ADDRESS" ] || sets+=("nginx public_address $PUBLIC_ADDRESS")
	cp "$src" "$tmp"
	local s
	for s in "${sets[@]}"; do
		read -r sec key val <<<"$s"
		VALUE=$val ini_set "$sec" "$key" <"$tmp" >"$tmp.new"
		mv "$tmp.new" "$tmp"
	done
	if [ -x "$(R /usr/bin/pifrontend)" ] && ! "$(R /usr/bin/pifrontend)" -config "$tmp" -check >/dev/null; then
		die "the generated configuration does not parse (pifrontend -check)"
	fi
	install_file "$tmp" "$conf" 640 "root:$g" \
		"the shipped configuration with [db] connection_url = mysql://$DB_USER:<password>@localhost/$DB_NAME, [cluster] ssh_key, img_dir, nfs_host_key${PIMASTER_IP:+, pimaster_ip}${NODES_NETWORK:+, nodes_network}${NODES_IF:+, nodes_interface}${LISTEN:+, [frontend] listen}$(want_step nginx && echo ", [nginx] stream_conf, reload")${HTTP_DOMAIN:+, http_conf, http_domain}${PUBLIC_ADDRESS:+, public_address}"
}

step_units() {
	say "== units: pitasks.service and pifrontend.service enabled and started"
	local u
	if systemd_running; then
		[ "$CHANGED" = 0 ] || sys systemctl daemon-reload
		for u in pitasks pifrontend; do
			if systemctl is-enabled -q "$u" 2>/dev/null; then
				ok "$u enabled"
			else
				sys systemctl enable "$u"
			fi
			# A new binary, config or unit is only used after a restart.
			if systemctl is-active -q "$u" && [ "$CHANGED" = 0 ]; then
				ok "$u running"
			else
				sys systemctl restart "$u"
			fi
		done
		return 0
	fi
	if [ "$DRY_RUN" = 1 ] && [ "$REAL_ROOT" = 0 ]; then
		say "   with systemd as PID 1 on the target:"
		sys systemctl daemon-reload
		sys systemctl enable pitasks pifrontend
		sys systemctl restart pitasks pifrontend
	fi
	cat <<'EOF'
   systemd does not run this machine: the units are installed but not enabled. Start the
   daemons (logs to the files given) with:
     start-stop-daemon --start --background --make-pidfile --pidfile /run/pitasks.pid \
       --output /var/log/pitasks.log --exec /usr/bin/pitasks -- -config /etc/seducepp.conf run
     start-stop-daemon --start --background --make-pidfile --pidfile /run/pifrontend.pid \
       --chuid piseduce:piseduce --output /var/log/pifrontend.log \
       --exec /usr/bin/pifrontend -- -config /etc/seducepp.conf
   and stop them with: start-stop-daemon --stop --retry TERM/45 --pidfile /run/pitasks.pid
EOF
}

# ---- main

[ "$DRY_RUN" = 1 ] && say "DRY RUN: nothing is changed; ' + ' lines are what a real run would do."
[ "$REAL_ROOT" = 1 ] || say "target root: $ROOT (steps on the running system are $([ "$DRY_RUN" = 1 ] && echo printed || echo skipped))"
for step in $ALL_STEPS; do
	want_step "$step" || continue
	"step_${step//-/_}"
done
say ""
if [ "$PROBLEMS" -gt 0 ]; then
	say "done, with $PROBLEMS warning(s) above."
else
	say "done."
fi
cat <<'EOF'
Next: import the cluster (pitasks -config /etc/seducepp.conf import-cluster DIR), write the
dnsmasq configuration from the database, and check everything with admin/check.sh. The first
admin's password is printed once by pifrontend on its first start (journalctl -u pifrontend).
EOF
