#!/usr/bin/env bash
# Starts a single-node SLURM cluster on this machine for tests/slurm.rs: writes slurm.conf for
# localhost (one node with every CPU, one partition "debug"), then starts munged, slurmctld and
# slurmd and waits until the node is idle. Needs root and Debian's slurm-wlm and munge
# (.ci/run installs them). Idempotent: running daemons are left alone.
#   tools/slurm-local.sh          start (prints the partition when ready)
#   tools/slurm-local.sh stop     stop the daemons this script starts
set -euo pipefail

conf_dir=/etc/slurm
if [ "${1:-}" = "stop" ]; then
  for p in slurmd slurmctld; do
    [ -f "/run/$p.pid" ] && kill "$(cat "/run/$p.pid")" 2>/dev/null || true
  done
  exit 0
fi
for cmd in munged slurmctld slurmd sbatch; do
  command -v "$cmd" >/dev/null || { echo "slurm-local: $cmd not found (apt-get install slurm-wlm munge)" >&2; exit 1; }
done

host=$(hostname -s)
cpus=$(nproc)
mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
mkdir -p "$conf_dir" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm

# Only our own config is replaced: a machine with a real cluster config is left alone.
if [ ! -f "$conf_dir/slurm.conf" ] || grep -q '^# written by tools/slurm-local.sh' "$conf_dir/slurm.conf"; then
  cat >"$conf_dir/slurm.conf" <<CONF
# written by tools/slurm-local.sh: a one-node cluster on localhost for tests
ClusterName=lstmdse
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmdSpoolDir=/var/spool/slurmd
StateSaveLocation=/var/spool/slurmctld
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=5
Waittime=0
NodeName=$host CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
  rm -f "$conf_dir/cgroup.conf"
fi

# munge: a key, then the daemon (as the munge user when there is one).
if [ ! -s /etc/munge/munge.key ]; then
  mkdir -p /etc/munge
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
mkdir -p /run/munge /var/log/munge /var/lib/munge
if id munge >/dev/null 2>&1; then
  chown munge:munge /etc/munge /etc/munge/munge.key /run/munge /var/log/munge /var/lib/munge
fi
chmod 0700 /etc/munge; chmod 0400 /etc/munge/munge.key; chmod 0755 /run/munge
if ! munge -n >/dev/null 2>&1; then
  if id munge >/dev/null 2>&1; then
    runuser -u munge -- munged
  else
    munged --force
  fi
fi
for _ in $(seq 50); do munge -n >/dev/null 2>&1 && break; sleep 0.2; done

pgrep -x slurmctld >/dev/null || slurmctld
pgrep -x slurmd >/dev/null || slurmd
for _ in $(seq 150); do
  state=$(sinfo -h -o %T 2>/dev/null | head -1 || true)
  case "$state" in
    idle*|mixed*|allocated*) echo "slurm-local: node $host $state, partition debug"; exit 0 ;;
    down*|drain*) scontrol update nodename="$host" state=resume 2>/dev/null || true ;;
  esac
  sleep 0.2
done
echo "slurm-local: the node did not come up (see /var/log/slurm/)" >&2
exit 1
