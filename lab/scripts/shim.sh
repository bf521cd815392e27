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
	sleep 0.4 # the node's device watcher creates the partition devices
	exit 0 ;;
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
