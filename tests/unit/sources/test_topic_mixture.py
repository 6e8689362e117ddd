"""The `topic_mixture` source against independent computations written here: enumeration of
every topic assignment (Dirichlet-multinomial weight times emissions), quadrature over the
topic weight (K = 2), its limits (K = 1, alpha -> infinity, alpha -> 0) and its sampler's
moments. Nothing here reuses the source's dynamic programme."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import integrate, special

from promptscape import validation
from promptscape.sources import build_source, compositions
from promptscape.sources import topic_mixture as topic_module

Z = 5.0  # tolerance of the statistical tests, in standard errors


@pytest.fixture(autouse=True, params=["dense", "sparse"])
def route(request, monkeypatch):
    """Every test runs through both exact routes of the marginal."""
    if request.param == "sparse":
        monkeypatch.setattr(topic_module, "LEVEL_BUDGET", 0)
    return request.param


def make(topics, alpha):
    return build_source({"kind": "topic_mixture", "topics": np.asarray(topics).tolist(),
                         "alpha": np.asarray(alpha, dtype=float).tolist()})


def random_source(V: int, K: int, seed: int):
    rng = np.random.default_rng(1000 * V + K + seed)
    topics = rng.dirichlet(np.full(V, 1.5), size=K)
    topics = topics / topics.sum(axis=1, keepdims=True)
    return make(topics, rng.uniform(0.3, 3.0, size=K))


def all_sequences(V: int, T: int) -> np.ndarray:
    """All V^T sequences, row i the base-V digits of i (first symbol most significant)."""
    return np.array(list(itertools.product(range(V), repeat=T)), dtype=np.uint8).reshape(V**T, T)


def codes(seqs: np.ndarray, V: int) -> np.ndarray:
    T = seqs.shape[1]
    return seqs.astype(np.int64) @ (V ** np.arange(T - 1, -1, -1, dtype=np.int64))


def brute_force_probability(src, seqs: np.ndarray) -> np.ndarray:
    """P(x) = sum over all K^T topic assignments z of P(z) prod_t topics[z_t][x_t], with
    P(z) the Dirichlet-multinomial probability of one particular assignment:
    Gamma(A) / Gamma(A + T) prod_k Gamma(alpha_k + m_k) / Gamma(alpha_k)."""
    topics = np.asarray(src.topics)
    alpha = np.asarray(src.alpha)
    K = len(alpha)
    seqs = np.asarray(seqs, dtype=np.int64)
    B, T = seqs.shape
    if T == 0:
        return np.ones(B)
    z = np.array(list(itertools.product(range(K), repeat=T)))  # (K^T, T)
    m = (z[..., None] == np.arange(K)).sum(axis=1)  # (K^T, K)
    log_pz = (special.gammaln(alpha.sum()) - special.gammaln(alpha.sum() + T)
              + (special.gammaln(alpha + m) - special.gammaln(alpha)).sum(axis=1))
    pz = np.exp(log_pz)
    # Every assignment's probabilities sum to 1 (the multinomial-Dirichlet normalises).
    assert math.isclose(pz.sum(), 1.0, rel_tol=1e-12)
    emit = topics[z[:, None, :], seqs[None, :, :]].prod(axis=2)  # (K^T, B)
    return pz @ emit


CASES = [(V, K) for V in (2, 3, 4) for K in (1, 2, 3)]
MAX_T = 5


@pytest.mark.parametrize("V, K", CASES, ids=[f"V{V}-K{K}" for V, K in CASES])
def test_probabilities_predictive_and_normalisation_match_brute_force(V, K):
    src = random_source(V, K, seed=0)
    assert src.vocab_size == V and src.exchangeable
    prob = {T: brute_force_probability(src, all_sequences(V, T)) for T in range(MAX_T + 1)}
    for T in range(1, MAX_T + 1):
        seqs = all_sequences(V, T)
        # (1) the probability of every sequence
        np.testing.assert_allclose(np.exp(src.log_prob(seqs)), prob[T], rtol=1e-12, atol=0)
        # (3) they sum to 1, and so do the count-class probabilities
        assert math.isclose(np.exp(src.log_prob(seqs)).sum(), 1.0, rel_tol=1e-12)
        assert math.isclose(np.exp(src.count_log_probabilities(T)).sum(), 1.0, rel_tol=1e-12)
        # (2) the predictive q(x_t = v | x_<t) = P(x_<t v) / P(x_<t)
        logq = src.log_predictive(seqs)
        assert logq.shape == (len(seqs), T, V)
        for t in range(T):
            prefix = codes(seqs[:, :t], V) if t else np.zeros(len(seqs), dtype=np.int64)
            expected = np.log(prob[t + 1][V * prefix[:, None] + np.arange(V)]) - np.log(
                prob[t][prefix])[:, None]
            np.testing.assert_allclose(logq[:, t], expected, rtol=0, atol=1e-12)


def test_marginal_matches_quadrature_over_the_topic_weight_for_long_sequences():
    """K = 2: w ~ Beta(alpha_0, alpha_1), theta = w t_0 + (1 - w) t_1, and
    P(x) = int prod_v theta_v^c_v dBeta(w): exact in a regime brute force cannot reach."""
    topics = np.array([[0.6, 0.3, 0.1], [0.05, 0.25, 0.7]])
    alpha = (1.7, 2.4)
    src = make(topics, alpha)
    counts = np.array([[10, 5, 3], [0, 0, 40], [20, 15, 25], [30, 2, 1], [1, 1, 1]])

    def integral(c):
        def log_lik(w):
            return float(np.log(w * topics[0] + (1 - w) * topics[1]) @ c)
        # Scale by the largest integrand on a grid so that long sequences do not underflow.
        grid = np.linspace(1e-6, 1 - 1e-6, 2001)
        shift = max(log_lik(w) for w in grid)
        value, _ = integrate.quad(lambda w: math.exp(log_lik(w) - shift), 0.0, 1.0,
                                  weight="alg", wvar=(alpha[0] - 1, alpha[1] - 1),
                                  epsabs=0.0, epsrel=1e-13, limit=400)
        return math.log(value) - special.betaln(*alpha) + shift

    expected = np.array([integral(c) for c in counts])
    np.testing.assert_allclose(src.log_marginal(counts), expected, rtol=1e-10, atol=0)
    # Any leading batch shape broadcasts.
    np.testing.assert_allclose(src.log_marginal(counts.reshape(5, 1, 3))[:, 0], expected,
                               rtol=1e-10, atol=0)


# ------------------------------------------------------------------ limits
def test_one_topic_is_iid_categorical():
    topic = np.array([0.5, 0.2, 0.3])
    src = make([topic], [0.8])
    seqs = all_sequences(3, 4)
    np.testing.assert_allclose(src.log_prob(seqs), np.log(topic)[seqs].sum(axis=1),
                               rtol=1e-13, atol=0)
    q = np.exp(src.log_predictive(seqs))
    np.testing.assert_allclose(q, np.broadcast_to(topic, q.shape), rtol=0, atol=1e-13)
    # Ten symbols and long counts (rows too wide for one int64 key: the other dedup path).
    topic = np.arange(1, 11) / 55.0
    counts = np.random.default_rng(3).integers(0, 120, size=(50, 4, 10))
    counts[1] = counts[0]
    np.testing.assert_allclose(make([topic], [2.5]).log_marginal(counts), counts @ np.log(topic),
                               rtol=1e-12, atol=0)


def test_large_alpha_approaches_categorical_of_the_mean_topic():
    topics = np.array([[0.7, 0.2, 0.1], [0.1, 0.2, 0.7], [0.3, 0.4, 0.3]])
    a = np.array([1.0, 2.0, 3.0])
    theta = (a / a.sum()) @ topics
    seqs = all_sequences(3, 5)
    iid = np.log(theta)[seqs].sum(axis=1)
    gaps = []
    for scale in (1e2, 1e4, 1e6):
        gaps.append(np.abs(make(topics, scale * a).log_prob(seqs) - iid).max())
    assert gaps[-1] < 1e-5, gaps
    assert gaps[0] > gaps[1] > gaps[2], gaps  # converging: the gap falls like 1 / A


def test_small_alpha_approaches_a_mixture_of_the_topics():
    """alpha -> 0: w sits at a vertex k with probability alpha_k / A, one topic per sequence."""
    topics = np.array([[0.7, 0.2, 0.1], [0.1, 0.2, 0.7]])
    a = np.array([1.0, 3.0])
    seqs = all_sequences(3, 5)
    mixture = np.log(np.exp(np.log(topics)[:, seqs].sum(axis=2)).T @ (a / a.sum()))
    gap = np.abs(make(topics, 1e-9 * a).log_prob(seqs) - mixture).max()
    assert gap < 1e-6, gap


# ------------------------------------------------------------------ sampler and moments
def test_sampler_count_moments_within_statistical_tolerance():
    src = make([[0.7, 0.2, 0.1], [0.1, 0.2, 0.7], [0.25, 0.5, 0.25]], [0.5, 1.0, 2.0])
    n, T, V = 200_000, 12, 3
    seqs = src.sample(n, T, np.random.default_rng(20_250_301))
    assert seqs.shape == (n, T) and seqs.dtype == np.uint8 and seqs.max() < V
    counts = (seqs[..., None] == np.arange(V)).sum(axis=1).astype(np.float64)  # (n, V)
    mean, cov = src.count_moments(T)
    assert mean.shape == (V,) and cov.shape == (V, V)
    sample_mean = counts.mean(axis=0)
    se_mean = np.sqrt(np.diag(cov) / n)
    assert np.all(np.abs(sample_mean - mean) < Z * se_mean), (sample_mean, mean, se_mean)
    centred = counts - sample_mean
    products = centred[:, :, None] * centred[:, None, :]  # (n, V, V)
    sample_cov = products.mean(axis=0)
    se_cov = products.std(axis=0) / math.sqrt(n)
    assert np.all(np.abs(sample_cov - cov) < Z * se_cov), (sample_cov, cov, se_cov)
    # Each position's marginal is the mean topic E[theta] = mean / T.
    for position in (0, T - 1):
        freq = (seqs[:, position, None] == np.arange(V)).mean(axis=0)
        p = mean / T
        assert np.all(np.abs(freq - p) < Z * np.sqrt(p * (1 - p) / n)), (position, freq, p)
    np.testing.assert_allclose(np.exp(src.log_predictive(seqs[:1]))[0, 0], mean / T,
                               rtol=1e-12)


@pytest.mark.parametrize("V, K", [(2, 2), (3, 3), (4, 2)])
def test_count_moments_match_the_exact_count_distribution(V, K):
    src = random_source(V, K, seed=1)
    for T in (1, 4, 7):
        c = compositions(T, V).astype(np.float64)
        p = np.exp(src.count_log_probabilities(T))
        assert math.isclose(p.sum(), 1.0, rel_tol=1e-12)
        mean = p @ c
        cov = (c - mean).T @ ((c - mean) * p[:, None])
        got_mean, got_cov = src.count_moments(T)
        np.testing.assert_allclose(got_mean, mean, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(got_cov, cov, rtol=1e-10, atol=1e-12)


def test_sample_is_deterministic_for_a_seeded_generator():
    src = random_source(4, 3, seed=2)
    a = src.sample(300, 9, np.random.default_rng(7))
    np.testing.assert_array_equal(a, src.sample(300, 9, np.random.default_rng(7)))
    assert not np.array_equal(a, src.sample(300, 9, np.random.default_rng(8)))
    assert set(np.unique(a)) <= set(range(4))


# ------------------------------------------------------------------ the DP is memoised
def test_sparse_route_runs_once_per_distinct_unseen_count_vector(monkeypatch):
    monkeypatch.setattr(topic_module, "LEVEL_BUDGET", 0)
    calls = []
    original = topic_module._polya_dp

    def recording(counts, alpha, topics):
        calls.append(counts.copy())
        return original(counts, alpha, topics)

    monkeypatch.setattr(topic_module, "_polya_dp", recording)
    src = random_source(3, 3, seed=3)
    seqs = src.sample(2000, 10, np.random.default_rng(0))
    counts = (seqs[..., None] == np.arange(3)).sum(axis=1)
    logp = src.log_prob(seqs)
    assert len(calls) == 1
    distinct = np.unique(counts, axis=0)
    assert len(calls[0]) == len(distinct) <= math.comb(12, 2)  # not one DP per sequence
    np.testing.assert_array_equal(np.unique(calls[0], axis=0), distinct)
    # Scattered back: each sequence gets its own count vector's value.
    direct = np.concatenate([original(c[None], src.alpha, src.topics) for c in distinct])
    lookup = {tuple(c): value for c, value in zip(distinct, direct)}
    np.testing.assert_array_equal(logp, [lookup[tuple(c)] for c in counts])
    # Asked again: nothing is recomputed.
    calls.clear()
    np.testing.assert_array_equal(src.log_prob(seqs), logp)
    assert calls == []
    # log_predictive: only count vectors not seen before, each once.
    src.log_predictive(seqs)
    seen = np.concatenate(calls)
    assert len(np.unique(seen, axis=0)) == len(seen) <= math.comb(13, 3)


def test_dense_and_sparse_routes_agree(monkeypatch):
    monkeypatch.setattr(topic_module, "LEVEL_BUDGET", 20_000_000)
    src = random_source(3, 2, seed=4)
    counts = np.random.default_rng(1).integers(0, 25, size=(200, 3))
    dense = src.log_marginal(counts)
    assert len(src._levels) > 0  # 75 symbols over 3, 2 topics: the dense route
    monkeypatch.setattr(topic_module, "LEVEL_BUDGET", 0)
    sparse = random_source(3, 2, seed=4).log_marginal(counts)
    np.testing.assert_allclose(dense, sparse, rtol=1e-12)


def test_the_support_is_the_topics_convex_hull():
    src = make([[0.7, 0.2, 0.1], [0.1, 0.2, 0.7]], [1.0, 1.0])
    assert src.supports((0.5, 0.2, 0.3)) is True  # w = (2/3, 1/3)
    assert src.supports((0.7, 0.2, 0.1)) is True  # a topic itself
    assert src.supports((0.2, 0.6, 0.2)) is False  # off the segment
    assert src.supports((0.8, 0.2, 1e-9)) is False  # on its line, beyond topic 0
    # Four topics over three symbols are affinely dependent: a linear programme decides
    # (issue 26: once None, the label taken as given).
    many = make([[0.7, 0.2, 0.1], [0.1, 0.2, 0.7], [0.2, 0.6, 0.2], [0.4, 0.3, 0.3]],
                [1.0] * 4)
    assert many.supports((0.3, 0.4, 0.3)) is True
    assert many.supports((0.1, 0.8, 0.1)) is False


# ------------------------------------------------------------------ config
def test_round_trips_through_dict():
    src = make([[0.7, 0.2, 0.1], [0.1, 0.2, 0.7]], [1.0, 2.0])
    spec = src.to_dict()
    assert spec == {"kind": "topic_mixture", "topics": [[0.7, 0.2, 0.1], [0.1, 0.2, 0.7]],
                    "alpha": [1.0, 2.0]}
    again = build_source(spec)
    assert again == src and hash(again) == hash(src)


GOOD_TOPICS = [[0.7, 0.2, 0.1], [0.1, 0.2, 0.7]]
INVALID = [
    ({"topics": [[0.7, 0.3], [0.1, 0.2, 0.7]], "alpha": [1, 1]},
     r"topic_mixture\.topics\[1\] has 3 symbols, must have 2"),
    ({"topics": [[0.7, 0.2, 0.2], [0.1, 0.2, 0.7]], "alpha": [1, 1]},
     r"topic_mixture\.topics\[0\] sums to 1\.1, must sum to 1"),
    ({"topics": [[0.7, 0.2, 0.1], [0.1, 0.2, 0.6]], "alpha": [1, 1]},
     r"topic_mixture\.topics\[1\] sums to 0\.9, must sum to 1"),
    ({"topics": [[1.0, 0.0], [0.5, 0.5]], "alpha": [1, 1]},
     r"topic_mixture\.topics\[0\]\[0\] == 1\.0, must be < 1"),
    ({"topics": [], "alpha": []}, r"topic_mixture\.topics is empty"),
    ({"topics": 0.5, "alpha": [1]}, r"topic_mixture\.topics must be a list"),
    ({"topics": [0.5, 0.5], "alpha": [1]}, r"topic_mixture\.topics\[0\] must be a list"),
    ({"topics": GOOD_TOPICS, "alpha": [1.0]},
     r"topic_mixture\.alpha has 1 values, must have 2 \(one per topic\)"),
    ({"topics": GOOD_TOPICS, "alpha": [1.0, 2.0, 3.0]},
     r"topic_mixture\.alpha has 3 values, must have 2"),
    ({"topics": GOOD_TOPICS, "alpha": [1.0, 0.0]},
     r"topic_mixture\.alpha\[1\] == 0\.0, must be > 0"),
    ({"topics": GOOD_TOPICS, "alpha": [-1.0, 2.0]},
     r"topic_mixture\.alpha\[0\] == -1\.0, must be > 0"),
    ({"topics": GOOD_TOPICS, "alpha": [float("inf"), 2.0]},
     r"topic_mixture\.alpha\[0\] == inf, must be finite"),
    ({"topics": GOOD_TOPICS, "alpha": 1.0}, r"topic_mixture\.alpha must be a list"),
    ({"topics": GOOD_TOPICS}, r"missing .*'alpha'"),
    ({"topics": [[0.1] * 11 for _ in range(1)], "alpha": [1.0]},
     r"topic_mixture\.topics\[0\] sums to 1\.1"),
    ({"topics": [[1 / 11] * 11], "alpha": [1.0]}, r"a topic_mixture source over 11 symbols"),
]


@pytest.mark.parametrize("spec, pattern", INVALID, ids=[str(i) for i in range(len(INVALID))])
def test_invalid_config_error_names_the_field(spec, pattern):
    with pytest.raises(validation.ConfigError, match=pattern) as info:
        build_source({"kind": "topic_mixture", **spec}, where="sources.lda")
    assert str(info.value).startswith("sources.lda"), str(info.value)
