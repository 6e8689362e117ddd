"""The tests' Snakemake server (tests/snakemake_server.py): a command run in its fork says
what the same command says in a new process, in the caller's environment, and a command
past its timeout is killed with its jobs."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

import workflow_helpers
from workflow_helpers import environment

SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def test_a_forked_command_runs_in_the_callers_environment_and_says_what_a_new_process_says(
        tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "Snakefile").write_text(
        'import os, sys\n'
        'print("sys.path", sys.path)\n'
        'rule all:\n'
        '    output: "out.txt"\n'
        '    run:\n'
        '        open(output[0], "w").write(os.environ["EXTRA_VARIABLE"] + " " + os.getcwd())\n')
    env = environment(EXTRA_VARIABLE="from the caller")
    forked = workflow_helpers._server().run([*SNAKEMAKE, "--cores", "1"], env=env, timeout=120,
                                            check=True)
    assert (tmp_path / "out.txt").read_text() == f"from the caller {tmp_path}"
    assert "1 of 1 steps (100%) done" in forked.stderr  # Snakemake's last log message
    # The Snakefile sees the sys.path of a new process (PYTHONPATH first, then the
    # interpreter's, then what importing Snakemake appended).
    new = subprocess.run([*SNAKEMAKE, "-n"], capture_output=True,
                         text=True, env=env, timeout=120)
    assert new.returncode == 0, new.stderr
    # (The first line of each: Snakemake's own process; a `run:` job parses it again.)
    line = next(x for x in new.stdout.splitlines() if x.startswith("sys.path"))
    assert next(x for x in forked.stdout.splitlines() if x.startswith("sys.path")) == line
    # argparse names the program as `python -m snakemake` does.
    forked = workflow_helpers._server().run([*SNAKEMAKE, "--no-such-option"], env=env,
                                            timeout=120, check=False)
    assert forked.returncode == 2
    assert forked.stderr.startswith("usage: __main__.py [-h] [--dry-run]")
    assert forked.stderr.splitlines()[-1] == (
        "__main__.py: error: unrecognized arguments: --no-such-option")


def test_a_command_past_its_timeout_is_killed_with_its_jobs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "Snakefile").write_text(
        'rule all:\n'
        '    output: "slow.txt"\n'
        '    shell: "echo $$ > pid.txt; sleep 60; touch {output}"\n')
    with pytest.raises(subprocess.TimeoutExpired):
        workflow_helpers._server().run([*SNAKEMAKE, "--cores", "1"], env=environment(),
                                       timeout=3, check=False)
    job = int((tmp_path / "pid.txt").read_text())
    with pytest.raises(ProcessLookupError):  # killed with its command's process group
        for _ in range(50):
            os.kill(job, 0)
            time.sleep(0.1)
    # The server goes on serving.
    assert workflow_helpers._server().run([*SNAKEMAKE, "--version"], env=environment(),
                                          timeout=60, check=True).stdout.strip()
