#!/usr/bin/env bash
# start_cluster.sh -- start a real single-node SLURM cluster on localhost (for CI).
#
# Usage (as root):   tests/slurm/start_cluster.sh        # idempotent
#                    tests/slurm/stop_cluster.sh         # stops exactly what this started
#
# What it does
#   1. apt-get install slurm-wlm + munge (Debian 12: Slurm 22.05.8, munge 0.5.15) if missing.
#   2. Creates /etc/munge/munge.key if absent (Debian's postinst normally creates it already),
#      starts munged as user `munge` (socket: /run/munge/munge.socket.2, the default
#      that Slurm's auth/munge uses; pid + log under $PS_SLURM_DIR/munge).
#   3. Writes /etc/slurm/slurm.conf (+ an empty-ish cgroup.conf, not used) for ONE node named
#      `hostname -s` with NodeAddr=127.0.0.1, CPUs=$(nproc), RealMemory = MemAvailable - 512 MiB,
#      one partition `debug` (Default=YES), then starts slurmctld and slurmd as plain daemons
#      (no systemd), waits until `sinfo` reports the node idle.
#   4. Records "name pid" lines in $PS_SLURM_DIR/pids; stop_cluster.sh kills exactly those.
#
# Settings that were needed / chosen (and why)
#   * ProctrackType=proctrack/linuxproc, TaskPlugin=task/none: this VM has no systemd and only a
#     tmpfs-backed cgroup-v1 hierarchy; cgroup plugins are avoided entirely. cgroup.conf is
#     written (CgroupPlugin=disabled is not available in 22.05, so autodetect) but not used.
#   * AccountingStorageType=accounting_storage/none, JobAcctGatherType=jobacct_gather/none,
#     JobCompType=jobcomp/none: no slurmdbd. Consequence: `sacct` fails with
#     "Slurm accounting storage is disabled" and `sacctmgr`/`sshare` do not work either.
#   * MinJobAge=600: with no accounting, `squeue --states=all` is the ONLY way to see finished
#     jobs, and only for MinJobAge seconds. The snakemake slurm plugin (2.x) silently falls back
#     from squeue to sacct if MinJobAge < 3 * --slurm-init-seconds-before-status-checks
#     (default 40 s => 120 s), so MinJobAge must be >= that threshold.
#   * SelectType=select/cons_tres + SelectTypeParameters=CR_Core_Memory: memory is a consumable
#     resource, so `--mem` requests (snakemake's mem_mb) are honoured/limited by RealMemory.
#   * SlurmctldHost=<hostname -s>(127.0.0.1) and NodeAddr=127.0.0.1: no DNS needed; slurmctld
#     insists that its own `hostname -s` matches SlurmctldHost, and slurmd derives its NodeName
#     from `hostname -s` (we also pass -N explicitly).
#   * Ports: SlurmctldPort=6817, SlurmdPort=6818 (override with PS_SLURMCTLD_PORT/PS_SLURMD_PORT).
#   * ReturnToService=2 so a node that was DOWN (e.g. after a restart) comes back by itself.
#
# Snakemake slurm executor plugin (snakemake-executor-plugin-slurm 2.8.0) against this cluster
#   REQUIRED:  --slurm-status-command squeue
#        The plugin's default is `sacct` whenever the sacct binary exists (it does: slurm-client).
#        With accounting disabled, sacct exits non-zero, the plugin treats every status query as
#        failed and jobs never finish (the workflow hangs). With `squeue`, status comes from
#        `squeue --states=all --name <run-uuid>` and works as long as MinJobAge is large enough.
#   RECOMMENDED: --slurm-init-seconds-before-status-checks 5  (default 40 s => slow CI;
#        keep 3*value <= MinJobAge) ; --default-resources slurm_partition=debug
#   Accounts: do NOT set slurm_account. Without it, the plugin guesses via `sacct`, which fails;
#        it logs "Unable to guess SLURM account. Trying to proceed without." and submits without
#        -A. That is fine here. Setting slurm_account=<x> triggers validate_account() which calls
#        `sacctmgr` then `sshare`; both fail without slurmdbd => WorkflowError. `sacctmgr` is never
#        required otherwise. `--slurm-no-account` exists as a CLI flag in 2.8.0 but the code never
#        reads it (a no-op), so it neither helps nor hurts.
#   Failure details: for FAILED jobs the plugin only reports the squeue state (it needs sacct for
#        reasons); see the SLURM log under .snakemake/slurm_logs/ (kept for failed jobs).
#
# Environment overrides: PS_SLURM_DIR (default /tmp/promptscape-slurm), PS_SLURM_NODE
# (default `hostname -s`), PS_SLURMCTLD_PORT, PS_SLURMD_PORT, PS_SLURM_PARTITION (default debug),
# PS_SLURM_NO_INSTALL=1 (fail instead of apt-get installing).
set -euo pipefail

