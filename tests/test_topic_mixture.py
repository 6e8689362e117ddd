"""The topic-mixture source: its dynamic programme against brute force over every topic
assignment, its sampler against its moments, its hull, and its named config errors."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
from scipy import special

from promptscape.prompts import enumerate_sequences
from promptscape.sources import build_source
from promptscape.validation import ConfigError


def topic_mixture(topics, alpha):
    return build_source({"kind": "topic_mixture", "topics": topics, "alpha": alpha})


def brute_force(src, seqs: np.ndarray) -> np.ndarray:
    """P(x) = sum over all K^T topic assignments z of P(z) prod_t topics[z_t][x_t], P(z) the
    Dirichlet-multinomial probability of z's topic counts (written out here)."""
    topics, alpha = np.asarray(src.topics), np.asarray(src.alpha)
    K, (B, T) = len(alpha), seqs.shape
    out = np.zeros(B)
    for z in itertools.product(range(K), repeat=T):
        z = np.asarray(z, dtype=np.int64)
        m = np.bincount(z, minlength=K)
        p_z = np.exp(special.gammaln(alpha.sum()) - special.gammaln(alpha.sum() + T)
                     + np.sum(special.gammaln(alpha + m) - special.gammaln(alpha)))
        out += p_z * np.prod(topics[z[None, :], seqs], axis=1)
    return out


def random_case(V, K, seed):
    rng = np.random.default_rng(seed)
    topics = rng.dirichlet(np.ones(V), size=K) * 0.98 + 0.02 / V  # entries in (0, 1)
    return topic_mixture(topics.tolist(), (rng.random(K) * 2 + 0.2).tolist())


CASES = [(V, K) for V in (2, 3, 4) for K in (1, 2, 3)]


@pytest.mark.parametrize("V, K", CASES, ids=[f"V{V}-K{K}" for V, K in CASES])
def test_marginal_and_predictive_equal_brute_force_over_topic_assignments(V, K):
    src = random_case(V, K, seed=10 * V + K)
    T = 5 if V < 4 else 4
    for length in range(T + 1):
        seqs = enumerate_sequences(length, V)
        exact = brute_force(src, seqs)
        np.testing.assert_allclose(np.exp(src.log_prob(seqs)), exact, rtol=1e-12)
        assert exact.sum() == pytest.approx(1.0, abs=1e-12)
    # The predictive of every symbol after every prefix is a ratio of brute-force marginals.
    seqs = enumerate_sequences(T, V)
    logp = src.log_predictive(seqs)
    for t in range(T):
        prefix = brute_force(src, seqs[:, :t])
        for v in range(V):
            extended = np.concatenate([seqs[:, :t], np.full((len(seqs), 1), v)], axis=1)
            np.testing.assert_allclose(np.exp(logp[:, t, v]),
                                       brute_force(src, extended) / prefix, rtol=1e-11)


def test_one_topic_is_its_categorical_and_a_concentrated_prior_its_mean_categorical():
    topics = [[0.6, 0.3, 0.1], [0.1, 0.2, 0.7]]
    seqs = enumerate_sequences(5, 3)
    single = topic_mixture(topics[:1], [0.7])
    categorical = build_source({"kind": "categorical", "probs": topics[0]})
    np.testing.assert_allclose(single.log_predictive(seqs), categorical.log_predictive(seqs),
                               rtol=1e-12, atol=1e-14)
    # w ~ Dirichlet(1e7 * (0.25, 0.75)) is almost surely (0.25, 0.75).
    sharp = topic_mixture(topics, [2.5e6, 7.5e6])
    mean = build_source({"kind": "categorical",
                         "probs": (0.25 * np.array(topics[0]) + 0.75 * np.array(topics[1])).tolist()})
    np.testing.assert_allclose(sharp.log_predictive(seqs), mean.log_predictive(seqs), atol=1e-5)


def test_sampler_counts_match_the_stated_moments():
    src = topic_mixture([[0.7, 0.2, 0.1], [0.1, 0.2, 0.7], [0.3, 0.4, 0.3]], [0.5, 1.0, 2.0])
    n, T = 200_000, 8
    seqs = src.sample(n, T, np.random.default_rng(5))
    counts = np.stack([(seqs == v).sum(1) for v in range(3)], axis=1).astype(float)
    mean, cov = src.count_moments(T)
    se_mean = np.sqrt(np.diag(cov) / n)
    assert np.all(np.abs(counts.mean(0) - mean) < 5 * se_mean)
    centred = counts - mean
    products = centred[:, :, None] * centred[:, None, :]
    se_cov = products.std(0) / np.sqrt(n)
    assert np.all(np.abs(products.mean(0) - cov) < 5 * se_cov + 1e-12)


def test_the_support_is_the_topics_convex_hull():
    src = topic_mixture([[0.7, 0.2, 0.1], [0.1, 0.2, 0.7]], [1.0, 1.0])
    assert src.supports((0.5, 0.2, 0.3)) is True  # w = (2/3, 1/3)
    assert src.supports((0.7, 0.2, 0.1)) is True  # a topic itself
    assert src.supports((0.2, 0.6, 0.2)) is False  # off the segment
    assert src.supports((0.8, 0.2, 0.0 + 1e-9)) is False  # on its line, beyond topic 0
    # Four topics over three symbols are affinely dependent: the kind does not say.
    many = topic_mixture([[0.7, 0.2, 0.1], [0.1, 0.2, 0.7], [0.2, 0.6, 0.2],
                          [0.4, 0.3, 0.3]], [1.0] * 4)
    assert many.supports((0.3, 0.4, 0.3)) is None


def test_the_marginal_is_memoised_per_count_vector():
    src = topic_mixture([[0.7, 0.2, 0.1], [0.1, 0.2, 0.7]], [1.0, 1.0])
    seqs = src.sample(500, 6, np.random.default_rng(0))
    first = src.log_predictive(seqs)
    remembered = len(src._memo)
    assert remembered == 84  # every count vector of up to 6 symbols over 3: sum C(n + 2, 2)
    np.testing.assert_array_equal(src.log_predictive(seqs), first)
    assert len(src._memo) == remembered


@pytest.mark.parametrize("spec, message", [
    ({"topics": [[0.7, 0.3], [0.1, 0.2, 0.7]], "alpha": [1.0, 1.0]},
     "topic_mixture.topics: rows have different lengths [2, 3]"),
    ({"topics": [[0.7, 0.2], [0.1, 0.9]], "alpha": [1.0, 1.0]},
     "topic_mixture.topics[0] sums to 0.9, must sum to 1"),
    ({"topics": [[0.7, 0.3], [0.1, 0.9]], "alpha": [1.0]},
     "topic_mixture.alpha has 1 value(s), must have 2: one per topic"),
    ({"topics": [[0.7, 0.3], [0.1, 0.9]], "alpha": [1.0, -0.5]},
     "topic_mixture.alpha[1] == -0.5, must be > 0"),
    ({"topics": [[1.0], [1.0]], "alpha": [1.0, 1.0]},
     "topic_mixture.topics[0]"),
    ({"topics": [], "alpha": []}, "topic_mixture.topics must be a non-empty list"),
], ids=["ragged", "not summing to 1", "alpha per topic", "negative alpha", "one symbol",
        "no topics"])
def test_bad_topic_mixture_configs_are_named_errors(spec, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_source({"kind": "topic_mixture", **spec}, where="sources.t")
