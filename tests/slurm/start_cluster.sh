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
#   3. Writes /etc/slurm/slurm.conf (and gres.conf only with PS_SLURM_FAKE_GPUS) for ONE node named
#      `hostname -s` with NodeAddr=127.0.0.1, CPUs=$(nproc), RealMemory = (MemAvailable - 512 MiB) rounded down to GiB,
#      one partition `debug` (Default=YES), then starts slurmctld and slurmd as plain daemons
#      (no systemd), waits until `sinfo` reports the node idle.
#   4. Records "name pid" lines in $PS_SLURM_DIR/pids; stop_cluster.sh kills exactly those.
#
# Settings that were needed / chosen (and why)
#   * ProctrackType=proctrack/linuxproc, TaskPlugin=task/none: this VM has no systemd and only a
#     tmpfs-backed cgroup-v1 hierarchy; cgroup plugins are avoided entirely, and with these two
#     plugins (and jobacct_gather/none) Slurm 22.05 does not read cgroup.conf, so none is written.
#     Consequence: no memory/CPU enforcement of jobs (fine for CI).
#   * AccountingStorageType=accounting_storage/none, JobAcctGatherType=jobacct_gather/none,
#     JobCompType=jobcomp/none: no slurmdbd. Consequence: `sacct` fails with
#     "Slurm accounting storage is disabled" and `sacctmgr`/`sshare` do not work either.
#   * MinJobAge=600: with no accounting, `squeue --states=all` is the ONLY way to see finished
#     jobs, and only for MinJobAge seconds. The snakemake slurm plugin (2.x) silently falls back
#     from squeue to sacct if MinJobAge < 3 * --slurm-init-seconds-before-status-checks
#     (default 40 s => 120 s), so MinJobAge must be >= that threshold.
#   * SelectType=select/cons_tres + SelectTypeParameters=CR_Core_Memory: memory is a consumable
#     resource, so `--mem` requests (snakemake's mem_mb) are honoured/limited by RealMemory.
#     DefMemPerCPU=RealMemory/CPUs: otherwise a job submitted WITHOUT --mem (plain `sbatch --wrap`)
#     is given the whole node's memory and such jobs run strictly one after another.
#   * SlurmctldHost=<hostname -s>(127.0.0.1) and NodeAddr=127.0.0.1: no DNS needed; slurmctld
#     insists that its own `hostname -s` matches SlurmctldHost, and slurmd derives its NodeName
#     from `hostname -s` unless given -N (we always pass -N, so PS_SLURM_NODE=localhost works).
#   * Ports: SlurmctldPort=6817, SlurmdPort=6818 (override with PS_SLURMCTLD_PORT/PS_SLURMD_PORT).
#   * ReturnToService=2 so a node that was DOWN (e.g. after a restart) comes back by itself.
#
# Snakemake slurm executor plugin (snakemake-executor-plugin-slurm 2.8.0) against this cluster
#   REQUIRED:  --slurm-status-command squeue
#        The plugin's default is `sacct` whenever the sacct binary exists (it does: slurm-client).
#        With accounting disabled, sacct exits non-zero, the plugin treats every status query as
#        failed and jobs never finish (the workflow hangs). With `squeue`, status comes from
#        `squeue --states=all --name <run-uuid>` and works as long as MinJobAge is large enough.
#   RECOMMENDED: --slurm-init-seconds-before-status-checks 2  (default 40 s => slow CI;
#        keep 3*value <= MinJobAge) ; --default-resources slurm_partition=debug
#   Accounts: not needed. Without slurm_account the plugin tries to guess one via `sacct`
#        (fails: "sacct: invalid option -- '1'" -- the plugin passes "| tail -1" as sacct args),
#        logs "Unable to guess SLURM account. Trying to proceed without." and submits without -A.
#        With slurm_account=<x> it runs validate_account(): `sacctmgr` fails ("You are not running
#        a supported accounting_storage plugin"), `sshare` exits 0 with no rows => warning "Both
#        'sacctmgr' and 'sshare' returned empty results ... Proceeding without account
#        validation" and `-A <x>` is passed; slurmctld accepts any account string without
#        accounting. So sacctmgr is never required. `--slurm-no-account` is a CLI flag in 2.8.0,
#        but the code never reads it (no-op: -A is still passed if slurm_account is set).
#   Groups: pass `--cores <node CPUs>` (profile: `cores: 2`); otherwise a group of k one-thread
#        jobs requests --cpus-per-task=k and stays PENDING forever if k > CPUs of the node.
#   Stopping snakemake: with a hanging status query, SIGTERM/SIGINT do not end snakemake (it
#        waits for "running" jobs); in CI use `timeout -k 30 <secs> snakemake ...`.
#   Failure details: for FAILED jobs the plugin only reports the squeue state (it needs sacct for
#        reasons); see the SLURM log under .snakemake/slurm_logs/ (kept for failed jobs).
#
# Environment overrides: PS_SLURM_DIR (default /tmp/promptscape-slurm), PS_SLURM_NODE
# (default `hostname -s`), PS_SLURMCTLD_PORT, PS_SLURMD_PORT, PS_SLURM_PARTITION (default debug),
# PS_SLURM_NO_INSTALL=1 (fail instead of apt-get installing), PS_SLURM_REALMEM (MB),
# PS_SLURM_FAKE_GPUS=N (N fake GPUs as gres/gpu, default 0), PS_SLURM_SMOKE=0 (skip the final
# `srun -n1 true` check). Changing any of them while running restarts slurmctld/slurmd.
set -euo pipefail

