#!/usr/bin/env bash
# The lab benchmark (root, Linux): one virtual Pi lab of 20 nodes; for 1, 5 and 20 nodes at
# once, the plain `ssh root@node 'dd of=/dev/mmcblk0 bs=4M conv=fsync' < image` baseline, then
# pitasks' engine and drivers from the deployment request to `deployed`. Prints the report
# and keeps it (markdown) in $BENCH_REPORT, the full log beside it.
#
#   bench/run.sh                                  # defaults: -sizes 1,5,20 -format raw -payload-mib 40 -extra-mib 100
#   bench/run.sh -sizes 1,3 -format gz -link-mbit 320
#   BENCH_TIMEOUT=60m bench/run.sh -sizes 1,3 -format xz -root-mib 2048 -payload-mib 400   # real size, card-bound
#   ... -compressible                               # the payload packs ~3:1 (xz -0), as a real system does
#
# -readback: the baseline also reads the card back whole (the card goal's reference); -measured: the image is
# measured and mapped first, so every copy is sparse. Other flags: -model RPI4B, -link-mbit N (0: the model's default, Pi 3B+ 80 Mbit/s = 10 MB/s;
# <0: unlimited), -uplink-mbit N (the pimaster's uplink to the nodes; 0: unlimited), -card-write-mbs/-card-read-mbs N (0: the model's card, Pi 3B+ 15/22 MB/s;
# <0: unlimited), -root-mib N (root partition size, the rest of it empty). The lab takes the machine-wide lab lock: it waits for other labs.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
	echo "bench/run.sh: the virtual Pi lab needs root" >&2
	exit 1
fi
report=$(realpath -m "${BENCH_REPORT:-/var/tmp/piseduce-bench-lab.md}")
log=${report%.md}.log
mkdir -p "$(dirname "$report")"
echo "bench/run.sh: report in $report, full log in $log" >&2
start=$(date +%s)
status=0
${GO:-go} test -run '^$' -bench '^BenchmarkDeployLab$' -benchtime 1x -timeout "${BENCH_TIMEOUT:-20m}" ./bench/ \
	-args -report "$report" "$@" >"$log" 2>&1 || status=$?
grep -v 'level=DEBUG' "$log" || true
echo "bench/run.sh: $(( $(date +%s) - start )) s, exit status $status" >&2
exit $status
