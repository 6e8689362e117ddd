#!/usr/bin/env bash
# run_slurm_test.sh -- run the pipeline on a real SLURM cluster through workflow/profiles/slurm
# and prove that it produces exactly what a local run produces.
#
#   tests/slurm/run_slurm_test.sh            # as root, or as a user with password-less sudo
#
# Steps
#   1. tests/slurm/start_cluster.sh (installs slurm-wlm + munge if missing; nothing else is
#      installed here), by default with one fake GPU (PS_SLURM_FAKE_GPUS=1) so that the GPU
#      requests of train_predictor/score_prompts (sbatch --gpus=1) are exercised too.
#   2. For each config (PS_SLURM_TEST_CONFIGS, default "tiny neural"):
#        tiny:   tests/data/tiny/config.yaml (Bayes predictor only; 39 jobs -> 3 group submissions)
#        neural: tests/data/neural/config.yaml (+ lstm and transformer trained for 20 steps on
#                the CPU), with training.gpus = 1 if the node has a (fake) GPU, else 0
#      it runs the workflow with `--profile workflow/profiles/slurm` in $WORK/slurm-<config>
#      and the same config locally (default profile, --cores 2) in $WORK/local-<config>; the
#      local runs go in the background while the SLURM runs are in progress
#      (PS_SLURM_TEST_PARALLEL=0: one after another).
#   3. Checks: both runs succeed; a dry run through the profile afterwards has nothing to do;
#      every Parquet file under results/ exists in both and has the same sha256; the small jobs
#      were grouped (fewer SLURM submissions than jobs); GPU jobs got gres:gpu.
#   4. Prints timings. On EXIT (success or failure) kills the local runs it started, cancels
#      its SLURM jobs and stops the cluster daemons if this script started them
#      (tests/slurm/stop_cluster.sh), unless PS_SLURM_TEST_KEEP_CLUSTER=1.
#
# Python: the active environment's `python` (or $PYTHON) must have the project installed with
# its `slurm` extra (pip install -e '.[test,slurm]'): snakemake + snakemake-executor-plugin-slurm.
#
# Environment: PYTHON, PS_SLURM_TEST_CONFIGS, PS_SLURM_TEST_PARALLEL (1), PS_SLURM_TEST_TIMEOUT
# (seconds per snakemake call, default 900), PS_SLURM_TEST_KEEP=1 (keep $WORK),
# PS_SLURM_TEST_KEEP_CLUSTER=1, PS_SLURM_PARTITION (debug), PS_SLURM_FAKE_GPUS (1) and the
# other PS_SLURM_* variables of start_cluster.sh.
#
# Measured on a 2-vCPU VM shared with other jobs: 9.4-10.8 min in all (tests/slurm/README.md);
# PS_SLURM_TEST_CONFIGS=tiny alone takes about 6 min.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
PYTHON="${PYTHON:-$(command -v python || command -v python3 || true)}"
CONFIGS="${PS_SLURM_TEST_CONFIGS:-tiny neural}"
PARALLEL="${PS_SLURM_TEST_PARALLEL:-1}"
SM_TIMEOUT="${PS_SLURM_TEST_TIMEOUT:-900}"
export PS_SLURM_PARTITION="${PS_SLURM_PARTITION:-debug}"
export PS_SLURM_FAKE_GPUS="${PS_SLURM_FAKE_GPUS:-1}"
PS_SLURM_DIR="${PS_SLURM_DIR:-/tmp/promptscape-slurm}"

T_START=$(date +%s.%N)
log() { echo "[slurm-test] $*"; }
die() { echo "[slurm-test] FAIL: $*" >&2; exit 1; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="${2:-$(now)}" 'BEGIN{printf "%.0f", b-a}'; }

