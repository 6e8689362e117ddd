"""Complete runs of the small scenarios, made once per session: the tiny run, shared by the
workflow, report, summary and interruption tests, the neural run, and the selection and
strategies runs of their modules (each run parses the workflow and runs its jobs: the
largest cost of the suite).

The runs start in the background as soon as collection ends, when a collected test uses
them, and go on while the unit tests run (those are collected first); a test that uses one
waits for it to end there. They run at a lower priority (nice 10), mostly on the CPU the
unit tests leave: at the same priority they starved the tests that train networks (torch's
threads wait on one another; one such test took 84 s instead of about 1 s).

The shared runs are read-only: a test that changes a run (another config, an interruption,
a rerun) works on `copy_run(run, tmp_path)`. Each fixture checks, when the session ends,
that every file of its run is as it was after the run (contents and modification times;
`fingerprint`), so a test that changed one fails there rather than misleading the tests
after it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import IO

import pytest

from workflow_helpers import (NEURAL, REPO, TINY, environment, fingerprint,
                              snakemake_command)

DATA = REPO / "tests" / "data"
SHARED = {  # fixture: (name, config)
    "tiny_run": ("tiny", TINY),
    "neural_run": ("neural", NEURAL),
    "selection_run": ("selection", DATA / "selection" / "config.yaml"),
    "strategies_run": ("strategies", DATA / "strategies" / "config.yaml"),
}
_started: dict[str, tuple[Path, subprocess.Popen, IO[str]]] = {}


def _start(config: pytest.Config, fixture: str) -> None:
    name, configfile = SHARED[fixture]
    workdir = config._tmp_path_factory.mktemp(name)  # the tmp_path_factory fixture's
    log = open(workdir.parent / f"{workdir.name}.log", "w+")
    proc = subprocess.Popen(snakemake_command(workdir, configfile), stdout=log,
                            stderr=subprocess.STDOUT, env=environment(),
                            preexec_fn=lambda: os.nice(10))
    _started[fixture] = (workdir, proc, log)


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly:
        return
    used = {name for item in session.items for name in getattr(item, "fixturenames", ())}
    for fixture in sorted(used & SHARED.keys()):
        _start(session.config, fixture)


def pytest_sessionfinish(session: pytest.Session) -> None:
    for _, proc, log in _started.values():  # a run no test waited for (a session cut short)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def _shared_run(request: pytest.FixtureRequest, fixture: str):
    if fixture not in _started:  # not started at collection (a test that asks for it late)
        _start(request.config, fixture)
    workdir, proc, log = _started[fixture]
    proc.wait(timeout=900)
    if proc.returncode != 0:
        log.seek(0)
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{log.read()[-8000:]}")
    before = fingerprint(workdir)
    yield workdir
    after = fingerprint(workdir)
    changed = sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
    assert not changed, (f"a test changed the shared run {workdir.name} (copy it first: "
                         f"copy_run): {changed[:10]}")


@pytest.fixture(scope="session")
def tiny_run(request):
    """The tiny scenario (tests/data/tiny), run to the end (`all`)."""
    yield from _shared_run(request, "tiny_run")


@pytest.fixture(scope="session")
def neural_run(request):
    """The neural scenario (tests/data/neural), run to the end (`all`)."""
    yield from _shared_run(request, "neural_run")


@pytest.fixture(scope="session")
def selection_run(request):
    """The dataset selection scenario (tests/data/selection), run to the end (`all`)."""
    yield from _shared_run(request, "selection_run")


@pytest.fixture(scope="session")
def strategies_run(request):
    """The search strategies scenario (tests/data/strategies), run to the end (`all`)."""
    yield from _shared_run(request, "strategies_run")
