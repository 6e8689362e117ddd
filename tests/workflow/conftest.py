"""Complete runs of the small scenarios, made once per session and shared by the workflow,
report, summary and interruption tests (each run parses the workflow and runs its jobs:
the largest cost of the suite).

The shared runs are read-only: a test that changes a run (another config, an interruption,
a rerun) works on `copy_run(run, tmp_path)`. Each fixture checks, when the session ends,
that every file of its run is as it was after the run (contents and modification times;
`fingerprint`), so a test that changed one fails there rather than misleading the tests
after it.
"""

from __future__ import annotations

import pytest

from workflow_helpers import NEURAL, TINY, fingerprint, snakemake


def _shared_run(tmp_path_factory, name, config):
    workdir = tmp_path_factory.mktemp(name)
    snakemake(workdir, config)
    before = fingerprint(workdir)
    yield workdir
    after = fingerprint(workdir)
    changed = sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
    assert not changed, (f"a test changed the shared {name} run (copy it first: copy_run): "
                         f"{changed[:10]}")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The tiny scenario (tests/data/tiny), run to the end (`all`)."""
    yield from _shared_run(tmp_path_factory, "tiny", TINY)


@pytest.fixture(scope="session")
def neural_run(tmp_path_factory):
    """The neural scenario (tests/data/neural), run to the end (`all`)."""
    yield from _shared_run(tmp_path_factory, "neural", NEURAL)
