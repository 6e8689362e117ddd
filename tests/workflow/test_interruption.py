"""Interrupted runs: nothing half-made is trusted later, and training resumes.

(a) Ctrl-C (SIGINT to Snakemake's process group) in the middle of the search stage, (b)
SIGKILL to one running search job: in both cases the rerun completes and every Parquet
artifact is bit-identical to an uninterrupted run's. (c) Training killed after a checkpoint
resumes from that step and ends with the weights and curve of an uninterrupted run.

(a) and (b) run the tiny scenario up to its search stage (`--until search_prompts`: the
datasets and the searches, 18 jobs), which keeps them to seconds; the uninterrupted run
they are compared with is the shared complete run's datasets and searches
(tests/workflow/conftest.py).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import workflow_helpers
from workflow_helpers import (REPO, TINY, digests, environment, load_config, planned_jobs,
                              snakemake)

pytestmark = pytest.mark.slow

UNTIL = ("--until", "search_prompts")


def search_outputs(config: dict) -> list[str]:
    """Paths (under results/) of every search artifact of a config (as common.smk lists them)."""
    from promptscape.study import config as config_lib

    study = config_lib.load(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    return [f"{exp.name}/search/{selection}/seeds{a}-{b}.parquet"
            for exp in study.experiments.values()
            for selection in exp.selections
            for a, b in exp.seed_blocks()]


def dataset_outputs(config: dict) -> list[str]:
    """Paths (under results/) of every task_data artifact of a config: with the searches,
    what `--until search_prompts` makes (the tiny scenario has no networks)."""
    from promptscape.study import config as config_lib

    study = config_lib.load(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    return [f"{exp.name}/datasets/seeds{a}-{b}.parquet"
            for exp in study.experiments.values() for a, b in exp.seed_blocks()]


SEARCHES = search_outputs(load_config())
UNTIL_SEARCH = sorted(dataset_outputs(load_config()) + SEARCHES)


def run(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """A rerun, to its end (the interrupted runs start in the background: `start`)."""
    return snakemake(workdir, TINY, *args, check=check, timeout=600)


def start(workdir: Path, log: Path) -> workflow_helpers.Started:
    """Snakemake in the background, in a process group of its own (no signal sent to it
    reaches pytest), SIGINT handled by default (a shell starts background commands with
    SIGINT ignored, and under `.ci/run &` Snakemake would never see the Ctrl-C sent here)."""
    return workflow_helpers.start(workdir, TINY, *UNTIL, log=log)


def wait_for(condition, proc, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if proc.poll() is not None:
            pytest.fail(f"snakemake ended (exit {proc.returncode}) before {what}")
        time.sleep(0.02)
    proc.kill()
    pytest.fail(f"timed out waiting for {what}")


def existing_searches(workdir: Path) -> list[str]:
    return [p for p in SEARCHES if (workdir / "results" / p).exists()]


def descendants(pid: int) -> list[int]:
    """PIDs of every descendant of `pid`, from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def leftovers(workdir: Path) -> list[str]:
    """Temporary files of interrupted writers (tables.write, save_checkpoint)."""
    return sorted(str(p.relative_to(workdir)) for p in (workdir / "results").rglob("*.tmp"))


@pytest.fixture(scope="module")
def reference(tiny_run):
    """The uninterrupted run up to the search stage: the datasets and searches of the shared
    complete run (runs are bit-identical, test_workflow; the tests below compare the set of
    files an `--until search_prompts` run leaves with this one too)."""
    found = {p: d for p, d in digests(tiny_run).items() if p in UNTIL_SEARCH}
    assert sorted(found) == UNTIL_SEARCH
    assert sorted(p for p in found if "/search/" in p) == sorted(SEARCHES)
    return found


def test_sigint_during_the_search_stage_leaves_nothing_a_rerun_trusts(reference, tmp_path):
    log = tmp_path / "interrupted.log"
    proc = start(tmp_path, log)
    done = wait_for(lambda: (lambda found: found if 0 < len(found) < len(SEARCHES) else None)(
        existing_searches(tmp_path)), proc, 300, "the first search output")
    # Ctrl-C as a terminal sends it: SIGINT to Snakemake's whole process group, its running
    # jobs included.
    os.killpg(proc.pid, signal.SIGINT)
    try:
        rc = proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("snakemake did not stop within 120 s of SIGINT")
    text = log.read_text()
    assert rc != 0, text[-3000:]
    assert len(existing_searches(tmp_path)) < len(SEARCHES), "the run was not interrupted"
    # Whatever survived is complete: identical to the uninterrupted run's.
    partial = digests(tmp_path)
    assert {p: partial[p] for p in partial if p in reference} == \
        {p: reference[p] for p in partial if p in reference}
    assert leftovers(tmp_path) == []

    remaining = planned_jobs(tmp_path, TINY)  # the full workflow: searches are still missing
    assert remaining.get("search_prompts", 0) >= len(SEARCHES) - len(done)
    rerun = run(tmp_path, *UNTIL)
    assert digests(tmp_path) == reference, rerun.stdout[-2000:] + rerun.stderr[-2000:]
    assert leftovers(tmp_path) == []


