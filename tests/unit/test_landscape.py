"""The science of landscapes: theoretical losses, KL, dense ranks, the optimal class.

Exact losses are checked against a from-scratch computation (tests/landscape_helpers.py):
every task sequence is enumerated, its probability is a direct product, and the prompted
predictive is brute-force Bayes (the posterior over the hidden coins after the prompt, the
sequential rule of succession for a Beta prior, or a sum over every hidden switch path),
never the library's count formulas.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from promptscape import landscape
from promptscape.predictors import BayesPredictor, Predictor
from promptscape.prompts import all_prompts, enumerate_sequences
from promptscape.sources import build_source

from landscape_helpers import BERNMIX, BETA11, SWITCHING, brute_force_landscape, coin

T_SMALL = 6
BUDGET = landscape.DEFAULT_ENUMERATION_BUDGET
L_SMALL = 3

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


# ------------------------------------------------------------------ exact losses
@pytest.mark.parametrize("pre, task, method", METHOD_CASES, ids=METHOD_IDS)
def test_exact_theoretical_kl_matches_independent_brute_force(pre, task, method):
    prompts = all_prompts(L_SMALL, 2)
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
    prompts = all_prompts(5, 2)
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
    prompts = all_prompts(L_SMALL, 2)
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
    prompts = all_prompts(4, 2)
    pred = BayesPredictor(build_source(BERNMIX))
    task_src = build_source(coin(0.7))
    seqs = enumerate_sequences(8, 2)
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


# ------------------------------------------------------------------ one tie rule: classify
def paired_rows(gaps, zs, M=400, seed=0, base=5.0):
    """Per-sequence losses ``(P, M)`` whose row 0 is the best and whose row i differs from it
    by exactly ``gaps[i]`` on average with a paired standard error ``gaps[i] / zs[i]``."""
    rng = np.random.default_rng(seed)
    first = base + rng.normal(0.0, 1.0, size=M)
    rows = [first]
    for gap, z in zip(gaps, zs):
        noise = rng.normal(0.0, 1.0, size=M)
        noise = (noise - noise.mean()) / noise.std(ddof=1)  # mean 0, sd 1 exactly
        rows.append(first + gap + noise * (gap / z) * np.sqrt(M))
    return np.array(rows)


def paired_z(losses, best):
    """Paired z of each row's difference from row `best` (0 for the best row itself)."""
    d = losses - losses[best]
    se = d.std(axis=1, ddof=1) / np.sqrt(losses.shape[1])
    return np.divide(d.mean(axis=1), se, out=np.zeros(len(d)), where=se > 0)


def test_classify_rank_zero_is_the_optimal_class_where_separate_rules_disagreed():
    # Prompt 1 is slightly worse than the best (paired z = 1), prompt 2 clearly worse.
    losses = paired_rows(gaps=[0.01, 0.5], zs=[1.0, 40.0])
    loss = losses.mean(axis=1)
    np.testing.assert_allclose(paired_z(losses, 0)[1:], [1.0, 40.0], rtol=1e-9)
    # The rules used apart before: dense ranks of the estimates put prompt 1 at rank 1, the
    # paired test put it in the optimal class.
    assert landscape.dense_ranks(loss).tolist() == [0, 1, 2]
    assert landscape.optimal_class_estimated(losses).tolist() == [True, True, False]
    rank, optimal, resolved = landscape.classify(loss, losses)
    assert rank.tolist() == [0, 0, 1]
    assert optimal.tolist() == [True, True, False]
    assert resolved.tolist() == [True, False, True]  # prompt 1: not resolved from the best


def test_classify_corrects_for_the_comparisons_with_the_best_by_bonferroni():
    # z = 2.2 resolves one comparison at 95% (one-sided 1.645, even 1.96), not fourteen.
    assert landscape.estimate_critical_z(2) == pytest.approx(1.6449, abs=1e-4)
    assert landscape.estimate_critical_z(15) == pytest.approx(2.6901, abs=1e-4)
    two = paired_rows(gaps=[0.05], zs=[2.2])
    assert landscape.classify(two.mean(axis=1), two)[1].tolist() == [True, False]
    # The same comparison among 15 prompts (13 others clearly worse): unresolved, in S*.
    many = paired_rows(gaps=[0.05] + [1.0] * 13, zs=[2.2] + [50.0] * 13)
    rank, optimal, resolved = landscape.classify(many.mean(axis=1), many)
    assert optimal.tolist() == [True, True] + [False] * 13
    assert not resolved[1] and resolved[[0] + list(range(2, 15))].all()
    # Just past the corrected critical value, resolved again.
    past = paired_rows(gaps=[0.05] + [1.0] * 13, zs=[2.72] + [50.0] * 13)
    assert landscape.classify(past.mean(axis=1), past)[1].tolist() == [True] + [False] * 14


