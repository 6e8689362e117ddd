"""Error bars that are honest: coverage of the evaluation-set estimates across redraws.

One evaluation set serves every prompt, so the misses of one draw are correlated: coverage is
a property across redraws of the evaluation set, not across prompts. Each test computes the
exact landscape by enumerating every task sequence once (a table of l(s, x) over all 2^T
sequences), then redraws the evaluation set R times exactly as `simulate_evaluation` does
(`landscape.draw_evaluation`), reads each draw's losses from the table (the same numbers the
predictor gives; it is deterministic) and checks that each prompt's 95% interval, and each
paired difference to the exact optimum, covers the exact value in about 95% of redraws.
"""

from __future__ import annotations

import numpy as np
import pytest

from promptscape import landscape
from promptscape.neural import families, scoring, trainer
from promptscape import prompts as prompts_lib
from promptscape.predictors import BayesPredictor
from promptscape.sources import build_source

BERNMIX = {"kind": "coin_mixture", "thetas": [0.2, 0.7]}
BETA11 = {"kind": "beta_coin", "alpha": 1.0, "beta": 1.0}
SWITCHING = {"kind": "switching", "thetas": [0.2, 0.7], "switch_prob": 0.05}
TASKS = {"coin(0.2)": {"kind": "coin", "theta": 0.2},
         "coin(0.7)": {"kind": "coin", "theta": 0.7},
         "switching(0.3)": {**SWITCHING, "switch_prob": 0.3}}  # plain draws, one stratum
Z95 = 1.96
# R redraws: a prompt's coverage is Binomial(R, 0.95) / R, mean 0.95, sd 0.034 at R = 40;
# below 0.8 (6 misses of 40 or more) has probability < 0.2% per prompt for an honest interval.
REDRAWS = 40
OVERALL_FLOOR = 0.88
PROMPT_FLOOR = 0.8


def redraw_coverage(table, task, T, M, redraws=REDRAWS, se_scale=1.0, stratified=True):
    """Coverage of the exact KL, and of the exact paired difference to the optimum, by the
    95% intervals over `redraws` evaluation sets of M sequences. `table` is l(s, x) ``(P,
    2^T)`` over `prompts_lib.enumerate_sequences(T, 2)`. Returns (kl coverage (P,), difference
    coverage (P,) with NaN at the optimum)."""
    log_p = task.log_prob(prompts_lib.enumerate_sequences(T, 2))
    p = np.exp(log_p)
    kl = table @ p + p @ log_p
    best = int(np.argmin(kl))
    exact_diff = kl - kl[best]
    hits = np.zeros(len(kl))
    diff_hits = np.zeros(len(kl))
    for r in range(redraws):
        rng = np.random.default_rng([r, T, M, 2024])
        if stratified:
            seqs, strata, weights = landscape.draw_evaluation(task, T, M, rng)
        else:
            seqs, strata, weights = task.sample(M, T, rng), np.zeros(M, int), np.full(M, 1 / M)
        index = prompts_lib.encode(seqs, 2)
        losses = table[:, index]
        _, _, est, se, _ = landscape.monte_carlo_kl(losses, log_p[index], weights, strata)
        hits += np.abs(est - kl) <= Z95 * se * se_scale
        diff, diff_se = landscape.paired_differences(losses, best, weights, strata)
        diff_hits += np.abs(diff - exact_diff) <= Z95 * diff_se * se_scale
    diff_cov = diff_hits / redraws
    diff_cov[best] = np.nan  # the optimum's difference to itself is 0 with no error
    return hits / redraws, diff_cov


def assert_honest(kl_cov, diff_cov):
    diff_cov = diff_cov[~np.isnan(diff_cov)]
    assert kl_cov.mean() >= OVERALL_FLOOR and kl_cov.min() >= PROMPT_FLOOR, kl_cov
    assert diff_cov.mean() >= OVERALL_FLOOR and diff_cov.min() >= PROMPT_FLOOR, diff_cov


# ------------------------------------------------------------------ switching predictor
SWITCH_T, SWITCH_L, SWITCH_M = 14, 3, 1000


@pytest.fixture(scope="module")
def switching_table():
    pred = BayesPredictor(build_source(SWITCHING))  # hidden-state forward algorithm
    prompts = prompts_lib.all_prompts(SWITCH_L, 2)
    return pred.prompt_losses(prompts, prompts_lib.enumerate_sequences(SWITCH_T, 2))


@pytest.mark.parametrize("task", TASKS)
def test_switching_predictor_intervals_cover_the_exact_landscape_across_redraws(
        switching_table, task):
    kl_cov, diff_cov = redraw_coverage(switching_table, build_source(TASKS[task]), SWITCH_T,
                                       SWITCH_M)
    assert_honest(kl_cov, diff_cov)


def test_coverage_test_fails_for_a_too_small_standard_error(switching_table):
    # The check has teeth: halving the standard error drops coverage to about 67%.
    kl_cov, diff_cov = redraw_coverage(switching_table, build_source(TASKS["coin(0.7)"]),
                                       SWITCH_T, SWITCH_M, se_scale=0.5)
    assert kl_cov.mean() < OVERALL_FLOOR and np.nanmean(diff_cov) < OVERALL_FLOOR


# ------------------------------------------------------------------ network
NET_T, NET_L, NET_M = 10, 2, 400


