#!/bin/sh
# pilab node boot script. It runs as PID 1 of a fresh PID, mount and UTS namespace inside the
# node's network namespace (started by the lab's supervisor) and behaves like a Raspberry Pi
# powering up: firmware (SD or network boot), then the system, then sshd.
# Exit codes: 0 = poweroff (halted), 10 = reboot, 20 = boot failed (the supervisor retries).
# SAFETY: this shares the host's file system. Write only into the node dir ($ND), into the
# node's private tmpfs mounts, or onto the node's own card.
ND="$1"
. "$ND/node.env"
SC="$LABDIR/scripts"
log() { echo "$(date +%s.%N | cut -c1-14) $*" >>"$ND/events.log"; echo "pilab[$NAME]: $*"; }
state() { echo "$1" >"$ND/state"; }
fail() { log "boot failed: $*"; state failed; exit 20; }
trap 'sync; log "poweroff"; state halted; exit 0' TERM
trap 'sync; log "reboot"; exit 10' USR1
export MTOOLS_SKIP_CHECK=1 PATH=/usr/sbin:/usr/bin:/sbin:/bin
state booting

# Faults a test can inject (Lab.InjectFault): a node that hangs at power-on and never answers,
# once ("hang-once", consumed by this boot) or until the fault file is removed ("hang"); a
# node whose every boot takes 10 s more, its processes running ("slow").
case "$(cat "$ND/fault" 2>/dev/null)" in
hang-once) rm -f "$ND/fault"; log "fault: hanging this boot"; while :; do sleep 1; done ;;
hang) log "fault: hanging"; while :; do sleep 1; done ;;
slow) log "fault: a slow boot (10 s)"; sleep 10 ;;
esac

# --- private /run, /tmp and /dev (never the host's) ---
mount -t tmpfs -o mode=755,size=64m pilab-run /run || fail "tmpfs /run"
mount -t tmpfs -o mode=1777,size=64m pilab-tmp /tmp || fail "tmpfs /tmp"
mount -t tmpfs -o mode=755,size=1m pilab-dev /dev || fail "tmpfs /dev"
mknod -m 666 /dev/null c 1 3; mknod -m 666 /dev/zero c 1 5; mknod -m 666 /dev/full c 1 7
mknod -m 666 /dev/random c 1 8; mknod -m 666 /dev/urandom c 1 9; mknod -m 666 /dev/tty c 5 0
mkdir /dev/pts /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts /dev/pts || fail "devpts"
ln -s pts/ptmx /dev/ptmx; ln -s /proc/self/fd /dev/fd
ln -s /proc/self/fd/0 /dev/stdin; ln -s /proc/self/fd/1 /dev/stdout; ln -s /proc/self/fd/2 /dev/stderr
mknod -m 660 "$CARD_DEV" b "$CARD_MAJ" "$CARD_MIN" || fail "no card device"