def test_classify_equal_and_zero_variance_differences():
    rng = np.random.default_rng(7)
    first = rng.normal(5.0, 1.0, size=300)
    losses = np.array([
        first + 0.2 + rng.normal(0, 0.01, 300),  # clearly worse
        first,  # the best
        first.copy(),  # identical to the best (e.g. a permutation): tied, zero variance
        first + 0.05,  # worse by a constant: zero variance, resolved, not in S*
        first + 0.05,  # identical to the previous: shares its rank
        first * (1 + 1e-14),  # the best up to rounding noise: an equal estimate, tied
    ])
    rank, optimal, resolved = landscape.classify(losses.mean(axis=1), losses)
    assert optimal.tolist() == [False, True, True, False, False, True]
    assert resolved.all()  # every member of S* equals the best; no difference is noise
    assert rank.tolist() == [2, 0, 0, 1, 1, 0]


def test_classify_exact_values_are_dense_ranks_within_the_stated_resolution():
    loss = np.array([3.0, 1.0, 1.0 + 1e-12, 2.0, 1.0 + 1e-6, 3.0 * (1 + 1e-13)])
    rank, optimal, resolved = landscape.classify(loss, tolerance=1e-11)
    assert rank.tolist() == [3, 0, 0, 2, 1, 3]
    assert optimal.tolist() == [False, True, True, False, False, False]
    assert resolved.all()
    # Without a stated resolution: 64 float64 roundings of the largest value (4.3e-14
    # here), so values 1e-12 and 3e-13 apart are resolved.
    rank = landscape.classify(loss)[0]
    assert rank.tolist() == [4, 0, 1, 3, 2, 5]


def test_issue_26_bernmix_coin_07_at_l_max_12_no_longer_ties_1e_9_apart():
    """Issue 26: under BernMix(0.2, 0.7) (config/long_prompts.yaml, the Bayes predictor of
    long_bernmix_networks at L_max 12, T = 10), coin(0.7)'s optimal class was {1^11, 1^12}
    by the relative 1e-9 of a ~6.7-nat loss, though their KLs are 1.35e-9 and 1.1e-10."""
    from promptscape.study import config as config_lib

    study = config_lib.load_file("config/long_prompts.yaml")
    exp = study.experiments["long_bernmix_networks"]
    assert exp.max_prompt_length == 12 and exp.pretraining_name == "bernmix"
    task = exp.task("coin_0.7").source
    pred = BayesPredictor(exp.pretraining)
    prompts = all_prompts(exp.max_prompt_length, exp.vocab_size)
    first, inverse = pred.prompt_classes(prompts)
    method = landscape.choose_method(pred, task, exp.task_length, len(prompts),
                                     study.enumeration_budget)
    assert method == "exact_counts"
    loss, _, entropy = landscape.theoretical_losses(pred, first, task, exp.task_length, method)
    loss, kl = loss[inverse], loss[inverse] - entropy
    index = {p: i for i, p in enumerate(prompts)}
    np.testing.assert_allclose(kl[[index["1" * 11], index["1" * 12]]], [1.3503e-9, 1.110e-10],
                               rtol=1e-3)
    old = np.flatnonzero(landscape.dense_ranks(loss) == 0)  # the rule before issue 26
    assert {"1" * 11, "1" * 12} <= {prompts[i] for i in old}
    res = landscape.landscape_resolution(pred, loss, entropy, method, exp.task_length,
                                         exp.max_prompt_length, exp.vocab_size)
    assert 1e-14 < res < 1e-12
    rank, optimal, _ = landscape.classify(loss, tolerance=res)
    assert [prompts[i] for i in np.flatnonzero(optimal)] == ["1" * 12]
    assert rank[index["1" * 11]] == 1
    assert not (kl <= res).any()  # 1.1e-10 is far above the resolution


