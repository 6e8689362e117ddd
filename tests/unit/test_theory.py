"""The predicted proportion correct (promptscape.theory): the exact multinomial sum against
brute force over ordered draws and against simulation, the normal approximation against
both where it applies (and where it does not), the class collapse and tie rule against the
pipeline's own search, and the variance decomposition against the landscape."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from promptscape import landscape, search, theory
from promptscape.predictors import BayesPredictor
from promptscape.prompts import all_prompts
from promptscape.sources import build_source, compositions

BERNMIX = {"kind": "coin_mixture", "thetas": [0.2, 0.7]}
T, L_MAX = 10, 5


def count_problem(task: dict, pre: dict = BERNMIX):
    """An exchangeable Bayes predictor's problem over the T + 1 count values of a binary
    task: (prompts, losses (P, T + 1), p (T + 1,), optimal (P,), kl (P,))."""
    pred = BayesPredictor(build_source(pre))
    task_source = build_source(task)
    prompts = all_prompts(L_MAX, 2)
    counts = compositions(T, 2)  # (T + 1, 2): k ones, k = 0..T
    seqs = np.array([[0] * (T - k) + [1] * k for k in range(T + 1)], dtype=np.uint8)
    losses = pred.prompt_losses(prompts, seqs)  # (P, T + 1): one sequence per count value
    p = np.exp(task_source.count_log_probabilities(T))
    loss, _, entropy = landscape.theoretical_losses(pred, prompts, task_source, T,
                                                    "exact_counts")
    optimal = landscape.classify(loss)[1]
    assert counts.shape == (T + 1, 2)
    return prompts, losses, p, optimal, loss - entropy


def collapsed(task: dict):
    prompts, losses, p, optimal, kl = count_problem(task)
    rows, row_optimal, first = theory.collapse(losses, optimal)
    return rows, p, row_optimal


def test_collapse_keeps_one_row_per_count_class_in_canonical_order():
    prompts, losses, p, optimal, _ = count_problem({"kind": "coin", "theta": 0.7})
    rows, row_optimal, first = theory.collapse(losses, optimal)
    assert len(rows) == 21  # count classes of binary prompts of length <= 5
    assert list(first) == sorted(first) and first[0] == 0  # the empty prompt first
    assert [prompts[i] for i in first[:4]] == ["", "0", "1", "00"]
    assert row_optimal.sum() == 1 and prompts[first[row_optimal][0]] == "11111"


def test_the_class_rule_is_the_pipeline_search_rule():
    """On simulated datasets, the first minimum over collapsed rows is optimal exactly when
    the pipeline's exhaustive search over every prompt chooses an optimal prompt."""
    task = {"kind": "coin", "theta": 0.5}
    prompts, losses, p, optimal, _ = count_problem(task)
    rows, row_optimal, _ = theory.collapse(losses, optimal)
    pred = BayesPredictor(build_source(BERNMIX))
    rng = np.random.default_rng(7)
    for N in (1, 4, 30):
        data = build_source(task).sample(200 * N, T, rng).reshape(200, N, T)
        chosen = search.choose(search.empirical_losses(pred, prompts, data, 2 ** 27, 2))
        k = data.sum(axis=2)  # (200, N) count values
        f = np.stack([np.bincount(row, minlength=T + 1) for row in k]) / N
        np.testing.assert_array_equal(theory.chosen_correct(f @ rows.T, row_optimal),
                                      optimal[chosen])


def test_exact_sum_equals_brute_force_over_ordered_draws():
    """Three outcomes, three rows, N = 1..4: the multinomial enumeration against the sum
    over all X^N ordered draws."""
    losses = np.array([[1.0, 2.0, 3.0], [1.5, 1.2, 2.9], [0.9, 2.5, 2.0]])
    p = np.array([0.5, 0.3, 0.2])
    optimal = np.array([False, True, False])
    for N in range(1, 5):
        want = 0.0
        for draw in itertools.product(range(3), repeat=N):
            f = np.bincount(draw, minlength=3) / N
            if theory.chosen_correct((f @ losses.T)[None, :], optimal)[0]:
                want += math.prod(p[list(draw)])
        assert theory.exact_proportion_correct(losses, p, optimal, N) == pytest.approx(
            want, rel=1e-12)


@pytest.mark.parametrize("theta", [0.7, 0.5, 0.9])
def test_exact_agrees_with_simulation(theta):
    rows, p, optimal = collapsed({"kind": "coin", "theta": theta})
    rng = np.random.default_rng(11)
    for N in (1, 3, 10):
        exact = theory.exact_proportion_correct(rows, p, optimal, N)
        simulated, se = theory.simulated_proportion_correct(rows, p, optimal, N, 100_000, rng)
        assert abs(exact - simulated) <= 4 * se + 1e-12, (N, exact, simulated, se)


def test_exact_runs_in_blocks_up_to_n_20_over_eleven_count_values(monkeypatch):
    rows, p, optimal = collapsed({"kind": "coin", "theta": 0.5})
    assert theory.exact_feasible(20, 11) and theory.num_outcomes(20, 11) == 30_045_015
    whole = theory.exact_proportion_correct(rows, p, optimal, 6)  # 8,008 outcomes, one block
    monkeypatch.setattr(theory, "EXACT_BLOCK", 7)  # hundreds of blocks
    blocked = theory.exact_proportion_correct(rows, p, optimal, 6)
    assert blocked == pytest.approx(whole, rel=1e-12)
    with pytest.raises(ValueError, match="exceed"):
        theory.exact_proportion_correct(rows, p, optimal, 30)


