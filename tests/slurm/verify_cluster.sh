#!/usr/bin/env bash
# verify_cluster.sh -- check a running test cluster (tests/slurm/start_cluster.sh) end to end.
#
#   tests/slurm/verify_cluster.sh            # sbatch/squeue/srun + 2-rule snakemake workflow
#   tests/slurm/verify_cluster.sh --groups   # + 20 small jobs grouped into 2 submissions, using
#                                            #   tests/slurm/profile-draft.yaml as the profile
#
# Needs `snakemake` (9.x) with snakemake-executor-plugin-slurm (2.x) on PATH, or SNAKEMAKE=/path.
# The fake-GPU rule of the grouped test runs only if the node has gres/gpu
# (start_cluster.sh with PS_SLURM_FAKE_GPUS=1 or more); otherwise it is skipped.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SNAKEMAKE="${SNAKEMAKE:-snakemake}"
PARTITION="${PS_SLURM_PARTITION:-debug}"
WITH_GROUPS=0
[ "${1:-}" = "--groups" ] && WITH_GROUPS=1

log() { echo "[verify] $*"; }
die() { echo "[verify] FAIL: $*" >&2; exit 1; }
now() { date +%s.%N; }
dt() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }

WORK="$(mktemp -d /tmp/promptscape-slurm-verify.XXXXXX)"
cd "$WORK"
log "workdir $WORK"

# ---- plain slurm ------------------------------------------------------------------------------
sinfo -h -o '%P %a %T %D' | grep -q . || die "sinfo shows nothing"
t=$(now)
jid=$(sbatch --parsable -p "$PARTITION" -t 1 --wrap 'hostname')
for _ in $(seq 1 300); do
    st=$(squeue -h --states=all -j "$jid" -o '%T' 2>/dev/null || true)
    case "$st" in COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY) break ;; esac
    sleep 0.2
done
[ "$st" = COMPLETED ] || die "sbatch job $jid ended in state '$st'"
[ "$(cat "slurm-$jid.out")" = "$(hostname)" ] || die "unexpected output of job $jid: $(cat "slurm-$jid.out")"
log "sbatch --wrap hostname: job $jid COMPLETED in $(dt "$t") s, output '$(cat "slurm-$jid.out")'"
squeue >/dev/null || die "squeue failed"
log "squeue ok"
t=$(now)
timeout 60 srun -p "$PARTITION" -n1 -t 1 true || die "srun -n1 true failed"
log "srun -n1 true ok ($(dt "$t") s)"

# ---- snakemake, 2 rules -----------------------------------------------------------------------
command -v "$SNAKEMAKE" >/dev/null 2>&1 || die "snakemake not found (set SNAKEMAKE=...)"
mkdir -p wf1 && cd wf1
cat > Snakefile <<'EOF'
rule all:
    input: "b.txt"

rule a:
    output: "a.txt"
    shell: "echo SLURM_JOB_ID=$SLURM_JOB_ID > {output}"

rule b:
    input: "a.txt"
    output: "b.txt"
    shell: "cat {input} > {output}; echo SLURM_JOB_ID=$SLURM_JOB_ID >> {output}"
EOF
t=$(now)
timeout -k 30 600 "$SNAKEMAKE" --executor slurm --jobs 2 \
    --default-resources slurm_partition="$PARTITION" runtime=10 mem_mb=500 \
    --slurm-status-command squeue --slurm-init-seconds-before-status-checks 2 \
    > snakemake.log 2>&1 || { tail -n 40 snakemake.log >&2; die "snakemake 2-rule workflow failed"; }
[ "$(grep -c '^SLURM_JOB_ID=[0-9]' b.txt)" = 2 ] || die "b.txt does not show two SLURM jobs: $(cat b.txt)"
log "snakemake 2-rule workflow ok in $(dt "$t") s ($(tr '\n' ' ' < b.txt))"
cd "$WORK"

# ---- snakemake, grouped small jobs via the draft profile ----------------------------------------
if [ "$WITH_GROUPS" = 1 ]; then
    mkdir -p wf2/prof && cd wf2
    cp "$HERE/profile-draft.yaml" prof/config.yaml
    if sinfo -h -o '%G' | grep -q 'gpu'; then GPU=1; else GPU=0; fi
    cat > Snakefile <<EOF
N = 20
GPU = $GPU

rule all:
    input: "summary.txt", (["gpu.txt"] if GPU else [])

rule small:
    output: "small/{i}.txt"
    resources: runtime=5, mem_mb=100
    shell: "echo {wildcards.i} \$SLURM_JOB_ID > {output}"

rule summary:
    input: expand("small/{i}.txt", i=range(N))
    output: "summary.txt"
    shell: "cat {input} > {output}"

rule gpu_step:
    input: "summary.txt"
    output: "gpu.txt"
    shell: "echo CUDA_VISIBLE_DEVICES=\$CUDA_VISIBLE_DEVICES > {output}"
EOF
    t=$(now)
    timeout -k 30 900 "$SNAKEMAKE" --profile prof --default-resources slurm_partition="$PARTITION" \
        runtime=10 mem_mb=500 > snakemake.log 2>&1 \
        || { tail -n 40 snakemake.log >&2; die "grouped workflow failed"; }
    nsub=$(awk '{print $2}' summary.txt | sort -u | wc -l)
    [ "$nsub" = 2 ] || die "expected the 20 small jobs in 2 SLURM jobs, got $nsub"
    log "grouped workflow ok in $(dt "$t") s: 20 small jobs ran in $nsub SLURM jobs ($(awk '{print $2}' summary.txt | sort | uniq -c | tr -s ' \n' ' '))"
    if [ "$GPU" = 1 ]; then
        grep -q 'CUDA_VISIBLE_DEVICES=0' gpu.txt || die "gpu_step did not get a GPU: $(cat gpu.txt)"
        log "gpu_step got $(cat gpu.txt)"
    fi
    cd "$WORK"
fi

log "all checks passed"
[ "${KEEP_VERIFY_DIR:-0}" = 1 ] || rm -rf "$WORK"
