#!/bin/sh
# Runs inside the node's root (chroot). Puts the power shims in place, then runs sshd.
seen=""
for f in /usr/bin/systemctl /usr/sbin/reboot /usr/sbin/poweroff /usr/sbin/halt /usr/sbin/shutdown \
	/usr/sbin/telinit /usr/sbin/partprobe /usr/sbin/init; do
	[ -e "$f" ] || continue
	t=$(readlink -f "$f")
	case " $seen " in *" $t "*) continue ;; esac
	seen="$seen $t"
	mount --bind /run/pilab-bin/shim.sh "$t"
done
exec /usr/sbin/sshd -D -e -f /run/pilab-sshd_config
