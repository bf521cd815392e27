#!/usr/bin/env bash
# pitasks' CPU per GB streamed (root, Linux, OpenSSH's sshd): an image copy as env_copy sends it,
# for each cipher and image format, the first copy of an image file (which pitasks measures as it
# sends) and the later ones (which it only sends), on this CPU and again with its AES instructions turned off
# (GODEBUG=cpu.aes=off, a pimaster like the Raspberry Pi 4). Both runs go in turn on the same
# machine, so compare within a run: the ratio of the two ciphers is what decides Ciphers().
#
#   bench/cpu.sh              # -benchtime 3x
#   BENCHTIME=5x bench/cpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
for godebug in "" "cpu.aes=off"; do
	echo "== GODEBUG=${godebug:-(none)}: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"
	GODEBUG=$godebug ${GO:-go} test -run '^$' -bench '^BenchmarkStreamCPU$' -benchtime "${BENCHTIME:-3x}" ./pkg/remote/ |
		grep '^Benchmark'
done
