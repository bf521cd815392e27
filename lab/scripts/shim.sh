#!/bin/sh
# pilab node shim, bind-mounted over reboot/poweroff/halt/shutdown/telinit/systemctl/partprobe
# inside a node only. It ends this node (PID 1 of its PID namespace), never the host.
me=$(basename "$0")
act() { # $1: USR1 reboot | TERM poweroff
	sync
	setsid sh -c "sleep 0.3; kill -$1 1" </dev/null >/dev/null 2>&1 &
	exit 0
}
case "$me" in
reboot) act USR1 ;;
poweroff | halt) act TERM ;;
shutdown) for a in "$@"; do [ "$a" = -r ] && act USR1; done; act TERM ;;
telinit | init) case "${1:-}" in 6) act USR1 ;; 0) act TERM ;; esac; exit 0 ;;
partprobe)
	for dev in /dev/mmcblk0 /dev/nvme0n1; do [ -b "$dev" ] && break; done
	for a in "$@"; do case "$a" in /dev/*) dev=$a ;; esac; done
	partx -u "$dev" >/dev/null 2>&1 || partx -a "$dev" >/dev/null 2>&1
	# Return once the node's device watcher (boot.sh) made a device for each of the kernel's
	# partitions, as udevadm settle does: however busy the host is, within 30 s.
	majmin=$(stat -c '%t:%T' "$dev") || exit 1
	name=$(basename "$(readlink -f "/sys/dev/block/$((0x${majmin%%:*})):$((0x${majmin##*:}))")")
	i=0
	while [ $i -lt 300 ]; do
		ready=1
		for s in /sys/block/"$name"/"$name"p*; do
			[ -e "$s/dev" ] || continue
			d=$(cat "$s/dev")
			want=$(printf '%x:%x' "${d%%:*}" "${d##*:}")
			p="${dev}p${s##*p}"
			if [ ! -b "$p" ] || [ "$(stat -c '%t:%T' "$p")" != "$want" ]; then ready=0; break; fi
		done
		[ $ready = 1 ] && exit 0
		sleep 0.1
		i=$((i + 1))
	done
	echo "partprobe: the partitions of $dev did not appear" >&2
	exit 1 ;;
systemctl)
	for a in "$@"; do
		case "$a" in
		reboot) act USR1 ;;
		poweroff | halt) act TERM ;;
		is-system-running) echo running; exit 0 ;;
		esac
	done
	echo "pilab: systemctl $* ignored (no systemd in the virtual Pi)" >&2
	exit 0 ;;
esac
echo "pilab shim: unknown command $me" >&2
exit 1
