#!/usr/bin/env bash
# stop_cluster.sh -- stop exactly the daemons that start_cluster.sh started (idempotent).
#
# Reads "name pid" lines from $PS_SLURM_DIR/pids (default /tmp/promptscape-slurm/pids) and, for
# each one whose /proc/<pid>/comm still matches the recorded name (so a recycled PID is never
# hit), sends SIGTERM, waits up to 15 s, then SIGKILL. Order: slurmd, slurmctld, munged.
# A munged that start_cluster.sh found already running (not recorded) is left alone.
# Jobs still queued/running are scancel'ed first (PS_SLURM_SCANCEL=0 skips) and waited for <=15 s.
# Set PS_SLURM_PURGE=1 to also delete $PS_SLURM_DIR (state, logs) afterwards.
set -uo pipefail

PS_SLURM_DIR="${PS_SLURM_DIR:-/tmp/promptscape-slurm}"
PIDS_FILE="$PS_SLURM_DIR/pids"

log() { echo "[stop_cluster] $*"; }

alive() {
    local name=$1 pid=$2
    [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]
}

if [ ! -f "$PIDS_FILE" ]; then
    log "no pid file at $PIDS_FILE: nothing to stop"
    exit 0
fi

# cancel remaining jobs while slurmctld is still up (best effort), so that no slurmstepd / job
# processes outlive slurmd (slurmstepd is not a child of slurmd once started).
if [ "${PS_SLURM_SCANCEL:-1}" = 1 ] && alive slurmctld "$(awk '$1=="slurmctld"{print $2}' "$PIDS_FILE" | tail -n1)"; then
    jobs=$(squeue -h -o '%A' 2>/dev/null | tr '\n' ' ')
    if [ -n "${jobs// /}" ]; then
        log "cancelling jobs: $jobs"
        # shellcheck disable=SC2086
        scancel $jobs 2>/dev/null || true
        for _ in $(seq 1 150); do
            [ -z "$(squeue -h -t PD,R,CG,S -o '%A' 2>/dev/null)" ] && break
            sleep 0.1
        done
    fi
fi

for name in slurmd slurmctld munged; do
    pid=$(awk -v n="$name" '$1==n {print $2}' "$PIDS_FILE" | tail -n1)
    if [ -z "$pid" ]; then
        continue
    fi
    if ! alive "$name" "$pid"; then
        log "$name (pid $pid) not running"
        continue
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do
        alive "$name" "$pid" || break
        sleep 0.1
    done
    if alive "$name" "$pid"; then
        log "$name (pid $pid) ignored SIGTERM; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.2
    fi
    if alive "$name" "$pid"; then
        log "WARNING: could not stop $name (pid $pid)"
    else
        log "stopped $name (pid $pid)"
    fi
done

# slurmstepd is forked by slurmd but detaches; it is not killed here (not started by us directly).
# Report survivors so a CI log shows them.
left=$(pgrep -x slurmstepd | tr '\n' ' ' || true)
[ -n "$left" ] && log "note: slurmstepd still running (pids $left); they exit when their job step ends"
rm -f "$PIDS_FILE" "$PS_SLURM_DIR/run/slurmctld.pid" "$PS_SLURM_DIR/run/slurmd.pid"

if [ "${PS_SLURM_PURGE:-0}" = 1 ]; then
    rm -rf "$PS_SLURM_DIR"
    log "removed $PS_SLURM_DIR"
fi
log "done"