def test_resolution_is_per_kind_of_computation():
    loss = np.array([6.5, 7.0, 12.0])
    eps64, eps32 = np.finfo(np.float64).eps, np.finfo(np.float32).eps
    # float64 Bayes sums: every rounding float64.
    r64 = landscape.resolution(loss, 6.0, outcomes=11, symbols=26)
    assert r64 == pytest.approx(eps64 * (11 + 26) * 18.0)
    # A network's float32 losses: the symbols' roundings are float32's.
    r32 = landscape.resolution(loss, 6.0, outcomes=1024, symbols=22, precision="float32")
    assert r32 == pytest.approx((eps64 * 1024 + eps32 * 22) * 18.0)
    assert 1e-14 < r64 < 1e-12 and 1e-6 < r32 < 1e-4
    with pytest.raises(ValueError, match="precision"):
        landscape.resolution(loss, precision="float16")
    # The predictor decides the precision: exact Bayes float64, a table (a network's) float32.
    from promptscape.predictors import TabulatedPredictor
    bayes = BayesPredictor(build_source(BERNMIX))
    table = TabulatedPredictor(["", "0", "1"], np.zeros((3, 4)), 2, 2)
    assert landscape.loss_precision(bayes) == "float64"
    assert landscape.loss_precision(table) == "float32"
    args = (np.array([6.0]), 5.0, "exact_enumeration", 2, 1, 2)
    assert landscape.landscape_resolution(table, *args) > 1e4 * landscape.landscape_resolution(
        bayes, *args)
    # Two KLs 1e-9 apart are different under float64 and tied under float32.
    values = np.array([6.7, 6.7 + 1e-9])
    assert landscape.classify(values, tolerance=r64)[1].tolist() == [True, False]
    assert landscape.classify(values, tolerance=r32)[1].tolist() == [True, True]


def test_mathematical_ties_across_count_classes_stay_tied_at_float64_resolution():
    """Under a Beta(1, 1) prior and a fair coin, prompts with counts (a, b) and (b, a) are
    tied by symmetry but are different count classes, computed apart: their losses differ
    by rounding only, which the resolution absorbs."""
    pred = BayesPredictor(build_source(BETA11))
    task = build_source(coin(0.5))
    L, T = 10, 10
    prompts = all_prompts(L, 2)
    first, _ = pred.prompt_classes(prompts)
    loss, _, entropy = landscape.theoretical_losses(pred, first, task, T, "exact_counts")
    res = landscape.landscape_resolution(pred, loss, entropy, "exact_counts", T, L, 2)
    rank = landscape.classify(loss, tolerance=res)[0]
    counts = {tuple(c): r for c, r in zip(
        ((p.count("0"), p.count("1")) for p in first), rank)}
    for (a, b), r in counts.items():
        assert counts[(b, a)] == r, (a, b)
    # and the rounding between mirror classes is far below the resolution
    mirror = np.array([loss[first.index("0" * b + "1" * a)] for a, b in (
        (p.count("0"), p.count("1")) for p in first)])
    assert np.abs(loss - mirror).max() < res / 10


