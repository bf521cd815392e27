#!/bin/sh
# Runs inside the node's root (chroot). Puts the power shims in place, then runs the card's
# init= program if the cmdline names one (it ends by rebooting), else stands for systemd: the
# card's enabled units ordered before ssh, sshd, then the other units.
INIT="$1"
seen=""
for f in /usr/bin/systemctl /usr/sbin/reboot /usr/sbin/poweroff /usr/sbin/halt /usr/sbin/shutdown \
	/usr/sbin/telinit /usr/sbin/partprobe /usr/sbin/init; do
	[ -e "$f" ] || continue
	t=$(readlink -f "$f")
	case " $seen " in *" $t "*) continue ;; esac
	seen="$seen $t"
	mount --bind /run/pilab-bin/shim.sh "$t"
done
if [ -n "$INIT" ]; then
	echo "pilab: running init $INIT"
	"$INIT"
	echo "pilab: init $INIT returned: kernel panic"
	exit 1
fi
# /run/pilab-units: the card's units, written by boot.sh when the node boots its card (the
# NFS system has none: its init, nfs-system-init.sh, runs this script too).
units() { # $1: before | after
	[ -f /run/pilab-units ] || return 0
	while IFS="	" read -r when name cmd; do
		[ "$when" = "$1" ] || continue
		echo "pilab-systemd: $name: $cmd"
		sh -c "$cmd" </dev/null || echo "pilab-systemd: $name failed"
	done </run/pilab-units
}
units before
# The host key the card's sshd answers with, as its units left it.
[ ! -f /run/pilab-units ] || cp /etc/ssh/ssh_host_ed25519_key.pub /run/pilab/card_host_key.pub 2>/dev/null
/usr/sbin/sshd -D -e -f /run/pilab-sshd_config &
SSHD=$!
units after
wait $SSHD