@pytest.fixture(scope="module")
def network_table():
    config = families.PredictorConfig(family="lstm", embedding_dim=4, hidden_size=8,
                                    num_layers=1, steps=40, batch_size=32,
                                    sequence_length=NET_T + NET_L, warmup_steps=2,
                                    learning_rate=1e-2)
    model, _ = trainer.train(config, build_source(BERNMIX), progress=lambda line: None)
    pred = scoring.NeuralPredictor(model, config, device="cpu")
    prompts = prompts_lib.all_prompts(NET_L, 2)
    return pred.prompt_losses(prompts, prompts_lib.enumerate_sequences(NET_T, 2))


@pytest.mark.parametrize("task", TASKS)
def test_network_intervals_cover_the_exact_landscape_across_redraws(network_table, task):
    kl_cov, diff_cov = redraw_coverage(network_table, build_source(TASKS[task]), NET_T, NET_M)
    assert_honest(kl_cov, diff_cov)


# ------------------------------------------------------------------ T = 50 cross-check
LONG_T, LONG_L, LONG_M, LONG_DRAWS = 50, 5, 10_000, 4


@pytest.mark.parametrize("pre", [BERNMIX, BETA11], ids=["bernmix", "beta11"])
@pytest.mark.parametrize("task", ["coin(0.2)", "coin(0.7)"])
def test_long_task_exact_landscape_is_within_the_stratified_error_bars(pre, task):
    # The default pretraining sources' exact landscapes (count sums) against the stratified
    # evaluation-set estimate: for an exchangeable Bayes predictor the stratified estimate is
    # exact (standard error 0), so they must agree to rounding, draw after draw.
    prompts = prompts_lib.all_prompts(LONG_L, 2)
    pred = BayesPredictor(build_source(pre))
    task_src = build_source(TASKS[task])
    loss, _, entropy = landscape.theoretical_losses(pred, prompts, task_src, LONG_T,
                                                    "exact_counts")
    kl = loss - entropy
    floor = landscape.EXACT_RELATIVE_TOLERANCE * np.abs(loss) + 1e-12
    for draw in range(LONG_DRAWS):
        rng = np.random.default_rng([draw, 50])
        seqs, strata, weights = landscape.draw_evaluation(task_src, LONG_T, LONG_M, rng)
        assert len(np.unique(strata)) == LONG_T + 1  # every count drawn on its own
        _, _, est, se, _ = landscape.monte_carlo_kl(
            pred.prompt_losses(prompts, seqs), task_src.log_prob(seqs), weights, strata)
        z = np.abs(est - kl) / np.maximum(se, floor)
        assert z.max() <= 2, (draw, z.max())


def test_plain_draws_fail_the_long_task_cross_check():
    # Why stratify: at T = 50 rare sequences carry most of the KL, and plain draws of the
    # same size put the exact value outside the estimate's error bars by many standard errors.
    prompts = prompts_lib.all_prompts(LONG_L, 2)
    pred = BayesPredictor(build_source(BERNMIX))
    task_src = build_source(TASKS["coin(0.7)"])
    loss, _, entropy = landscape.theoretical_losses(pred, prompts, task_src, LONG_T,
                                                    "exact_counts")
    zmax = []
    for draw in range(LONG_DRAWS):
        seqs = task_src.sample(LONG_M, LONG_T, np.random.default_rng([draw, 50]))
        _, _, est, se, _ = landscape.monte_carlo_kl(pred.prompt_losses(prompts, seqs),
                                                    task_src.log_prob(seqs))
        zmax.append(np.max(np.abs(est - (loss - entropy)) / se))
    assert max(zmax) > 4, zmax


# ------------------------------------------------------------------ the evaluation set
def test_stratified_evaluation_set_weights_are_the_exact_count_probabilities():
    task = build_source(TASKS["coin(0.2)"])
    T, M = 12, 300
    seqs, strata, weights = landscape.draw_evaluation(task, T, M, np.random.default_rng(0))
    assert seqs.shape == (M, T) and seqs.dtype == np.uint8
    np.testing.assert_array_equal(seqs.sum(axis=1), strata)  # stratum = count of ones
    probs = landscape.evaluation_strata(task, T)
    np.testing.assert_allclose(np.bincount(strata, weights=weights, minlength=T + 1), probs,
                               rtol=1e-12)
    counts = np.bincount(strata, minlength=T + 1)
    assert counts.sum() == M and counts.min() >= landscape.MIN_PER_STRATUM
    # The entropy estimate is exact: log P_task is constant within a stratum.
    log_p = task.log_prob(seqs)
    all_seqs = prompts_lib.enumerate_sequences(T, 2)
    exact = -np.exp(task.log_prob(all_seqs)) @ task.log_prob(all_seqs)
    assert -(weights @ log_p) == pytest.approx(exact, rel=1e-12)


def test_non_exchangeable_task_is_one_stratum_of_plain_draws():
    task = build_source(TASKS["switching(0.3)"])
    seqs, strata, weights = landscape.draw_evaluation(task, 8, 50, np.random.default_rng(1))
    assert (strata == 0).all() and np.allclose(weights, 1 / 50)
    np.testing.assert_array_equal(seqs, task.sample(50, 8, np.random.default_rng(1)))


def test_allocation_refuses_a_set_too_small_for_its_strata():
    with pytest.raises(ValueError, match="evaluation_size"):
        landscape.allocate(np.full(51, 1 / 51), 60)
