#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, to try workflow/profiles/slurm for real (run as root).
#   tools/slurm_local.sh start   install slurm-wlm and munge (apt-get) if absent, write /etc/slurm/slurm.conf,
#                                create a munge key if absent, start munged, slurmctld and slurmd
#                                (daemons already running are restarted when slurm.conf changed)
#   tools/slurm_local.sh stop    cancel the cluster's jobs, stop the three daemons by their pid files
#   tools/slurm_local.sh status  show the node and the queue
# No accounting database: submit with --slurm-no-account --slurm-status-command squeue (MinJobAge keeps finished
# jobs visible to squeue for an hour). The node is declared with at least SLURM_LOCAL_CPUS CPUs and
# SLURM_LOCAL_MEM_MB of memory (defaults 8 and 32000, or the machine's own if larger) so that the profile's
# requests fit; nothing enforces them (no cgroups), so a small machine just runs the jobs slower.
set -euo pipefail

STATE=${SLURM_LOCAL_STATE:-/var/lib/slurm-local}
CONF=/etc/slurm/slurm.conf
MARK="# written by layergeom tools/slurm_local.sh"
MUNGE_PID=/run/munge/munged.pid
CTLD_PID=$STATE/slurmctld.pid
SLURMD_PID=$STATE/slurmd.pid

die() { echo "slurm_local: $*" >&2; exit 1; }

install_packages() {
    command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
        && command -v munged >/dev/null && return
    echo "slurm_local: installing slurm-wlm and munge"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends slurm-wlm munge
}

# Writes slurm.conf; returns 1 when it was already the same.
write_conf() {
    [[ -f $CONF ]] && ! grep -qF "$MARK" "$CONF" && die "$CONF exists and was not written by this script; not touching it"
    local host cpus mem
    host=$(hostname -s)
    cpus=$(nproc)
    mem=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
    cpus=$(( cpus > ${SLURM_LOCAL_CPUS:-8} ? cpus : ${SLURM_LOCAL_CPUS:-8} ))
    mem=$(( mem > ${SLURM_LOCAL_MEM_MB:-32000} ? mem : ${SLURM_LOCAL_MEM_MB:-32000} ))
    mkdir -p "$(dirname "$CONF")" "$STATE/ctld" "$STATE/slurmd"
    cat >"$CONF.tmp" <<EOF
$MARK
ClusterName=layergeom-local
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
MinJobAge=3600
SlurmdParameters=config_overrides
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    if cmp -s "$CONF.tmp" "$CONF"; then
        rm "$CONF.tmp"
        return 1
    fi
    mv "$CONF.tmp" "$CONF"
}

running() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

start() {
    [[ $(id -u) == 0 ]] || die "run as root"
    install_packages
    if write_conf; then
        stop_one "$SLURMD_PID"
        stop_one "$CTLD_PID"
    fi
    if [[ ! -s /etc/munge/munge.key ]]; then
        mkdir -p /etc/munge
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    chown munge:munge /etc/munge /etc/munge/munge.key
    chmod 700 /etc/munge
    chmod 400 /etc/munge/munge.key
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    running "$MUNGE_PID" || runuser -u munge -- munged --pid-file="$MUNGE_PID"
    munge -n | unmunge >/dev/null || die "munge does not work"
    running "$CTLD_PID" || slurmctld -c
    running "$SLURMD_PID" || slurmd
    for _ in $(seq 60); do
        case $(sinfo -h -o %T 2>/dev/null) in
            idle*|mixed*|allocated*) sinfo; return 0 ;;
        esac
        sleep 1
    done
    sinfo -R || true
    die "the node did not become idle; see $STATE/slurmctld.log and $STATE/slurmd.log"
}

stop_one() {
    local pidfile=$1 pid
    running "$pidfile" || { rm -f "$pidfile"; return 0; }
    pid=$(cat "$pidfile")
    kill "$pid"
    for _ in $(seq 30); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; return 0; }
        sleep 0.5
    done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile"
}

stop() {
    if running "$CTLD_PID"; then
        local jobs
        jobs=$(squeue -h -o %i 2>/dev/null || true)
        [[ -n $jobs ]] && { echo "slurm_local: cancelling jobs" $jobs; scancel $jobs || true; }
        for _ in $(seq 20); do
            [[ -z $(squeue -h -o %i 2>/dev/null) ]] && break
            sleep 0.5
        done
    fi
    stop_one "$SLURMD_PID"
    stop_one "$CTLD_PID"
    stop_one "$MUNGE_PID"
}

case ${1:-} in
    start) start ;;
    stop) stop ;;
    status) sinfo && squeue ;;
    *) die "usage: $0 start|stop|status" ;;
esac
