"""Issue 26, item 2: small evaluation sets say so. A markov_beta prior, a markov task
[0.1, 0.9], T = 4, L_max 3 and landscape.enumeration_budget 1 (so the landscape is Monte
Carlo): at evaluation_size 2 both draws were one sequence and the landscape reported a
negative KL with standard error 0, the prediction labelled exact; at 10 the entropy column
said 1.009 against a true 1.668."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

from promptscape import landscape
from promptscape import prompts as prompts_lib
from promptscape.study import config as config_lib
from promptscape.study import tables
from promptscape.pipeline.stages import datasets_stage
from promptscape.pipeline.stages import landscape_stage
from promptscape.pipeline.stages import prediction_stage
from promptscape.sources import build_source
from promptscape.validation import ConfigError

PRIOR = {"kind": "markov_beta", "alpha": [1.0, 1.0], "beta": [1.0, 1.0]}
TASK = {"kind": "markov", "transition": [0.1, 0.9]}
T, L = 4, 3


def config(evaluation_size, task_length=T):
    return {"sources": {"prior": PRIOR, "chain": TASK},
            "landscape": {"enumeration_budget": 1},
            "experiments": {"e": {"pretraining": "prior", "predictors": ["bayes"],
                                  "tasks": [{"source": "chain", "in_meta_distribution": True}],
                                  "max_prompt_length": L, "task_length": task_length,
                                  "dataset_sizes": [1, 5], "num_seeds": 2,
                                  "evaluation_size": evaluation_size}}}


# ------------------------------------------------------------------ minimum sample, at parse
@pytest.mark.parametrize("size", [2, 10, landscape.MIN_EVALUATION_DRAWS - 1])
def test_a_plain_evaluation_set_below_the_minimum_is_refused_at_parse(size):
    # Fails on the old code: evaluation_size 2 (and T = 30 with 10) were accepted.
    with pytest.raises(ConfigError, match=rf"experiments\.e\.evaluation_size == {size}, must be "
                                          rf">= {landscape.MIN_EVALUATION_DRAWS}: the evaluation "
                                          r"set of task 'chain' \(not exchangeable\)"):
        config_lib.load(config(size))
    with pytest.raises(ConfigError, match="evaluation_size"):
        config_lib.load(config(size, task_length=30))


def test_the_minimum_is_accepted():
    config_lib.load(config(landscape.MIN_EVALUATION_DRAWS))


# ------------------------------------------------------------------ no zero SE from one sequence
def test_an_evaluation_set_of_one_distinct_sequence_is_refused():
    # Fails on the old code: two draws of 0000 gave every prompt kl_se 0.
    task = build_source({"kind": "markov", "transition": [0.001, 0.999], "initial": 0.999})
    with pytest.raises(ValueError, match="1 distinct sequence in 30 draws.*raise evaluation_size"):
        landscape.draw_evaluation(task, T, 30, np.random.default_rng(0))
    seqs, _, _ = landscape.draw_evaluation(build_source(TASK), T, 30, np.random.default_rng(0))
    assert len(np.unique(seqs, axis=0)) >= landscape.MIN_DISTINCT_SEQUENCES


# ------------------------------------------------------------------ exact entropy
def enumerated_entropy(task, length):
    seqs = prompts_lib.enumerate_sequences(length, task.vocab_size)
    log_p = task.log_prob(seqs)
    return -float(np.exp(log_p) @ log_p)


@pytest.mark.parametrize("spec", [
    TASK, {"kind": "markov", "transition": [0.3, 0.6], "initial": 0.2},
    {"kind": "switching", "thetas": [0.2, 0.7], "switch_prob": 0.1},
    {"kind": "markov_beta", "alpha": [0.5, 2.0], "beta": [1.0, 1.0]},
    {"kind": "coin_mixture", "thetas": [0.2, 0.7]},
    {"kind": "dirichlet_categorical", "alpha": [1.0, 2.0, 0.5]},
])
def test_task_entropy_is_exact(spec):
    task = build_source(spec)
    for length in (1, 2, 5, 8):
        assert landscape.task_entropy(task, length) == pytest.approx(
            enumerated_entropy(task, length), rel=1e-12, abs=1e-12)
    # Beyond the enumeration: a closed form or counts where the kind has one, else None.
    far = landscape.task_entropy(task, 40, max_sequences=1 << 10)
    assert (far is None) == (spec["kind"] in ("switching", "markov_beta"))


def test_markov_closed_form_at_long_t():
    task = build_source(TASK)
    h = -(0.1 * math.log(0.1) + 0.9 * math.log(0.9))
    # Stationary start (initial 0.5 is the chain's stationary law): H = log 2 + (T - 1) h.
    assert task.entropy(200) == pytest.approx(math.log(2) + 199 * h, rel=1e-12)


def run_stages(tmp_path, size, budget=1):
    ev, land, pred = (str(tmp_path / f"{n}_{budget}.parquet") for n in ("ev", "land", "pred"))
    common = dict(predictor="bayes", pretraining=PRIOR, experiment="e", task_name="chain",
                  task=TASK, task_length=T, max_prompt_length=L)
    datasets_stage.simulate_evaluation(output=ev, experiment="e", task_name="chain", task=TASK,
                                 task_length=T, size=size)
    landscape_stage.compute_landscape(evaluation=ev, output=land, enumeration_budget=budget,
                                      **common)
    prediction_stage.predict_reliability(landscape_path=land, evaluation=ev, output=pred,
                                   dataset_sizes=[1, 5], enumeration_budget=budget,
                                   draws=500, exact_max_outcomes=10 ** 6, reference_N=5,
                                   **common)
    return tables.read(land, "landscape"), tables.read(pred, "predicted_reliability")


def test_a_monte_carlo_landscape_reports_the_exact_entropy_and_a_plug_in_prediction(tmp_path):
    # Fails on the old code: entropy was the evaluation set's estimate, the method "exact".
    mc, mc_pred = run_stages(tmp_path, 30)
    exact, exact_pred = run_stages(tmp_path, 30, budget=10 ** 9)
    assert set(mc["method"]) == {"monte_carlo"} and set(exact["method"]) == {"exact_enumeration"}
    truth = enumerated_entropy(build_source(TASK), T)
    assert truth == pytest.approx(1.668396, abs=1e-6)
    assert mc["entropy"].to_numpy() == pytest.approx(truth, rel=1e-12)
    assert exact["entropy"].to_numpy() == pytest.approx(truth, rel=1e-12)
    # KL stays the paired estimate: positive errors, and within them of the truth.
    assert (mc["kl_se"] > 0).all()
    z = (mc["kl"] - exact["kl"]) / mc["kl_se"]
    assert (z.abs() < 3).all()
    assert set(mc_pred["outcomes"]) == {"evaluation_set"}
    assert set(mc_pred["method"]) <= {"plug_in", "normal"} and "plug_in" in set(mc_pred["method"])
    assert set(exact_pred["method"]) == {"exact"}


def test_an_exact_landscape_is_unchanged_by_the_entropy_rule(tmp_path):
    # The entropy of exact landscapes comes from their own table as before: bit for bit the
    # table's -p @ log p, which the new rule does not touch.
    land, _ = run_stages(tmp_path, 30, budget=10 ** 9)
    task = build_source(TASK)
    seqs = prompts_lib.enumerate_sequences(T, 2)
    log_p = task.log_prob(seqs)
    assert (land["entropy"] == -float(np.exp(log_p) @ log_p)).all()