# Keep the card device ($CARD_DEV: /dev/mmcblk0, or /dev/nvme0n1 on an NVMe Pi 5) and its
# partitions ${CARD_DEV}pN in line with the kernel's partitions of the card (a tiny udev).
sync_parts() {
	for p in "$CARD_DEV"p*; do
		[ -b "$p" ] || continue
		n=${p#"$CARD_DEV"p}
		[ -e "/sys/block/$CARD_NAME/${CARD_NAME}p$n/dev" ] || rm -f "$p"
	done
	for s in /sys/block/"$CARD_NAME"/"$CARD_NAME"p*; do
		[ -e "$s/dev" ] || continue
		n=${s##*p}
		d=$(cat "$s/dev")
		if [ -b "${CARD_DEV}p$n" ]; then
			cur=$(stat -c '%t:%T' "${CARD_DEV}p$n")
			want=$(printf '%x:%x' "${d%%:*}" "${d##*:}")
			[ "$cur" = "$want" ] && continue
			rm -f "${CARD_DEV}p$n"
		fi
		mknod -m 660 "${CARD_DEV}p$n" b "${d%%:*}" "${d##*:}"
	done
}
partx -u "$CARD_DEV" >/dev/null 2>&1 || partx -a "$CARD_DEV" >/dev/null 2>&1
sync_parts
(trap - TERM USR1; while :; do sync_parts; sleep 0.3; done) >/dev/null 2>&1 &

ip link set lo up
ip link set eth0 up

# --- firmware ---
# The card's boot partition (FAT, read with mtools: this kernel cannot mount FAT).
card_p1_off() {
	s=$(partx -g -o START -n 1 "$CARD_DEV" 2>/dev/null | tr -d ' ')
	[ -n "$s" ] && echo $((s * 512))
}
card_has() { o=$(card_p1_off) && [ -n "$o" ] && mtype -i "$CARD_DEV@@$o" "::$1" >/dev/null 2>&1; }
card_get() { o=$(card_p1_off) && mtype -i "$CARD_DEV@@$o" "::$1" >"/run/pilab-fw/$1" 2>/dev/null; }
mkdir -p /run/pilab-fw
SRC=""
net_boot() {
	rm -f /run/pilab-dhcp.env
	udhcpc -f -q -n -i eth0 -t 3 -T 1 -A 1 -s "$SC/dhcp-hook.sh" \
		-V PXEClient:Arch:00000:UNDI:002001 -x 0x5d:0000 -x "0x61:00$UUID" >>"$ND/dhcp.log" 2>&1 \
		|| { log "dhcp: no answer"; return 1; }
	. /run/pilab-dhcp.env
	SRV=${DHCP_SIADDR:-$DHCP_SERVERID}
	[ -n "$SRV" ] && [ "$SRV" != 0.0.0.0 ] || SRV=$DHCP_SERVERID
	log "dhcp: $DHCP_IP from $DHCP_SERVERID, tftp $SRV"
	tget() { curl -sS -f --max-time 10 -o "/run/pilab-fw/$1" "tftp://$SRV/$SERIAL/$1" 2>/dev/null; }
	tget cmdline.txt || { log "tftp: no $SERIAL/cmdline.txt"; return 1; }
	tget config.txt || true
	for k in $KERNELS; do tget "$k" && K=$k && break; done
	[ -n "${K:-}" ] || { log "tftp: no kernel in $SERIAL/"; return 1; }
	[ -z "$DTB" ] || tget "$DTB" || { log "tftp: no device tree $SERIAL/$DTB"; return 1; }
	SRC=net
}
sd_boot() {
	card_has cmdline.txt || { log "sd: no boot partition"; return 1; }
	card_get cmdline.txt || return 1
	card_get config.txt || true
	for k in $KERNELS; do card_has "$k" && K=$k && break; done
	[ -n "${K:-}" ] || { log "sd: no kernel on card"; return 1; }
	[ -z "$DTB" ] || card_has "$DTB" || { log "sd: no device tree $DTB on card"; return 1; }
	SRC=sd
}
case "$MODEL" in
RPI3Bplus)
	# A Pi 3B+ boots from the card when it holds bootcode.bin, else from the network.
	if card_has bootcode.bin; then sd_boot || fail "card has bootcode.bin but no bootable system"
	else net_boot || fail "network boot"; fi ;;
*)
	# A Pi 4 or 5 whose EEPROM says BOOT_ORDER=0xf12: network first, then the card.
	net_boot || sd_boot || fail "network boot and card boot" ;;
esac
CMDLINE=$(cat /run/pilab-fw/cmdline.txt)
log "firmware: $SRC boot, kernel $K, cmdline: $CMDLINE"
ROOT=""
for w in $CMDLINE; do case "$w" in root=*) ROOT=${w#root=} ;; esac; done
case "$ROOT" in
/dev/nfs) MODE=nfs ;;
"$CARD_DEV"p[0-9]*) MODE=card; PART=${ROOT#"$CARD_DEV"p} ;;
PARTUUID=*-0[0-9]) MODE=card; PART=${ROOT##*-0}; DISKID=${ROOT#PARTUUID=}; DISKID=${DISKID%-*} ;;
*) fail "kernel panic: unknown root '$ROOT'" ;;
esac