PS_SLURM_DIR="${PS_SLURM_DIR:-/tmp/promptscape-slurm}"
CTLD_HOST="$(hostname -s)"   # slurmctld refuses to start unless this equals its own `hostname -s`
NODE="${PS_SLURM_NODE:-$CTLD_HOST}"
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
    if [ -f "$PIDS_FILE" ]; then awk -v n="$1" '$1==n {print $2}' "$PIDS_FILE" | tail -n1; fi
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
    # (on hosts WITH systemd the Debian postinst may start munge/slurmd/slurmctld services
    #  itself; here policy-rc.d denies that. See the port check below.)
    APT_LOG="$(mktemp /tmp/promptscape-slurm-apt.XXXXXX.log)"
    if ! { apt-get update -q && apt-get install -y -q --no-install-recommends slurm-wlm munge; } > "$APT_LOG" 2>&1; then
        tail -n 30 "$APT_LOG" >&2
        die "apt-get failed (full log: $APT_LOG)"
    fi
    rm -f "$APT_LOG"
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
FAKE_GPUS="${PS_SLURM_FAKE_GPUS:-0}"
if [ "$FAKE_GPUS" -gt 0 ]; then GRES_CONF_LINE="GresTypes=gpu"; NODE_GRES=" Gres=gpu:${FAKE_GPUS}"; else GRES_CONF_LINE=""; NODE_GRES=""; fi
MEM_AVAIL_MB=$(awk '/^MemAvailable:/ {print int($2/1024)}' /proc/meminfo)
# a bit below what is available, rounded down to whole GiB so that re-runs produce the same
# slurm.conf (a changed slurm.conf makes this script restart the daemons)
REAL_MEM=$(( (MEM_AVAIL_MB - 512) / 1024 * 1024 ))
[ "$REAL_MEM" -lt 512 ] && REAL_MEM=$(( MEM_AVAIL_MB > 768 ? MEM_AVAIL_MB - 256 : 256 ))
# while our daemons run (and use memory), keep the RealMemory they were started with
if alive slurmctld "$(recorded_pid slurmctld)" && grep -q 'promptscape tests/slurm/start_cluster.sh' "$CONF_DIR/slurm.conf" 2>/dev/null; then
    OLD_MEM=$(sed -n 's/^NodeName=.* RealMemory=\([0-9]*\).*/\1/p' "$CONF_DIR/slurm.conf" | head -n1)
    [ -n "$OLD_MEM" ] && REAL_MEM=$OLD_MEM
fi
[ -n "${PS_SLURM_REALMEM:-}" ] && REAL_MEM=$PS_SLURM_REALMEM