def test_sigkill_of_a_search_job_fails_the_run_and_the_rerun_completes(reference, tmp_path):
    log = tmp_path / "killed.log"
    proc = start(tmp_path, log)

    def running_search():
        for pid in descendants(proc.pid):
            line = cmdline(pid)
            if "python" in line and ".snakemake/scripts/" in line and "search_prompts.py" in line:
                return pid
        return None

    victim = wait_for(running_search, proc, 300, "a running search_prompts job")
    os.kill(victim, signal.SIGKILL)
    try:
        rc = proc.wait(timeout=300)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("snakemake did not end after one of its jobs was killed")
    text = log.read_text()
    assert rc != 0, text[-3000:]
    assert "Error in rule search_prompts" in text, text[-3000:]
    assert len(existing_searches(tmp_path)) < len(SEARCHES)

    rerun = run(tmp_path, *UNTIL)
    assert "search_prompts" in rerun.stdout + rerun.stderr
    assert digests(tmp_path) == reference
    assert leftovers(tmp_path) == []


# ------------------------------------------------------------------------------ (c) training
TRAINING = dict(
    name="lstm",
    identity="0123456789",
    source_name="bernmix",
    pretraining={"kind": "coin_mixture", "thetas": [0.2, 0.7]},
    settings={"family": "lstm", "steps": 30, "batch_size": 16, "hidden_size": 8,
              "embedding_dim": 4, "sequence_length": 6},
    device="cpu",
    checkpoint_every=5,
)
KILL_AT = 13  # the run is killed while computing step 13: the last checkpoint is at 10


def paths(folder: Path) -> dict[str, str]:
    return {"model": str(folder / "model.pt"), "curve": str(folder / "training_curve.parquet"),
            "checkpoint": str(folder / "checkpoint.pt")}


def test_interrupted_training_resumes_from_its_last_checkpoint(tmp_path, caplog):
    import pandas as pd
    import torch

    from promptscape.neural import checkpoints
    from promptscape.pipeline.stages import training_stage

    # The interrupted run, in a child process: it blocks at step KILL_AT (after the
    # checkpoints of steps 5 and 10) and is killed there with SIGKILL.
    interrupted = tmp_path / "interrupted"
    marker = tmp_path / "at-step"
    child = textwrap.dedent(f"""
        import time
        from promptscape.neural import checkpoints, trainer
        from promptscape.pipeline.stages import training_stage

        batch = trainer.training_batch

        def blocking_batch(config, source, step):
            if step == {KILL_AT}:
                open({str(marker)!r}, "w").close()
                time.sleep(600)
            return batch(config, source, step)

        trainer.training_batch = blocking_batch
        training_stage.train_predictor(**{paths(interrupted)!r}, **{TRAINING!r})
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=environment())
    deadline = time.monotonic() + 120
    while not marker.exists():
        if proc.poll() is not None:
            pytest.fail(f"training ended before step {KILL_AT}:\n{proc.stdout.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"training did not reach step {KILL_AT} in 120 s")
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    checkpoint = Path(paths(interrupted)["checkpoint"])
    assert checkpoint.exists() and not Path(paths(interrupted)["model"]).exists()
    step = checkpoints.load_checkpoint(checkpoint)["step"]
    assert step == 10

    # The rerun resumes from step 10 ...
    with caplog.at_level(logging.INFO, logger="promptscape"):
        training_stage.train_predictor(**paths(interrupted), **TRAINING)
    assert f"resumed from {checkpoint} at step {step}" in caplog.text
    assert not checkpoint.exists()  # removed once the model is saved

    # ... and ends where an uninterrupted run ends.
    uninterrupted = tmp_path / "uninterrupted"
    training_stage.train_predictor(**paths(uninterrupted), **TRAINING)
    resumed = checkpoints.load_checkpoint(paths(interrupted)["model"])
    straight = checkpoints.load_checkpoint(paths(uninterrupted)["model"])
    assert resumed["step"] == straight["step"] == TRAINING["settings"]["steps"]
    assert resumed["model"].keys() == straight["model"].keys()
    for name, tensor in straight["model"].items():
        assert torch.equal(resumed["model"][name], tensor), name
    assert Path(paths(interrupted)["curve"]).read_bytes() == \
        Path(paths(uninterrupted)["curve"]).read_bytes()
    curve = pd.read_parquet(paths(interrupted)["curve"])
    assert list(curve["step"]) == list(range(TRAINING["settings"]["steps"]))
