#!/usr/bin/env bash
# Measures the run-time figures of config/README.md ("Run times") on a fresh copy of the
# working tree:
#   1. the default config from scratch with `snakemake --cores 2`;
#   2. a no-op rerun (nothing to do);
#   3. a second run from scratch in another directory, and whether every Parquet file is
#      bit-identical to the first run's.
# Usage: bash benchmarks/run_times.sh [--bayes-only] [--once] [extra snakemake args...]
#   --bayes-only  the default config with every experiment's predictors set to [bayes]
#   --once        skip the second run from scratch (and the bit-identity check)
# Runs with the snakemake on PATH (activate the project's venv first).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
bayes_only=0; once=0
while [[ $# -gt 0 ]]; do
    case $1 in
        --bayes-only) bayes_only=1; shift ;;
        --once) once=1; shift ;;
        *) break ;;
    esac
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

run() {  # run DIR ARGS...: time one snakemake invocation in DIR
    local dir=$1; shift
    local start end
    start=$(date +%s.%N)
    (cd "$dir" && snakemake --cores 2 "$@" > "$dir.log" 2>&1) || { tail -40 "$dir.log"; exit 1; }
    end=$(date +%s.%N)
    python3 -c "print(f'{$end - $start:.1f}')"
}

for copy in a b; do
    mkdir -p "$work/$copy"
    git -C "$repo" ls-files -z | (cd "$repo" && xargs -0 cp -P --parents -t "$work/$copy")
    # Uncommitted changes count too: copy the working tree's versions of tracked files.
    if [[ $bayes_only == 1 ]]; then
        python3 - "$work/$copy/config/config.yaml" <<'PY'
import sys, yaml
path = sys.argv[1]
config = yaml.safe_load(open(path))
for experiment in config["experiments"].values():
    experiment["predictors"] = ["bayes"]
yaml.safe_dump(config, open(path, "w"), sort_keys=False)
PY
    fi
done

echo "machine: $(nproc) cores, $(python3 -c 'import os; print(round(os.sysconf("SC_PAGE_SIZE")*os.sysconf("SC_PHYS_PAGES")/2**30))') GiB; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "from scratch (s):   $(run "$work/a" "$@")"
echo "jobs run:           $(grep -c '^Finished jobid' "$work/a.log" || true)"
echo "no-op rerun (s):    $(run "$work/a" "$@")"
grep -q "Nothing to be done" "$work/a.log" && echo "no-op rerun:        nothing to be done" \
    || echo "no-op rerun:        RAN JOBS (see log)"
[[ $once == 1 ]] && exit 0
echo "second scratch (s): $(run "$work/b" "$@")"
if diff <(cd "$work/a/results" && find . -name '*.parquet' -exec sha256sum {} + | sort -k2) \
        <(cd "$work/b/results" && find . -name '*.parquet' -exec sha256sum {} + | sort -k2) > /dev/null; then
    echo "parquet files:      $(find "$work/a/results" -name '*.parquet' | wc -l) files, bit-identical across the two runs"
else
    echo "parquet files:      DIFFER between the two runs"; exit 1
fi
