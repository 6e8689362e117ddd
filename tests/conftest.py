"""Suite-wide options.

`--across-kernels` selects the tests marked `across_kernels`, which rebuild a scenario with
numpy's and torch's SIMD kernels limited to their baseline and compare it with this session's
run (docs/caching.md, "Reproducibility across machines"); without it they are deselected, as
they repeat a scenario run that the suite's time budget has no room for. CI runs them (.ci/run).
`--all-configs` likewise selects the tests marked `all_configs`, which repeat a check made on
the tiny config on every other config of the repository (a dry run each).
"""

from __future__ import annotations

import atexit
import gc
import os
import shutil
import tempfile

import pytest

import job_server

# One OpenMP thread for torch (and OpenMP BLAS) in the test process and in everything it
# starts, unless the caller chose a number. The tests run small tensors, where a second
# thread gains nothing, and the shared scenario runs go on beside the unit tests: there
# torch's threads spin waiting for one another on the busy cores, and the neural unit tests
# (tests/unit/neural/test_models.py) took 178 CPU-seconds instead of 5 (docs/benchmarks.md,
# "Test suite"). Set before any test module imports torch, which reads it once.
os.environ.setdefault("OMP_NUM_THREADS", "1")

# The code identities' disk cache (promptscape.pipeline.provenance) of this session, shared by
# its xdist workers and every Snakemake process they start (all inherit the environment),
# and removed at the end: the tests compute identities of edited copies of the library,
# which do not belong in the user's cache.
if "PROMPTSCAPE_CACHE_DIR" not in os.environ:
    os.environ["PROMPTSCAPE_CACHE_DIR"] = tempfile.mkdtemp(prefix="promptscape-identities-")
    atexit.register(shutil.rmtree, os.environ["PROMPTSCAPE_CACHE_DIR"], ignore_errors=True)


# The job servers of this session (tests/job_server.py), which run the Snakemake jobs of the
# tests' runs in forks of a process that imported their libraries once; made by the first
# process of the session (xdist's workers inherit the folder) and ended at its exit. Where
# they cannot run (not Linux), or with PROMPTSCAPE_TEST_JOB_SERVERS set empty, every job is
# a new process.
if job_server.AVAILABLE and job_server.VARIABLE not in os.environ:
    _JOB_SERVERS = job_server.start_session()
    atexit.register(job_server.end_session, _JOB_SERVERS)

    @pytest.hookimpl(tryfirst=True)  # before benchmarks/pytest_cpu.py reads the CPU lines
    def pytest_terminal_summary(terminalreporter) -> None:
        job_server.stop_servers(_JOB_SERVERS)  # every test has ended
        terminalreporter.write_line(job_server.summary(_JOB_SERVERS))


def pytest_collection_finish(session: pytest.Session) -> None:
    """Less of the collector's work in a test process: the objects of the libraries and test
    modules imported by now (torch's, pandas', Altair's: about 340,000) are frozen out of its
    reach, and it runs a few times less often. On the unit tests in one process it took 7.4
    of 130 CPU-s, 3.0 so (timed by `gc.callbacks`)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 10)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--across-kernels", action="store_true",
                     help="run the tests marked across_kernels (a scenario rebuilt with "
                          "baseline SIMD kernels, compared with this session's run)")
    parser.addoption("--all-configs", action="store_true",
                     help="run the tests marked all_configs (a dry run of every config of "
                          "the repository)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    opted = {marker for marker, option in (("across_kernels", "--across-kernels"),
                                           ("all_configs", "--all-configs"))
             if not config.getoption(option)}
    kept = [item for item in items if not opted & set(item.keywords)]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept
