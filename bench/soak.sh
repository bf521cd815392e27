#!/usr/bin/env bash
# The memory soak (issue 17 item 4): pifrontend and pitasks, built as users run them, at 1,000
# nodes and 200 active deployments, with 100 viewers of the event streams, API clients and
# users reserving, deploying, destroying and ending, on SQLite then MariaDB (127.0.0.1:3306).
# Samples both daemons' resident size; fails when it grows after the warm-up. Needs no root and
# no lab: every switch and node is on loopback where nothing listens.
#
#   bench/soak.sh                                  # 4 minutes per database
#   PISEDUCE_SOAK_DURATION=1h bench/soak.sh        # the hour of issue 17
#   PISEDUCE_SOAK_DB=mysql bench/soak.sh           # one database
set -euo pipefail
cd "$(dirname "$0")/.."
report=$(realpath -m "${PISEDUCE_SOAK_REPORT:-/var/tmp/piseduce-soak.txt}")
mkdir -p "$(dirname "$report")"
CGO_ENABLED=${CGO_ENABLED:-0} ${GO:-go} build -trimpath -o bin/ ./cmd/pifrontend ./cmd/pitasks
echo "bench/soak.sh: report in $report" >&2
PISEDUCE_SOAK=1 PISEDUCE_SOAK_BIN=$PWD/bin PISEDUCE_SOAK_REPORT=$report \
	${GO:-go} test -run '^TestSoak$' -count=1 -v -timeout "${BENCH_TIMEOUT:-3h}" ./bench/
