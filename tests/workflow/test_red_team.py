"""Where a wrong result used to get through, tried as a demanding user would: copied,
edited, truncated or half-deleted results folders, another network's artifacts, and configs
that failed late. Each case names what must happen now; each ran through (a stale result, a
traceback, a silent wait) before. Every case works on a copy of a session run
(tests/workflow/conftest.py) or on a parse alone: no scenario of its own."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from promptscape.study import config as config_lib
from promptscape.study import layout
from workflow_helpers import (NEURAL, TINY, copy_run, environment, load_config,
                              snakemake, write_config)

pytestmark = pytest.mark.slow


def dry_run(run: Path, config: Path, *args: str) -> tuple[dict[str, int], str, int]:
    """Jobs a dry run plans, by rule ({} when there is nothing to do), its whole output and
    its exit status."""
    proc = snakemake(run, config, "-n", *args, check=False)
    text = proc.stdout + proc.stderr
    jobs = {}
    if "Job stats:" in text:
        for line in text.split("Job stats:", 1)[1].splitlines()[3:]:
            fields = line.split()
            if len(fields) != 2 or not fields[1].isdigit():
                break
            if fields[0] != "total":
                jobs[fields[0]] = int(fields[1])
    return jobs, text, proc.returncode


def copied(run_dir: Path, tmp_path: Path, base: Path = TINY, edit=None) -> tuple[Path, Path]:
    """A copy of a session run with its results folder copied to copy/ (Snakemake has no
    record of the copy's files) and a config reading it, changed by `edit`."""
    run = copy_run(run_dir, tmp_path)
    shutil.copytree(run / "results", run / "copy", symlinks=True)
    config = load_config(base)
    config["results_dir"] = "copy"
    if edit is not None:
        edit(config)
    return run, write_config(tmp_path / "config.yaml", config)


def summary(run: Path, config: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "promptscape.report.summary",
                           "--configfile", str(config)], cwd=run, capture_output=True,
                          text=True, env=environment())


# ---------------------------------------------------------------- stale folders
def test_a_copied_folder_with_another_parameter_is_rebuilt_and_refused_by_report(tiny_run,
                                                                              tmp_path):
    def other_theta(config):
        config["sources"]["coin_0.5"]["theta"] = 0.4

    run, config = copied(tiny_run, tmp_path, edit=other_theta)
    # Snakemake has no record of the copy: it said "Nothing to be done". Now every job
    # whose stored stamp disagrees is rebuilt, and the run says which file and why.
    jobs, text, status = dry_run(run, config)
    assert status == 0
    assert jobs.get("compute_landscape") == 1 and jobs.get("simulate_evaluation") == 1
    assert ("copy/bernmix/landscape/bayes/r0/coin_0.5.parquet is stale: it was built with "
            "args.task.theta = 0.5, the workflow would now build it with 0.4") in text
    # The landscape of the unchanged task is not rebuilt (its own stamp holds).
    assert "landscape/bayes/r0/coin_0.7.parquet is stale" not in text
    # --report would show the old figures under the new captions: refused, naming the file
    # and the run that rebuilds it.
    report = run / "report.html"
    proc = snakemake(run, config, "--report", str(report), check=False)
    assert proc.returncode != 0 and not report.exists()
    assert "is stale: it was built with args." in proc.stderr + proc.stdout
    assert f"Run the workflow first, which rebuilds it: snakemake --configfile " \
           in proc.stderr + proc.stdout


