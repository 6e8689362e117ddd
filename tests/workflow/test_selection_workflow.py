"""Dataset selection through the Snakemake CLI (tests/data/selection): what the selection
jobs read, that `random` is today's search exactly, and what a setting change reruns."""

from __future__ import annotations

import hashlib
import json
import re

import numpy as np
import pandas as pd
import pytest
import yaml

from promptscape.study import tables
from promptscape.predictors import BayesPredictor
from promptscape.sources import build_source
from search_helpers import assert_keeps_best_classes
from workflow_helpers import REPO, copy_run, digests, planned_jobs, snakemake, write_config

pytestmark = pytest.mark.slow

SELECTION = REPO / "tests" / "data" / "selection" / "config.yaml"
METHODS = ["high_variance", "high_variance_weighted", "pool", "random"]


# selection_run: the complete run of SELECTION (tests/workflow/conftest.py).


def _config(**changes):
    config = yaml.safe_load(SELECTION.read_text())
    config["experiments"]["bernmix"].update(changes)
    return config


def test_every_method_sits_beside_random_in_the_reliability_table_and_figure(selection_run):
    results = selection_run / "results" / "bernmix"
    rel = pd.read_parquet(results / "aggregate" / "reliability.parquet")
    assert sorted(rel["selection"].unique()) == METHODS
    assert (rel.groupby(["task", "selection"]).size() == 2).all()  # N = 1, 10
    assert (rel["seeds"] == 8).all()
    for ext in ("svg", "png", "html"):
        assert (results / "figures" / f"selection.{ext}").stat().st_size > 1000
    kept = pd.read_parquet(results / "selected" / "high_variance_weighted" / "seeds0-3.parquet")
    cell = kept[(kept["predictor"] == "bayes") & (kept["task"] == "coin_0.7")
                & (kept["N"] == 10)]
    assert len(cell) == 4 * 10 and kept["inclusion_probability"].between(0, 1).all()
    # The prediction is of random D_N only, and matched cell for cell.
    pred = pd.read_parquet(results / "aggregate" / "reliability_prediction.parquet")
    random = rel[rel["selection"] == "random"]
    assert len(pred) == len(random)
    assert sorted(pred["measured_proportion_correct"]) == sorted(random["proportion_correct"])
    assert planned_jobs(selection_run, SELECTION) == {}


def _rules_into(workdir, config):
    """The rule graph of a config (nothing runs): the rules each rule reads from."""
    proc = snakemake(workdir, config, "--forceall", "--rulegraph")
    names = dict(re.findall(r'^\s*(\d+)\[label = "(\w+)"', proc.stdout, re.M))
    into = {name: set() for name in names.values()}
    for a, b in re.findall(r"^\s*(\d+) -> (\d+)", proc.stdout, re.M):
        into[names[b]].add(names[a])
    return into


def _upstream(into, rule):
    seen, todo = set(), [rule]
    while todo:
        for parent in into[todo.pop()]:
            if parent not in seen:
                seen.add(parent)
                todo.append(parent)
    return seen


@pytest.mark.parametrize("predictors", [["bayes"], ["bayes", "lstm"]])
def test_selection_jobs_read_only_their_pool_never_the_landscape_or_evaluation_set(
        tmp_path, predictors):
    config = write_config(tmp_path / "c.yaml", _config(predictors=predictors))
    into = _rules_into(tmp_path, config)
    if predictors == ["bayes"]:
        assert into["search_selected"] == {"simulate_pool"}
    else:  # a network's losses come from its prompt-loss table
        assert into["search_selected"] == {"simulate_pool", "score_prompts"}
    assert into["search_prompts"] <= {"simulate_tasks", "score_prompts"}
    upstream = _upstream(into, "search_selected")
    assert not upstream & {"simulate_evaluation", "compute_landscape", "simulate_tasks",
                           "predict_reliability", "measure_efficiency"}, upstream
    assert "search_selected" in into["aggregate_search"]


