#!/usr/bin/env bash
# Stop the one-node SLURM cluster started by tests/slurm/start_cluster.sh.
#
# Kills exactly the PIDs recorded in the state dir (slurmd, slurmctld, munged -- in
# that order), never processes found by name. Jobs still in that cluster are
# cancelled first (scancel of that cluster's own jobs) so slurmd leaves no job steps.
# The packages, the state dir (config, logs) and the /etc/slurm/{slurm,gres}.conf
# links are kept on purpose: once slurm-client is installed, every `snakemake`
# start runs `scontrol show config` (the SLURM plugin probes MinJobAge while
# building its --help), and with no /etc/slurm/slurm.conf Slurm would look the
# controller up in DNS; with the links it only tries 127.0.0.1, and with the
# "parked" config written below it gives up at once.
#
# Environment: TSMLIP_SLURM_STATE (default /var/lib/tsmlip-slurm), as for start_cluster.sh.
set -uo pipefail

STATE="${TSMLIP_SLURM_STATE:-/var/lib/tsmlip-slurm}"
log() { printf '[stop_cluster] %s\n' "$*" >&2; }

if [ ! -d "$STATE/pids" ]; then
    log "no state dir $STATE/pids: nothing started, nothing to stop"
    exit 0
fi

# running = exists and is not a zombie (killed daemons are reaped by PID 1 later)
alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
pid_of() { cat "$STATE/pids/$1.pid" 2>/dev/null || true; }

# cancel what is left in our cluster while the controller still runs
if alive "$(pid_of slurmctld)" && [ -e /etc/slurm/slurm.conf ]; then
    jobs=$(squeue -h -o '%i' 2>/dev/null | tr '\n' ' ')
    if [ -n "${jobs// /}" ]; then
        log "cancelling jobs left in the CI cluster: $jobs"
        # shellcheck disable=SC2086
        scancel $jobs 2>/dev/null || true
        for _ in $(seq 20); do
            [ -z "$(squeue -h -t running,completing -o '%i' 2>/dev/null)" ] && break
            sleep 0.5
        done
    fi
fi

rc=0
for name in slurmd slurmctld munged; do
    pid=$(pid_of "$name")
    if [ -z "$pid" ]; then
        continue
    fi
    if alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 50); do alive "$pid" || break; sleep 0.2; done
        if alive "$pid"; then
            log "$name (pid $pid) ignored SIGTERM; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null
            for _ in $(seq 25); do alive "$pid" || break; sleep 0.2; done
        fi
        if alive "$pid"; then
            log "could not stop $name (pid $pid)"
            rc=1
            continue
        fi
        log "stopped $name (pid $pid)"
    else
        log "$name (pid $pid) was not running"
    fi
    rm -f "$STATE/pids/$name.pid"
done

# Park the config: with no controller, Slurm clients retry for about MessageTimeout
# (default 10 s) before failing -- and the SLURM plugin runs `scontrol show config`
# at every snakemake start, so every snakemake run on this machine would wait ~9 s.
# MessageTimeout=1 makes them fail at once. start_cluster.sh rewrites the file.
if [ -f "$STATE/slurm.conf" ] && ! grep -q '^MessageTimeout=1$' "$STATE/slurm.conf"; then
    printf '# cluster stopped (tests/slurm/stop_cluster.sh): clients fail at once\nMessageTimeout=1\n' >>"$STATE/slurm.conf"
fi
exit "$rc"
