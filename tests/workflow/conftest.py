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

Under pytest-xdist (the suite's default, `-n auto --maxprocesses 4` in pyproject.toml) each
run is still made once per session: the first worker to collect starts it, under a file lock,
in a folder all workers share; the run writes its exit status to `<name>.rc` when it ends,
and every worker that needs it waits for that file. A worker that started a run waits for it
at the end of its session (another worker may still need it), unless the session was
interrupted.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
from filelock import FileLock

import job_server

from workflow_helpers import (NEURAL, REPO, TINY, environment, fingerprint,
                              snakemake_command)

DATA = REPO / "tests" / "data"
SHARED = {  # fixture: (name, config)
    "tiny_run": ("tiny", TINY),
    "neural_run": ("neural", NEURAL),
    "selection_run": ("selection", DATA / "selection" / "config.yaml"),
    "strategies_run": ("strategies", DATA / "strategies" / "config.yaml"),
}
RUN_TIMEOUT = 900  # seconds a test waits for a shared run
_started: dict[str, Path] = {}  # fixture: its run folder (this process's or another worker's)
_owned: dict[str, subprocess.Popen] = {}  # the runs this process started


def _root(config: pytest.Config) -> Path:
    """The folder of the shared runs: the session's temporary root, which all xdist workers of
    one session share (each worker's own base folder is below it)."""
    base = config._tmp_path_factory.getbasetemp()  # the tmp_path_factory fixture's
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "shared-runs"
    root.mkdir(exist_ok=True)
    return root


def _start(config: pytest.Config, fixture: str) -> None:
    name, configfile = SHARED[fixture]
    root = _root(config)
    workdir = root / name
    with FileLock(str(root / f"{name}.lock")):
        if not workdir.exists():
            workdir.mkdir()
            # The run writes its exit status beside its folder when it ends, for whichever
            # worker waits for it.
            # `python -m snakemake`, its jobs on the session's job servers
            # (tests/snakemake_server.py, tests/job_server.py), their CPU under this name.
            argv = [sys.executable, str(REPO / "tests" / "snakemake_server.py"), "--main",
                    *snakemake_command(workdir, configfile)[3:]]
            command = (f"{shlex.join(argv)} "
                       f"> {shlex.quote(str(root / (name + '.log')))} 2>&1; "
                       f"echo $? > {shlex.quote(str(root / (name + '.rc.tmp')))} && "
                       f"mv {shlex.quote(str(root / (name + '.rc.tmp')))} "
                       f"{shlex.quote(str(root / (name + '.rc')))}")
            _owned[fixture] = subprocess.Popen(["sh", "-c", command],
                                               env=environment(**{job_server.TAG: fixture}),
                                               preexec_fn=lambda: os.nice(10),
                                               start_new_session=True)
    _started[fixture] = workdir


def _wait(workdir: Path, timeout: float = RUN_TIMEOUT) -> int:
    done = workdir.parent / f"{workdir.name}.rc"
    deadline = time.monotonic() + timeout
    while not done.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"the shared run {workdir.name} did not end in {timeout} s")
        time.sleep(0.2)
    return int(done.read_text())


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, 9)  # the shell, Snakemake and its jobs
    except ProcessLookupError:
        pass
    proc.wait()


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly:
        return
    used = {name for item in session.items for name in getattr(item, "fixturenames", ())}
    for fixture in sorted(used & SHARED.keys()):
        _start(session.config, fixture)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # A run no test of this process waited for: without xdist no test needs it any more (a
    # session cut short); under xdist another worker may, unless the session was interrupted.
    waits = (os.environ.get("PYTEST_XDIST_WORKER")
             and exitstatus != pytest.ExitCode.INTERRUPTED and not session.shouldstop)
    for fixture, proc in _owned.items():
        if proc.poll() is None:
            if waits:
                try:
                    proc.wait(timeout=RUN_TIMEOUT)
                    continue
                except subprocess.TimeoutExpired:
                    pass
            _kill(proc)


def _shared_run(request: pytest.FixtureRequest, fixture: str):
    if fixture not in _started:  # not started at collection (a test that asks for it late)
        _start(request.config, fixture)
    workdir = _started[fixture]
    returncode = _wait(workdir)
    if fixture in _owned:  # reaped here, so that its CPU counts as this setup's
        _owned[fixture].wait()  # (getrusage of the children waited for)
    if returncode != 0:
        log = (workdir.parent / f"{workdir.name}.log").read_text()
        raise AssertionError(f"snakemake failed ({returncode}):\n{log[-8000:]}")
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
