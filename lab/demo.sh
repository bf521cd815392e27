#!/usr/bin/env bash
# make demo: try PiSeduce without a cluster. Brings up the virtual Pi lab (N=4 nodes, its PoE
# switch, dnsmasq), registers its switch, nodes and test environment in a fresh SQLite
# database, and runs both daemons on it. Open http://localhost:9000 and log in as the admin
# with the one-time password printed below. Ctrl-C stops everything and takes the lab down.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "make demo needs root (network namespaces, loop devices)" >&2; exit 1; }
N=${N:-4}
DIR=${DEMO_DIR:-/var/tmp/piseduce-demo}
PORT=${PORT:-9000}

sh lab/install-deps.sh
make --no-print-directory build
go build -o bin/pilab ./lab/cmd/pilab

bin/pilab down -dir "$DIR/lab" >/dev/null 2>&1 || true
rm -rf "$DIR/piseduce.db" "$DIR/piseduce.db-wal" "$DIR/piseduce.db-shm" "$DIR/cluster_desc"
mkdir -p "$DIR"
bin/pilab up -n "$N" -dir "$DIR/lab"
bin/pilab seducepp -dir "$DIR/lab" -db "sqlite://$DIR/piseduce.db" -port "$PORT" >"$DIR/seducepp.conf"
bin/pilab cluster-desc -dir "$DIR/lab" "$DIR/cluster_desc"
bin/pitasks -config "$DIR/seducepp.conf" import-cluster "$DIR/cluster_desc"

bin/pitasks -config "$DIR/seducepp.conf" >"$DIR/pitasks.log" 2>&1 &
pitasks=$!
frontend=""
stop() {
	trap - EXIT INT TERM
	for p in $frontend $pitasks; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	bin/pilab down -dir "$DIR/lab"
}
trap stop EXIT INT TERM
cat <<MSG

PiSeduce demo: $N virtual Pis on a virtual PoE switch.
  web:      http://localhost:$PORT   (admin login printed below on the first start)
  pitasks:  log in $DIR/pitasks.log
  the lab:  bin/pilab status -dir $DIR/lab
Reserve nodes, deploy "pilab-test", watch the progress bar; Ctrl-C to stop.

MSG
bin/pifrontend -config "$DIR/seducepp.conf" &
frontend=$!
wait "$frontend"
