#!/usr/bin/env bash
# A one-node Slurm cluster in a temp dir, for trying `ckimg run` under a real scheduler and for
# the tests (test/job/slurm.test.ts). Runs as root; installs slurm-wlm + munge when missing.
#
#   scripts/slurm-local.sh start        prints the cluster directory on stdout (last line);
#                                       then: export SLURM_CONF=DIR/slurm.conf; sbatch …
#   scripts/slurm-local.sh stop DIR     stops the daemons it started (by their PIDs) and
#                                       removes DIR
#
# Own ports, own munge socket and key, own state: it does not touch a system Slurm or munge.
# proctrack/linuxproc + task/none: no cgroups needed. A requeued job waits for its BeginTime:
# `scontrol update JobId=J StartTime=now+2` releases it (not `now`: within the second of the
# requeue slurmd refuses the job's new credential as revoked, and the job ends FAILED).
set -euo pipefail

need() {
  local missing=()
  for p in slurm-wlm munge; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "slurm-local: missing ${missing[*]} (run as root)" >&2
    exit 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Wait until a command succeeds (up to $1 seconds).
wait_for() {
  local secs=$1; shift
  for ((i = 0; i < secs * 5; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  return 1
}

start() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "slurm-local: runs as root (slurmd starts jobs as their users)" >&2
    exit 1
  fi
  need
  local dir host cport dport cpus mem
  dir=$(mktemp -d /tmp/ckimg-slurm.XXXXXX)
  chmod 755 "$dir"              # munged (user munge) must reach its socket folder
  mkdir -p "$dir/munge" "$dir/state" "$dir/spool"
  chown munge:munge "$dir/munge"
  chmod 711 "$dir/munge"         # munged wants its socket folder searchable by all
  dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
  chown munge:munge "$dir/munge/munge.key"
  chmod 400 "$dir/munge/munge.key"
  host=$(hostname -s)
  cport=$(free_port)
  dport=$(free_port)
  cpus=$(nproc)
  mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2 ))
  cat >"$dir/slurm.conf" <<EOF
ClusterName=ckimg
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$cport
SlurmdPort=$dport
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
# debug: a job's every state change and RPC, for a test that fails to show (slurm.test.ts)
SlurmctldDebug=debug
SlurmdDebug=debug
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
JobRequeue=1
KillWait=30
MinJobAge=600
InactiveLimit=0
OverTimeLimit=0
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  export SLURM_CONF="$dir/slurm.conf"
  runuser -u munge -- /usr/sbin/munged -F --socket="$dir/munge/munge.socket" --key-file="$dir/munge/munge.key" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munged.seed" \
    </dev/null >/dev/null 2>&1 &
  echo $! >"$dir/munged.ours"
  if ! wait_for 20 test -S "$dir/munge/munge.socket"; then
    echo "slurm-local: munged did not start (see $dir/munge/munged.log)" >&2
    stop "$dir"
    exit 1
  fi
  setsid /usr/sbin/slurmctld -D -i </dev/null >>"$dir/slurmctld.out" 2>&1 &
  echo $! >"$dir/slurmctld.ours"
  setsid /usr/sbin/slurmd -D </dev/null >>"$dir/slurmd.out" 2>&1 &
  echo $! >"$dir/slurmd.ours"
  if ! wait_for 60 sh -c "sinfo -h -o %T 2>/dev/null | grep -Eq '^(idle|mixed|allocated)'"; then
    echo "slurm-local: the node did not come up (see $dir/slurmctld.log, $dir/slurmd.log)" >&2
    stop "$dir"
    exit 1
  fi
  echo "$dir"
}

stop() {
  local dir=${1:?usage: slurm-local.sh stop DIR}
  case "$dir" in /tmp/ckimg-slurm.*) ;; *) echo "slurm-local: $dir is not a cluster this script made" >&2; exit 1 ;; esac
  # slurmd first (it ends the job steps), then slurmctld, then munged: only the PIDs we started
  for d in slurmd slurmctld munged; do
    [ -f "$dir/$d.ours" ] || continue
    local pid
    pid=$(cat "$dir/$d.ours")
    if [ "$d" = munged ] && [ -f "$dir/munge/munged.pid" ]; then pid=$(cat "$dir/munge/munged.pid"); fi
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  # job steps the cluster started (slurmstepd and what runs below it) end with it
  for pid in $(pgrep -f "^slurmstepd: \[" || true); do
    if grep -q "$dir" "/proc/$pid/environ" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  done
  rm -rf "$dir"
}

case "${1:-}" in
  start) start ;;
  stop) stop "${2:-}" ;;
  *) echo "usage: slurm-local.sh start | stop DIR" >&2; exit 2 ;;
esac
