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


def test_a_forked_command_runs_in_the_callers_environment_and_says_what_a_new_process_says(
        tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "Snakefile").write_text(
        'import os\n'
        'rule all:\n'
        '    output: "out.txt"\n'
        '    run:\n'
        '        open(output[0], "w").write(os.environ["EXTRA_VARIABLE"] + " " + os.getcwd())\n')
    env = environment(EXTRA_VARIABLE="from the caller")
    forked = workflow_helpers._server().run(["--cores", "1"], env=env, timeout=120, check=True)
    assert (tmp_path / "out.txt").read_text() == f"from the caller {tmp_path}"
    assert "1 of 1 steps (100%) done" in forked.stderr  # Snakemake's last log message
    argv = ["--no-such-option"]
    new = subprocess.run([sys.executable, "-m", "snakemake", *argv], capture_output=True,
                         text=True, env=env, timeout=120)
    forked = workflow_helpers._server().run(argv, env=env, timeout=120, check=False)
    assert new.returncode == forked.returncode == 2
    # argparse's usage (the order of a choice set's members varies between processes, as
    # string hashes do) and its error, word for word.
    assert new.stderr.splitlines()[0] == forked.stderr.splitlines()[0]
    assert new.stderr.splitlines()[-1] == forked.stderr.splitlines()[-1]
    assert "unrecognized arguments: --no-such-option" in forked.stderr


def test_a_command_past_its_timeout_is_killed_with_its_jobs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "Snakefile").write_text(
        'rule all:\n'
        '    output: "slow.txt"\n'
        '    shell: "echo $$ > pid.txt; sleep 60; touch {output}"\n')
    with pytest.raises(subprocess.TimeoutExpired):
        workflow_helpers._server().run(["--cores", "1"], env=environment(), timeout=3,
                                       check=False)
    job = int((tmp_path / "pid.txt").read_text())
    with pytest.raises(ProcessLookupError):  # killed with its command's process group
        for _ in range(50):
            os.kill(job, 0)
            time.sleep(0.1)
    # The server goes on serving.
    assert workflow_helpers._server().run(["--version"], env=environment(), timeout=60,
                                          check=True).stdout.strip()