# The card's own enabled units (multi-user.target.wants links in its /etc, not the host's seen
# through it), minus the masked ones: "before|after<TAB>name<TAB>ExecStart" for stage2.sh.
list_units() {
	for l in "$C"/etc/systemd/system/multi-user.target.wants/*.service; do
		[ -L "$l" ] || [ -f "$l" ] || continue
		u=${l##*/}
		[ "$(readlink "$C/etc/systemd/system/$u" 2>/dev/null)" = /dev/null ] && continue
		f=$C/etc/systemd/system/$u
		[ -f "$f" ] && [ ! -L "$f" ] || f=$C/usr/lib/systemd/system/$u
		[ -f "$f" ] || f=$C/lib/systemd/system/$u
		[ -f "$f" ] || continue
		when=after
		grep -q '^Before=.*ssh' "$f" && when=before
		sed -n 's/^ExecStart=-\{0,1\}//p' "$f" | while IFS= read -r cmd; do printf '%s\t%s\t%s\n' "$when" "$u" "$cmd"; done
	done
}

# --- kernel: the node's root, its init ---
TOPDIRS="usr etc var opt srv boot"
HOSTKEY=/etc/ssh/ssh_host_ed25519_key
FAULT=$(cat "$ND/fault" 2>/dev/null)
[ "$FAULT" != new-host-key-once ] || { rm -f "$ND/fault"; log "fault: a host key nobody pinned, this boot"; }
if [ "$MODE" = nfs ]; then
	# The NFS root as the node's kernel mounts it: read-only. The pimaster's export is the
	# host's system with the NFS system's own files over it, seen through an overlay without an
	# upper layer: nothing can be written through it, remounted or not. (The files go on a
	# tmpfs first: overlayfs refuses a layer inside another.)
	F=/run/pilab-nfsfiles; R=/run/pilab-root
	mkdir -p $F $R
	mount -t tmpfs -o mode=755,size=16m pilab-nfsfiles $F && cp -a "$NFS_FILES/." $F/ || fail "NFS system files"
	mount -t overlay pilab-nfsroot -o "lowerdir=$F:/" $R || fail "NFS root"
	INIT=/sbin/init
	for w in $CMDLINE; do case "$w" in init=*) INIT=${w#init=} ;; esac; done
	# As the kernel, run init= in the NFS root. The NFS system's first init makes the node's
	# root (pivot_root: the new root is then mounted at $R, the NFS root under it at
	# media/nfsroot) and starts the NFS system's init, which waits for the rest below.
	chroot $R "$INIT" &
	SYS=$!
	i=0
	until [ -e $R/run/pilab-root-ready ]; do
		kill -0 $SYS 2>/dev/null || fail "kernel panic: init $INIT ended (no writable root on the read-only NFS root)"
		i=$((i + 1))
		[ $i -lt 600 ] || fail "kernel panic: init $INIT made no root in 30s"
		sleep 0.05
	done
	mount -t tmpfs -o mode=1777,size=64m pilab-tmp "$R/tmp"
else
	sync_parts
	[ -b "${CARD_DEV}p$PART" ] || fail "kernel panic: no ${CARD_DEV}p$PART"
	C=/run/pilab-card; R=/run/pilab-root
	mkdir -p $C $R
	if [ -n "${DISKID:-}" ]; then
		have=$(sfdisk --disk-id "$CARD_DEV" 2>/dev/null | sed 's/^0x//' | tr A-F a-f)
		[ "$have" = "$(echo "$DISKID" | tr A-F a-f)" ] || fail "kernel panic: no PARTUUID=$DISKID-0$PART (the card's disk identifier is $have)"
	fi
	if [ -e "$ND/resize-root" ]; then
		# An online resize the host refused (see images/firstboot.sh), done before mounting.
		rm -f "$ND/resize-root"
		e2fsck -f -y "${CARD_DEV}p$PART" >/dev/null 2>&1
		resize2fs "${CARD_DEV}p$PART" >/dev/null 2>&1 && log "card: root file system grown" || log "card: root file system growth failed"
	fi
	mount -t ext4 "${CARD_DEV}p$PART" $C || fail "kernel panic: cannot mount ${CARD_DEV}p$PART"
	[ -s $C/etc/passwd ] || { umount $C; fail "kernel panic: no system on ${CARD_DEV}p$PART"; }
	mount --bind $C $R
	# The card's root is the root; the pimaster's programs show through where the card has none,
	# and every write lands on the card (overlay upper layers are the card's own directories).
	for d in $TOPDIRS; do
		mkdir -p "$C/$d" "$C/.pilab-overlay-work/$d"
		mount -t overlay overlay -o "lowerdir=/$d,upperdir=$C/$d,workdir=$C/.pilab-overlay-work/$d" "$R/$d" \
			|| fail "overlay /$d"
	done
	mkdir -p $C/home $C/root $C/mnt $C/media $C/tmp; chmod 1777 $C/tmp
	[ "$FAULT" != new-host-key-once ] || rm -f $C/etc/ssh/ssh_host_ed25519_key $C/etc/ssh/ssh_host_ed25519_key.pub
	if [ ! -s $C/etc/ssh/ssh_host_ed25519_key ]; then
		mkdir -p $C/etc/ssh
		ssh-keygen -q -t ed25519 -N "" -C "root@$(cat $C/etc/hostname 2>/dev/null)" -f $C/etc/ssh/ssh_host_ed25519_key \
			|| fail "ssh host key"
		log "card: new ssh host key"
	fi
	cp $C/etc/ssh/ssh_host_ed25519_key.pub "$ND/card_host_key.pub"
fi
for l in bin sbin lib lib64; do
	if [ -L "/$l" ] && [ ! -e "$R/$l" ] && [ ! -L "$R/$l" ]; then ln -s "$(readlink "/$l")" "$R/$l"; fi
done
for d in dev proc sys run tmp; do mkdir -p "$R/$d"; done
chmod 1777 "$R/tmp"
mount --rbind /dev "$R/dev"
mount -t proc proc "$R/proc"
mount --rbind /sys "$R/sys"
mount -t tmpfs -o mode=755,size=64m pilab-run "$R/run"
mkdir -p "$R/run/sshd" "$R/run/pilab" "$R/run/pilab-bin"
mount --bind "$ND" "$R/run/pilab"
mount --bind -o ro "$SC" "$R/run/pilab-bin"
mount --bind "$ND/cpuinfo" "$R/proc/cpuinfo"
if [ "$MODE" = nfs ] && [ "$FAULT" = new-host-key-once ]; then
	HOSTKEY=/run/pilab-stranger-key
	ssh-keygen -q -t ed25519 -N "" -C stranger -f "$R$HOSTKEY" || fail "ssh host key"
fi
H=$(head -n1 "$R/etc/hostname" 2>/dev/null | tr -d ' \r')
hostname "${H:-raspberrypi}"
# Written whole, then renamed: the NFS system's init starts sshd as soon as it is there.
cat >"$R/run/pilab-sshd_config.tmp" <<CONF
Port 22
ListenAddress 0.0.0.0
HostKey $HOSTKEY
PidFile /run/sshd.pid
PermitRootLogin yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
PrintMotd no
StrictModes yes
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
CONF
mv "$R/run/pilab-sshd_config.tmp" "$R/run/pilab-sshd_config"
echo "$MODE" >"$ND/state"
if [ "$MODE" = card ]; then
	# The kernel runs init= of the cmdline (an image's first-boot program); without one, the
	# lab's stand-in for systemd starts the card's own enabled units and sshd.
	INIT=""
	for w in $CMDLINE; do case "$w" in init=*) INIT=${w#init=} ;; esac; done
	case "$INIT" in /sbin/init | /lib/systemd/systemd | /usr/lib/systemd/systemd) INIT="" ;; esac
	[ -z "$INIT" ] || [ -x "$R$INIT" ] || fail "kernel panic: requested init $INIT failed (not on the card)"
	list_units >"$R/run/pilab-units"
	chroot "$R" /bin/sh /run/pilab-bin/stage2.sh "$INIT" &
	SYS=$!
fi
log "booted from $MODE (hostname $(hostname))"
while kill -0 $SYS 2>/dev/null; do wait $SYS; done
log "sshd ended: crash, rebooting"
exit 10
