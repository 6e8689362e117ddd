"""Prompt efficiency: typical prompts against optimal prompts, and token efficiency.

Optimal prompts are checked against exhaustive landscapes computed with
`promptscape.landscape` (by enumerating the task, not by count classes). Exact typical-prompt
quantiles are checked against brute force over every prompt of each length (weighted by its
task probability); sampled ones against KLs recomputed independently for the same drawn
prompts, and their confidence intervals by their coverage over redraws.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from promptscape import efficiency, landscape, seeding
from promptscape.study import tables
from promptscape.predictors import BayesPredictor, Predictor
from promptscape.prompts import all_prompts
from promptscape.sources import build_source
from promptscape.pipeline.stages import datasets_stage
from promptscape.pipeline.stages import efficiency_stage
from promptscape.pipeline.stages import landscape_stage

from landscape_helpers import BERNMIX, BETA11, SWITCHING, coin

T = 6
L_MAX = 3
BIMODAL = {"kind": "coin_mixture", "thetas": [0.2, 0.8]}


class ConcatenatingBayes(BayesPredictor):
    """The Bayes predictor scored the generic way, on every prompt + sequence concatenation
    (no count or transition classes): the independent reference of the class routes."""

    prompt_losses = Predictor.prompt_losses


def exhaustive_landscape(pre: dict, task: dict, max_length: int, task_length: int = T):
    """A landscape frame (prompt, prompt_length, kl, rank, ...) by enumerating the task and
    scoring every prompt on every sequence by concatenation."""
    pred = ConcatenatingBayes(build_source(pre))
    prompts = all_prompts(max_length, pred.source.vocab_size)
    loss, _, entropy = landscape.theoretical_losses(pred, prompts, build_source(task),
                                                    task_length, "exact_enumeration")
    return pd.DataFrame({"predictor": "bayes", "replicate": 0, "experiment": "e", "task": "t",
                         "prompt": prompts, "prompt_length": [len(p) for p in prompts],
                         "kl": loss - entropy, "rank": landscape.dense_ranks(loss)})


def scorer(pre: dict, task: dict, task_length: int = T) -> efficiency.KLScorer:
    return efficiency.KLScorer(BayesPredictor(build_source(pre)), build_source(task),
                               task_length, num_prompts=100, enumeration_budget=2 ** 27)


COUNT_CASES = [(BERNMIX, coin(0.7)), (BERNMIX, coin(0.5)), (BERNMIX, coin(0.9)),
               (BETA11, coin(0.5)), (BETA11, coin(0.8))]
# Three symbols: a Dirichlet prior, a skewed categorical and a two-mode task.
DIRICHLET3 = {"kind": "dirichlet_categorical", "alpha": [1.0, 1.0, 1.0]}
SKEWED3 = {"kind": "categorical", "probs": [0.6, 0.3, 0.1]}
TWOMODE3 = {"kind": "categorical_mixture", "probs": [[0.8, 0.1, 0.1], [0.1, 0.1, 0.8]]}
TERNARY_CASES = [(DIRICHLET3, SKEWED3), (DIRICHLET3, TWOMODE3)]
TERNARY_IDS = ["dirichlet-skewed", "dirichlet-twomode"]
COUNT_IDS = [f"{p['kind']}-{t['theta']}" for p, t in COUNT_CASES] + TERNARY_IDS
COUNT_CASES = COUNT_CASES + TERNARY_CASES
# markov_beta: transition classes (an order-sensitive predictor), on chain and i.i.d. tasks.
MARKOV_BETA = {"kind": "markov_beta", "alpha": [1.0, 1.0], "beta": [1.0, 1.0]}
SKEWED_MARKOV_BETA = {"kind": "markov_beta", "alpha": [0.5, 3.0], "beta": [2.0, 0.7],
                      "initial": 0.3}
STICKY = {"kind": "markov", "transition": [0.1, 0.9]}
ALTERNATING = {"kind": "markov", "transition": [0.9, 0.1], "initial": 0.3}
CLASS_CASES = [(MARKOV_BETA, STICKY), (MARKOV_BETA, BIMODAL), (SKEWED_MARKOV_BETA, ALTERNATING),
               (SKEWED_MARKOV_BETA, coin(0.7))]
CLASS_IDS = ["uniform-sticky", "uniform-bimodal", "skewed-alternating", "skewed-coin0.7"]


# ------------------------------------------------------------------ optimal prompts
@pytest.mark.parametrize("pre, task", COUNT_CASES + CLASS_CASES, ids=COUNT_IDS + CLASS_IDS)
def test_class_optimum_equals_the_exhaustive_optimum(pre, task):
    big = 7 if build_source(pre).vocab_size == 2 else 5
    land = exhaustive_landscape(pre, task, big)
    exhaustive = efficiency.landscape_optima(land)
    counts = efficiency.class_optima(scorer(pre, task), big)
    np.testing.assert_allclose(counts["exact_kl"], exhaustive["exact_kl"], rtol=1e-9, atol=1e-14)
    # The canonical prompt of the best class is a best prompt of its length.
    kl = dict(zip(land["prompt"], land["kl"]))
    np.testing.assert_allclose([kl[p] for p in counts["exact_prompt"]], exhaustive["exact_kl"],
                               rtol=1e-9, atol=1e-14)
    # Beyond a small landscape (L_max = 3) prompt classes extend the optimum: the result for
    # lengths 4..7 is what the exhaustive landscape of length 7 says.
    small = land[land["prompt_length"] <= L_MAX]
    lengths = list(range(big + 1))
    extended = efficiency.optimal_by_length(small, lengths, counts)
    np.testing.assert_allclose(extended["optimal_exact_kl"], exhaustive["exact_kl"],
                               rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(extended["optimal_upto_kl"], exhaustive["upto_kl"],
                               rtol=1e-9, atol=1e-14)
    for length, prompt in zip(lengths, extended["optimal_prompt"]):
        assert len(prompt) <= length
        # The best of length <= l is the exhaustive choice itself: class representatives
        # are their classes' first prompts, and ties go to the first representative.
        assert prompt == exhaustive.loc[length, "upto_prompt"]


def test_landscape_optima_break_ties_to_the_shorter_then_lexicographic_prompt():
    land = exhaustive_landscape(BETA11, coin(0.5), 4)
    optima = efficiency.landscape_optima(land)
    # Beta(1, 1) on a fair coin: balanced prompts tie by symmetry; "01" is first of length 2.
    assert optima.loc[2, "upto_prompt"] == "01"
    for length, row in optima.iterrows():
        sub = land[land["prompt_length"] <= length]
        assert np.isclose(row["upto_kl"], sub["kl"].min(), rtol=1e-9)
        assert np.isclose(row["exact_kl"], sub[sub["prompt_length"] == length]["kl"].min())


def test_an_estimated_landscape_optimum_is_the_least_estimate_not_the_class_first():
    """The optimal class of a Monte Carlo landscape spans the estimates' errors; its first
    prompt in canonical order (here "aa", the words run's Portuguese case) can sit above the
    best estimate and even above the empty prompt. The optimum up to each length is the least
    estimate, so the efficiency table does not say the empty prompt matches it."""
    land = pd.DataFrame({
        "prompt": ["", "aa", "o_", "sr_"], "prompt_length": [0, 2, 2, 3],
        "kl": [13.0, 13.26, 12.3, 12.26], "kl_se": [0.5, 0.6, 0.6, 0.6],
        "rank": [1, 0, 0, 0], "method": "monte_carlo", "below_resolution": False})
    optima = efficiency.landscape_optima(land)
    assert optima["upto_prompt"].tolist() == ["", "o_", "sr_"]
    np.testing.assert_allclose(optima["upto_kl"], [13.0, 12.3, 12.26])
    # Exact KLs keep the rank, shorter, lexicographic rule.
    exact = land.assign(method="exact_counts", kl=[0.2, 0.1, 0.1, 0.1], rank=[1, 0, 0, 0])
    assert efficiency.landscape_optima(exact)["upto_prompt"].tolist() == ["", "aa", "aa"]


def test_other_predictors_have_no_optimum_beyond_l_max():
    land = exhaustive_landscape(SWITCHING, coin(0.7), L_MAX)
    out = efficiency.optimal_by_length(land, range(6), None)
    assert out["optimal_exact_kl"][L_MAX + 1:] == [None, None]
    assert out["optimal_prompt"][L_MAX + 1:] == [None, None]
    assert out["optimal_prompt"][L_MAX] == "111"


# ------------------------------------------------------------------ typical prompts
@pytest.mark.parametrize("pre, task", [(BERNMIX, coin(0.7)), (BETA11, coin(0.5)),
                                       (SWITCHING, coin(0.7)), (SWITCHING, coin(0.5))],
                         ids=["bernmix", "beta", "switching-0.7", "switching-0.5"])
def test_a_typical_prompt_of_length_zero_has_exactly_the_empty_prompts_kl(pre, task):
    land = exhaustive_landscape(pre, task, 0)
    curve = efficiency.typical_curve(scorer(pre, task), build_source(task), [0], 50)
    empty = float(land["kl"].iloc[0])
    for column in ("typical_kl_q25", "typical_kl_median", "typical_kl_q75"):
        assert curve[column][0] == pytest.approx(empty, rel=1e-12, abs=1e-15)
    assert efficiency.typical_prompts(build_source(task), 0, 50) == [""] * 50


def brute_force_distribution(pre: dict, task: dict, length: int, task_length: int = T):
    """(KL, probability) of every prompt of `length`: all V^l strings, each weighted by its
    task probability, the KL by enumerating the task (no count classes)."""
    source = build_source(task)
    V = source.vocab_size
    prompts = all_prompts(length, V)[-(V ** length):]
    assert all(len(p) == length for p in prompts)
    pred = BayesPredictor(build_source(pre))
    loss, _, entropy = landscape.theoretical_losses(pred, prompts, source, task_length,
                                                    "exact_enumeration")
    seqs = np.zeros((len(prompts), length), dtype=np.uint8)
    for i, prompt in enumerate(prompts):
        seqs[i] = [int(c) for c in prompt]
    return loss - entropy, np.exp(source.log_prob(seqs)), prompts


def brute_force_lower_quantile(kl, prob, q):
    """The least v among the KLs with P(KL <= v) >= q, KLs within the tie tolerance equal."""
    for v in np.sort(kl):
        slack = landscape.EXACT_RELATIVE_TOLERANCE * abs(v) + efficiency.ABSOLUTE_TOLERANCE
        if prob[kl <= v + slack].sum() >= q - 1e-12:  # efficiency.no_worse(kl, v)
            return v
    raise AssertionError("probabilities do not reach q")


EXACT_CASES = [(BERNMIX, coin(0.2)), (BERNMIX, BIMODAL), (BETA11, coin(0.2)),
               (BETA11, BIMODAL)]
EXACT_IDS = ["bernmix-coin", "bernmix-mixture", "beta-coin", "beta-mixture"] + TERNARY_IDS
EXACT_CASES = EXACT_CASES + TERNARY_CASES


@pytest.mark.parametrize("pre, task", EXACT_CASES, ids=EXACT_IDS)
def test_exact_typical_quantiles_equal_brute_force_over_every_prompt(pre, task):
    n = 13 if build_source(task).vocab_size == 2 else 7  # 3^6 = 729 prompts of length 6
    lengths = range(n)
    sc = scorer(pre, task)
    curve = efficiency.typical_curve(sc, build_source(task), lengths, 50)
    assert curve["typical_method"] == ["exact_counts"] * n
    assert curve["typical_prompts"] == [None] * n
    for column in ("median", "q25", "q75"):
        assert curve[f"typical_kl_{column}_low"] == [None] * n
        assert curve[f"typical_kl_{column}_high"] == [None] * n
    for length in lengths:
        kl, prob, _ = brute_force_distribution(pre, task, length)
        assert prob.sum() == pytest.approx(1.0, abs=1e-12)
        expected = [brute_force_lower_quantile(kl, prob, q) for q in (0.25, 0.5, 0.75)]
        got = [curve[c][length] for c in ("typical_kl_q25", "typical_kl_median",
                                          "typical_kl_q75")]
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-13)
        # The median is the lower median: P(KL <= median) >= 1/2, and less below it.
        at_most = prob[kl <= got[1] * (1 + 1e-9) + 1e-12].sum()
        below = prob[kl < got[1] * (1 - 1e-9) - 1e-12].sum()
        assert at_most >= 0.5 - 1e-12 and below < 0.5


def test_lower_quantiles_take_the_least_value_reaching_q_and_merge_ties():
    values, weights = np.array([3.0, 1.0, 2.0, 4.0]), np.array([1, 1, 1, 1])
    # P(X <= 2) = 1/2 exactly: 2 is the lower median (np.quantile's default would say 2.5).
    np.testing.assert_array_equal(efficiency.lower_quantiles(values, weights), [1.0, 2.0, 3.0])
    # Values equal up to the tie tolerance count as one: 1 and 1 + 1e-12 carry 2/4.
    near = np.array([1.0 + 1e-12, 1.0, 5.0, 6.0])
    assert efficiency.lower_quantiles(near, weights, [0.5])[0] == 1.0
    # Cumulative sums that miss q by rounding still reach it (0.1 + 0.2 + 0.2 != 0.5).
    probs = np.array([0.1, 0.2, 0.2, 0.5])
    assert efficiency.lower_quantiles([1.0, 2.0, 3.0, 4.0], probs, [0.5])[0] == 3.0


def test_exact_typical_quantiles_guard_their_probabilities():
    class Leaky(type(build_source(coin(0.2)))):
        def _log_marginal(self, counts):
            return super()._log_marginal(counts) + 1e-6

    leaky = Leaky(theta=0.2)
    with pytest.raises(ArithmeticError, match="sum to"):
        efficiency.exact_typical_quantiles(scorer(BERNMIX, coin(0.2)), leaky, 5)
    with pytest.raises(TypeError, match="exchangeable"):
        efficiency.exact_typical_quantiles(scorer(SWITCHING, coin(0.2)),
                                           build_source(coin(0.2)), 5)


def test_exact_typical_quantiles_cost_nothing_at_long_lengths():
    sc = scorer(BERNMIX, coin(0.7))
    curve = efficiency.typical_curve(sc, build_source(coin(0.7)), [64, 500], 200)
    # By 500 symbols the posterior is certain of the 0.7 coin: the median KL is tiny.
    assert curve["typical_kl_median"][1] < curve["typical_kl_median"][0] < 1e-3
    assert curve["typical_kl_q25"][1] <= curve["typical_kl_median"][1] <= \
        curve["typical_kl_q75"][1]


def test_bernmix_coin_02_typical_length_is_exact_where_200_samples_miss_it():
    # The default study: T = 10, L_max = 5, bernmix pretraining, the coin(0.2) task.
    task_length, l_max = 10, 5
    task = build_source(coin(0.2))
    land = exhaustive_landscape(BERNMIX, coin(0.2), l_max, task_length)
    target = efficiency.landscape_optima(land).iloc[-1]
    assert target["upto_prompt"] == "00000"
    lengths = range(13)
    sc = scorer(BERNMIX, coin(0.2), task_length)
    curve = efficiency.typical_curve(sc, task, lengths, 200)
    typical = efficiency.shortest_typical_length(lengths, curve["typical_kl_median"],
                                                 target["upto_kl"])
    assert typical == 8
    # Brute force over every prompt of lengths 7 and 8: the lower median crosses the optimum
    # at 8 (the count classes k <= 1 of 8 symbols carry more than half the probability).
    for length, qualifies in ((7, False), (8, True)):
        kl, prob, _ = brute_force_distribution(BERNMIX, coin(0.2), length, task_length)
        median = brute_force_lower_quantile(kl, prob, 0.5)
        assert efficiency.no_worse(median, target["upto_kl"]) == qualifies
    # The old statistic, np.quantile over the 200 drawn prompts, lands on the wrong side of
    # the class boundary at 8 and says 10.
    old = [np.quantile(efficiency.typical_kls(sc, efficiency.typical_prompts(task, n, 200)),
                       0.5) for n in lengths]
    assert not efficiency.no_worse(old[8], target["upto_kl"])
    assert efficiency.shortest_typical_length(lengths, old, target["upto_kl"]) == 10


@pytest.mark.parametrize("task", [coin(0.5), coin(0.7)], ids=["coin-0.5", "coin-0.7"])
def test_the_sampled_curve_is_the_lower_quantiles_of_the_drawn_prompts_kls(task):
    source = build_source(task)
    lengths, K = range(9), 30
    curve = efficiency.typical_curve(scorer(SWITCHING, task), source, lengths, K)
    assert curve["typical_method"] == ["sampled"] * 9
    assert curve["typical_prompts"] == [K] * 9
    pred = BayesPredictor(build_source(SWITCHING))
    for i, length in enumerate(lengths):
        prompts = efficiency.typical_prompts(source, length, K)
        loss, _, entropy = landscape.theoretical_losses(pred, prompts, source, T,
                                                        "exact_enumeration")
        kl = np.sort(loss - entropy)
        for q, column in zip((0.25, 0.5, 0.75), ("q25", "median", "q75")):
            expected = np.quantile(kl, q, method="inverted_cdf")  # X_(ceil(qK))
            assert curve[f"typical_kl_{column}"][i] == pytest.approx(expected, rel=1e-9,
                                                                     abs=1e-14)
            # Ranks of the equal-tailed 95% interval, from scipy's binomial.
            r = int(stats.binom.ppf(0.025, K, q))  # P(B <= r - 1) <= 0.025 < P(B <= r)
            if stats.binom.cdf(r, K, q) <= 0.025:
                r += 1
            s_ = int(stats.binom.isf(0.025, K, q)) + 1  # P(B >= s) <= 0.025
            low, high = curve[f"typical_kl_{column}_low"][i], curve[f"typical_kl_{column}_high"][i]
            assert (low is None) == (r < 1) and (high is None) == (s_ > K)
            if low is not None:
                assert low == pytest.approx(kl[r - 1], rel=1e-9, abs=1e-14)
            if high is not None:
                assert high == pytest.approx(kl[s_ - 1], rel=1e-9, abs=1e-14)


@pytest.mark.parametrize("pre", [BETA11, SWITCHING], ids=["beta-exact", "switching-sampled"])
def test_typical_medians_are_not_monotone_in_the_length(pre):
    # A fair-coin task on these predictors: odd lengths cannot balance the counts, so the
    # median curve is not monotone in the length and nothing may assume it is.
    curve = efficiency.typical_curve(scorer(pre, coin(0.5)), build_source(coin(0.5)),
                                     range(9), 30)
    steps = np.sign(np.diff(curve["typical_kl_median"]))
    assert (steps > 0).any() and (steps < 0).any()


@pytest.mark.parametrize("count, q", [(30, 0.5), (30, 0.25), (200, 0.75), (7, 0.25), (7, 0.5)])
def test_order_statistic_ranks_are_the_tightest_equal_tailed_95_percent_ranks(count, q):
    r, s_ = efficiency.order_statistic_ranks(count, q)
    binom = stats.binom(count, q)
    if r is None:
        assert binom.cdf(0) > 0.025
    else:
        assert binom.cdf(r - 1) <= 0.025 < binom.cdf(r)
    if s_ is None:
        assert binom.sf(count - 1) > 0.025
    else:
        assert binom.sf(s_ - 1) <= 0.025 < binom.sf(s_ - 2)
    if r is not None and s_ is not None:
        assert binom.cdf(s_ - 1) - binom.cdf(r - 1) >= 0.95


def test_sampled_intervals_cover_the_brute_force_quantiles():
    # A switching predictor (no count classes) at length 8: the exact lower quantiles from
    # all 256 prompts, then 200 independent redraws of K = 30 prompts.
    length, K, redraws = 8, 30, 200
    kl, prob, prompts = brute_force_distribution(SWITCHING, coin(0.7), length)
    truth = [brute_force_lower_quantile(kl, prob, q) for q in efficiency.QUANTILES]
    kl_of = dict(zip(prompts, kl))
    task = build_source(coin(0.7))
    covered = np.zeros((redraws, 3), dtype=bool)
    hit = np.zeros((redraws, 3), dtype=bool)
    for seed in range(redraws):
        drawn = task.sample(K, length, np.random.default_rng(seed))
        kls = [kl_of["".join(map(str, row))] for row in drawn]
        estimates, lows, highs = efficiency.sampled_typical_quantiles(kls)
        for j, (v, low, high) in enumerate(zip(truth, lows, highs)):
            low = -np.inf if low is None else low
            high = np.inf if high is None else high
            covered[seed, j] = low - 1e-12 <= v <= high + 1e-12
            hit[seed, j] = abs(estimates[j] - v) <= 1e-12
    assert (covered.mean(axis=0) >= 0.9).all(), covered.mean(axis=0)
    # The test can fail: the point estimates alone, as a zero-width interval, cover far less.
    assert (hit.mean(axis=0) < 0.9).all(), hit.mean(axis=0)


def test_typical_prompts_are_deterministic_task_samples_shared_by_predictors(monkeypatch):
    task = build_source(coin(0.7))
    first = efficiency.typical_prompts(task, 12, 40)
    assert first == efficiency.typical_prompts(task, 12, 40)
    rng = seeding.numpy_generator("typical_prompts", task.to_dict(), 12, 40)
    assert first == ["".join(map(str, row)) for row in task.sample(40, 12, rng)]
    assert first != efficiency.typical_prompts(build_source(coin(0.5)), 12, 40)
    # Paired: every predictor (and experiment) is scored on the very same prompts.
    seen = {}
    draw = efficiency.typical_prompts

    def spy(task_source, length, count):
        prompts = draw(task_source, length, count)
        seen.setdefault(length, []).append(prompts)
        return prompts

    monkeypatch.setattr(efficiency, "typical_prompts", spy)
    # Predictors without an exact typical distribution (here two switching sources) draw;
    # exchangeable Bayes predictors on a coin task draw nothing.
    for pre in (BERNMIX, SWITCHING, {**SWITCHING, "switch_prob": 0.3}, BETA11):
        efficiency.typical_curve(scorer(pre, coin(0.7)), task, [3, 12], 40)
    assert sorted(seen) == [3, 12]
    assert all(len(v) == 2 and v[0] == v[1] for v in seen.values())
    assert seen[12][0] == first


def test_identical_typical_prompts_are_scored_once():
    calls = []

    class Counting(efficiency.KLScorer):
        def prompt_kl(self, prompts):
            calls.append(list(prompts))
            return super().prompt_kl(prompts)

    sc = Counting(BayesPredictor(build_source(SWITCHING)), build_source(coin(0.7)), T, 5, 2 ** 27)
    prompts = ["", "", "01", "1", "01"]
    kl = efficiency.typical_kls(sc, prompts)
    assert sorted(calls[0]) == ["", "01", "1"]
    assert kl[0] == kl[1] and kl[2] == kl[4]


def test_monte_carlo_scorer_matches_the_landscapes_paired_estimate():
    # A non-exchangeable task: count classes of an exchangeable predictor use the evaluation
    # set's count frequencies; other predictors score every evaluation sequence.
    task = build_source({**SWITCHING, "switch_prob": 0.3})
    evaluation = task.sample(300, T, np.random.default_rng(0))
    prompts = all_prompts(2, 2)
    for pre in (BERNMIX, SWITCHING):
        pred = BayesPredictor(build_source(pre))
        sc = efficiency.KLScorer(pred, task, T, num_prompts=7, enumeration_budget=1,
                                 evaluation=evaluation)
        assert sc.method == "monte_carlo"
        mc = landscape.monte_carlo_kl(pred.prompt_losses(prompts, evaluation),
                                      task.log_prob(evaluation))
        np.testing.assert_allclose(sc.prompt_kl(prompts), mc[2], rtol=1e-9, atol=1e-12)


def test_lengths_beyond_a_neural_context_are_skipped():
    assert efficiency.measured_lengths(range(5), 10, None) == ([0, 1, 2, 3, 4], [])
    assert efficiency.measured_lengths(range(5), 10, 12) == ([0, 1, 2], [3, 4])


# ------------------------------------------------------------------ token efficiency
def test_shortest_typical_length_is_the_first_qualifying_length():
    lengths, medians = [0, 1, 2, 3, 4], [0.5, 0.1, 0.3, 0.05, 0.2]
    assert efficiency.shortest_typical_length(lengths, medians, 0.2) == 1
    assert efficiency.shortest_typical_length(lengths, medians, 0.05) == 3
    assert efficiency.shortest_typical_length(lengths, medians, 0.05 * (1 + 1e-12)) == 3
    assert efficiency.shortest_typical_length(lengths, medians, 0.01) is None
    assert efficiency.shortest_typical_length(lengths[::-1], medians[::-1], 0.2) == 1


def _curve(task, medians):
    n = len(medians)
    return pd.DataFrame({"predictor": "bayes", "replicate": 0, "task": task,
                         "prompt_length": range(n),
                         "typical_kl_median": medians,
                         "typical_method": "sampled" if task == "coin_0.9" else "exact_counts"})


def test_token_efficiency_reports_ratio_and_nulls(tmp_path):
    land = pd.concat([
        exhaustive_landscape(BERNMIX, coin(0.7), L_MAX).assign(task="coin_0.7"),
        exhaustive_landscape(BETA11, {"kind": "coin_mixture", "thetas": [0.2, 0.8]},
                             L_MAX).assign(task="bimodal"),
        exhaustive_landscape(BERNMIX, coin(0.9), L_MAX).assign(task="coin_0.9"),
    ])
    best = {t: efficiency.landscape_optima(g).iloc[-1] for t, g in land.groupby("task")}
    assert best["coin_0.7"]["upto_prompt"] == "111"
    assert best["bimodal"]["upto_prompt"] == ""  # no prompt beats the empty one
    target = best["coin_0.7"]["upto_kl"]
    eff = pd.concat([
        _curve("coin_0.7", [1.0, 0.5, target * 2, target * 0.5, target * 0.1, target * 2]),
        _curve("bimodal", [best["bimodal"]["upto_kl"], 0.9, 1.0]),
        _curve("coin_0.9", [5.0, 4.0, 3.0]),
    ])
    imd = {"coin_0.7": True, "bimodal": False, "coin_0.9": False}
    columns = efficiency.token_efficiency(eff, land, imd)
    rows = {task: {name: values[i] for name, values in columns.items()}
            for i, task in enumerate(columns["task"])}
    assert rows["coin_0.7"]["typical_length"] == 3  # the first, not the best, qualifying
    assert rows["coin_0.7"]["length_ratio"] == 1.0
    assert rows["coin_0.7"]["optimal_length"] == 3 and rows["coin_0.7"]["max_prompt_length"] == 3
    assert rows["bimodal"]["typical_length"] == 0 and rows["bimodal"]["length_ratio"] is None
    assert rows["coin_0.9"]["typical_length"] is None  # beyond range
    assert rows["coin_0.9"]["length_ratio"] is None
    assert [rows[t]["typical_method"] for t in ("coin_0.7", "bimodal", "coin_0.9")] == \
        ["exact_counts", "exact_counts", "sampled"]
    path = tmp_path / "token_efficiency.parquet"
    tables.write(columns, "token_efficiency", path)
    back = tables.read(path, "token_efficiency").set_index("task")
    assert back["typical_length"].isna().tolist() == [False, False, True]  # bimodal, 0.7, 0.9
    assert columns["max_typical_length"] == [2, 5, 2]  # bimodal, coin_0.7, coin_0.9
    text = efficiency.format_token_efficiency(columns)
    assert "(empty)" in text and "> 2" in text and "OOMD" in text and "sampled" in text


# ------------------------------------------------------------------ the stage
@pytest.mark.parametrize("pre, expect_beyond", [(BERNMIX, True), (SWITCHING, False)],
                         ids=["bernmix", "switching"])
def test_measure_and_summarize_efficiency_stages(tmp_path, monkeypatch, pre, expect_beyond):
    task = coin(0.7)
    evaluation = tmp_path / "evaluation.parquet"
    datasets_stage.simulate_evaluation(output=str(evaluation), experiment="e",
                                       task_name="coin_0.7", task=task,
                                       task_length=T, size=50)
    land_path = tmp_path / "landscape.parquet"
    common = dict(predictor="bayes", pretraining=pre, experiment="e", task_name="coin_0.7",
                  task=task, task_length=T, enumeration_budget=2 ** 27)
    landscape_stage.compute_landscape(evaluation=str(evaluation), output=str(land_path),
                                      max_prompt_length=2, **common)
    out = tmp_path / "efficiency.parquet"
    summary = tmp_path / "token_efficiency.parquet"
    stage = dict(output=str(out), token_efficiency=str(summary),
                 predictors=[{"predictor": "bayes", "replicate": 0, "family": "bayes",
                              "landscapes": {"coin_0.7": str(land_path)}}],
                 tasks={"coin_0.7": task}, evaluations={"coin_0.7": str(evaluation)},
                 in_meta_distribution={"coin_0.7": True}, pretraining=pre, experiment="e",
                 task_length=T, enumeration_budget=2 ** 27, max_length=5, num_typical=7)
    efficiency_stage.measure_efficiency(**stage)
    eff = tables.read(out, "efficiency")
    assert eff["prompt_length"].tolist() == list(range(6))
    # bernmix on a coin task: exact typical quantiles (nothing drawn, no interval);
    # switching: 7 drawn prompts per length, with their intervals where 7 suffice.
    exact = pre is BERNMIX
    assert (eff["typical_method"] == ("exact_counts" if exact else "sampled")).all()
    assert eff["typical_prompts"].isna().all() if exact else (eff["typical_prompts"] == 7).all()
    assert eff["typical_kl_median_low"].isna().all() == exact
    assert eff["typical_kl_q25_low"].isna().all()  # exact, or 7 draws are too few
    assert eff["optimal_prompt"].iloc[:3].tolist() == ["", "1", "11"]
    assert eff["optimal_exact_kl"].iloc[3:].notna().all() == expect_beyond
    assert eff["optimal_exact_kl"].iloc[3:].isna().all() == (not expect_beyond)
    row = tables.read(summary, "token_efficiency").iloc[0]
    assert row["optimal_prompt"] == "11" and row["max_prompt_length"] == 2
    assert row["typical_method"] == ("exact_counts" if exact else "sampled")

    # A predictor with a context limit (as neural ones have) skips what does not fit.
    class Limited(BayesPredictor):
        max_context = T + 3

    monkeypatch.setattr(efficiency_stage, "load_predictor",
                        lambda family, pretraining, model=None, device="auto":
                        Limited(build_source(pretraining)))
    efficiency_stage.measure_efficiency(**stage)
    assert tables.read(out, "efficiency")["prompt_length"].tolist() == [0, 1, 2, 3]


def test_one_efficiency_job_equals_one_job_per_predictor_and_task(tmp_path):
    """The experiment's one efficiency job writes the rows that one job per (predictor,
    task) would: each (predictor, task) computed alone, from the same inputs."""
    tasks = {"coin_0.7": coin(0.7), "coin_0.5": coin(0.5)}
    units, evaluations = [], {}
    for name, task in tasks.items():
        evaluations[name] = str(tmp_path / f"evaluation-{name}.parquet")
        datasets_stage.simulate_evaluation(output=evaluations[name], experiment="e",
                                           task_name=name, task=task, task_length=T, size=50)
    for predictor, pre in (("bayes", SWITCHING),):
        landscapes = {}
        for name, task in tasks.items():
            landscapes[name] = str(tmp_path / f"landscape-{name}.parquet")
            landscape_stage.compute_landscape(
                evaluation=evaluations[name], output=landscapes[name], predictor=predictor,
                pretraining=pre, experiment="e", task_name=name, task=task, task_length=T,
                enumeration_budget=2 ** 27, max_prompt_length=2)
        units.append({"predictor": predictor, "replicate": 0, "family": "bayes",
                      "landscapes": landscapes})
    common = dict(pretraining=SWITCHING, experiment="e", task_length=T,
                  enumeration_budget=2 ** 27, max_length=4, num_typical=5,
                  in_meta_distribution={"coin_0.7": True, "coin_0.5": False},
                  evaluations=evaluations)
    together = tmp_path / "together.parquet"
    efficiency_stage.measure_efficiency(output=str(together),
                                        token_efficiency=str(tmp_path / "t.parquet"),
                                        predictors=units, tasks=tasks, **common)
    alone = []
    for name, task in tasks.items():
        path = tmp_path / f"alone-{name}.parquet"
        efficiency_stage.measure_efficiency(output=str(path),
                                            token_efficiency=str(tmp_path / f"t-{name}.parquet"),
                                            predictors=units, tasks={name: task}, **common)
        alone.append(str(path))
    key = list(tables.ARTIFACTS["efficiency"].sort_key)
    pd.testing.assert_frame_equal(
        tables.read(str(together), "efficiency"),
        tables.read(alone, "efficiency").sort_values(key).reset_index(drop=True))


# ------------------------------------------------------------------ the figure
def test_efficiency_chart_layers_a_band_and_two_curves_per_task_panel():
    from promptscape.report import figures

    task = build_source(coin(0.7))
    land = exhaustive_landscape(SWITCHING, coin(0.7), 2)
    curve = efficiency.typical_curve(scorer(SWITCHING, coin(0.7)), task, range(5), 10)
    frame = pd.DataFrame({"predictor": "bayes", "replicate": 0, "experiment": "e",
                          "task": "coin_0.7", **curve,
                          **efficiency.optimal_by_length(land, range(5)),
                          "method": "exact_enumeration"})
    style = {"panel_width": 100, "panel_height": 80, "font_size": 10,
             "predictor_colors": {"bayes": "#000000"}}
    spec = figures.efficiency_chart(frame, tasks=["coin_0.7"], imd={"coin_0.7": True},
                                    predictors=["bayes"], style=style, title="t").to_dict()
    layers = spec["spec"]["layer"]
    assert [layer["mark"]["type"] for layer in layers] == ["area", "line"]
    assert layers[0]["encoding"]["y"]["scale"]["type"] == "log"
    assert layers[1]["encoding"]["strokeDash"]["field"] == "curve"
    assert spec["facet"]["field"] == "task_label"
    rows = spec["datasets"][spec["data"]["name"]]
    assert {r["task_label"] for r in rows} == {"coin_0.7 (IMD)"}
    # Beyond L_max the optimum of a non-exchangeable predictor is unknown: null, not floored.
    assert [r["optimal_plot"] is None for r in rows] == [False] * 3 + [True] * 2


def test_class_optima_tie_within_the_resolution_and_say_below_resolution():
    """Issue 26: under BernMix(0.2, 0.7), coin(0.7), T = 10, the optimum at 64 symbols is
    all ones (true KL ~1e-50); a 1e-12-nat tie width let a class with zeros and a true KL of
    6e-13 stand for it. Classes now tie within the KL's resolution, and the optimum's KL is
    reported below it."""
    pred = BayesPredictor(build_source({"kind": "coin_mixture", "thetas": [0.2, 0.7]}))
    task = build_source({"kind": "coin", "theta": 0.7})
    scorer = efficiency.KLScorer(pred, task, 10, 100, landscape.DEFAULT_ENUMERATION_BUDGET)
    classes = efficiency.class_optima(scorer, 64)
    assert ((classes["resolution"] > 1e-14) & (classes["resolution"] < 1e-12)).all()
    row = classes.loc[64]
    assert row["exact_kl"] <= row["resolution"] and abs(row["exact_kl"]) < 1e-13
    assert classes.loc[5, "exact_kl"] > classes.loc[5, "resolution"]
    land = pd.DataFrame({"prompt": ["", "1"], "prompt_length": [0, 1], "rank": [1, 0],
                         "kl": [0.58, 0.2], "below_resolution": [False, False]})
    out = efficiency.optimal_by_length(land, [0, 1, 64], classes)
    assert out["optimal_below_resolution"] == [False, False, True]
    assert out["optimal_upto_kl"][2] <= row["resolution"]