mkdir -p "$CONF_DIR"
NEW_CONF=$(mktemp)
cat > "$NEW_CONF" <<EOF
# Generated by promptscape tests/slurm/start_cluster.sh -- single-node test cluster.
ClusterName=promptscape
SlurmctldHost=${CTLD_HOST}(127.0.0.1)
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
# without this a job with no --mem gets ALL of RealMemory and jobs run one at a time
DefMemPerCPU=$(( REAL_MEM / CPUS ))
# finished jobs stay visible to 'squeue --states=all' for this long (snakemake plugin needs >=120)
MinJobAge=600
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
MpiDefault=none
MailProg=/bin/true
${GRES_CONF_LINE}
NodeName=${NODE} NodeAddr=127.0.0.1 CPUs=${CPUS} RealMemory=${REAL_MEM}${NODE_GRES} State=UNKNOWN
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
# GRES: optional fake GPUs (PS_SLURM_FAKE_GPUS=N) to exercise gpu/gres requests on a CPU-only CI
# box. A count-only gres.conf entry (no File=) does NOT work in 22.05: slurmd reports 0 GPUs and
# the node goes INVAL ("gres/gpu count reported lower than configured"). So we create N
# character-device clones of /dev/null (mknod c 1 3) and list them as File=. Jobs requesting GPUs
# then get CUDA_VISIBLE_DEVICES=0..N-1 set although there is no real GPU.
# gres.conf is removed again (only if written by us) when N=0.
if [ "$FAKE_GPUS" -gt 0 ]; then
    mkdir -p "$PS_SLURM_DIR/fakedev"
    for i in $(seq 0 $((FAKE_GPUS - 1))); do
        [ -c "$PS_SLURM_DIR/fakedev/gpu$i" ] || mknod -m 0666 "$PS_SLURM_DIR/fakedev/gpu$i" c 1 3
    done
    printf '# Generated by promptscape tests/slurm/start_cluster.sh (fake GPUs = /dev/null clones)\nNodeName=%s Name=gpu File=%s/fakedev/gpu[0-%s]\n' \
        "$NODE" "$PS_SLURM_DIR" "$((FAKE_GPUS - 1))" > "$CONF_DIR/gres.conf.new"
    if ! cmp -s "$CONF_DIR/gres.conf.new" "$CONF_DIR/gres.conf"; then
        mv "$CONF_DIR/gres.conf.new" "$CONF_DIR/gres.conf"; CONF_CHANGED=1
    else
        rm -f "$CONF_DIR/gres.conf.new"
    fi
elif [ -f "$CONF_DIR/gres.conf" ] && grep -q 'promptscape tests/slurm/start_cluster.sh' "$CONF_DIR/gres.conf"; then
    rm -f "$CONF_DIR/gres.conf"; CONF_CHANGED=1
fi

# ---------------------------------------------------------------- 4. slurmctld / slurmd
CTLD_PID=$(recorded_pid slurmctld)
SLURMD_PID=$(recorded_pid slurmd)
if alive slurmctld "$CTLD_PID" && alive slurmd "$SLURMD_PID" && [ "$CONF_CHANGED" = 0 ]; then
    log "slurmctld (pid $CTLD_PID) and slurmd (pid $SLURMD_PID) already running"
else
    if [ "$CONF_CHANGED" = 1 ] && { alive slurmctld "$CTLD_PID" || alive slurmd "$SLURMD_PID"; }; then
        log "slurm.conf changed: restarting our slurm daemons"
        alive slurmd "$SLURMD_PID" && kill "$SLURMD_PID"
        alive slurmctld "$CTLD_PID" && kill "$CTLD_PID"
        for i in $(seq 1 100); do
            alive slurmd "$SLURMD_PID" || alive slurmctld "$CTLD_PID" || break
            sleep 0.1
        done
    fi
    port_busy() { command -v ss >/dev/null 2>&1 && ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }
    if ! alive slurmctld "$CTLD_PID" && port_busy "$CTLD_PORT"; then
        die "port $CTLD_PORT already in use (a slurmctld not started by this script, e.g. a systemd service?); stop it or set PS_SLURMCTLD_PORT"
    fi
    if ! alive slurmd "$SLURMD_PID" && port_busy "$SLURMD_PORT"; then
        die "port $SLURMD_PORT already in use (a slurmd not started by this script?); stop it or set PS_SLURMD_PORT"
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
        down*|drain*)
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

# smoke test: a real job step through slurmctld -> slurmd -> slurmstepd (PS_SLURM_SMOKE=0 skips)
if [ "${PS_SLURM_SMOKE:-1}" = 1 ]; then
    timeout 60 srun -p "$PARTITION" -n1 -t 1 true \
        || die "smoke test 'srun -n1 true' failed; see $PS_SLURM_DIR/log/"
fi

T1=$(date +%s.%N)
log "cluster up in $(awk -v a="$T0" -v b="$T1" 'BEGIN{printf "%.1f", b-a}') s"
log "node=$NODE cpus=$CPUS realmem=${REAL_MEM}MB partition=$PARTITION conf=$CONF_DIR/slurm.conf"
log "state dir: $PS_SLURM_DIR (pids: $PIDS_FILE)"
if [ -f "$PIDS_FILE" ]; then sed 's/^/[start_cluster]   pid: /' "$PIDS_FILE"; fi
sinfo
