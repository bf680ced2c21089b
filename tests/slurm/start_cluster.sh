#!/usr/bin/env bash
# Start a one-node SLURM cluster on this machine, for CI (issue: "SLURM GPU nodes:
# a cluster profile, proved in CI on a real single-node SLURM").
#
#   sudo tests/slurm/start_cluster.sh          # install (once), configure, start, wait
#   tests/slurm/stop_cluster.sh                # stop exactly the daemons started here
#
# What it does
#   1. installs Debian's munge slurmctld slurmd slurm-client with apt-get (skipped
#      when already installed); a temporary /usr/sbin/policy-rc.d keeps the packages
#      from starting any daemon themselves;
#   2. writes slurm.conf + gres.conf for ONE node "localhost" (127.0.0.1) into the
#      state dir and links them to /etc/slurm/ (Slurm commands look there before
#      anything else; the job-step plugin strips SLURM_CONF inside jobs, so the
#      environment variable alone is not enough);
#   3. starts munged, slurmctld -D and slurmd -D -N localhost in the background and
#      records their PIDs in the state dir (no systemd needed or used);
#   4. waits until `sinfo` shows the node idle.
#
# The node advertises fake GPUs (Gres=gpu:2; gres.conf File=/dev/null, /dev/zero):
# a rule submitted with --gpus=1 is scheduled like on a GPU node -- SLURM hands each
# job a GPU of its own and sets CUDA_VISIBLE_DEVICES=0 (or 1) -- while torch finds no
# CUDA and the package falls back to the CPU. Two, because the node has two cores and
# most of the test workflow's jobs are GPU rules (one GPU would run them one by one).
#
# No accounting (no slurmdbd): use the plugin's squeue status command (see
# profiles/slurm-ci/config.yaml); MinJobAge=3600 keeps finished jobs visible
# to squeue / scontrol long enough.
#
# Only local addresses are used (127.0.0.1, ports 6817/6818).
#
# Environment:
#   TSMLIP_SLURM_STATE   state dir: config, logs, spool, PIDs (default
#                        /var/lib/tsmlip-slurm; not /tmp: the /etc/slurm links into it
#                        must not dangle after a /tmp clean-up)
#   TSMLIP_SLURM_WAIT    seconds to wait for the node to become idle (default 90)
#   TSMLIP_SLURM_GPUS    fake GPUs on the node: 1, 2 (default) or 3
#
# Exit status: 0 = cluster up (started or found running from the same state dir),
#              2 = cannot run here (not root / no apt-get / foreign Slurm config),
#              1 = failed.
set -euo pipefail

STATE="${TSMLIP_SLURM_STATE:-/var/lib/tsmlip-slurm}"
WAIT_S="${TSMLIP_SLURM_WAIT:-90}"
PARTITION=ci
NODE=localhost

log() { printf '[start_cluster] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
cannot() { log "SKIP: $*"; exit 2; }

[ "$(id -u)" -eq 0 ] || cannot "needs root (installs packages, writes /etc/slurm, runs slurmd)"

# running = exists and is not a zombie (killed daemons are reaped by PID 1 later)
alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
pid_of() { cat "$STATE/pids/$1.pid" 2>/dev/null || true; }
node_idle() { [ -e /etc/slurm/slurm.conf ] && sinfo -h -N -n "$NODE" -o '%t' 2>/dev/null | grep -qx 'idle'; }
node_up() { [ -e /etc/slurm/slurm.conf ] && sinfo -h -N -n "$NODE" -o '%t' 2>/dev/null | grep -Eqx '(idle|mix|alloc|comp)'; }

# ---------------------------------------------------------------- already up?
if alive "$(pid_of slurmctld)" && alive "$(pid_of slurmd)" && command -v sinfo >/dev/null && node_up; then
    log "cluster from $STATE already running (slurmctld $(pid_of slurmctld), slurmd $(pid_of slurmd)); reusing it"
    exit 0
fi

# ---------------------------------------------------------------- 1. packages
mkdir -p "$STATE"/{pids,log,spool/ctld,spool/d}
PKGS=(munge slurmctld slurmd slurm-client)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    command -v apt-get >/dev/null || cannot "apt-get not available to install ${missing[*]}"
    log "installing ${missing[*]} (apt-get)"
    created_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\n# temporary, written by tsmlip tests/slurm/start_cluster.sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        created_policy=1
    fi
    restore_policy() { [ "$created_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d; return 0; }
    trap restore_policy EXIT
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >"$STATE/log/apt.log" 2>&1; then
        log "apt-get install failed, trying apt-get update first"
        apt-get update -q >>"$STATE/log/apt.log" 2>&1 || true
        apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$STATE/log/apt.log" 2>&1 \
            || { tail -n 20 "$STATE/log/apt.log" >&2; cannot "apt-get could not install ${missing[*]}"; }
    fi
    restore_policy
    trap - EXIT
fi
for c in munged slurmctld slurmd sinfo sbatch squeue scontrol; do
    command -v "$c" >/dev/null || die "$c not found after installation"
done

# ---------------------------------------------------------------- 2. config
# Someone else's Slurm must not be replaced.
for f in slurm.conf gres.conf; do
    if [ -e "/etc/slurm/$f" ] && [ ! -L "/etc/slurm/$f" ]; then
        cannot "/etc/slurm/$f is a real file (a site configuration?); not replacing it"
    fi
done

NCPU=$(nproc)
NGPU="${TSMLIP_SLURM_GPUS:-2}"
case "$NGPU" in
    1) GPU_DEVS="/dev/null" ;;
    2) GPU_DEVS="/dev/null /dev/zero" ;;
    3) GPU_DEVS="/dev/null /dev/zero /dev/full" ;;
    *) die "TSMLIP_SLURM_GPUS must be 1, 2 or 3" ;;
