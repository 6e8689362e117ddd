"""`promptscape.pipeline.plan`: costs before running, the memory cap, and progress of long loops."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np
import pytest

from promptscape import efficiency, logs, predictors
from promptscape.study import config, layout
from promptscape.pipeline import plan
from promptscape.sources import build_source
from workflow_helpers import REPO, TINY, load_config, planned_jobs, snakemake, write_config

DEFAULT = REPO / "config" / "config.yaml"


def oversized(tmp_path: Path) -> Path:
    """The tiny config with one experiment of 8,191 prompts, T = 30 and M = 100,000, under
    a hidden-state Bayes predictor, which scores every prompt (an exchangeable one would
    score its 91 count classes)."""
    cfg = load_config()
    cfg["experiments"]["bernmix"].update(pretraining="switching", max_prompt_length=12,
                                         task_length=30, evaluation_size=100_000)
    return write_config(tmp_path / "oversized.yaml", cfg)


def test_the_plan_of_the_default_config_mirrors_the_workflow_grid():
    study = config.load_file(DEFAULT)
    jobs = plan.jobs(study)
    counts = {rule: sum(j.rule == rule for j in jobs) for rule in plan.STAGES}
    exps = study.experiments.values()
    assert (counts["search_prompts"] + counts["search_selected"]
            == sum(len(layout.search_outputs(study, e)) for e in exps))
    assert counts["compute_landscape"] == sum(len(layout.per_task(study, e, "landscape"))
                                              for e in exps)
    # 6 pretraining sources x 2 networks, and the words experiment's small LSTM.
    assert counts["train_predictor"] == 13
    # bernmix's LSTM fine-tuned on coin(0.7), from the trained LSTM's checkpoint.
    assert counts["post_train_predictor"] == 1
    assert counts["evaluate_predictor"] == 14
    # V^T is enumerated: one table per (experiment, network); the strategies experiment's
    # LSTM is bernmix's network with its own prompts.
    assert counts["score_prompts"] == 14
    # One job per (experiment, selection, seed block) searches every predictor, task and N;
    # datasets and pools one per (experiment, block): the selection experiment has 3
    # pooled methods; every experiment has one block.
    assert counts["search_prompts"] == counts["simulate_tasks"] == len(study.experiments)
    assert counts["search_selected"] == 3 and counts["simulate_pool"] == 1
    assert counts["measure_efficiency"] == len(study.experiments)
    # The strategies experiment: (Bayes, LSTM) x 2 tasks x 2 N, one block; one aggregate.
    assert counts["search_strategies"] == 8 and counts["aggregate_strategies"] == 1
    assert counts["search_strategies"] == sum(len(layout.strategy_outputs(study, e))
                                              for e in exps)
    search = next(j for j in jobs if j.rule == "search_prompts"
                  and j.wildcards["experiment"] == "bernmix")
    # Each of the 3 networks scores P = 2^(5+1) - 1 prompts on all 2^T sequences, Bayes its
    # 21 count classes on the 11 count values of T = 10, for each of 4 tasks and 10 N.
    assert search.evaluations == (3 * 63 * 2**10 + 21 * 11) * 4 * 10
    # With the `all` rule: the default run's job budget (300 before issue 28, whose edit
    # analysis adds one analyse_edits job and three figures per experiment, 8 + 24, and
    # edit_effects' one job on the strategies experiment; bernmix's tuner optima one job),
    # one probe_prior job per predictor of the 6 experiments whose pretraining source is
    # exchangeable (15), the words experiment's jobs (a Bayes landscape, prediction, search,
    # efficiency, edits and their figures, one task; its LSTM's training, held-out
    # evaluation, landscape and prediction, 4); figures are one job per experiment;
    # the fine-tuned LSTM's 12 jobs (post-training, evaluation, its prompt losses, 4
    # landscapes and predictions, its read-back prior).
    assert len(jobs) + 1 <= 301
    assert counts["tune_optimum"] == 1
    assert counts["probe_prior"] == sum(len(layout.prior_fits(study, e)) for e in exps) == 16
    assert counts["edit_effects"] == 1
    # One job draws all of an experiment's figures, and one the study's.
    assert counts["plot_figures"] == len(study.experiments)
    assert counts["plot_study_figures"] == 1
    # Every heavy job fits its mem_mb, which is within the cap.
    for job in jobs:
        if job.rule in plan.HEAVY:
            assert job.peak_mb <= plan.job_mem_mb(study, job) <= plan.max_mem_mb(study)
    plan.check(study, jobs)


def test_the_plan_counts_every_replicate_as_the_workflow_does():
    study = config.load_file(DEFAULT.parent / "replicates.yaml")
    jobs = plan.jobs(study)
    counts = {rule: sum(j.rule == rule for j in jobs) for rule in plan.STAGES}
    exps = study.experiments.values()
    assert counts["train_predictor"] == 20  # 2 sources x 2 families x 5 replicates
    assert counts["search_prompts"] == sum(len(layout.search_outputs(study, e)) for e in exps)
    # One search job per experiment and block: bayes and 5 + 5 network replicates, each
    # searched on every (task, N) in it.
    assert counts["search_prompts"] == 2
    trained = {j.wildcards["identity"] for j in jobs if j.rule == "train_predictor"}
    assert len(trained) == 20


def test_the_plan_counts_the_pooled_selections_as_the_workflow_does():
    study = config.load_file(DEFAULT.parent / "selection.yaml")
    jobs = plan.jobs(study)
    counts = {rule: sum(j.rule == rule for j in jobs) for rule in plan.STAGES}
    exps = study.experiments.values()
    # Per experiment and block: random, and the 3 pooled methods (pool among them).
    experiments = len(study.experiments)
    assert counts["search_prompts"] == experiments
    assert counts["search_selected"] == 3 * experiments
    assert (counts["search_prompts"] + counts["search_selected"]
            == sum(len(layout.search_outputs(study, e)) for e in exps))
    assert counts["simulate_pool"] == counts["simulate_tasks"] == experiments
    selected = next(j for j in jobs if j.rule == "search_selected")
    # A pooled search reads its pools of P = 1000: its memory grows with P, not N.
    assert selected.peak_bytes > next(j for j in jobs if j.rule == "search_prompts"
                                      and j.wildcards["experiment"]
                                      == selected.wildcards["experiment"]).peak_bytes


def test_the_cli_prints_a_table_per_stage(capsys):
    assert plan.main(["--configfile", str(DEFAULT)]) == 0
    out = capsys.readouterr().out
    for stage in ("search_prompts", "compute_landscape", "score_prompts", "mem_mb"):
        assert stage in out


def test_an_oversized_config_is_a_named_error_with_the_keys_that_lower_it(tmp_path, capsys):
    study = config.load_file(oversized(tmp_path))
    with pytest.raises(plan.MemoryEstimateError) as error:
        plan.check(study)
    message = str(error.value)
    # The largest job: a landscape's or a prediction's (P, M) evaluation-set table.
    rule = message.split(" of ")[0]
    assert rule in ("compute_landscape", "predict_reliability")
    assert message.startswith(f"{rule} of experiment 'bernmix'")
    for key in ("GiB", "experiments.bernmix.evaluation_size",
                "experiments.bernmix.max_prompt_length", "resources.max_mem_mb"):
        assert key in message
    assert plan.main(["--configfile", str(tmp_path / "oversized.yaml")]) == 1
    assert f"MemoryEstimateError: {rule}" in capsys.readouterr().err


def test_every_heavy_rule_names_the_keys_that_lower_it():
    assert set(plan.HEAVY) <= set(plan.HINTS)


def test_raising_the_cap_admits_the_oversized_config(tmp_path):
    cfg = load_config(oversized(tmp_path))
    cfg["resources"] = {"max_mem_mb": 200_000}
    plan.check(config.load(cfg))


@pytest.mark.slow
def test_snakemake_refuses_an_oversized_config_before_any_work(tmp_path):
    proc = snakemake(tmp_path, oversized(tmp_path), "-n", check=False)
    assert proc.returncode != 0
    assert "MemoryEstimateError" in proc.stderr + proc.stdout
    assert "experiments.bernmix.evaluation_size" in proc.stderr + proc.stdout
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_the_plan_counts_the_jobs_of_a_dry_run(tmp_path):
    study = config.load_file(TINY)
    jobs = plan.jobs(study)
    expected = {rule: n for rule in plan.STAGES
                if (n := sum(j.rule == rule for j in jobs))}
    assert planned_jobs(tmp_path, TINY) == {**expected, "all": 1}


def _quick_progress(monkeypatch, module):
    monkeypatch.setattr(module.logs, "Progress", functools.partial(logs.Progress, every=0))


def test_hidden_state_bayes_losses_log_their_progress(monkeypatch, caplog):
    caplog.set_level(logging.INFO)
    _quick_progress(monkeypatch, predictors)
    source = build_source({"kind": "switching", "thetas": [0.2, 0.7], "switch_prob": 0.1})
    seqs = np.random.default_rng(0).integers(0, 2, (50, 6)).astype(np.uint8)
    predictors.BayesPredictor(source).prompt_losses(["", "0", "01"], seqs)
    lines = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("prompt-sequence losses: 150/150 (100%") for m in lines), lines


def test_the_generic_prompt_losses_log_their_progress(monkeypatch, caplog):
    caplog.set_level(logging.INFO)
    _quick_progress(monkeypatch, predictors)
    source = build_source({"kind": "switching", "thetas": [0.2, 0.7], "switch_prob": 0.1})

    class Generic(predictors.Predictor):
        def log_predictive(self, seqs):
            return source.log_predictive(seqs)

    Generic().prompt_losses(["", "1"], np.zeros((10, 4), dtype=np.uint8))
    assert any("prompt-sequence losses: 20/20 (100%" in r.getMessage() for r in caplog.records)


def test_the_typical_curve_logs_its_progress_over_lengths(monkeypatch, caplog):
    caplog.set_level(logging.INFO)
    _quick_progress(monkeypatch, efficiency)
    pre = build_source({"kind": "coin_mixture", "thetas": [0.2, 0.7]})
    task = build_source({"kind": "coin", "theta": 0.7})
    scorer = efficiency.KLScorer(predictors.BayesPredictor(pre), task, 5, 12, 10**6)
    efficiency.typical_curve(scorer, task, [0, 1, 2], 4)
    assert any(r.getMessage().startswith("prompt lengths: 3/3 (100%") for r in caplog.records)