def test_random_reproduces_the_search_without_any_selection_exactly(selection_run, tmp_path):
    plain = {k: v for k, v in _config().items()}
    del plain["experiments"]["bernmix"]["dataset_selection"]
    config = write_config(tmp_path / "plain.yaml", plain)
    # The reliability table and what it is made from: the searches, datasets and landscapes
    # compared below; not the efficiency, edit analysis and figures, which none of it reads.
    snakemake(tmp_path, config, "results/bernmix/aggregate/reliability.parquet")
    mine = {k: v for k, v in digests(selection_run).items()
            if "/random/" in k or "/datasets/" in k or "/landscape/" in k}
    theirs = {k: v for k, v in digests(tmp_path).items() if k in mine}
    assert len(mine) == 2 + 2 + 2  # search and datasets: one per block; landscapes per task
    assert mine == theirs
    rel = pd.read_parquet(tmp_path / "results" / "bernmix" / "aggregate" / "reliability.parquet")
    with_selection = pd.read_parquet(selection_run / "results" / "bernmix" / "aggregate"
                                     / "reliability.parquet")
    pd.testing.assert_frame_equal(
        rel.reset_index(drop=True),
        with_selection[with_selection["selection"] == "random"].reset_index(drop=True))


@pytest.mark.stored_reference
def test_random_reproduces_the_release_before_selection(selection_run):
    """Today's results: the searches and reliability of this config's random D_N as the
    release before dataset selection (commit 9a1231f) computed them, without
    dataset_selection (tests/data/selection/random_9a1231f.json, written by that code), and
    every kept empirical loss as the release before the search kept only its best classes
    (ca821fc, which wrote every prompt's: tests/data/selection/random_ca821fc.json): the
    same prompts chosen and kept, the losses to a relative 1e-12 (L_N is now the table's
    product with each dataset's sequence counts, which rounds differently from the mean of
    the N gathered losses that ca821fc took). The references come from another machine,
    so no float is compared bit for bit (`tables.ACROSS_HOSTS_RTOL`); the digest compares
    the two stored references with each other, not with anything computed here."""
    reference = json.loads((SELECTION.parent / "random_9a1231f.json").read_text())
    full = json.loads((SELECTION.parent / "random_ca821fc.json").read_text())["search"]
    root = selection_run / "results" / "bernmix"
    bayes = BayesPredictor(build_source({"kind": "coin_mixture", "thetas": [0.2, 0.7]}))
    assert sorted(full) == sorted(reference["search"])
    for key, expected in reference["search"].items():
        task, n, block = key.split("/")
        frame = pd.read_parquet(root / "search" / "random" / block)
        frame = frame[(frame["predictor"] == "bayes") & (frame["task"] == task)
                      & (frame["N"] == int(n[1:]))].reset_index(drop=True)
        assert frame.loc[frame["chosen"], "prompt"].tolist() == expected["chosen"], key
        seeds = sorted(int(s) for s in full[key])
        prompts = full[key][str(seeds[0])]["prompts"]
        table = np.array([[float.fromhex(v) for v in full[key][str(s)]["empirical_loss"]]
                          for s in seeds])
        digest = hashlib.sha256(table.reshape(-1).tobytes()).hexdigest()
        assert digest == expected["empirical_loss_sha256"], key  # ca821fc == 9a1231f
        assert_keeps_best_classes(frame, table, prompts, bayes, seeds, exact=False)
    # The references were written on another machine: decisions (how many seeds were
    # correct) exactly, floats to the relative tolerance that holds across machines.
    rel = pd.read_parquet(root / "aggregate" / "reliability.parquet")
    rel = rel[rel["selection"] == "random"].set_index(["task", "N"])
    assert len(rel) == len(reference["reliability"])
    for row in reference["reliability"]:
        mine = rel.loc[(row["task"], row["N"])]
        assert mine["correct"] == row["correct"], (row["task"], row["N"])
        for column in ("regret_mean", "rank_mean"):
            assert tables.floats_agree(mine[column], row[column]), (row, column, mine[column])


def test_a_method_setting_reruns_only_that_methods_searches(selection_run, tmp_path):
    run = copy_run(selection_run, tmp_path)
    config = write_config(tmp_path / "c.yaml", _config(dataset_selection={
        "random": {}, "high_variance": {"pool_size": 40, "leading_prompts": 3},
        "high_variance_weighted": {"pool_size": 40, "leading_prompts": 3,
                                   "uniform_share": 0.5}}))
    jobs = planned_jobs(run, config)
    assert jobs.pop("search_selected") == 2  # one per block, the weighted method's
    # The edit analysis reads the selections table (its random rows): it and the
    # experiment's figures (one job).
    assert jobs == {"aggregate_search": 1, "analyse_edits": 1, "plot_figures": 1,
                    "plot_study_figures": 1, "all": 1}, jobs
