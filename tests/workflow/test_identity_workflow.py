"""Artifact identities through Snakemake, on a copy of the tiny run: a copied results folder
read with other parameters, the same folder restored elsewhere, and a hand-edited artifact."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pandas as pd
import pytest

from workflow_helpers import (TINY, copy_run, environment, load_config, planned_jobs,
                              snakemake, write_config)

pytestmark = pytest.mark.slow


def summary(run, config) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "promptscape.report.summary",
                           "--configfile", str(config)], cwd=run, capture_output=True,
                          text=True, env=environment())


def copied(tiny_run, tmp_path, edit=None):
    """The tiny run with its results folder copied to copy/ (Snakemake has no metadata for
    the copy) and a config reading it, changed by `edit`."""
    run = copy_run(tiny_run, tmp_path)
    shutil.copytree(run / "results", run / "copy", symlinks=True)
    config = load_config()
    config["results_dir"] = "copy"
    if edit is not None:
        edit(config)
    return run, write_config(tmp_path / "config.yaml", config)


def test_a_copied_folder_read_with_other_parameters_stops_the_summary(tiny_run, tmp_path):
    def other_theta(config):
        config["sources"]["coin_0.5"]["theta"] = 0.4

    run, config = copied(tiny_run, tmp_path, other_theta)
    # Snakemake has no metadata for the copied files; the stamps say what they were built
    # from, so a run rebuilds the stale ones (tests/workflow/test_red_team.py)...
    assert planned_jobs(run, config).get("compute_landscape") == 1
    # ...and until then the summary refuses them.
    proc = summary(run, config)
    assert proc.returncode == 1 and proc.stdout == ""
    assert "copy/bernmix/landscape/bayes/r0/coin_0.5.parquet was built with parameter " \
           "args.task.theta = 0.5, but the workflow would now build it with 0.4" in proc.stderr


def test_a_restored_folder_with_the_same_parameters_is_trusted(tiny_run, tmp_path):
    run, config = copied(tiny_run, tmp_path)
    assert planned_jobs(run, config) == {}
    assert summary(run, config).returncode == 0
    # A job that reads the restored files runs: their identities are the config's.
    snakemake(run, config, "copy/bernmix/figures", "--forcerun", "plot_figures")


def test_a_hand_edited_artifact_is_rebuilt(tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path)
    path = run / "results" / "bernmix" / "landscape" / "bayes" / "r0" / "coin_0.7.parquet"
    pd.read_parquet(path).assign(kl=0.0).to_parquet(path)  # pandas drops the stamp
    proc = snakemake(run, TINY, "-n")
    assert "results/bernmix/landscape/bayes/r0/coin_0.7.parquet is stale: it carries no " \
           "identity (written by hand" in proc.stdout + proc.stderr
    assert planned_jobs(run, TINY).get("compute_landscape") == 1