@pytest.mark.parametrize("seed", range(30))
def test_classify_rank_zero_is_the_optimal_class_for_exact_and_estimated_values(seed):
    rng = np.random.default_rng(1000 + seed)
    P, M = int(rng.integers(1, 40)), int(rng.integers(2, 300))
    levels = rng.choice([0.0, 0.001, 0.01, 0.03, 0.1, 1.0], size=P)  # repeated levels
    common = rng.normal(5.0, 1.0, size=M)
    losses = common + levels[:, None] + rng.normal(0, rng.uniform(0, 0.3), size=(P, M))
    duplicate = rng.integers(0, P, size=P // 4)
    losses[duplicate] = losses[rng.integers(0, P, size=duplicate.size)]  # identical rows
    for rank, optimal, resolved, loss in (
            (*landscape.classify(levels), levels),
            (*landscape.classify(losses.mean(axis=1), losses), losses.mean(axis=1))):
        assert rank.dtype == np.int64 and optimal.dtype == bool and resolved.dtype == bool
        np.testing.assert_array_equal(rank == 0, optimal)
        assert optimal[int(np.argmin(loss))]
        assert not (~resolved & ~optimal).any()  # only members of S* are unresolved
        assert sorted(set(rank.tolist())) == list(range(rank.max() + 1))  # dense
        # Outside S*: ranked by estimate, tied only at equal estimates.
        out = np.flatnonzero(~optimal)
        for i in out:
            for j in out:
                if loss[i] < loss[j] * (1 - 1e-9):
                    assert rank[i] < rank[j]
                elif loss[i] == loss[j]:
                    assert rank[i] == rank[j]
    np.testing.assert_array_equal(landscape.classify(levels)[0], landscape.dense_ranks(levels))


def test_classify_keeps_the_true_optimum_at_95_percent_though_the_best_is_chosen_from_data():
    # Eight prompts of equal expected loss: each is an optimum. The data pick a best; the
    # class must keep prompt 0 in at least 95% of evaluation sets (Bonferroni's union bound
    # over its comparisons). An uncorrected 1.96 would keep it in only about 86%.
    rng = np.random.default_rng(2024)
    P, M, R = 8, 200, 1000
    kept = uncorrected = 0
    for _ in range(R):
        losses = rng.normal(0, 1, size=(P, M)) + rng.normal(0, 1, size=M)[None, :]
        kept += landscape.classify(losses.mean(axis=1), losses)[1][0]
        uncorrected += paired_z(losses, int(np.argmin(losses.mean(axis=1))))[0] <= 1.96
    assert kept / R >= 0.94
    assert uncorrected / R < 0.9


def test_classify_refuses_mismatched_or_too_few_paired_losses():
    with pytest.raises(ValueError, match="3 estimates but 2 rows"):
        landscape.classify(np.zeros(3), np.zeros((2, 5)))
    with pytest.raises(ValueError, match="at least 2"):
        landscape.classify(np.zeros(2), np.zeros((2, 1)))


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


# ------------------------------------------------------------------ the stage: one rule
@pytest.mark.parametrize("enumeration_budget, method", [(1, "monte_carlo"),
                                                        (10**6, "exact_enumeration")])
def test_every_landscape_the_stage_writes_has_rank_zero_equal_to_the_optimal_class(
        tmp_path, enumeration_budget, method):
    from promptscape.study import tables
    from promptscape.pipeline.stages.datasets_stage import simulate_evaluation
    from promptscape.pipeline.stages.landscape_stage import compute_landscape

    T = 5
    evaluation = tmp_path / "eval.parquet"
    simulate_evaluation(output=str(evaluation), experiment="exp", task_name="c5",
                        task=coin(0.5), task_length=T, size=300)
    out = tmp_path / "exp" / "landscape" / "bayes" / "c5.parquet"
    compute_landscape(evaluation=str(evaluation), output=str(out), predictor="bayes",
                      family="bayes", pretraining=SWITCHING, experiment="exp",
                      task_name="c5", task=coin(0.5), task_length=T, max_prompt_length=L_SMALL,
                      enumeration_budget=enumeration_budget)
    land = tables.read(str(out), "landscape")
    assert (land["method"] == method).all()
    assert ((land["rank"] == 0) == land["optimal"]).all()
    assert land.loc[~land["resolved"], "optimal"].all()
    if method == "monte_carlo":
        # The case separate rules got wrong: the estimates leave several prompts unresolved
        # from the best, which dense ranks of the estimates alone would rank 1, 2, ...
        assert (~land["resolved"]).sum() >= 1
        assert (landscape.dense_ranks(land["loss"].to_numpy()) == 0).sum() < land["optimal"].sum()
    else:
        assert land["resolved"].all()
        res = land["kl_resolution"].iloc[0]
        assert (land["kl_resolution"] == res).all() and 0 < res < 1e-9
        np.testing.assert_array_equal(land["rank"], landscape.dense_ranks(
            land["loss"].to_numpy(), tolerance=res))
    # Below resolution speaks of an exact KL's arithmetic; an estimate is never below it.
    np.testing.assert_array_equal(land["below_resolution"], (land["kl"] <= land["kl_resolution"])
                                  & (method != "monte_carlo"))


def test_an_estimated_kl_is_a_number_with_its_standard_error_never_below_resolution():
    """A Monte Carlo landscape can estimate a KL below 0 (the words run: `we_` on English,
    -0.0029 +- 0.0042). It was marked below_resolution and the summary printed "below
    resolution (< 1e-08)", a claim about arithmetic the estimate cannot make; it is the
    estimate with its standard error."""
    import pandas as pd

    from promptscape.report import summary

    kl = np.array([-0.002879, 1e-13, 0.5])
    assert not landscape.below_resolution(kl, 1.2e-08, "monte_carlo").any()
    for method in ("exact_counts", "exact_enumeration"):
        assert landscape.below_resolution(kl, 1.2e-08, method).tolist() == [True, True, False]
    row = pd.Series({"kl": -0.002879, "kl_se": 0.004218, "kl_resolution": 1.2e-08,
                     "below_resolution": False, "method": "monte_carlo"})
    assert summary.kl_shown(row) == "-0.002879 ± 0.0042"


def test_evaluation_kl_a_block_of_prompts_at_a_time_equals_the_whole_gathered_estimate():
    """The evaluation-set estimates from a table over distinct sequences, reduced in
    blocks of 1, 3 and all prompts, equal `monte_carlo_kl` on the gathered (P, M) losses."""
    rng = np.random.default_rng(3)
    table = rng.gamma(2.0, 1.0, size=(7, 11))
    index = rng.integers(0, 11, size=40)
    log_p = -rng.gamma(3.0, 1.0, size=40)
    strata = np.repeat([0, 1], 20)
    weights = np.where(strata == 0, 0.6 / 20, 0.4 / 20)
    whole = landscape.monte_carlo_kl(table[:, index], log_p, weights, strata)
    for max_bytes in (1, 3 * 8 * 40, 10**9):
        block = landscape.evaluation_kl(table, index, log_p, weights, strata, max_bytes)
        for got, want in zip(block[:4], whole[:4]):
            np.testing.assert_allclose(got, want, rtol=1e-13, atol=0)
        assert block[4] == pytest.approx(whole[4], rel=1e-15)


@pytest.mark.parametrize("enumeration_budget", [1, 10**6])
def test_landscape_scores_each_distinct_evaluation_sequence_once_and_any_block_size_agrees(
        tmp_path, monkeypatch, enumeration_budget):
    """The stage never scores the (P, M) evaluation losses: the predictor sees each distinct
    sequence once (all 2^T where enumerated), and the landscape does not depend on the
    block size of the evaluation-set pass."""
    from promptscape.study import tables
    from promptscape.predictors import BayesPredictor
    from promptscape.pipeline.stages.datasets_stage import simulate_evaluation
    from promptscape.pipeline.stages.landscape_stage import compute_landscape

    T = 5
    evaluation = tmp_path / "eval.parquet"
    simulate_evaluation(output=str(evaluation), experiment="exp", task_name="c5",
                        task=coin(0.5), task_length=T, size=300)
    seen = []
    original = BayesPredictor.prompt_losses

    def spy(self, prompts, seqs):
        seen.append(np.asarray(seqs).shape[0])
        return original(self, prompts, seqs)

    monkeypatch.setattr(BayesPredictor, "prompt_losses", spy)
    lands = []
    for max_bytes in (10**9, 8 * 300):  # every prompt at once; one prompt per block
        monkeypatch.setattr(landscape, "EVALUATION_BYTES", max_bytes)
        out = tmp_path / f"land{max_bytes}.parquet"
        compute_landscape(evaluation=str(evaluation), output=str(out), predictor="bayes",
                          family="bayes", pretraining=SWITCHING, experiment="exp",
                          task_name="c5", task=coin(0.5), task_length=T,
                          max_prompt_length=L_SMALL, enumeration_budget=enumeration_budget)
        lands.append(tables.read(str(out), "landscape"))
    pd.testing.assert_frame_equal(lands[0], lands[1], check_exact=False, rtol=1e-13)
    distinct = len(np.unique(tables.read(str(evaluation), "evaluation_set")["sequence"]))
    # The landscape's table, then the first-symbol predictions (V one-symbol sequences).
    scored = 2**T if enumeration_budget > 1 else distinct
    assert seen[:2] == [scored, 2] and seen[2:] == [scored, 2]


# ------------------------------------------------------------------ figures mark unresolved prompts
def _figure_frame(resolved):
    prompts = ["", "0", "1", "00"]
    return {"predictor": "bayes", "replicate": 0, "experiment": "exp", "task": "c5",
            "prompt": prompts,
            "prompt_length": [len(p) for p in prompts], "kl": [0.1, 0.12, 0.3, 0.5],
            "kl_se": 0.01, "rank": [0, 0, 1, 2], "optimal": [True, True, False, False],
            "resolved": resolved, "method": "monte_carlo"}


@pytest.mark.parametrize("resolved", [[True, False, True, True], [True, True, True, True]],
                         ids=["estimated", "exact"])
def test_landscape_and_choices_figures_mark_prompts_not_resolved_from_the_best(resolved):
    import pandas as pd

    from promptscape.report import figures

    style = {"panel_width": 100, "panel_height": 80, "font_size": 10,
             "predictor_colors": {"bayes": "#1f77b4"}}
    land = pd.DataFrame(_figure_frame(resolved))
    spec = figures.landscape_chart(land, tasks=["c5"], imd={"c5": False}, predictors=["bayes"],
                                   style=style, title="t").to_dict()
    points = spec["spec"]["layer"][1]["encoding"]
    marked = not all(resolved)
    expected = [figures.OPTIMAL] + [figures.UNRESOLVED] * marked + [figures.OTHER]
    assert points["shape"]["scale"]["domain"] == expected
    fill = dict(zip(points["fillOpacity"]["scale"]["domain"],
                    points["fillOpacity"]["scale"]["range"]))
    assert fill.get(figures.UNRESOLVED, 0.0) == 0.0 and fill[figures.OPTIMAL] > 0  # hollow
    cho = land.assign(N=5, count=1, frequency=0.25)
    data = figures.choices_chart(cho, tasks=["c5"], imd={"c5": False}, predictors=["bayes"],
                                 style=style, title="t").to_dict()
    rows = next(iter(data["datasets"].values()))
    labels = {r["prompt"]: r["prompt_label"] for r in rows}
    assert labels[""] == "∅ ★" and labels["1"] == "1" and labels["00"] == "00"
    assert labels["0"] == ("0 ☆" if marked else "0 ★")


def test_a_kl_below_resolution_is_said_so_in_the_landscape_figure_and_the_summary():
    import pandas as pd

    from promptscape.report import figures, summary

    style = {"panel_width": 100, "panel_height": 80, "font_size": 10,
             "predictor_colors": {"bayes": "#1f77b4"}}
    frame = _figure_frame([True] * 4) | {"kl": [7.41e-13, 0.12, 0.3, 0.5], "kl_se": 0.0,
                                          "method": "exact_counts", "kl_resolution": 1.5e-12,
                                          "below_resolution": [True, False, False, False]}
    land = pd.DataFrame(frame)
    spec = figures.landscape_chart(land, tasks=["c5"], imd={"c5": False}, predictors=["bayes"],
                                   style=style, title="t").to_dict()
    rows = next(iter(spec["datasets"].values()))
    shown = {r["prompt"]: r["kl_shown"] for r in rows}
    assert shown[""] == "below resolution" and shown["0"] == "1.200e-01"
    assert "7.41" not in str(spec["spec"]["layer"][1]["encoding"]["tooltip"])
    assert any("below floating-point resolution" in line
               for line in np.atleast_1d(spec["title"]["subtitle"]))
    row = land.iloc[0]
    assert summary.kl_shown(row) == "below resolution (< 2e-12)"
    assert summary.kl_shown(land.iloc[1]) == "0.12"


# ------------------------------------------------------------------ beyond binary
def _ternary_brute_force(pre: dict, task: dict, prompts: list[str], T: int):
    """KL of every prompt by enumeration, written from scratch for a Dirichlet prior and
    categorical(-mixture) tasks over V symbols: P(x | s) by the Polya urn run over s then x,
    P_task(x) as a product (or a sum over the task's components)."""
    alpha = np.asarray(pre["alpha"], dtype=float)
    V = len(alpha)
    seqs = [tuple(s) for s in itertools.product(range(V), repeat=T)]

    def urn(prefix, seq):
        counts, total, p = alpha.copy(), alpha.sum(), 1.0
        for v in prefix:
            counts[v] += 1
            total += 1
        for v in seq:
            p *= counts[v] / total
            counts[v] += 1
            total += 1
        return p

    rows = task["probs"] if task["kind"] == "categorical_mixture" else [task["probs"]]
    weights = [1.0 / len(rows)] * len(rows)
    p_task = np.array([sum(w * math.prod(r[v] for v in x) for w, r in zip(weights, rows))
                       for x in seqs])
    entropy = -float(p_task @ np.log(p_task))
    kl = []
    for prompt in prompts:
        prefix = [int(c) for c in prompt]
        loss = -np.log([urn(prefix, x) for x in seqs])
        kl.append(float(p_task @ loss) - entropy)
    return np.array(kl)


DIRICHLET3 = {"kind": "dirichlet_categorical", "alpha": [1.0, 1.0, 1.0]}
TERNARY_TASKS = [{"kind": "categorical", "probs": [0.6, 0.3, 0.1]},
                 {"kind": "categorical_mixture", "probs": [[0.8, 0.1, 0.1], [0.1, 0.1, 0.8]]}]


@pytest.mark.parametrize("task", TERNARY_TASKS, ids=["skewed", "two-mode"])
@pytest.mark.parametrize("method", ["exact_counts", "exact_enumeration"])
def test_ternary_exact_kl_matches_independent_brute_force(task, method):
    pre, T = DIRICHLET3, 4
    prompts = all_prompts(2, 3)
    pred = BayesPredictor(build_source(pre))
    if method == "exact_enumeration":  # the generic path: every (prompt, sequence) scored
        pred = _Plain(pred)
    loss, _, entropy = landscape.theoretical_losses(pred, prompts, build_source(task), T, method)
    np.testing.assert_allclose(loss - entropy, _ternary_brute_force(pre, task, prompts, T),
                               rtol=1e-10, atol=1e-13)


class _Plain(Predictor):
    """A predictor with no count shortcut: the base class scores prompt + sequence."""

    def __init__(self, inner):
        self.inner = inner

    def log_predictive(self, seqs):
        return self.inner.log_predictive(seqs)


BINARY_EQUIVALENTS = [
    # (binary prior, its categorical form, binary task, its categorical form)
    ({"kind": "coin_mixture", "thetas": [0.2, 0.7]},
     {"kind": "categorical_mixture", "probs": [[0.8, 0.2], [0.3, 0.7]]},
     coin(0.7), {"kind": "categorical", "probs": [0.3, 0.7]}),
    ({"kind": "beta_coin", "alpha": 2.0, "beta": 0.5},
     {"kind": "dirichlet_categorical", "alpha": [0.5, 2.0]},
     {"kind": "coin_mixture", "thetas": [0.2, 0.8]},
     {"kind": "categorical_mixture", "probs": [[0.8, 0.2], [0.2, 0.8]]}),
]


@pytest.mark.parametrize("pre, pre_cat, task, task_cat", BINARY_EQUIVALENTS,
                         ids=["bernmix", "beta"])
def test_binary_kinds_and_their_categorical_forms_have_identical_landscapes(
        pre, pre_cat, task, task_cat):
    prompts = all_prompts(5, 2)
    out = []
    for p, t in ((pre, task), (pre_cat, task_cat)):
        pred, source = BayesPredictor(build_source(p)), build_source(t)
        method = landscape.choose_method(pred, source, 10, len(prompts), BUDGET)
        loss, _, entropy = landscape.theoretical_losses(pred, prompts, source, 10, method)
        out.append((loss - entropy, landscape.classify(loss)[0]))
    np.testing.assert_allclose(out[0][0], out[1][0], rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(out[0][1], out[1][1])  # ranks and optimal class


@pytest.mark.parametrize("task", TERNARY_TASKS[:1] + [{"kind": "topic_mixture",
                         "topics": [[0.7, 0.2, 0.1], [0.1, 0.2, 0.7]], "alpha": [1.0, 2.0]}],
                         ids=["categorical", "topics"])
def test_ternary_evaluation_strata_hold_their_count_vectors_with_exact_weights(task):
    from promptscape.sources import compositions, symbol_counts

    source, T = build_source(task), 5
    seqs, stratum, weight = landscape.draw_evaluation(source, T, 600,
                                                      np.random.default_rng(3))
    classes = compositions(T, 3)
    np.testing.assert_array_equal(symbol_counts(seqs, 3), classes[stratum])
    assert len(np.unique(stratum)) == len(classes) == 21
    np.testing.assert_allclose(np.bincount(stratum, weights=weight),
                               np.exp(source.count_log_probabilities(T)), rtol=1e-12)
    # Within a stratum every arrangement is equally likely: each position's symbol
    # frequencies match the stratum's counts / T (pooled over strata, weighted by size).
    expected = (classes[stratum] / T).mean(0)
    for t in range(T):
        np.testing.assert_allclose(np.bincount(seqs[:, t], minlength=3) / len(seqs),
                                   expected, atol=0.06)


# ------------------------------------------------------------------ the first task symbol
@pytest.mark.parametrize("pre, task", [
    ({"kind": "markov_beta", "alpha": [1.0, 1.0], "beta": [1.0, 1.0]},
     {"kind": "markov", "transition": [0.1, 0.9]}),
    ({"kind": "markov_beta", "alpha": [0.5, 3.0], "beta": [2.0, 0.7], "initial": 0.3},
     {"kind": "markov", "transition": [0.9, 0.1], "initial": 0.3}),
    (BERNMIX, coin(0.7)),
    (SWITCHING, coin(0.5)),
    ({"kind": "dirichlet_categorical", "alpha": [1.0, 1.0, 1.0]},
     {"kind": "categorical", "probs": [0.6, 0.3, 0.1]}),
], ids=["markov-sticky", "markov-alternating", "bernmix", "switching", "dirichlet"])
def test_first_symbol_kl_is_the_first_term_of_the_chain_rule(pre, task):
    """first_symbol_kl against its definition (the predictive after the prompt, from the
    generic concatenation route), from a tabulated predictor's whole-sequence losses, and
    as a part of the exact KL: 0 <= first_symbol_kl <= kl, with equality at T = 1."""
    from promptscape.predictors import TabulatedPredictor

    pred = BayesPredictor(build_source(pre))
    task_source = build_source(task)
    V = task_source.vocab_size
    prompts = all_prompts(3, V)
    got = landscape.first_symbol_kl(pred, prompts, task_source)
    p = np.exp(task_source.log_prob(np.arange(V, dtype=np.uint8)[:, None]))
    q = np.exp(-Predictor.prompt_losses(pred, prompts, np.arange(V, dtype=np.uint8)[:, None]))
    np.testing.assert_allclose(got, (p * np.log(p / q)).sum(axis=1), rtol=1e-10, atol=1e-15)
    T = 4
    seqs = enumerate_sequences(T, V)
    table = TabulatedPredictor(prompts, pred.prompt_losses(prompts, seqs), T, V)
    np.testing.assert_allclose(landscape.first_symbol_kl(table, prompts, task_source), got,
                               rtol=1e-9, atol=1e-14)
    loss, _, entropy = landscape.theoretical_losses(pred, prompts, task_source, T,
                                                    "exact_enumeration")
    assert (got >= 0).all() and (got <= loss - entropy + 1e-12).all()
    loss, _, entropy = landscape.theoretical_losses(pred, prompts, task_source, 1,
                                                    "exact_enumeration")
    np.testing.assert_allclose(got, loss - entropy, rtol=1e-9, atol=1e-14)


# ------------------------------------------------------------------ a network's table read back
def _write_prompt_losses(path, prompts, seqs, losses, order=None):
    from promptscape.study import tables
    from promptscape.prompts import to_strings

    S = len(seqs)
    names = to_strings(seqs, 2)  # binary sequences in every caller
    rows = range(len(prompts) * S) if order is None else order
    tables.write({"predictor": "lstm", "replicate": 0, "experiment": "e",
                  "prompt": [prompts[r // S] for r in rows],
                  "prompt_length": [len(prompts[r // S]) for r in rows],
                  "sequence": [names[r % S] for r in rows],
                  "loss": [losses[r // S, r % S] for r in rows]}, "prompt_losses", path)


def test_a_prompt_loss_table_reads_back_as_the_predictor_that_wrote_it(tmp_path):
    from promptscape.prompts import all_prompts, enumerate_sequences
    from promptscape.pipeline.stages.common import load_prompt_losses

    prompts, seqs = all_prompts(3, 2), enumerate_sequences(4, 2)
    losses = np.random.default_rng(0).random((len(prompts), len(seqs)))
    _write_prompt_losses(tmp_path / "t.parquet", prompts, seqs, losses)
    pred = load_prompt_losses(str(tmp_path / "t.parquet"), 2)
    np.testing.assert_array_equal(pred.prompt_losses(prompts, seqs), losses)


def test_a_prompt_loss_table_with_a_sequence_twice_in_a_block_is_refused(tmp_path):
    """Same length and sort order as a complete table, but one prompt's block scores one
    sequence twice and another never: the old loader checked the block starts only and
    would have read the losses into the wrong cells."""
    from promptscape.prompts import all_prompts, enumerate_sequences
    from promptscape.pipeline.stages.common import load_prompt_losses

    prompts, seqs = all_prompts(2, 2), enumerate_sequences(3, 2)
    S = len(seqs)
    losses = np.random.default_rng(1).random((len(prompts), S))
    order = list(range(len(prompts) * S))
    order[2 * S + 5] = 2 * S + 4  # prompt 2's block: sequence 4 twice, sequence 5 missing
    _write_prompt_losses(tmp_path / "t.parquet", prompts, seqs, losses, order)
    with pytest.raises(ValueError, match="each once in canonical order"):
        load_prompt_losses(str(tmp_path / "t.parquet"), 2)