esac
MEM_MB=$(awk '/^MemTotal:/ {printf "%d", $2/1024*0.8}' /proc/meminfo)
[ "$MEM_MB" -ge 1024 ] || MEM_MB=1024

cat >"$STATE/slurm.conf" <<EOF
# one-node CI cluster, written by tests/slurm/start_cluster.sh -- do not edit
ClusterName=tsmlipci
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MailProg=/bin/true
MpiDefault=none
# no cgroups needed
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
# cons_tres: needed for --gpus=N
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
GresTypes=gpu
ReturnToService=2
# keep finished jobs visible to squeue / scontrol for an hour: the plugin's squeue
# status check needs them (>= 3 x its first-check delay) and the test reads them back
MinJobAge=3600
SchedulerParameters=sched_interval=2
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$STATE/spool/ctld
SlurmdSpoolDir=$STATE/spool/d
SlurmctldPidFile=$STATE/spool/slurmctld.pid
SlurmdPidFile=$STATE/spool/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=$NODE CPUs=$NCPU RealMemory=$MEM_MB Gres=gpu:$NGPU State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
{
    echo "# $NGPU fake GPU(s): scheduled as on a GPU node; harmless character devices stand in"
    echo "# for /dev/nvidiaN (SLURM only needs distinct files to tell the GPUs apart)"
    for dev in $GPU_DEVS; do echo "NodeName=$NODE Name=gpu File=$dev"; done
} >"$STATE/gres.conf"
mkdir -p /etc/slurm
ln -sfn "$STATE/slurm.conf" /etc/slurm/slurm.conf
ln -sfn "$STATE/gres.conf" /etc/slurm/gres.conf
export SLURM_CONF=/etc/slurm/slurm.conf
# (only now, with the config in place: without it Slurm commands look the
# controller up in DNS)
if ! alive "$(pid_of slurmctld)" && scontrol ping 2>/dev/null | grep -q 'is UP'; then
    cannot "a slurmctld not started from $STATE answers on this machine already"
fi

# ---------------------------------------------------------------- 3. daemons
start_bg() {  # name, command...: start in the background, record the PID
    local name=$1; shift
    if alive "$(pid_of "$name")"; then
        log "$name already running (pid $(pid_of "$name"))"
        return 0
    fi
    nohup "$@" >"$STATE/log/$name.out" 2>&1 </dev/null &
    echo $! >"$STATE/pids/$name.pid"
    log "started $name (pid $!): $*"
}

# munge: key, runtime dir, daemon (as the munge user when the package created one)
munge_user=root
id munge >/dev/null 2>&1 && munge_user=munge
mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge
if [ ! -s /etc/munge/munge.key ]; then
    log "creating /etc/munge/munge.key"
    if command -v mungekey >/dev/null; then
        mungekey --create --keyfile=/etc/munge/munge.key --force
    else
        dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
    fi
fi
chown "$munge_user:" /etc/munge /etc/munge/munge.key /run/munge /var/lib/munge /var/log/munge
chmod 0700 /etc/munge /var/lib/munge /var/log/munge
chmod 0755 /run/munge
chmod 0400 /etc/munge/munge.key
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && ! alive "$(pid_of munged)"; then
    log "a munged not started here already answers; using it"
else
    if [ "$munge_user" = munge ]; then
        start_bg munged setpriv --reuid=munge --regid=munge --init-groups munged -F
    else
        start_bg munged munged -F --force
    fi
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.2; done
    munge -n | unmunge >/dev/null || die "munged does not answer; see $STATE/log/munged.out"
fi

start_bg slurmctld slurmctld -D -f "$STATE/slurm.conf"
for _ in $(seq 100); do
    scontrol ping 2>/dev/null | grep -q "is UP" && break
    alive "$(pid_of slurmctld)" || break
    sleep 0.2
done
if ! alive "$(pid_of slurmctld)"; then
    tail -n 20 "$STATE/log/slurmctld.out" >&2 || true
    die "slurmctld exited; see $STATE/log/slurmctld.log (stop the rest with tests/slurm/stop_cluster.sh)"
fi
start_bg slurmd slurmd -D -N "$NODE" -f "$STATE/slurm.conf"

# ---------------------------------------------------------------- 4. wait for idle
t0=$(date +%s)
until node_idle; do
    alive "$(pid_of slurmctld)" || { tail -n 20 "$STATE/log/slurmctld.log" "$STATE/log/slurmctld.out" >&2 || true; die "slurmctld exited"; }
    alive "$(pid_of slurmd)" || { tail -n 20 "$STATE/log/slurmd.log" "$STATE/log/slurmd.out" >&2 || true; die "slurmd exited"; }
    if [ $(( $(date +%s) - t0 )) -ge "$WAIT_S" ]; then
        sinfo -N -l >&2 || true
        tail -n 20 "$STATE/log/slurmctld.log" "$STATE/log/slurmd.log" >&2 || true
        die "node $NODE not idle after ${WAIT_S}s"
    fi
    # a node left DOWN by an earlier run comes back with ReturnToService=2, or by hand:
    if sinfo -h -N -n "$NODE" -o '%t' 2>/dev/null | grep -Eq '^(down|drain|drng|fail)'; then
        scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true
    fi
    sleep 1
done
log "cluster up in $(( $(date +%s) - t0 ))s: $(sinfo -h -N -o '%N %P %t cpus=%c mem=%m gres=%G')"
log "state dir: $STATE (stop with tests/slurm/stop_cluster.sh)"
