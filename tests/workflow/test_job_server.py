"""The tests' job servers (tests/job_server.py): a script run through the client ends as it
ends in a new process (output, exit status, traceback, files it left open), sees what a new
process sees (arguments, working directory, environment, sys.path, __main__), and a client
killed or signalled takes its job with it. The workflow's own artifacts built on the servers
are compared with a rebuild in new processes by test_workflow.py
(test_second_run_from_scratch_is_bit_identical)."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time

import pytest

import job_server
from workflow_helpers import SRC, environment

# Not where the servers cannot run (not Linux) or were switched off
# (PROMPTSCAPE_TEST_JOB_SERVERS set empty): there every job is a new process.
needs_servers = pytest.mark.skipif(not job_server.enabled(),
                                   reason="this session runs its jobs as new processes")

SCRIPT = '''\
import json, os, sys
import numpy
ending = sys.argv[1]
if ending == "normal":  # a new process importing torch takes a second: in one ending only
    import torch
def annotated(x: print("annotation evaluated") or int): pass
print("out", flush=True)
print("err", file=sys.stderr)
left_open = open("left_open.txt", "w")
left_open.write("written, never closed")
json.dump({"argv": sys.argv, "cwd": os.getcwd(), "variable": os.environ.get("PYTEST_SOME_VARIABLE"),
           "path0": sys.path[0], "name": __name__, "file": __file__,
           "main": sys.modules["__main__"].__dict__ is globals(),
           "seeds": [float(numpy.random.rand())]
                    + ([float(torch.rand(1))] if ending == "normal" else [])},
          open("seen.json", "w"))
if ending == "exit":
    sys.exit(3)
if ending == "raise":
    raise ValueError("raised at the top")
if ending == "message":
    sys.exit("a message")
'''


# A job's environment as Snakemake makes it (a job of one thread), so that these scripts run
# on the server the tests' jobs run on; a variable of pytest's, which no server's key reads.
JOB_ENV = {**{name: "1" for name in ("OMP_NUM_THREADS", "GOTO_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                      "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                                      "NUMEXPR_NUM_THREADS")},
           **{name: tempfile.gettempdir() for name in ("TMPDIR", "TMP", "TEMPDIR", "TEMP")},
           "PYTEST_SOME_VARIABLE": "set"}


def _run(command: list[str], folder) -> tuple[subprocess.CompletedProcess, dict, str]:
    proc = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=120,
                          env=environment(**JOB_ENV))
    seen = json.loads((folder / "seen.json").read_text().replace(str(folder), "<cwd>"))
    return proc, seen, (folder / "left_open.txt").read_text()


@needs_servers
@pytest.mark.parametrize("ending", ["normal", "exit", "raise", "message"])
def test_a_script_run_by_a_server_ends_and_sees_what_it_does_in_a_new_process(ending,
                                                                               tmp_path):
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "job.py").write_text(SCRIPT)
    results, seeds = {}, []
    for name, python in (("new", [sys.executable]),
                         ("server", shlex.split(job_server.command())),
                         ("server again", shlex.split(job_server.command()))):
        folder = tmp_path / name.replace(" ", "_")
        folder.mkdir()
        proc, seen, left_open = _run([*python, str(scripts / "job.py"), ending], folder)
        seeds.append(seen.pop("seeds"))  # drawn anew in every process
        results[name] = (proc.returncode, proc.stdout,
                         # a traceback from the script's frame, as in a new process
                         proc.stderr.splitlines(), seen, left_open)
    assert results["server"] == results["new"] == results["server again"]
    assert results["new"][0] == {"normal": 0, "exit": 3, "raise": 1, "message": 1}[ending]
    assert results["new"][1].startswith("annotation evaluated\nout\n")
    assert results["new"][4] == "written, never closed"
    assert len(seeds[1]) == (2 if ending == "normal" else 1)
    for library, first, second in zip(("numpy", "torch"), seeds[1], seeds[2]):
        assert first != second, f"two jobs of one server drew the same {library} numbers"


@needs_servers
def test_the_job_dies_with_its_client_and_of_the_signals_it_receives(tmp_path):
    (tmp_path / "job.py").write_text(
        'import os, time\n'
        'open("pid.txt", "w").write(str(os.getpid()))\n'
        'time.sleep(60)\n')
    for ending in (signal.SIGKILL, signal.SIGTERM):
        pid_file = tmp_path / "pid.txt"
        pid_file.unlink(missing_ok=True)
        client = subprocess.Popen([*shlex.split(job_server.command()), str(tmp_path / "job.py")],
                                  cwd=tmp_path, env=environment(**JOB_ENV))
        deadline = time.monotonic() + 60
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline and client.poll() is None
            time.sleep(0.05)
        job = int(pid_file.read_text())
        assert job != client.pid
        client.send_signal(ending)
        # SIGTERM is forwarded and the client dies of the job's signal; SIGKILL ends the
        # client's connection, and the server kills the job.
        assert client.wait(timeout=30) == -ending
        deadline = time.monotonic() + 30
        while _alive(job):
            assert time.monotonic() < deadline, f"job {job} outlived its client ({ending})"
            time.sleep(0.05)


@needs_servers
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_a_job_killed_by_a_signal_kills_its_client_with_it(signum, tmp_path):
    """As the shell that Snakemake started sees a new process die of it (SIGKILL from the
    kernel's OOM killer among them)."""
    (tmp_path / "job.py").write_text(f"import os\nos.kill(os.getpid(), {int(signum)})\n")
    for python in ([sys.executable], shlex.split(job_server.command())):
        proc = subprocess.run([*python, str(tmp_path / "job.py")], cwd=tmp_path,
                              env=environment(**JOB_ENV), capture_output=True, timeout=120)
        assert proc.returncode == -signum, (python, proc.stderr)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_a_server_is_shared_by_environments_that_differ_in_pytests_variables_only():
    env = {"PATH": "/bin", "OMP_NUM_THREADS": "1"}
    assert job_server.key(env) == job_server.key(
        {**env, "PYTEST_CURRENT_TEST": "a test", job_server.TAG: "tiny_run"})
    # Read when the libraries load, so a job needs a server that loaded them so:
    assert job_server.key(env) != job_server.key({**env, "OMP_NUM_THREADS": "2"})
    assert job_server.key(env) != job_server.key({**env, "NPY_DISABLE_CPU_FEATURES": "X86_V4"})


def test_the_session_runs_workflow_jobs_on_servers():
    """The suite's Snakemake commands use the servers (and the rebuild's `fresh_jobs` and an
    edited library's do not), unless they cannot run or PROMPTSCAPE_TEST_JOB_SERVERS is set
    empty."""
    if not job_server.enabled():  # no command uses them
        assert job_server.VARIABLE not in environment()
        return
    assert os.path.isdir(os.environ[job_server.VARIABLE])
    assert job_server.VARIABLE in environment()
    assert job_server.VARIABLE not in environment(fresh_jobs=True)
    assert job_server.VARIABLE not in environment(library=SRC)
