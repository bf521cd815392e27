# Shared by the admin scripts (sourced, not run): the options --config, --bin-dir and
# --dry-run, how pitasks is found and called, and how seducepp.conf is read.
# shellcheck shell=bash

ROOT=${PISEDUCE_ROOT:-/}
CONFIG=${PISEDUCE_CONFIG:-${ROOT%/}/etc/seducepp.conf}
BIN_DIR=${PISEDUCE_BIN_DIR:-${ROOT%/}/usr/bin}
DRY_RUN=0
ARGS=()

die() {
	printf '%s: %s\n' "${0##*/}" "$*" >&2
	exit 2
}

# parse_common "$@": takes the shared options out, leaves the rest in ARGS; -h/--help calls usage.
parse_common() {
	while [ $# -gt 0 ]; do
		case $1 in
		-h | --help) usage; exit 0 ;;
		--dry-run) DRY_RUN=1 ;;
		--config | --bin-dir)
			if [ $# -lt 2 ] || [ -z "$2" ]; then die "$1 needs a value (see --help)"; fi
			if [ "$1" = --config ]; then CONFIG=$2; else BIN_DIR=$2; fi
			shift
			;;
		--) shift; ARGS+=("$@"); break ;;
		-*) die "unknown option '$1' (see --help)" ;;
		*) ARGS+=("$1") ;;
		esac
		shift
	done
}

# pitasks_path: the pitasks of --bin-dir, else the one on PATH.
pitasks_path() {
	if [ -x "$BIN_DIR/pitasks" ]; then
		printf '%s' "$BIN_DIR/pitasks"
	elif command -v pitasks >/dev/null; then
		command -v pitasks
	else
		printf '%s' "$BIN_DIR/pitasks"
	fi
}

show() {
	local q
	q=$(printf '%q ' "$@")
	printf ' + %s\n' "${q% }"
}

# call_pitasks ARG…: runs pitasks with the config (prints it instead with --dry-run).
call_pitasks() {
	local bin
	bin=$(pitasks_path)
	if [ "$DRY_RUN" = 1 ]; then
		show "$bin" -config "$CONFIG" "$@"
		return 0
	fi
	[ -x "$bin" ] || die "no pitasks at $bin nor on PATH (install.sh installs it; or --bin-dir DIR)"
	"$bin" -config "$CONFIG" "$@"
}

# ini_value FILE SECTION KEY: the value of KEY in [SECTION] of FILE (nothing when unset). The
# names reach awk through the environment, never through its program text.
ini_value() {
	S=$2 K=$3 awk '
		/^[ \t]*\[.*\][ \t]*$/ { cur = $0; gsub(/[][ \t]/, "", cur); next }
		cur == ENVIRON["S"] {
			line = $0; sub(/^[ \t]+/, "", line)
			if (index(line, ENVIRON["K"]) == 1 && substr(line, length(ENVIRON["K"]) + 1) ~ /^[ \t]*=/) {
				sub(/^[^=]*=[ \t]*/, "", line); sub(/[ \t]+$/, "", line); print line; exit
			}
		}' "$1" 2>/dev/null || true
}
