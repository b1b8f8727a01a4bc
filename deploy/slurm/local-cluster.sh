#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for the tests of the job-array recipe (tests/deploy/test_slurm.py).
#   deploy/slurm/local-cluster.sh start   # install (Debian: slurm-wlm, munge) if needed, configure, start
#   deploy/slurm/local-cluster.sh stop
# Needs root. Accounting is off (no slurmdbd): finished jobs are read from the jobcomp/filetxt records in
# $STATE/jobcomp.txt. It writes /etc/slurm/slurm.conf only when there is none or it is one of ours, so a
# real cluster's configuration is never touched.
set -euo pipefail
ACTION=${1:-start}
STATE=${BRASYN_SLURM_STATE:-/var/spool/brasyn-slurm}
CONF=/etc/slurm/slurm.conf
MARKER="# brasyn-infer local test cluster"

if [ "$(id -u)" != 0 ]; then
    echo "slurm: a local test cluster needs root; skipped" >&2
    exit 3
fi
# Stop only what this script started: the daemons whose pid files it keeps in $STATE (slurmctld and slurmd write
# theirs there under our slurm.conf; munged's is recorded when we start it). A daemon of a real cluster, or one
# started by hand, is never touched.
stop_own() {  # NAME PIDFILE
    local pid
    [ -s "$2" ] || return 0
    pid=$(cat "$2")
    if [ "$(ps -p "$pid" -o comm= 2>/dev/null)" = "$1" ]; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$2"
}
if [ "$ACTION" = stop ]; then
    stop_own slurmd "$STATE/slurmd.pid"
    stop_own slurmctld "$STATE/slurmctld.pid"
    stop_own munged "$STATE/munged.pid"
    exit 0
fi
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    echo "slurm: installing slurm-wlm and munge (Debian)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi
if [ -f "$CONF" ] && ! grep -qF "$MARKER" "$CONF"; then
    echo "slurm: $CONF exists and is not ours; using that cluster as it is" >&2
    exit 0
fi
node=$(hostname -s)
cpus=$(nproc)
memory=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
mkdir -p "$STATE/ctld" "$STATE/d" /etc/slurm
cat > "$CONF" <<CONFEOF
$MARKER (deploy/slurm/local-cluster.sh); state in $STATE
ClusterName=brasyn
SlurmctldHost=$node
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$STATE/jobcomp.txt
ReturnToService=2
MpiDefault=none
NodeName=$node CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=local Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONFEOF
if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown -R munge:munge /etc/munge 2>/dev/null || true
chmod 0400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
if ! pgrep -x munged >/dev/null; then
    su -s /bin/sh munge -c munged 2>/dev/null || munged --force
    pgrep -nx munged > "$STATE/munged.pid"  # ours: stop removes it
fi
pgrep -x slurmctld >/dev/null || slurmctld  # pid in $STATE/slurmctld.pid (SlurmctldPidFile above)
pgrep -x slurmd >/dev/null || slurmd
for _ in $(seq 60); do
    if sinfo -h -N -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
        echo "slurm: one-node cluster up ($node, $cpus CPUs); job records in $STATE/jobcomp.txt" >&2
        exit 0
    fi
    scontrol update nodename="$node" state=resume >/dev/null 2>&1 || true
    sleep 1
done
echo "slurm: the node did not come up; see $STATE/slurmctld.log and $STATE/slurmd.log" >&2
exit 1
