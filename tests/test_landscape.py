"""The science of landscapes: theoretical losses, KL, dense ranks, the optimal class.

Exact losses are checked against a from-scratch computation written here: every task
sequence is enumerated, its probability is a direct product, and the prompted predictive is
brute-force Bayes (the posterior over the hidden coins after the prompt, the sequential
rule of succession for a Beta prior, or a sum over every hidden switch path), never the
library's count formulas.
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import pytest

from promptscape import landscape
from promptscape.predictors import BayesPredictor, Predictor
from promptscape.prompts import all_prompts, enumerate_sequences
from promptscape.sources import build_source

T_SMALL = 6
BUDGET = landscape.DEFAULT_ENUMERATION_BUDGET
L_SMALL = 3

BERNMIX = {"kind": "coin_mixture", "thetas": [0.2, 0.7]}
BETA11 = {"kind": "beta_coin", "alpha": 1.0, "beta": 1.0}
SWITCHING = {"kind": "switching", "thetas": [0.2, 0.7], "switch_prob": 0.05}


def coin(theta):
    return {"kind": "coin", "theta": theta}


CASES = [
    (BERNMIX, coin(0.7)),
    (BERNMIX, coin(0.2)),
    (BERNMIX, coin(0.5)),
    (BERNMIX, coin(0.9)),
    (BETA11, coin(0.5)),
    (BETA11, coin(0.8)),
    (BETA11, {"kind": "coin_mixture", "thetas": [0.2, 0.8]}),
    (SWITCHING, coin(0.7)),
    (SWITCHING, coin(0.5)),
]


def _case_id(case):
    pre, task = case
    return f"{build_source(pre).describe()}-on-{build_source(task).describe()}"


CASE_IDS = [_case_id(c) for c in CASES]
# Every exact method that applies: exact_counts where both sources are exchangeable.
METHOD_CASES = [
    (pre, task, method)
    for pre, task in CASES
    for method in (("exact_counts", "exact_enumeration")
                   if build_source(pre).exchangeable and build_source(task).exchangeable
                   else ("exact_enumeration",))
]
METHOD_IDS = [f"{_case_id((p, t))}-{m}" for p, t, m in METHOD_CASES]


# ------------------------------------------------------------------ brute force
def _bits(text: str) -> list[int]:
    return [int(c) for c in text]


def _coin_product(theta: float, bits) -> float:
    out = 1.0
    for b in bits:
        out *= theta if b == 1 else 1.0 - theta
    return out


def brute_task_probability(task: dict, bits) -> float:
    """P_task(x) of one sequence, as a direct product (tasks here are coins or mixtures)."""
    if task["kind"] == "coin":
        return _coin_product(task["theta"], bits)
    if task["kind"] == "coin_mixture":
        thetas = task["thetas"]
        weights = task.get("weights") or [1.0 / len(thetas)] * len(thetas)
        return sum(w * _coin_product(t, bits) for w, t in zip(weights, thetas))
    raise AssertionError(f"no brute-force task probability for {task['kind']!r}")


@functools.lru_cache(maxsize=None)
def _switch_paths(n: int, thetas: tuple, weights: tuple, rho: float):
    """Every hidden coin path of n flips and its probability from the generative story."""
    paths = np.array(list(itertools.product(range(len(thetas)), repeat=n)), dtype=np.int64)
    w = np.asarray(weights)
    prob = w[paths[:, 0]].copy()
    for t in range(1, n):
        stay = paths[:, t] == paths[:, t - 1]
        prob *= (1.0 - rho) * stay + rho * w[paths[:, t]]  # keep, or redraw (maybe the same)
    assert math.isclose(prob.sum(), 1.0, rel_tol=1e-12)
    return np.asarray(thetas)[paths], prob  # (K^n, n), (K^n,)


def _switching_probability(pre: dict, seqs: np.ndarray) -> np.ndarray:
    """P(seq) for a batch ``(B, n)`` by summing over every hidden switch path."""
    thetas = tuple(pre["thetas"])
    weights = tuple(pre.get("weights") or [1.0 / len(thetas)] * len(thetas))
    n = seqs.shape[1]
    if n == 0:
        return np.ones(len(seqs))
    th, path_p = _switch_paths(n, thetas, weights, pre["switch_prob"])
    emit = np.where(seqs[:, None, :] == 1, th[None], 1.0 - th[None])  # (B, K^n, n)
    return np.prod(emit, axis=2) @ path_p


def brute_prompted_probability(pre: dict, prompt: str, seqs: np.ndarray) -> np.ndarray:
    """q(x | s) for every sequence x of ``seqs``: the pretraining source's Bayes-posterior
    probability of x after seeing the prompt s, computed from scratch."""
    s = _bits(prompt)
    if pre["kind"] == "coin_mixture":
        thetas = pre["thetas"]
        weights = pre.get("weights") or [1.0 / len(thetas)] * len(thetas)
        joint = [w * _coin_product(t, s) for w, t in zip(weights, thetas)]
        post = [j / sum(joint) for j in joint]  # posterior over the hidden coin
        return np.array([sum(p * _coin_product(t, x) for p, t in zip(post, thetas))
                         for x in seqs.tolist()])
    if pre["kind"] == "beta_coin":
        # Sequential Bayes predictive of a Beta prior: q(1 | n1, n0) = (a + n1) / (a + b + n).
        a, b = pre["alpha"], pre["beta"]
        out = []
        for x in seqs.tolist():
            n1, n0, prob = s.count(1), s.count(0), 1.0
            for bit in x:
                p_one = (a + n1) / (a + b + n1 + n0)
                prob *= p_one if bit == 1 else 1.0 - p_one
                n1, n0 = n1 + bit, n0 + 1 - bit
            out.append(prob)
        return np.array(out)
    if pre["kind"] == "switching":
        prompt_arr = np.array(s, dtype=np.int64).reshape(1, -1)
        joined = np.concatenate([np.repeat(prompt_arr, len(seqs), axis=0),
                                 seqs.astype(np.int64)], axis=1)
        return _switching_probability(pre, joined) / _switching_probability(pre, prompt_arr)[0]
    raise AssertionError(f"no brute-force predictor for {pre['kind']!r}")


def brute_force_landscape(pre: dict, task: dict, prompts: list[str], T: int):
    """(loss (P,), kl (P,), entropy) by explicit enumeration of all 2**T task sequences."""
    seqs = np.array(list(itertools.product([0, 1], repeat=T)), dtype=np.int64)
    q_task = np.array([brute_task_probability(task, x) for x in seqs.tolist()])
    assert math.isclose(q_task.sum(), 1.0, rel_tol=1e-12)
    entropy = -math.fsum(q_task * np.log(q_task))
    loss, kl = [], []
    for prompt in prompts:
        q = brute_prompted_probability(pre, prompt, seqs)
        assert math.isclose(q.sum(), 1.0, rel_tol=1e-12), prompt
        loss.append(math.fsum(q_task * -np.log(q)))
        kl.append(math.fsum(q_task * (np.log(q_task) - np.log(q))))  # KL directly, no H
    return np.array(loss), np.array(kl), entropy


# ------------------------------------------------------------------ exact losses
@pytest.mark.parametrize("pre, task, method", METHOD_CASES, ids=METHOD_IDS)
def test_exact_theoretical_kl_matches_independent_brute_force(pre, task, method):
    prompts = all_prompts(L_SMALL)
    pred = BayesPredictor(build_source(pre))
    task_src = build_source(task)
    loss, loss_se, entropy = landscape.theoretical_losses(pred, prompts, task_src, T_SMALL,
                                                          method)
    exp_loss, exp_kl, exp_entropy = brute_force_landscape(pre, task, prompts, T_SMALL)
    assert loss.shape == (len(prompts),)
    np.testing.assert_array_equal(loss_se, 0.0)
    np.testing.assert_allclose(loss, exp_loss, rtol=1e-9, atol=0)
    assert math.isclose(entropy, exp_entropy, rel_tol=1e-9)
    kl = loss - entropy
    np.testing.assert_allclose(kl, exp_kl, rtol=1e-9, atol=0)
    assert (kl > 0).all()  # no pretraining source here equals any task


@pytest.mark.parametrize("pre, task", CASES, ids=CASE_IDS)
def test_choose_method_picks_the_exact_method_for_the_study_cases(pre, task):
    pred = BayesPredictor(build_source(pre))
    task_src = build_source(task)
    expected = "exact_counts" if pred.source.exchangeable else "exact_enumeration"
    assert landscape.choose_method(pred, task_src, T_SMALL, 15, BUDGET) == expected


@pytest.mark.parametrize("task, best", [(coin(0.7), "11111"), (coin(0.2), "00000")],
                         ids=["coin(0.7)", "coin(0.2)"])
def test_bernmix_unique_optimal_prompt_is_the_constant_prompt_of_the_task_coin(task, best):
    prompts = all_prompts(5)
    pred = BayesPredictor(build_source(BERNMIX))
    task_src = build_source(task)
    method = landscape.choose_method(pred, task_src, 10, len(prompts), BUDGET)
    assert method == "exact_counts"
    loss, _, entropy = landscape.theoretical_losses(pred, prompts, task_src, 10, method)
    ranks = landscape.dense_ranks(loss)
    assert [p for p, r in zip(prompts, ranks) if r == 0] == [best]
    assert prompts[int(np.argmin(loss))] == best
    # The landscape is nested by evidence: the constant prompt of length l beats every
    # other prompt of length <= l, so the optimum improves with each symbol.
    kl = loss - entropy
    constant = [kl[prompts.index(best[:l])] for l in range(6)]
    assert all(a > b for a, b in zip(constant, constant[1:])), constant


# ------------------------------------------------------------------ Monte Carlo agreement
MC_SIZE = 20_000


@pytest.mark.parametrize("index", range(len(CASES)), ids=CASE_IDS)
def test_exact_kl_agrees_with_monte_carlo_estimate_within_four_standard_errors(index):
    pre, task = CASES[index]
    prompts = all_prompts(L_SMALL)
    pred = BayesPredictor(build_source(pre))
    task_src = build_source(task)
    method = landscape.choose_method(pred, task_src, T_SMALL, 15, BUDGET)
    loss, _, entropy = landscape.theoretical_losses(pred, prompts, task_src, T_SMALL, method)
    kl_exact = loss - entropy

    seqs = task_src.sample(MC_SIZE, T_SMALL, np.random.default_rng(31_415 + index))
    per_seq = pred.prompt_losses(prompts, seqs)
    mc_loss, mc_loss_se, mc_kl, mc_kl_se, mc_entropy = landscape.monte_carlo_kl(
        per_seq, task_src.log_prob(seqs))
    assert (mc_kl_se > 0).all() and (mc_loss_se > 0).all()
    z = np.abs(kl_exact - mc_kl) / mc_kl_se
    assert (z <= 4).all(), dict(zip(prompts, z.round(2)))
    np.testing.assert_allclose(mc_loss - mc_entropy, mc_kl, rtol=0, atol=1e-12)


# ------------------------------------------------------------------ dense ranks
def test_dense_ranks_permutations_of_a_prompt_share_a_rank_under_an_exchangeable_predictor():
    prompts = all_prompts(4)
    pred = BayesPredictor(build_source(BERNMIX))
    task_src = build_source(coin(0.7))
    seqs = enumerate_sequences(8)
    p = np.exp(task_src.log_prob(seqs))
    # Score by concatenation (the generic route), not by counts, so that permutations of a
    # prompt come out equal only up to floating-point noise.
    loss = Predictor.prompt_losses(pred, prompts, seqs) @ p
    ranks = landscape.dense_ranks(loss)
    classes: dict[tuple[int, int], set[int]] = {}
    for prompt, rank in zip(prompts, ranks):
        classes.setdefault((len(prompt), prompt.count("1")), set()).add(int(rank))
    assert all(len(r) == 1 for r in classes.values()), classes
    # Distinct count classes hold distinct evidence about the coin, hence distinct ranks.
    assert len(set(ranks.tolist())) == len(classes)


@pytest.mark.parametrize("relative, tied", [(0.0, True), (1e-14, True), (1e-12, True),
                                            (1e-6, False), (1e-3, False)])
@pytest.mark.parametrize("scale", [1.0, 1e-3, 250.0, -4.0])
def test_dense_ranks_tie_only_values_within_relative_tolerance(relative, tied, scale):
    base = scale
    other = base + relative * abs(base)
    for values in ([base, other], [other, base]):
        ranks = landscape.dense_ranks(np.array(values))
        if tied:
            assert ranks.tolist() == [0, 0]
        else:
            low = int(np.argmin(values))
            assert ranks[low] == 0 and ranks[1 - low] == 1


def test_dense_ranks_are_dense_and_order_preserving():
    rng = np.random.default_rng(5)
    levels = np.sort(rng.uniform(1.0, 2.0, size=12))
    level = rng.integers(0, 12, size=200)
    level[:3] = [0, 11, 5]
    # Each value is its level up to rounding noise, which must not split a tie.
    values = levels[level] * (1 + rng.uniform(-1e-15, 1e-15, size=level.size))
    ranks = landscape.dense_ranks(values)
    assert ranks.dtype == np.int64
    used = sorted(set(ranks.tolist()))
    assert used == list(range(ranks.max() + 1))  # 0..max, no gaps
    # Expected: the dense rank of each value's level among the levels that occur.
    present = sorted(set(level.tolist()))
    expected = np.array([present.index(v) for v in level])
    np.testing.assert_array_equal(ranks, expected)


# ------------------------------------------------------------------ estimated optimal class
def test_optimal_class_estimated_is_a_singleton_for_a_clearly_best_prompt():
    rng = np.random.default_rng(11)
    common = rng.normal(5.0, 1.0, size=4000)  # shared per-sequence difficulty (paired)
    losses = common[None, :] + rng.normal(0.0, 0.1, size=(6, 4000))
    losses += np.array([0.5, 0.0, 0.4, 0.6, 0.3, 0.8])[:, None]  # prompt 1 is best
    optimal = landscape.optimal_class_estimated(losses)
    assert optimal.dtype == bool
    assert optimal.tolist() == [False, True, False, False, False, False]


def test_optimal_class_estimated_keeps_identical_best_rows_together():
    rng = np.random.default_rng(12)
    losses = rng.normal(5.0, 1.0, size=(5, 3000)) + np.array([1.0, 0.0, 1.0, 0.0, 2.0])[:, None]
    losses[3] = losses[1]  # two identical rows, both best
    optimal = landscape.optimal_class_estimated(losses)
    assert optimal[1] and optimal[3]
    assert not optimal[0] and not optimal[2] and not optimal[4]


# ------------------------------------------------------------------ choose_method
LIMIT = 8


@pytest.mark.parametrize("pre, task, T, expected", [
    (BERNMIX, coin(0.7), LIMIT, "exact_counts"),
    (BERNMIX, coin(0.7), LIMIT + 40, "exact_counts"),  # counts need no enumeration
    (BETA11, {"kind": "coin_mixture", "thetas": [0.2, 0.8]}, LIMIT + 1, "exact_counts"),
    (BERNMIX, SWITCHING, LIMIT, "exact_enumeration"),  # task not exchangeable
    (BERNMIX, SWITCHING, LIMIT + 1, "monte_carlo"),
    (SWITCHING, coin(0.7), 1, "exact_enumeration"),
    (SWITCHING, coin(0.7), LIMIT, "exact_enumeration"),
    (SWITCHING, coin(0.7), LIMIT + 1, "monte_carlo"),
    (SWITCHING, SWITCHING, LIMIT + 1, "monte_carlo"),
], ids=lambda v: v if isinstance(v, (str, int)) else None)
def test_choose_method_first_exact_method_that_applies(pre, task, T, expected):
    pred = BayesPredictor(build_source(pre))
    assert landscape.choose_method(pred, build_source(task), T, 1, 2 ** LIMIT) == expected


def test_choose_method_never_uses_counts_for_a_non_bayes_predictor():
    class Opaque(Predictor):
        family = "opaque"
        source = build_source(BERNMIX)  # looks exchangeable, but is not a Bayes predictor

    task_src = build_source(coin(0.7))
    assert landscape.choose_method(Opaque(), task_src, LIMIT, 1, 2 ** LIMIT) == "exact_enumeration"
    assert landscape.choose_method(Opaque(), task_src, LIMIT + 1, 1, 2 ** LIMIT) == "monte_carlo"


def test_theoretical_losses_refuses_monte_carlo():
    pred = BayesPredictor(build_source(BERNMIX))
    with pytest.raises(ValueError, match="monte_carlo"):
        landscape.theoretical_losses(pred, [""], build_source(coin(0.5)), 4, "monte_carlo")