PS_SLURM_DIR="${PS_SLURM_DIR:-/tmp/promptscape-slurm}"
NODE="${PS_SLURM_NODE:-$(hostname -s)}"
CTLD_PORT="${PS_SLURMCTLD_PORT:-6817}"
SLURMD_PORT="${PS_SLURMD_PORT:-6818}"
PARTITION="${PS_SLURM_PARTITION:-debug}"
CONF_DIR=/etc/slurm
PIDS_FILE="$PS_SLURM_DIR/pids"
T0=$(date +%s.%N)

log() { echo "[start_cluster] $*"; }
die() { echo "[start_cluster] ERROR: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root"

# ---------------------------------------------------------------- helpers
# alive NAME PID: PID exists and its comm is NAME (guards against PID reuse)
alive() {
    local name=$1 pid=$2
    [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]
}
recorded_pid() { # recorded_pid NAME -> pid from $PIDS_FILE (or empty)
    [ -f "$PIDS_FILE" ] && awk -v n="$1" '$1==n {print $2}' "$PIDS_FILE" | tail -n1 || true
}
record_pid() { # record_pid NAME PID
    mkdir -p "$PS_SLURM_DIR"
    touch "$PIDS_FILE"
    grep -v "^$1 " "$PIDS_FILE" > "$PIDS_FILE.tmp" || true
    echo "$1 $2" >> "$PIDS_FILE.tmp"
    mv "$PIDS_FILE.tmp" "$PIDS_FILE"
}
wait_pidfile() { # wait_pidfile FILE NAME -> echo pid once FILE holds a live NAME pid
    local f=$1 name=$2 i pid
    for i in $(seq 1 100); do
        if [ -s "$f" ]; then
            pid=$(tr -dc '0-9' < "$f")
            if alive "$name" "$pid"; then echo "$pid"; return 0; fi
        fi
        sleep 0.1
    done
    return 1
}
node_state() { sinfo -h -N -n "$NODE" -o '%T' 2>/dev/null | head -n1 || true; }

# ---------------------------------------------------------------- 1. packages
need_install=0
for b in munged slurmctld slurmd sinfo sbatch; do command -v "$b" >/dev/null 2>&1 || need_install=1; done
if [ "$need_install" = 1 ]; then
    [ "${PS_SLURM_NO_INSTALL:-0}" = 1 ] && die "slurm/munge not installed and PS_SLURM_NO_INSTALL=1"
    log "installing slurm-wlm + munge via apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends slurm-wlm munge
fi
id munge >/dev/null 2>&1 || die "user 'munge' missing (munge package broken?)"
if id slurm >/dev/null 2>&1; then SLURM_USER=slurm; else SLURM_USER=root; fi

# ---------------------------------------------------------------- dirs
mkdir -p "$PS_SLURM_DIR"/{ctld,spool,log,run,munge}
chown "$SLURM_USER": "$PS_SLURM_DIR"/ctld "$PS_SLURM_DIR"/log "$PS_SLURM_DIR"/run
chmod 0755 "$PS_SLURM_DIR" "$PS_SLURM_DIR"/log "$PS_SLURM_DIR"/run
chown munge:munge "$PS_SLURM_DIR"/munge
chmod 0700 "$PS_SLURM_DIR"/munge
# the munge socket dir must be owned by munge and not world-writable
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/lib/munge /etc/munge
install -d -o munge -g munge -m 0700 /var/log/munge

# ---------------------------------------------------------------- 2. munge
if [ ! -s /etc/munge/munge.key ]; then
    log "creating /etc/munge/munge.key"
    if command -v mungekey >/dev/null 2>&1; then
        mungekey --create --keyfile=/etc/munge/munge.key --force
    else
        dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
    fi
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key

munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
MUNGE_PID=$(recorded_pid munged)
if alive munged "$MUNGE_PID" && munge_ok; then
    log "munged already running (pid $MUNGE_PID, started by us earlier)"
elif munge_ok; then
    log "a munged not started by this script is already serving /run/munge; reusing it (will not stop it)"
else
    rm -f "$PS_SLURM_DIR/munge/munged.pid"
    # munged refuses to run as root without --force; run it as the munge user like Debian does
    runuser -u munge -- /usr/sbin/munged \
        --pid-file="$PS_SLURM_DIR/munge/munged.pid" \
        --log-file="$PS_SLURM_DIR/munge/munged.log" \
        --seed-file="$PS_SLURM_DIR/munge/munged.seed"
    MUNGE_PID=$(wait_pidfile "$PS_SLURM_DIR/munge/munged.pid" munged) \
        || die "munged did not start; see $PS_SLURM_DIR/munge/munged.log"
    record_pid munged "$MUNGE_PID"
    for i in $(seq 1 50); do munge_ok && break; sleep 0.1; done
    munge_ok || die "munge -n | unmunge fails; see $PS_SLURM_DIR/munge/munged.log"
    log "started munged (pid $MUNGE_PID)"
fi

# ---------------------------------------------------------------- 3. slurm.conf
CPUS=$(nproc)
MEM_AVAIL_MB=$(awk '/^MemAvailable:/ {print int($2/1024)}' /proc/meminfo)
REAL_MEM=$(( MEM_AVAIL_MB - 512 ))
[ "$REAL_MEM" -lt 256 ] && REAL_MEM=256
[ -n "${PS_SLURM_REALMEM:-}" ] && REAL_MEM=$PS_SLURM_REALMEM

mkdir -p "$CONF_DIR"
NEW_CONF=$(mktemp)
cat > "$NEW_CONF" <<EOF
# Generated by promptscape tests/slurm/start_cluster.sh -- single-node test cluster.
ClusterName=promptscape
SlurmctldHost=${NODE}(127.0.0.1)
SlurmUser=${SLURM_USER}
SlurmctldPort=${CTLD_PORT}
SlurmdPort=${SLURMD_PORT}
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=${PS_SLURM_DIR}/ctld
SlurmdSpoolDir=${PS_SLURM_DIR}/spool
SlurmctldPidFile=${PS_SLURM_DIR}/run/slurmctld.pid
SlurmdPidFile=${PS_SLURM_DIR}/run/slurmd.pid
SlurmctldLogFile=${PS_SLURM_DIR}/log/slurmctld.log
SlurmdLogFile=${PS_SLURM_DIR}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no systemd / usable cgroups in the CI container
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# no accounting (no slurmdbd): sacct/sacctmgr/sshare do not work
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# scheduling
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# finished jobs stay visible to 'squeue --states=all' for this long (snakemake plugin needs >=120)
MinJobAge=600
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
MpiDefault=none
NodeName=${NODE} NodeAddr=127.0.0.1 CPUs=${CPUS} RealMemory=${REAL_MEM} State=UNKNOWN
PartitionName=${PARTITION} Nodes=${NODE} Default=YES MaxTime=INFINITE State=UP
EOF
if ! cmp -s "$NEW_CONF" "$CONF_DIR/slurm.conf"; then
    [ -f "$CONF_DIR/slurm.conf" ] && ! grep -q 'promptscape tests/slurm/start_cluster.sh' "$CONF_DIR/slurm.conf" \
        && cp "$CONF_DIR/slurm.conf" "$CONF_DIR/slurm.conf.bak.$(date +%s)"
    install -m 0644 "$NEW_CONF" "$CONF_DIR/slurm.conf"
    CONF_CHANGED=1
else
    CONF_CHANGED=0
fi
rm -f "$NEW_CONF"
if false && [ ! -f "$CONF_DIR/cgroup.conf" ]; then
    printf '# Generated by promptscape start_cluster.sh; cgroups are not used (proctrack/linuxproc, task/none)\nCgroupAutomount=no\n' \
        > "$CONF_DIR/cgroup.conf"
fi

# ---------------------------------------------------------------- 4. slurmctld / slurmd
CTLD_PID=$(recorded_pid slurmctld)
SLURMD_PID=$(recorded_pid slurmd)
if alive slurmctld "$CTLD_PID" && alive slurmd "$SLURMD_PID" && [ "$CONF_CHANGED" = 0 ]; then
    log "slurmctld (pid $CTLD_PID) and slurmd (pid $SLURMD_PID) already running"
else
    if [ "$CONF_CHANGED" = 1 ] && { alive slurmctld "$CTLD_PID" || alive slurmd "$SLURMD_PID"; }; then
        log "slurm.conf changed: restarting our slurm daemons"
        for p in "$SLURMD_PID" "$CTLD_PID"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
        sleep 2
    fi
    if ! alive slurmctld "$CTLD_PID"; then
        rm -f "$PS_SLURM_DIR/run/slurmctld.pid"
        # -i: ignore/discard unreadable state files (e.g. from an older config)
        slurmctld -i
        CTLD_PID=$(wait_pidfile "$PS_SLURM_DIR/run/slurmctld.pid" slurmctld) \
            || die "slurmctld did not start; see $PS_SLURM_DIR/log/slurmctld.log"
        record_pid slurmctld "$CTLD_PID"
        log "started slurmctld (pid $CTLD_PID, port $CTLD_PORT)"
    fi
    if ! alive slurmd "$SLURMD_PID"; then
        rm -f "$PS_SLURM_DIR/run/slurmd.pid"
        slurmd -N "$NODE"
        SLURMD_PID=$(wait_pidfile "$PS_SLURM_DIR/run/slurmd.pid" slurmd) \
            || die "slurmd did not start; see $PS_SLURM_DIR/log/slurmd.log"
        record_pid slurmd "$SLURMD_PID"
        log "started slurmd (pid $SLURMD_PID, port $SLURMD_PORT, node $NODE)"
    fi
fi

# ---------------------------------------------------------------- wait for idle
state=""
for i in $(seq 1 120); do
    state=$(node_state)
    case "$state" in
        idle|mixed|allocated|completing) break ;;
        down*|drain*|drained*)
            # e.g. left DOWN from an earlier run: resume it
            scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    sleep 0.5
done
case "$state" in
    idle|mixed|allocated|completing) ;;
    *) sinfo -N -l || true
       die "node $NODE not idle after 60 s (state '$state'); see $PS_SLURM_DIR/log/" ;;
esac

T1=$(date +%s.%N)
log "cluster up in $(awk -v a="$T0" -v b="$T1" 'BEGIN{printf "%.1f", b-a}') s"
log "node=$NODE cpus=$CPUS realmem=${REAL_MEM}MB partition=$PARTITION conf=$CONF_DIR/slurm.conf"
log "state dir: $PS_SLURM_DIR (pids: $PIDS_FILE)"
cat "$PIDS_FILE" 2>/dev/null | sed 's/^/[start_cluster]   pid: /'
sinfo
