#!/usr/bin/env bash
# CPU time (user + system of the whole process tree, /usr/bin/time -v) of the test suite's
# shared scenario runs (tests/workflow/conftest.py), each run alone from scratch, as the
# session fixtures run them:
#
#     benchmarks/scenario_cpu.sh OUT_DIR [tiny neural selection strategies]
#
# OUT_DIR/<name>/ holds each complete run (reusable by `pytest -p benchmarks.pytest_cpu
# --reuse-runs OUT_DIR`), OUT_DIR/<name>.time the measurement; one line per scenario is
# printed. On a shared machine compare CPU seconds, not wall times.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "$1"); shift
names=("$@"); [ ${#names[@]} -gt 0 ] || names=(tiny neural selection strategies)
python=${PYTHON:-python}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PATH="$PWD/tests/stubs:$PATH"
mkdir -p "$out"
for name in "${names[@]}"; do
  rm -rf "${out:?}/$name"
  /usr/bin/time -v -o "$out/$name.time" "$python" -m snakemake --snakefile "$PWD/Snakefile" \
      --directory "$out/$name" --configfile "$PWD/tests/data/$name/config.yaml" --cores 2 \
      > "$out/$name.log" 2>&1
  awk -v n="$name" -F': ' '/User time/ {u=$2} /System time/ {s=$2} /Elapsed/ {w=$2}
      END {printf "%-11s %7.1f s CPU (user %.1f + system %.1f), wall %s\n", n, u + s, u, s, w}' \
      "$out/$name.time"
done
