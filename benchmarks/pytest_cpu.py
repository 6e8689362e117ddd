"""CPU time of each test, as a pytest plugin: on a shared machine wall times say little.

    python -m pytest -n 0 -p benchmarks.pytest_cpu [--cpu-report cpu.tsv] [tests ...]

(`-n 0`: in one process; under pytest-xdist the workers' CPU would not reach this summary.)

Each test's CPU is user + system time of pytest's process and of every child it waited for
(`resource.getrusage` of RUSAGE_SELF and RUSAGE_CHILDREN; a Snakemake run and its jobs count
once Snakemake has ended), over its setup, call and teardown. The shared scenario runs of
tests/workflow/conftest.py start in the background at collection and are reaped in their
fixture's setup: this plugin books the CPU of those setups (the whole scenario run) under the
fixture's name, not under the test that first asked for it. The jobs that the tests' job
servers run (tests/job_server.py) are counted from the servers' `cpu.tsv`: a test's under the
test, a shared run's under the run, the servers' imports apart. The terminal summary lists the
slowest tests and the totals of the scenario runs, the unit tests (tests/unit and the doctests
of src/) and the workflow tests; `--cpu-report` writes every row as tab-separated values.

`--reuse-runs DIR` copies each shared run from DIR/<name> (tiny, neural, selection,
strategies: complete runs of their configs made beforehand) instead of running it, to measure
a few workflow tests without paying for the scenarios again. Only for measuring: the copies
are trusted as they are.
"""

from __future__ import annotations

import os
import resource
import shutil
import sys
import time
from collections import defaultdict

import pytest

SHARED_RUNS = ("tiny_run", "neural_run", "selection_run", "strategies_run")


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    # The Snakemake commands of workflow_helpers.snakemake run in forks of a server process,
    # which this process reaps only at its end: their CPU as the server reported it.
    helpers = sys.modules.get("workflow_helpers")
    forked = helpers.forked_cpu() if helpers is not None else 0.0
    return (own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime + forked
            + _jobs_cpu().get("", 0.0))


def _jobs_cpu() -> dict[str, float]:
    """CPU seconds of the jobs the session's job servers ran (tests/job_server.py), by tag:
    "" for a test's, a shared run's fixture name for its jobs, "server" for the servers'
    imports, "server end" for the rest of the servers' own (written when they end, before
    this plugin's summary)."""
    servers = sys.modules.get("job_server")  # imported by tests/conftest.py
    totals: dict[str, float] = defaultdict(float)
    if servers is not None:
        for tag, seconds in servers.cpu_rows(os.environ.get(servers.VARIABLE)):
            totals[tag] += seconds
    return totals


class CpuRecorder:
    def __init__(self, path: str | None):
        self.path = path
        self.tests: dict[str, float] = defaultdict(float)
        self.runs: dict[str, float] = {}  # a shared run's Snakemake process (and its new ones)
        self.run_jobs: dict[str, float] = {}  # its jobs on the job servers
        self.start = _cpu()
        self.wall = time.monotonic()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_fixture_setup(self, fixturedef, request):
        before = _cpu()
        yield
        if fixturedef.argname in SHARED_RUNS and fixturedef.argname not in self.runs:
            # (_cpu() counts no shared run's jobs on the servers: they are the run's alone.)
            self.runs[fixturedef.argname] = _cpu() - before
            self.run_jobs[fixturedef.argname] = _jobs_cpu().get(fixturedef.argname, 0.0)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        before = _cpu()
        booked = sum(self.runs.values())
        yield
        # A shared run reaped during this test's setup is the run's, not the test's.
        self.tests[item.nodeid] += _cpu() - before - (sum(self.runs.values()) - booked)

    @staticmethod
    def part(nodeid: str) -> str:
        if nodeid.startswith("tests/workflow/"):
            return "workflow tests"
        return "unit tests"  # tests/unit and the doctests of src/

    def pytest_terminal_summary(self, terminalreporter):
        jobs = _jobs_cpu()
        servers = jobs.get("server", 0.0) + jobs.get("server end", 0.0)
        total = _cpu() - self.start + servers + sum(jobs.get(name, 0.0) for name in SHARED_RUNS)
        parts: dict[str, float] = defaultdict(float)
        if servers:
            parts["job servers' own (imports, forks)"] = servers
        for nodeid, seconds in self.tests.items():
            parts[self.part(nodeid)] += seconds
        for name, seconds in self.runs.items():
            parts[f"scenario run {name}"] += seconds + self.run_jobs.get(name, 0.0)
        write = terminalreporter.write_line
        terminalreporter.section("CPU time (user + system, with waited-for children)")
        for nodeid, seconds in sorted(self.tests.items(), key=lambda kv: -kv[1])[:25]:
            write(f"{seconds:8.1f} s  {nodeid}")
        write("")
        for name, seconds in sorted(parts.items()):
            write(f"{seconds:8.1f} s  {name}")
        write(f"{total:8.1f} s  whole session after start-up (collection included; "
              f"wall {time.monotonic() - self.wall:.0f} s)")
        if self.path:
            with open(self.path, "w") as out:
                out.write("kind\tname\tcpu_s\n")
                for name, seconds in sorted(self.runs.items()):
                    out.write(f"scenario\t{name}\t{seconds + self.run_jobs.get(name, 0):.2f}\n")
                for nodeid, seconds in self.tests.items():
                    out.write(f"{self.part(nodeid)}\t{nodeid}\t{seconds:.2f}\n")
                out.write(f"session\ttotal\t{total:.2f}\n")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--cpu-report", default=None, metavar="PATH",
                     help="write each test's CPU seconds (and each shared run's) to PATH")
    parser.addoption("--reuse-runs", default=None, metavar="DIR",
                     help="copy the shared scenario runs from DIR/<name> instead of running "
                          "them (measuring only)")


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(CpuRecorder(config.getoption("--cpu-report")), "cpu_recorder")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    source = session.config.getoption("--reuse-runs")
    if not source:
        return
    for plugin in session.config.pluginmanager.get_plugins():
        if hasattr(plugin, "SHARED") and hasattr(plugin, "_started"):  # tests/workflow/conftest
            plugin._start = _copier(plugin, source)


def _copier(conftest, source: str):
    def start(config: pytest.Config, fixture: str) -> None:
        name, _ = conftest.SHARED[fixture]
        workdir = conftest._root(config) / name
        if not workdir.exists():
            shutil.copytree(f"{source}/{name}", workdir, symlinks=True)
            (workdir.parent / f"{name}.log").write_text("")
            (workdir.parent / f"{name}.rc").write_text("0\n")  # a complete run
        conftest._started[fixture] = workdir
    return start
