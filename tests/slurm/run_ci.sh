#!/usr/bin/env bash
# CI entry: start the one-node SLURM cluster, run the SLURM tests, stop the cluster
# (also when the tests fail or the run is interrupted).
#
#   tests/slurm/run_ci.sh [extra pytest args]
#
# Needs root and apt-get (Debian/Ubuntu). Exit status: that of pytest, or of
# start_cluster.sh when the cluster cannot be started (2 = cannot run here).
# Uses the Python of $PYTHON, else .venv/bin/python when present, else python3.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
    if [ -x "$REPO/.venv/bin/python" ]; then PY="$REPO/.venv/bin/python"; else PY=python3; fi
fi

started=0
cleanup() {
    if [ "$started" = 1 ]; then
        bash "$HERE/stop_cluster.sh" || echo "[run_ci] WARNING: stop_cluster.sh failed" >&2
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

t0=$(date +%s)
# started=1 before the call: a half-started cluster is stopped too; a cluster that
# was already running (start_cluster.sh says "reusing it") is left running
started=1
start_log="$(mktemp)"
bash "$HERE/start_cluster.sh" 2>"$start_log"
rc=$?
cat "$start_log" >&2
grep -q 'reusing it' "$start_log" && started=0
rm -f "$start_log"
if [ "$rc" -ne 0 ]; then
    echo "[run_ci] start_cluster.sh exited $rc" >&2
    exit "$rc"
fi
echo "[run_ci] cluster up after $(( $(date +%s) - t0 ))s" >&2

cd "$REPO" || exit 1
# the venv's bin first: snakemake and the tsmlip command, also inside the SLURM jobs
case "$PY" in */*) PATH="$(cd "$(dirname "$PY")" && pwd):$PATH" ;; esac
"$PY" -m pytest -m slurm tests/test_slurm.py -x -ra -s "$@"
rc=$?
echo "[run_ci] pytest exited $rc after $(( $(date +%s) - t0 ))s in total" >&2
exit "$rc"