# ---------------------------------------------------------------- preconditions
[ -n "$PYTHON" ] || die "no python found (activate the environment or set PYTHON)"
PYTHON_GIVEN="$PYTHON"
case "$PYTHON" in  # absolute, so that it still works after `cd` (PYTHON=.venv/bin/python)
    /*) ;;
    */*) PYTHON="$PWD/$PYTHON" ;;
    *) PYTHON="$(command -v "$PYTHON" || true)" ;;
esac
[ -x "$PYTHON" ] || die "python '$PYTHON_GIVEN' not found or not executable"
"$PYTHON" - <<'EOF' || die "$PYTHON lacks snakemake, snakemake-executor-plugin-slurm or promptscape; install the project with: pip install -e '.[test,slurm]'"
import promptscape, snakemake, snakemake_executor_plugin_slurm  # noqa: F401
EOF
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "start_cluster.sh must run as root: run this script as root or install sudo"
    SUDO=(sudo --preserve-env=PS_SLURM_DIR,PS_SLURM_NODE,PS_SLURMCTLD_PORT,PS_SLURMD_PORT,PS_SLURM_PARTITION,PS_SLURM_REALMEM,PS_SLURM_FAKE_GPUS,PS_SLURM_SMOKE,PS_SLURM_NO_INSTALL)
fi
export PS_SLURM_DIR

WORK="$(mktemp -d /tmp/promptscape-slurm-test.XXXXXX)"
STARTED_CLUSTER=0
BG_PIDS=()