def test_another_networks_artifacts_are_rebuilt(neural_run, tmp_path):
    """Prompt losses and landscapes of an LSTM of hidden size 8 copied, after the fact, into
    a folder whose config's LSTM has hidden size 6 and is trained: their own arguments are
    equal, so only the network's identity in their stamps tells them apart."""

    def narrower(config):
        config["models"]["lstm"]["hidden_size"] = 6

    run, config = copied(neural_run, tmp_path, NEURAL, narrower)
    study = config_lib.load_file(config)
    exp = study.experiments["bernmix"]
    model = layout.checkpoint(study, exp, "lstm", 0)
    assert not (run / model).exists()  # another identity, another folder
    snakemake(run, config, model)  # the hidden-size-6 network, trained
    copied_later = [layout.prompt_losses(study, exp, "lstm", 0),
                    *(p for p in layout.per_task(study, exp, "landscape") if "/lstm/" in p)]
    for path in copied_later:  # as if copied in after the training
        os.utime(run / path)
    jobs, text, status = dry_run(run, config)
    assert status == 0 and jobs.get("score_prompts") == 1, text[-3000:]
    assert jobs.get("compute_landscape", 0) >= 1
    curve = f"{{results_dir}}/{Path(model).parent.relative_to('copy')}/training_curve.parquet"
    assert f"{copied_later[0]} is stale: it was not built from {curve}, which the " \
           "workflow gives it now" in text, text[-3000:]


def test_a_value_edited_with_its_metadata_kept_is_refused_by_every_reader(tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path)
    path = run / "results" / "bernmix" / "landscape" / "bayes" / "r0" / "coin_0.7.parquet"
    table = pq.read_table(path)
    kl = table.column("kl").to_pylist()
    kl[-1] = -1.0
    pq.write_table(table.set_column(table.column_names.index("kl"), "kl", pa.array(kl)),
                   path)
    assert pq.read_schema(path).metadata == table.schema.metadata  # stamp kept
    proc = summary(run, TINY)
    assert proc.returncode == 1 and proc.stdout == ""
    assert ("results/bernmix/landscape/bayes/r0/coin_0.7.parquet: the data of column(s) kl "
            "are not those the job that wrote it stored") in proc.stderr
    assert "Traceback" not in proc.stderr


# ---------------------------------------------------------------- missing and broken files
def test_a_deleted_intermediate_comes_back(tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path)
    (run / "results" / "bernmix" / "search" / "random" / "seeds0-3.parquet").unlink()
    # Snakemake said "Nothing to be done" (every reader of the file was up to date), so the
    # summary's advice looped.
    jobs, text, status = dry_run(run, TINY)
    assert status == 0 and jobs.get("search_prompts") == 1, text[-2000:]


def test_a_truncated_parquet_file_is_named_and_rebuilt_before_any_job(tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path)
    path = run / "results" / "bernmix" / "landscape" / "bayes" / "r0" / "coin_0.5.parquet"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    # It was trusted by time, and the first job that read it failed with pyarrow's "Parquet
    # magic bytes not found", naming no file.
    jobs, text, status = dry_run(run, TINY)
    assert status == 0 and jobs.get("compute_landscape") == 1, text[-2000:]
    assert ("results/bernmix/landscape/bayes/r0/coin_0.5.parquet is stale: it is not a "
            "readable Parquet file") in text
    # A report is refused, naming it (a report reads what is there).
    proc = snakemake(run, TINY, "--report", str(run / "report.html"), check=False)
    assert proc.returncode != 0 and not (run / "report.html").exists()
    assert "coin_0.5.parquet is stale: it is not a readable Parquet file" in proc.stderr


# ---------------------------------------------------------------- late failures
@pytest.mark.parametrize("key", ["tasks", "dataset_sizes"])
def test_an_empty_tuning_list_is_refused_at_parse(tmp_path, key):
    config = load_config(NEURAL)
    config["experiments"]["bernmix"]["tuning"][key] = []
    path = write_config(tmp_path / "config.yaml", config)
    jobs, text, status = dry_run(tmp_path, path)
    assert status != 0 and jobs == {}
    assert f"experiments.bernmix.tuning.{key} is empty" in text


def test_plan_of_a_missing_config_file_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "promptscape.pipeline.plan", "--configfile",
                           str(tmp_path / "missing.yaml")], capture_output=True, text=True,
                          env=environment())
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"ConfigError: config file {tmp_path / 'missing.yaml'} " \
                                  "not found"


def test_no_cores_is_refused_at_parse(tmp_path):
    jobs, text, status = dry_run(tmp_path, TINY, "--cores", "0")
    assert status != 0 and jobs == {}
    assert "--cores 0: snakemake needs at least one core" in text
