#!/usr/bin/env bash
# Switches one PoE port of a switch: admin/port.sh SWITCH PORT status|on|off|cycle. See --help.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# shellcheck disable=SC2317 # called by parse_common
usage() {
	cat <<'USAGE'
usage: admin/port.sh [--config FILE] [--bin-dir DIR] [--dry-run] SWITCH PORT status|on|off|cycle

Shows or switches the PoE power of one port of a switch of the database, over SNMP:
  status   the port's admin state and whether it delivers power
  on, off  switch it, then read it back
  cycle    off, 3 s, on (a hard reboot of the node on that port)
The master port (the pimaster's own) is refused. Runs `pitasks port`.

Options:
  --config FILE   the configuration (default: /etc/seducepp.conf)
  --bin-dir DIR   where pitasks is (default: /usr/bin, then PATH)
  --dry-run       print the command instead of running it
  -h, --help      this help
USAGE
}

parse_common "$@"
[ ${#ARGS[@]} = 3 ] || { usage >&2; exit 2; }
sw=${ARGS[0]} port=${ARGS[1]} action=${ARGS[2]}
[[ $sw =~ ^[A-Za-z0-9_.:-]{1,100}$ ]] || die "switch '$sw' is not a switch name"
[[ $port =~ ^[0-9]{1,4}$ ]] || die "port '$port' is not a port number"
case $action in
status | on | off | cycle) ;;
*) die "action '$action' is not status, on, off or cycle" ;;
esac
call_pitasks port "$sw" "$port" "$action"