cleanup() {
    local rc=$?
    set +e
    for pid in "${BG_PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            log "killing local run (pid $pid)"
            kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
        fi
    done
    # cancel whatever our snakemake runs left in the queue (their jobs are named by run ID)
    if command -v scancel >/dev/null 2>&1; then
        for id in $(grep -ho 'SLURM run ID: [0-9a-f-]*' "$WORK"/*.log 2>/dev/null | awk '{print $4}' | sort -u); do
            scancel --name="$id" 2>/dev/null
        done
    fi
    if [ "$STARTED_CLUSTER" = 1 ] && [ "${PS_SLURM_TEST_KEEP_CLUSTER:-0}" != 1 ]; then
        "${SUDO[@]}" "$HERE/stop_cluster.sh" | sed 's/^/    /'
    fi
    if [ "$rc" -eq 0 ] && [ "${PS_SLURM_TEST_KEEP:-0}" != 1 ]; then
        rm -rf "$WORK"
    else
        log "work directory kept: $WORK (logs: $WORK/*.log)"
    fi
    log "total $(secs "$T_START") s, exit status $rc"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "python: $PYTHON ($("$PYTHON" -m snakemake --version 2>/dev/null | head -1), plugin $("$PYTHON" -c 'import importlib.metadata as m; print(m.version("snakemake-executor-plugin-slurm"))'))"
log "work directory: $WORK"

# ---------------------------------------------------------------- 1. cluster
t=$(now)
before="$(cat "$PS_SLURM_DIR/pids" 2>/dev/null || true)"
"${SUDO[@]}" "$HERE/start_cluster.sh" > "$WORK/start_cluster.log" 2>&1 \
    || { cat "$WORK/start_cluster.log" >&2; die "start_cluster.sh failed"; }
after="$(cat "$PS_SLURM_DIR/pids" 2>/dev/null || true)"
[ "$before" != "$after" ] && STARTED_CLUSTER=1
T_CLUSTER=$(secs "$t")
NODE_CPUS=$(sinfo -h -p "$PS_SLURM_PARTITION" -o '%c' | head -n1 | tr -d '+ ')
if sinfo -h -p "$PS_SLURM_PARTITION" -o '%G' | grep -q 'gpu'; then GPUS=1; else GPUS=0; fi
log "cluster up in $T_CLUSTER s (started by this script: $STARTED_CLUSTER; partition $PS_SLURM_PARTITION, $NODE_CPUS CPUs, GPU: $GPUS)"

# ---------------------------------------------------------------- configs
config_of() {
    case "$1" in
        tiny) echo "$REPO/tests/data/tiny/config.yaml" ;;
        neural)
            # Nested --config values arrive as strings, so training.gpus goes in a config file.
            "$PYTHON" - "$REPO/tests/data/neural/config.yaml" "$WORK/neural.yaml" "$GPUS" <<'EOF'
import sys, yaml
config = yaml.safe_load(open(sys.argv[1]))
config.setdefault("training", {})["gpus"] = int(sys.argv[3])
yaml.safe_dump(config, open(sys.argv[2], "w"), sort_keys=False)
EOF
            echo "$WORK/neural.yaml" ;;
        *) die "unknown config '$1' in PS_SLURM_TEST_CONFIGS (tiny, neural)" ;;
    esac
}
declare -A CONFIG
for name in $CONFIGS; do CONFIG[$name]="$(config_of "$name")"; done

snakemake_cmd() { # snakemake_cmd DIR CONFIG ARGS... (timeout -k: a stuck status query makes snakemake ignore SIGTERM)
    local dir=$1 config=$2; shift 2
    timeout -k 30 "$SM_TIMEOUT" "$PYTHON" -m snakemake --snakefile "$REPO/Snakefile" \
        --directory "$dir" --configfile "$config" "$@"
}

# ---------------------------------------------------------------- 2a. local reference runs
run_local() { # run_local NAME -> $WORK/local-NAME.{log,rc,secs}
    local name=$1 t0 rc=0
    t0=$(now)
    mkdir -p "$WORK/local-$name"
    snakemake_cmd "$WORK/local-$name" "${CONFIG[$name]}" --cores 2 > "$WORK/local-$name.log" 2>&1 || rc=$?
    echo "$rc" > "$WORK/local-$name.rc"
    secs "$t0" > "$WORK/local-$name.secs"
}
run_all_local() { for name in $CONFIGS; do run_local "$name"; done; }
cd "$REPO"
if [ "$PARALLEL" = 1 ]; then
    set -m  # own process group, so that cleanup can stop the whole local run
    run_all_local &
    BG_PIDS+=($!)
    set +m
    log "local reference runs started in the background (pid ${BG_PIDS[0]})"
fi

# ---------------------------------------------------------------- 2b. SLURM runs
declare -A T_SLURM NSUB NJOBS
for name in $CONFIGS; do
    dir="$WORK/slurm-$name"
    mkdir -p "$dir"
    log "[$name] SLURM run: snakemake --profile workflow/profiles/slurm --cores $NODE_CPUS --default-resources slurm_partition=$PS_SLURM_PARTITION runtime=10 mem_mb=500 --slurm-init-seconds-before-status-checks 2"
    t=$(now)
    snakemake_cmd "$dir" "${CONFIG[$name]}" --profile "$REPO/workflow/profiles/slurm" \
        --cores "$NODE_CPUS" \
        --default-resources slurm_partition="$PS_SLURM_PARTITION" runtime=10 mem_mb=500 \
        --slurm-init-seconds-before-status-checks 2 \
        > "$WORK/slurm-$name.log" 2>&1 \
        || { rc=$?; tail -n 60 "$WORK/slurm-$name.log" >&2
             [ "$rc" = 124 ] || [ "$rc" = 137 ] && die "[$name] SLURM run timed out after $SM_TIMEOUT s"
             die "[$name] SLURM run failed (exit $rc); log $WORK/slurm-$name.log, job logs $dir/.snakemake/slurm_logs/"; }
    T_SLURM[$name]=$(secs "$t")
    NSUB[$name]=$(grep -c 'has been submitted with SLURM jobid' "$WORK/slurm-$name.log" || true)
    NJOBS[$name]=$(grep '^Finished jobid' "$WORK/slurm-$name.log" | grep -vc '(Rule: all)' || true)
    log "[$name] SLURM run ok in ${T_SLURM[$name]} s: ${NJOBS[$name]} jobs in ${NSUB[$name]} SLURM submissions (+ localrule all)"
    grep -q 'has been submitted with SLURM jobid' "$WORK/slurm-$name.log" || die "[$name] no job went through SLURM"
    [ "${NSUB[$name]}" -lt "${NJOBS[$name]}" ] || die "[$name] the small jobs were not grouped (${NSUB[$name]} submissions for ${NJOBS[$name]} jobs)"
    if [ "$name" = neural ] && [ "$GPUS" = 1 ]; then
        for rule in train_predictor score_prompts; do
            for jid in $(grep -o "SLURM jobid [0-9]* (log: [^)]*/rule_${rule}/" "$WORK/slurm-$name.log" | awk '{print $3}'); do
                scontrol show job "$jid" | grep -q 'TresPerJob=gres:gpu:1' \
                    || die "[$name] SLURM job $jid ($rule) did not ask for a GPU"
            done
        done
        log "[$name] train_predictor and score_prompts jobs ran with gres:gpu:1"
    fi
    # incremental: nothing left to do afterwards
    snakemake_cmd "$dir" "${CONFIG[$name]}" --profile "$REPO/workflow/profiles/slurm" \
        --cores "$NODE_CPUS" -n > "$WORK/slurm-$name-dryrun.log" 2>&1 \
        || { tail -n 30 "$WORK/slurm-$name-dryrun.log" >&2; die "[$name] dry run after the SLURM run failed"; }
    grep -q 'Nothing to be done' "$WORK/slurm-$name-dryrun.log" \
        || { grep -A 20 'Job stats' "$WORK/slurm-$name-dryrun.log" >&2; die "[$name] a dry run after the SLURM run still has jobs to do"; }
done

# ---------------------------------------------------------------- 2a'. wait for local runs
if [ "$PARALLEL" = 1 ]; then
    t=$(now)
    wait "${BG_PIDS[0]}" || true
    log "waited $(secs "$t") s for the local runs after the SLURM runs"
else
    run_all_local
fi
for name in $CONFIGS; do
    rc=$(cat "$WORK/local-$name.rc" 2>/dev/null || echo missing)
    [ "$rc" = 0 ] || { tail -n 40 "$WORK/local-$name.log" >&2; die "[$name] local run failed (exit $rc); log $WORK/local-$name.log"; }
    log "[$name] local run ok in $(cat "$WORK/local-$name.secs") s"
done

# ---------------------------------------------------------------- 3. bit-identical artifacts
for name in $CONFIGS; do
    "$PYTHON" - "$WORK/local-$name/results" "$WORK/slurm-$name/results" "$name" <<'EOF' || die "[$name] SLURM and local artifacts differ"
import hashlib, sys
from pathlib import Path

def digests(root):
    root = Path(root)
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.parquet"))}

local, slurm, name = digests(sys.argv[1]), digests(sys.argv[2]), sys.argv[3]
ok = bool(local) and local == slurm
for path in sorted(set(local) | set(slurm)):
    if local.get(path) != slurm.get(path):
        print(f"[slurm-test] [{name}] differs: {path}: local {local.get(path, 'missing')[:12]}"
              f" slurm {slurm.get(path, 'missing')[:12]}", file=sys.stderr)
if not local:
    print(f"[slurm-test] [{name}] no Parquet files under {sys.argv[1]}", file=sys.stderr)
print(f"[slurm-test] [{name}] {len(local)} Parquet files, "
      f"{sum(local.get(p) == slurm.get(p) for p in local)} bit-identical")
sys.exit(0 if ok else 1)
EOF
done

# ---------------------------------------------------------------- 4. timings
log "timings (s): cluster start $T_CLUSTER"
for name in $CONFIGS; do
    log "  $name: SLURM ${T_SLURM[$name]} (${NJOBS[$name]} jobs, ${NSUB[$name]} submissions), local $(cat "$WORK/local-$name.secs")$([ "$PARALLEL" = 1 ] && echo ' (concurrently)')"
done
log "PASS"
