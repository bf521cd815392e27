#!/usr/bin/env bash
# Shows the state of every node, or of one: admin/node-state.sh [NODE]. See --help.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# shellcheck disable=SC2317 # called by parse_common
usage() {
	cat <<'USAGE'
usage: admin/node-state.sh [--config FILE] [--bin-dir DIR] [--dry-run] [NODE]

Without NODE: one line per node (switch and port, latest deployment's process, state,
progress, lease owner, last error). With NODE: that node in detail, with its last state
events. Reads the database only. Runs `pitasks nodes`.

Options:
  --config FILE   the configuration (default: /etc/seducepp.conf)
  --bin-dir DIR   where pitasks is (default: /usr/bin, then PATH)
  --dry-run       print the command instead of running it
  -h, --help      this help
USAGE
}

parse_common "$@"
[ ${#ARGS[@]} -le 1 ] || { usage >&2; exit 2; }
if [ ${#ARGS[@]} = 1 ]; then
	[[ ${ARGS[0]} =~ ^[A-Za-z0-9_.-]{1,100}$ ]] || die "'${ARGS[0]}' is not a node name"
	call_pitasks nodes "${ARGS[0]}"
else
	call_pitasks nodes
fi
