"""The reproducibility promise across machines (docs/caching.md, "Reproducibility across
machines"), proved on one machine: numpy and torch pick SIMD kernels by CPU at run time, so a
scenario is rebuilt with the other kernel set than this session's (baseline kernels when the
session has them all, all of them when it runs with baseline kernels, as CI's second pass
does) and every artifact is compared with the session's run: every decision (prompt, choice,
rank, count, flag) equal, every float within `tables.ACROSS_HOSTS_RTOL` where no network is
involved (an iterative fit's within `tables.FITTED_ACROSS_HOSTS_RTOL`) (the tiny scenario), within `NETWORK_RTOL` of its column's scale where one is (the
neural scenario: torch computes in float32, and training carries last-bit differences on).
Run with `--across-kernels` (tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess

import pytest

from promptscape.study import tables
from workflow_helpers import NEURAL, TINY, environment, snakemake_command

pytestmark = [pytest.mark.slow, pytest.mark.across_kernels]

# numpy's dispatch limited to its x86-64-v2 baseline, torch's ATen kernels to the scalar ones.
BASELINE_KERNELS = {"NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4", "ATEN_CPU_CAPABILITY": "default"}
# Measured on the neural scenario (networks of 20 training steps), file by file: 1.2e-6 of a
# column's scale on losses and KLs, up to 4e-5 on small statistics of them (a standard error,
# the gap between two KLs, the spread over restarts: 1e-9 to 7e-8 nats).
NETWORK_RTOL = 1e-4


def _other_kernels() -> dict[str, str]:
    env = environment()
    if any(os.environ.get(k) for k in BASELINE_KERNELS):
        for key in BASELINE_KERNELS:
            env.pop(key, None)
    else:
        env.update(BASELINE_KERNELS)
    return env


def _artifacts(root):
    return {str(p.relative_to(root)): p for p in sorted(root.rglob("*.parquet"))
            if "benchmarks" not in p.relative_to(root).parts}


@pytest.mark.parametrize("fixture, config, rtol", [
    ("tiny_run", TINY, tables.ACROSS_HOSTS_RTOL), ("neural_run", NEURAL, NETWORK_RTOL)])
def test_a_run_agrees_with_itself_on_other_kernels(fixture, config, rtol, request, tmp_path):
    run = request.getfixturevalue(fixture)
    proc = subprocess.run(snakemake_command(tmp_path, config), capture_output=True, text=True,
                          env=_other_kernels(), timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    mine, theirs = _artifacts(run / "results"), _artifacts(tmp_path / "results")
    assert sorted(mine) == sorted(theirs)
    disagree = {}
    for path in mine:
        left, right = tables.read(mine[path]), tables.read(theirs[path])
        tolerance = max(rtol, tables.FITTED_ACROSS_HOSTS_RTOL.get(
            tables.artifact_of(mine[path]), 0.0))
        if differ := tables.differences(left, right, tolerance):
            disagree[path] = differ
    assert not disagree, disagree