def test_normal_holds_at_large_n_and_fails_for_an_extreme_optimum_at_n_1():
    rng = np.random.default_rng(3)
    # coin(0.5) under BernMix: a flat top, search unreliable even at N = 1000; the normal
    # theory agrees with simulation there.
    rows, p, optimal = collapsed({"kind": "coin", "theta": 0.5})
    normal, se_n = theory.normal_proportion_correct(rows, p, optimal, 1000, 100_000, rng)
    simulated, se_s = theory.simulated_proportion_correct(rows, p, optimal, 1000, 100_000, rng)
    assert 0.05 < simulated < 0.95
    assert abs(normal - simulated) <= 4 * math.hypot(se_n, se_s) + 0.01
    # coin(0.7), N = 1: the optimum 11111 wins on most single sequences; the losses take 11
    # values, far from normal, and the normal theory misses by far.
    rows, p, optimal = collapsed({"kind": "coin", "theta": 0.7})
    exact = theory.exact_proportion_correct(rows, p, optimal, 1)
    normal, _ = theory.normal_proportion_correct(rows, p, optimal, 1, 50_000, rng)
    assert exact > 0.9 and abs(normal - exact) > 0.2


def test_decomposition_against_the_landscape():
    prompts, losses, p, optimal, kl = count_problem({"kind": "coin", "theta": 0.5})
    rows, row_optimal, first = theory.collapse(losses, optimal)
    parts = theory.decomposition(rows, p, row_optimal, reference_N=100)
    best = kl[optimal].min()
    rival = kl[~optimal].min()
    assert parts["gap"] == pytest.approx(rival - best, rel=1e-9, abs=1e-15)
    assert parts["paired_sd"] > 0 and parts["within_2se"] >= 1
    assert theory.first_reaching([1, 10, 100], [0.2, 0.6, 0.95], 0.5) == 10
    assert theory.first_reaching([1, 10, 100], [0.2, 0.6, 0.95], 0.99) is None


def test_exact_sum_over_multisets_equals_compositions_and_brute_force(monkeypatch):
    """Where N < X the exact sum enumerates multisets of outcome indices; it equals the sum
    over count vectors and over ordered draws, in one block and in many."""
    rng = np.random.default_rng(5)
    losses = rng.random((4, 6))
    p = rng.dirichlet(np.ones(6))
    p[2] = 0.0  # an impossible outcome
    optimal = np.array([False, True, False, True])
    for N in (1, 2, 3, 5):
        want = 0.0
        for draw in itertools.product(range(6), repeat=N):
            f = np.bincount(draw, minlength=6) / N
            if theory.chosen_correct((f @ losses.T)[None, :], optimal)[0]:
                want += math.prod(p[list(draw)])
        got = theory.exact_proportion_correct(losses, p, optimal, N)
        assert got == pytest.approx(want, rel=1e-12, abs=1e-15)
        monkeypatch.setattr(theory, "EXACT_BLOCK", 3)
        assert theory.exact_proportion_correct(losses, p, optimal, N) == pytest.approx(
            want, rel=1e-12, abs=1e-15)
        monkeypatch.undo()


def test_collapsing_outcomes_is_exact():
    """Merging outcomes with identical loss columns (their probabilities added) leaves the
    exact prediction as it is: the 1,024 sequences of a binary task give the 11 count values
    under an exchangeable Bayes predictor."""
    pred = BayesPredictor(build_source(BERNMIX))
    prompts = all_prompts(3, 2)
    task = build_source({"kind": "coin", "theta": 0.7})
    seqs = np.array(list(itertools.product([0, 1], repeat=T)), dtype=np.uint8)
    losses = pred.prompt_losses(prompts, seqs)
    p = np.exp(task.log_prob(seqs))
    merged, q = theory.collapse_outcomes(losses, p)
    assert merged.shape == (len(prompts), T + 1) and q.sum() == pytest.approx(1.0)
    optimal = landscape.classify(losses @ p)[1]
    rows, row_optimal, _ = theory.collapse(losses, optimal)
    small, q_small = theory.collapse_outcomes(rows, p)
    for N in (1, 2):
        assert theory.exact_proportion_correct(rows, p, row_optimal, N) == pytest.approx(
            theory.exact_proportion_correct(small, q_small, row_optimal, N), rel=1e-10)


def test_normal_curve_reuses_one_set_of_draws_for_every_n():
    rows, p, optimal = collapsed({"kind": "coin", "theta": 0.5})
    curve = theory.normal_curve(rows, p, optimal, [10, 1000], 20_000, np.random.default_rng(1))
    alone = theory.normal_proportion_correct(rows, p, optimal, 1000, 20_000,
                                             np.random.default_rng(1))
    assert curve[1] == alone  # the same draws, the same answer
    assert curve[0][0] < curve[1][0]


@pytest.mark.parametrize("p, N", [([0.4, 0.6], 6), ([0.02] * 5 + [0.9], 3)],
                         ids=["compositions", "multisets"])
def test_exact_probability_of_a_certain_event_is_at_most_one(p, N):
    """Every row optimal: the sum over every outcome is 1, whose rounding gave 1 + 1e-15,
    outside a measured interval ending at 1 (inside_interval false)."""
    X = len(p)
    losses = np.arange(2 * X, dtype=np.float64).reshape(2, X) % 3
    q = theory.exact_proportion_correct(losses, np.array(p), np.array([True, True]), N)
    assert 0.0 <= q <= 1.0 and q == pytest.approx(1.0, abs=1e-12)
