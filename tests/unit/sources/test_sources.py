"""The science of the sources: every kind's Bayes predictive, sampler and validation.

Each property is checked against an independent computation written here (brute-force
enumeration of sequences over V symbols, hidden paths, numerical integration or the Polya
urn's sequential product), never against the source's own hooks. The example list covers every registered kind; a new kind without
examples fails `test_examples_cover_every_registered_source_kind`.
"""

from __future__ import annotations

import functools
import itertools
import math
import re

import numpy as np
import pytest
from scipy import integrate, special

from promptscape import validation
from promptscape.predictors import BayesPredictor, Predictor
from promptscape.prompts import all_prompts, enumerate_sequences, to_array
from promptscape.sources import SOURCES, build_source, compositions

EXAMPLE_SPECS = [
    {"kind": "coin", "theta": 0.7},
    {"kind": "coin", "theta": 0.2},
    {"kind": "coin_mixture", "thetas": [0.2, 0.7]},
    {"kind": "coin_mixture", "thetas": [0.1, 0.5, 0.9], "weights": [0.2, 0.3, 0.5]},
    {"kind": "beta_coin", "alpha": 1.0, "beta": 1.0},
    {"kind": "beta_coin", "alpha": 0.5, "beta": 2.0},
    {"kind": "beta_coin", "alpha": 3.0, "beta": 2.0},
    {"kind": "switching", "thetas": [0.2, 0.7], "switch_prob": 0.05},
    {"kind": "switching", "thetas": [0.1, 0.6, 0.9], "weights": [0.5, 0.25, 0.25],
     "switch_prob": 0.3},
    # A switch rate drawn once per sequence.
    {"kind": "switching", "thetas": [0.2, 0.7], "switch_probs": [0.02, 0.3]},
    {"kind": "switching", "thetas": [0.1, 0.6, 0.9], "switch_probs": [0.05, 0.2, 0.5],
     "switch_weights": [0.5, 0.3, 0.2]},
    # V symbols: every exchangeable V-symbol kind for V = 2, 3, 4.
    {"kind": "categorical", "probs": [0.35, 0.65]},
    {"kind": "categorical", "probs": [0.2, 0.5, 0.3]},
    {"kind": "categorical", "probs": [0.1, 0.2, 0.3, 0.4]},
    {"kind": "categorical_mixture", "probs": [[0.8, 0.2], [0.3, 0.7]], "weights": [0.4, 0.6]},
    {"kind": "categorical_mixture", "probs": [[0.6, 0.3, 0.1], [0.1, 0.2, 0.7]]},
    {"kind": "categorical_mixture",
     "probs": [[0.7, 0.1, 0.1, 0.1], [0.1, 0.1, 0.4, 0.4], [0.25, 0.25, 0.25, 0.25]],
     "weights": [0.2, 0.3, 0.5]},
    {"kind": "dirichlet_categorical", "alpha": [0.5, 2.0]},
    {"kind": "dirichlet_categorical", "alpha": [1.0, 1.0, 1.0]},
    {"kind": "dirichlet_categorical", "alpha": [0.5, 1.0, 2.0, 0.7]},
    # Order-1 binary chains: fixed, and with Beta priors on both transitions.
    {"kind": "markov", "transition": [0.2, 0.9]},
    {"kind": "markov", "transition": [0.7, 0.3], "initial": 0.2},
    {"kind": "markov_beta", "alpha": [1.0, 1.0], "beta": [1.0, 1.0]},
    {"kind": "markov_beta", "alpha": [0.5, 3.0], "beta": [2.0, 0.7], "initial": 0.3},
    {"kind": "topic_mixture", "topics": [[0.8, 0.2], [0.3, 0.7]], "alpha": [0.5, 2.0]},
    {"kind": "topic_mixture", "topics": [[0.7, 0.2, 0.1], [0.1, 0.2, 0.7]], "alpha": [1.0, 1.0]},
    {"kind": "topic_mixture", "topics": [[0.7, 0.1, 0.1, 0.1], [0.1, 0.1, 0.4, 0.4]],
     "alpha": [0.5, 2.0]},
]
EXAMPLES = [build_source(spec) for spec in EXAMPLE_SPECS]
IDS = [src.describe() for src in EXAMPLES]
EXCHANGEABLE = [src for src in EXAMPLES if src.exchangeable]

MAX_ENUM_LENGTH = 8
SAMPLE_N = 200_000
SAMPLE_LENGTH = 12
Z = 5.0  # tolerance of the statistical tests, in standard errors


# The word kinds (27 symbols, word lists from wordfreq) are tested against enumerated word
# sequences in test_words.py; the brute force here enumerates V^8 sequences.
WORD_KINDS = {"word_stream", "language_mixture"}


def test_examples_cover_every_registered_source_kind():
    assert {src.kind for src in EXAMPLES} | WORD_KINDS == set(SOURCES)
    assert not {src.kind for src in EXAMPLES} & WORD_KINDS


def test_examples_cover_vocabulary_sizes_two_to_four():
    for kind in ("categorical", "categorical_mixture", "dirichlet_categorical", "topic_mixture"):
        assert {src.vocab_size for src in EXAMPLES if src.kind == kind} == {2, 3, 4}, kind


# ------------------------------------------------------------------ brute force
def _weights(src) -> np.ndarray:
    return np.asarray(src.weights, dtype=np.float64)


@functools.lru_cache(maxsize=None)
def _beta_coin_integral(alpha: float, beta: float, n1: int, n0: int) -> float:
    """int_0^1 theta^n1 (1 - theta)^n0 Beta(theta; alpha, beta) dtheta, by quadrature.

    The Beta density's endpoint singularities theta^(alpha-1) (1-theta)^(beta-1) go into
    QAWS's algebraic weight, so only the smooth polynomial is integrated numerically.
    """
    value, _ = integrate.quad(
        lambda t: t**n1 * (1.0 - t) ** n0, 0.0, 1.0,
        weight="alg", wvar=(alpha - 1.0, beta - 1.0), epsabs=0.0, epsrel=1e-13, limit=200,
    )
    return value / special.beta(alpha, beta)


def brute_force_probability(src, seqs: np.ndarray) -> np.ndarray:
    """P(x) of each whole sequence ``(B, T)`` computed from the generative definition."""
    seqs = np.asarray(seqs, dtype=np.int64)
    B, T = seqs.shape
    ones = seqs.sum(axis=1)
    if src.kind == "coin":
        t = src.theta
        return np.prod(np.where(seqs == 1, t, 1.0 - t), axis=1)
    if src.kind == "coin_mixture":
        total = np.zeros(B)
        for w, t in zip(src.weights, src.thetas):
            total += w * np.prod(np.where(seqs == 1, t, 1.0 - t), axis=1)
        return total
    if src.kind == "beta_coin":
        return np.array([
            _beta_coin_integral(src.alpha, src.beta, int(n1), int(T - n1)) for n1 in ones
        ])
    if src.kind == "switching" and src.switch_probs is not None:
        # A rate drawn once per sequence: the rate-weighted sum of fixed-rate sources.
        return sum(u * brute_force_probability(
            build_source({"kind": "switching", "thetas": list(src.thetas),
                          "weights": list(src.weights), "switch_prob": rho}), seqs)
            for rho, u in zip(src.switch_probs, src.switch_weights))
    if src.kind == "switching":
        w, theta, rho = _weights(src), np.asarray(src.thetas), src.switch_prob
        K = len(w)
        if T == 0:
            return np.ones(B)
        paths = np.array(list(itertools.product(range(K), repeat=T)))  # (K^T, T)
        # Path probability: z_1 ~ w; then keep w.p. 1 - rho, or redraw from w w.p. rho.
        path_p = w[paths[:, 0]].copy()
        for t in range(1, T):
            same = paths[:, t] == paths[:, t - 1]
            path_p *= (1.0 - rho) * same + rho * w[paths[:, t]]
        assert math.isclose(path_p.sum(), 1.0, rel_tol=1e-12)
        th = theta[paths]  # (K^T, T)
        emit = np.where(seqs[:, None, :] == 1, th[None], 1.0 - th[None])  # (B, K^T, T)
        return np.prod(emit, axis=2) @ path_p
    if src.kind == "categorical":
        return np.prod(np.asarray(src.probs)[seqs], axis=1)
    if src.kind == "categorical_mixture":
        total = np.zeros(B)
        for w, p in zip(src.weights, src.probs):
            total += w * np.prod(np.asarray(p)[seqs], axis=1)
        return total
    if src.kind == "dirichlet_categorical":
        # Polya urn, symbol by symbol: x_t = v with probability (alpha_v + #v so far) / (A + t).
        alpha = np.asarray(src.alpha)
        seen = np.zeros((B, len(alpha)))
        total = np.ones(B)
        rows = np.arange(B)
        for t in range(T):
            v = seqs[:, t]
            total *= (alpha[v] + seen[rows, v]) / (alpha.sum() + t)
            seen[rows, v] += 1
        return total
    if src.kind == "topic_mixture":
        return _topic_assignments_probability(src, seqs)
    if src.kind == "markov":
        return np.array([_chain_probability(src.initial, src.transition, x) for x in seqs])
    if src.kind == "markov_beta":
        return np.array([_markov_beta_probability(src, x) for x in seqs])
    raise AssertionError(f"no brute force for source kind {src.kind!r}; add one")


def _chain_probability(initial, transition, x) -> float:
    """A fixed chain, symbol by symbol from its definition."""
    if len(x) == 0:
        return 1.0
    p = initial if x[0] == 1 else 1.0 - initial
    for a, b in zip(x[:-1], x[1:]):
        p *= transition[a] if b == 1 else 1.0 - transition[a]
    return p


@functools.lru_cache(maxsize=None)
def _beta_transition_integral(a: float, b: float, ones: int, zeros: int) -> float:
    """int_0^1 p^ones (1 - p)^zeros Beta(p; a, b) dp by quadrature (as for beta_coin)."""
    return _beta_coin_integral(a, b, ones, zeros)


def _markov_beta_probability(src, x) -> float:
    """P(x) of a Beta-prior chain: the first symbol from `initial`, then, the two transition
    probabilities being independent a priori, the product over the previous symbol a of the
    integral of the chain likelihood of the transitions out of a against its Beta prior
    (numerical quadrature)."""
    if len(x) == 0:
        return 1.0
    p = src.initial if x[0] == 1 else 1.0 - src.initial
    for a in (0, 1):
        after = [b for prev, b in zip(x[:-1], x[1:]) if prev == a]
        p *= _beta_transition_integral(src.alpha[a], src.beta[a], int(sum(after)),
                                       len(after) - int(sum(after)))
    return p


def _topic_assignments_probability(src, seqs: np.ndarray) -> np.ndarray:
    """Topic mixture: the sum over all K^T topic assignments z of P(z) prod_t topic_{z_t}(x_t),
    with P(z) the Dirichlet-multinomial probability of z's topic counts m,
    Gamma(A) / Gamma(A + T) prod_k Gamma(alpha_k + m_k) / Gamma(alpha_k)."""
    B, T = seqs.shape
    if T == 0:
        return np.ones(B)
    topics, alpha = np.asarray(src.topics), np.asarray(src.alpha)
    K = len(alpha)
    paths = np.array(list(itertools.product(range(K), repeat=T)), dtype=np.int64)
    m = np.stack([(paths == k).sum(axis=1) for k in range(K)], axis=1)  # (K^T, K)
    log_pz = (special.gammaln(alpha.sum()) - special.gammaln(alpha.sum() + T)
              + (special.gammaln(alpha + m) - special.gammaln(alpha)).sum(axis=1))
    out = np.empty(B)
    for start in range(0, B, 1024):  # (b, K^T, T) emissions a chunk of sequences at a time
        part = seqs[start:start + 1024]
        emit = topics[paths[None, :, :], part[:, None, :]]
        out[start:start + len(part)] = np.prod(emit, axis=2) @ np.exp(log_pz)
    return out


def _codes(seqs: np.ndarray, V: int) -> np.ndarray:
    """Base-V big-endian code of each row (the order of `enumerate_sequences`)."""
    T = seqs.shape[1]
    return seqs.astype(np.int64) @ (V ** np.arange(T - 1, -1, -1, dtype=np.int64))


def _counts(seqs: np.ndarray, V: int) -> np.ndarray:
    """Count of each symbol in each row, ``(B, V)``."""
    return np.stack([(np.asarray(seqs) == v).sum(axis=1) for v in range(V)], axis=1)


@pytest.mark.parametrize("src", EXAMPLES, ids=IDS)
def test_bayes_predictive_matches_brute_force_enumeration(src):
    V = src.vocab_size
    # P of every sequence of every length 0..MAX, indexed by length then code.
    prob = {
        T: brute_force_probability(src, enumerate_sequences(T, V))
        for T in range(0, MAX_ENUM_LENGTH + 1)
    }
    for T in range(1, MAX_ENUM_LENGTH + 1):
        assert math.isclose(prob[T].sum(), 1.0, rel_tol=1e-10), T
        seqs = enumerate_sequences(T, V)
        np.testing.assert_array_equal(_codes(seqs, V), np.arange(V**T))
        # Brute-force predictive q(x_t = v | x_<t) = P(x_<t v) / P(x_<t).
        expected = np.empty((len(seqs), T, V))
        for t in range(T):
            prefix = _codes(seqs[:, :t], V) if t else np.zeros(len(seqs), dtype=np.int64)
            for v in range(V):
                expected[:, t, v] = prob[t + 1][V * prefix + v] / prob[t][prefix]
        logq = src.log_predictive(seqs)
        assert logq.shape == (len(seqs), T, V)
        q = np.exp(logq)
        np.testing.assert_allclose(q.sum(axis=-1), 1.0, rtol=0, atol=1e-12)
        np.testing.assert_allclose(q, expected, rtol=0, atol=1e-10)
        np.testing.assert_allclose(src.log_prob(seqs), np.log(prob[T]), rtol=1e-10, atol=0)


@pytest.mark.parametrize("src", EXAMPLES, ids=IDS)
def test_sequence_probabilities_sum_to_one(src):
    V = src.vocab_size
    for T in (1, 2, 5, MAX_ENUM_LENGTH):
        total = math.fsum(np.exp(src.log_prob(enumerate_sequences(T, V))))
        assert math.isclose(total, 1.0, rel_tol=0, abs_tol=1e-12), (T, total)


@pytest.mark.parametrize("src", EXAMPLES, ids=IDS)
def test_count_moments_match_brute_force_enumeration(src):
    """The stated mean and covariance of the counts are exact: compare them with the moments
    of the brute-force distribution of all V^T sequences (the sampler test then holds the
    sampler to them)."""
    V = src.vocab_size
    for T in (1, 2, 6):
        seqs = enumerate_sequences(T, V)
        p = brute_force_probability(src, seqs)
        counts = _counts(seqs, V).astype(np.float64)
        mean = p @ counts
        cov = (counts - mean).T @ ((counts - mean) * p[:, None])
        stated_mean, stated_cov = src.count_moments(T)
        assert np.shape(stated_mean) == (V,) and np.shape(stated_cov) == (V, V)
        np.testing.assert_allclose(stated_mean, mean, rtol=0, atol=1e-10)
        np.testing.assert_allclose(stated_cov, cov, rtol=0, atol=1e-10)


# ------------------------------------------------------------------ sampler
@functools.lru_cache(maxsize=None)
def _big_sample(index: int) -> np.ndarray:
    rng = np.random.default_rng(20_250_214 + index)
    return EXAMPLES[index].sample(SAMPLE_N, SAMPLE_LENGTH, rng)


def _sample_of(src) -> np.ndarray:
    return _big_sample(EXAMPLES.index(src))


# Exact per-position marginals come from enumerating all V^T sequences: the longest T up to
# SAMPLE_LENGTH with at most this many sequences.
MAX_ENUM_SEQUENCES = 2**16


@pytest.mark.parametrize("src", EXAMPLES, ids=IDS)
def test_sampler_count_moments_within_statistical_tolerance(src):
    V = src.vocab_size
    seqs = _sample_of(src)
    assert seqs.shape == (SAMPLE_N, SAMPLE_LENGTH) and seqs.dtype == np.uint8
    mean, cov = src.count_moments(SAMPLE_LENGTH)
    assert mean.shape == (V,) and cov.shape == (V, V)
    # The counts sum to the length, so the stated moments must say so.
    assert math.isclose(mean.sum(), SAMPLE_LENGTH, rel_tol=1e-12)
    np.testing.assert_allclose(cov, cov.T, rtol=0, atol=1e-12)
    np.testing.assert_allclose(cov.sum(axis=1), 0.0, rtol=0, atol=1e-9)
    counts = _counts(seqs, V).astype(np.float64)  # (n, V)
    n = len(counts)
    sample_mean = counts.mean(axis=0)
    centred = counts - sample_mean
    sample_cov = centred.T @ centred / n
    # Standard error of each sample covariance entry: sd of the products of centred counts.
    m4 = (centred[:, :, None] * centred[:, None, :]) ** 2
    se_cov = np.sqrt((m4.mean(axis=0) - sample_cov**2) / n)
    se_mean = np.sqrt(np.diag(cov) / n)
    assert np.all(np.abs(sample_mean - mean) < Z * se_mean), (sample_mean, mean, se_mean)
    assert np.all(np.abs(sample_cov - cov) < Z * se_cov), (sample_cov, cov, se_cov)

    # Per-position marginals P(x_t = v), exactly from the source's own probabilities of
    # every sequence of `enum_length` symbols: they must add up to the stated count mean of
    # that length, and the sampler must match them at the first and last of those positions
    # (chains that start off their stationary law have marginals that move with t).
    enum_length = max(T for T in range(1, SAMPLE_LENGTH + 1) if V**T <= MAX_ENUM_SEQUENCES)
    every = enumerate_sequences(enum_length, V)
    prob = np.exp(src.log_prob(every))
    exact = np.array([[prob[every[:, t] == v].sum() for v in range(V)]
                      for t in range(enum_length)])  # (T, V)
    np.testing.assert_allclose(exact.sum(axis=0), src.count_moments(enum_length)[0],
                               rtol=1e-9)
    for position in (0, enum_length - 1):
        marginal = exact[position]
        se_pos = np.sqrt(marginal * (1 - marginal) / n)
        frac = _counts(seqs[:, position:position + 1], V).mean(axis=0)
        assert np.all(np.abs(frac - marginal) < Z * se_pos), (position, frac, marginal, se_pos)


@pytest.mark.parametrize("src", EXAMPLES, ids=IDS)
def test_sampler_matches_bayes_predictive_at_first_position(src):
    seqs = _sample_of(src)
    prior = np.exp(src.log_predictive(seqs[:1]))[0, 0]  # (V,)
    se = np.sqrt(prior * (1 - prior) / len(seqs))
    frac = _counts(seqs[:, :1], src.vocab_size).mean(axis=0)
    assert np.all(np.abs(frac - prior) < Z * se), (frac, prior, se)


# ------------------------------------------------------------------ exchangeability
def _permutations(text: str) -> np.ndarray:
    return np.array(sorted({p for p in itertools.permutations(to_array(text))}), dtype=np.uint8)


@pytest.mark.parametrize("src", EXAMPLES, ids=IDS)
def test_exchangeable_sources_give_order_invariant_probabilities(src):
    spreads = []
    texts = ("110100", "1000011", "0110", "210120", "0212", "3102031")
    for text in (t for t in texts if max(t) < str(src.vocab_size)):
        perms = _permutations(text)
        logp = src.log_prob(perms)
        spreads.append(logp.max() - logp.min())
        if src.exchangeable:
            np.testing.assert_allclose(logp, logp[0], rtol=0, atol=1e-12)
            # The predictive after a context depends on its counts only, too.
            q_next = src.log_predictive(np.concatenate(
                [perms, np.ones((len(perms), 1), dtype=np.uint8)], axis=1))[:, -1]
            np.testing.assert_allclose(q_next, q_next[:1].repeat(len(perms), 0),
                                       rtol=0, atol=1e-12)
    if not src.exchangeable:
        # A switching coin remembers recent flips: runs are likelier than alternation, so
        # the order of the symbols matters and the source is not exchangeable.
        assert max(spreads) > 1e-3, spreads


# ------------------------------------------------------------------ sampling API
@pytest.mark.parametrize("src", EXAMPLES, ids=IDS)
def test_sample_is_deterministic_for_a_seeded_generator(src):
    a = src.sample(500, 9, np.random.default_rng(7))
    b = src.sample(500, 9, np.random.default_rng(7))
    c = src.sample(500, 9, np.random.default_rng(8))
    assert a.shape == (500, 9) and a.dtype == np.uint8
    # Every symbol 0..V-1 is drawn, and nothing else.
    assert set(np.unique(a)) == set(range(src.vocab_size))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("rng", [None, 0, 12345, np.random.RandomState(0)],
                         ids=["None", "int0", "int12345", "RandomState"])
@pytest.mark.parametrize("src", EXAMPLES, ids=IDS)
def test_sample_requires_a_generator(src, rng):
    with pytest.raises(TypeError, match=re.escape(src.kind) + r"\.sample needs a numpy Generator"):
        src.sample(3, 4, rng)


# ------------------------------------------------------------------ config
@pytest.mark.parametrize("src", EXAMPLES, ids=IDS)
def test_source_round_trips_through_dict(src):
    spec = src.to_dict()
    assert spec["kind"] == src.kind
    again = build_source(spec)
    assert again == src
    assert hash(again) == hash(src)
    assert again.to_dict() == spec


INVALID = [
    ({"kind": "coin", "theta": 1.5}, r"coin\.theta == 1\.5, must be < 1"),
    ({"kind": "coin", "theta": 0}, r"coin\.theta == 0, must be > 0"),
    ({"kind": "coin", "theta": float("nan")}, r"coin\.theta == nan, must be finite"),
    ({"kind": "coin", "theta": "0.5"}, r"coin\.theta must be .*not str"),
    ({"kind": "coin", "theta": True}, r"coin\.theta must be .*not bool"),
    ({"kind": "coin"}, r"missing .*'theta'"),
    ({"kind": "coin", "theta": 0.5, "bias": 1}, r"unknown field.*'bias'"),
    ({"kind": "coin_mixture", "thetas": [0.2, 0.7], "weights": [0.5, 0.4]},
     r"coin_mixture\.weights sums to 0\.9, must sum to 1"),
    ({"kind": "coin_mixture", "thetas": [0.2, 0.7], "weights": [1.0]},
     r"coin_mixture\.weights has 1 values, must have 2"),
    ({"kind": "coin_mixture", "thetas": [0.2, 0.7], "weights": [1.5, -0.5]},
     r"coin_mixture\.weights\[1\] == -0\.5, must be > 0"),
    ({"kind": "coin_mixture", "thetas": [0.2, 1.0]},
     r"coin_mixture\.thetas\[1\] == 1\.0, must be < 1"),
    ({"kind": "coin_mixture", "thetas": []}, r"coin_mixture\.thetas is empty"),
    ({"kind": "coin_mixture", "thetas": 0.5}, r"coin_mixture\.thetas must be a list"),
    ({"kind": "beta_coin", "alpha": 0, "beta": 1}, r"beta_coin\.alpha == 0, must be > 0"),
    ({"kind": "beta_coin", "alpha": 1, "beta": -2}, r"beta_coin\.beta == -2, must be > 0"),
    ({"kind": "switching", "thetas": [0.2, 0.7], "switch_prob": 1.0},
     r"switching\.switch_prob == 1\.0, must be < 1"),
    ({"kind": "switching", "thetas": [0.2, 0.7], "switch_prob": 0.0},
     r"switching\.switch_prob == 0\.0, must be > 0"),
    ({"kind": "switching", "thetas": [0.2, 0.7], "weights": [0.3, 0.3, 0.4],
      "switch_prob": 0.1}, r"switching\.weights has 3 values, must have 2"),
    ({"kind": "categorical", "probs": [0.2, 0.5, 0.4]},
     r"categorical\.probs sums to 1\.1, must sum to 1"),
    ({"kind": "categorical", "probs": [0.2, 0.5, 0.3 - 1e-6]},
     r"categorical\.probs sums to 0\.999999, must sum to 1"),
    ({"kind": "categorical", "probs": [0.5, 0.5, 0.0]},
     r"categorical\.probs\[2\] == 0\.0, must be > 0"),
    ({"kind": "categorical", "probs": [1.0]}, r"categorical\.probs\[0\] == 1\.0, must be < 1"),
    ({"kind": "categorical", "probs": [0.5]},
     r"categorical\.probs has 1 value\(s\), must have at least 2"),
    ({"kind": "categorical", "probs": []}, r"categorical\.probs is empty"),
    ({"kind": "categorical", "probs": 0.5}, r"categorical\.probs must be a list"),
    ({"kind": "categorical", "probs": [0.05] * 20},
     r"a categorical source over 20 symbols; .* 2 to 10 symbols"),
    ({"kind": "categorical", "probs": [1 / 11] * 11},
     r"a categorical source over 11 symbols; .* 2 to 10 symbols"),
    ({"kind": "categorical_mixture", "probs": [[0.2, 0.8], [0.1, 0.2, 0.7]]},
     r"categorical_mixture\.probs\[1\] has 3 values, must have 2"),
    ({"kind": "categorical_mixture", "probs": [[0.2, 0.8], [0.3, 0.6]]},
     r"categorical_mixture\.probs\[1\] sums to 0\.9, must sum to 1"),
    ({"kind": "categorical_mixture", "probs": [[0.2, 0.8], [0.3, 0.7]], "weights": [0.5, 0.6]},
     r"categorical_mixture\.weights sums to 1\.1, must sum to 1"),
    ({"kind": "categorical_mixture", "probs": [[0.2, 0.8], [0.3, 0.7]], "weights": [1.0]},
     r"categorical_mixture\.weights has 1 values, must have 2 \(one per row of probs\)"),
    ({"kind": "categorical_mixture", "probs": [[0.2, 0.8], [0.3, 0.7]], "weights": [1.5, -0.5]},
     r"categorical_mixture\.weights\[1\] == -0\.5, must be > 0"),
    ({"kind": "categorical_mixture", "probs": []}, r"categorical_mixture\.probs is empty"),
    ({"kind": "categorical_mixture", "probs": [0.2, 0.8]},
     r"categorical_mixture\.probs\[0\] must be a list"),
    ({"kind": "categorical_mixture", "probs": [[0.5]]},
     r"categorical_mixture\.probs\[0\] has 1 value\(s\), must have at least 2"),
    ({"kind": "dirichlet_categorical", "alpha": [1.0, -0.5, 2.0]},
     r"dirichlet_categorical\.alpha\[1\] == -0\.5, must be > 0"),
    ({"kind": "dirichlet_categorical", "alpha": [1.0, 0]},
     r"dirichlet_categorical\.alpha\[1\] == 0, must be > 0"),
    ({"kind": "dirichlet_categorical", "alpha": [2.0]},
     r"dirichlet_categorical\.alpha has 1 value\(s\), must have at least 2"),
    ({"kind": "dirichlet_categorical", "alpha": 2.0},
     r"dirichlet_categorical\.alpha must be a list"),
    ({"kind": "dirichlet_categorical", "alpha": [1.0] * 11},
     r"a dirichlet_categorical source over 11 symbols; .* 2 to 10 symbols"),
    ({"kind": "dirichlet"}, r"unknown source kind"),
    ({"theta": 0.5}, r"unknown source kind"),
]


@pytest.mark.parametrize(
    "spec, pattern", INVALID, ids=[f"{i}-{spec.get('kind')}" for i, (spec, _) in enumerate(INVALID)]
)
def test_invalid_source_error_names_field(spec, pattern):
    with pytest.raises(validation.ConfigError, match=pattern) as info:
        build_source(spec, where="sources.mysrc")
    assert str(info.value).startswith("sources.mysrc"), str(info.value)


def test_invalid_source_spec_that_is_not_a_mapping_names_its_key():
    with pytest.raises(validation.ConfigError, match=r"^sources\.mysrc: must be a mapping"):
        build_source(["coin", 0.5], where="sources.mysrc")


# ------------------------------------------------------------------ Bayes predictor
# Prompt and task lengths per vocabulary size: every prompt of length 0..L and every task
# sequence of length T (binary: 31 prompts x 64 sequences).
PROMPT_AND_TASK_LENGTHS = {2: (4, 6), 3: (3, 5), 4: (3, 4)}


def _prompts_and_tasks(V: int) -> tuple[list[str], np.ndarray]:
    L, T = PROMPT_AND_TASK_LENGTHS[V]
    return all_prompts(L, V), enumerate_sequences(T, V)


@pytest.mark.parametrize("src", EXAMPLES, ids=IDS)
def test_bayes_prompt_losses_equal_concatenation_scoring(src):
    V = src.vocab_size
    PROMPTS, TASK_SEQS = _prompts_and_tasks(V)
    losses = BayesPredictor(src).prompt_losses(PROMPTS, TASK_SEQS)
    assert losses.shape == (len(PROMPTS), len(TASK_SEQS))
    T = TASK_SEQS.shape[1]
    for i, prompt in enumerate(PROMPTS):
        p = to_array(prompt)
        joined = np.concatenate([np.broadcast_to(p, (len(TASK_SEQS), len(p))), TASK_SEQS], axis=1)
        logq = src.log_predictive(joined)[:, len(p):]  # only the sequence's own positions
        assert logq.shape == (len(TASK_SEQS), T, V)
        picked = np.take_along_axis(logq, TASK_SEQS[..., None].astype(np.int64), axis=-1)[..., 0]
        np.testing.assert_allclose(losses[i], -picked.sum(axis=1), rtol=0, atol=1e-10,
                                   err_msg=f"prompt {prompt!r}")
    # The empty prompt scores the sequence alone; a prompt's own symbols are never scored.
    empty = PROMPTS.index("")
    np.testing.assert_allclose(losses[empty], -src.log_prob(TASK_SEQS), rtol=0, atol=1e-10)
    # With a prompt, the loss is -log P(s x) + log P(s): the prompt's probability is excluded.
    for prompt in ("1", "0110", "1111", "21", "012"):
        if prompt not in PROMPTS:  # symbols or length beyond this V's prompt set
            continue
        p = to_array(prompt)
        joined = np.concatenate([np.broadcast_to(p, (len(TASK_SEQS), len(p))), TASK_SEQS], axis=1)
        expected = -(src.log_prob(joined) - src.log_prob(p[None])[0])
        np.testing.assert_allclose(losses[PROMPTS.index(prompt)], expected, rtol=0, atol=1e-10)


SWITCHING = [src for src in EXAMPLES if src.kind == "switching"]
TASK_SEQS = enumerate_sequences(6, 2)


@pytest.mark.parametrize("src", SWITCHING, ids=[s.describe() for s in SWITCHING])
def test_switching_filter_state_conditions_what_follows_like_concatenation(src):
    contexts = enumerate_sequences(5, 2)
    states = src.filter_states(contexts)  # (B, T + 1, K * R): (coin, rate) pairs
    R = 1 if src.switch_probs is None else len(src.switch_probs)
    assert states.shape == (len(contexts), 6, len(src.thetas) * R)
    np.testing.assert_allclose(states.sum(axis=-1), 1.0, rtol=0, atol=1e-12)
    # The state before each symbol gives that symbol's predictive.
    q_one = np.exp(src.log_predictive(contexts))[..., 1]
    coin_of_state = np.repeat(np.asarray(src.thetas), R)
    np.testing.assert_allclose(states[:, :-1] @ coin_of_state, q_one, rtol=0, atol=1e-12)
    # The state after a whole prompt conditions a continuation as the concatenation would.
    for code in (0, 5, 22, 31):
        prompt = contexts[code]
        joined = np.concatenate([np.broadcast_to(prompt, (len(TASK_SEQS), 5)), TASK_SEQS], axis=1)
        np.testing.assert_allclose(
            src.log_predictive_from(states[code, -1], TASK_SEQS),
            src.log_predictive(joined)[:, 5:], rtol=0, atol=1e-12,
        )


@pytest.mark.parametrize("spec", [
    {"kind": "coin", "theta": 0.3},
    {"kind": "beta_coin", "alpha": 2.0, "beta": 0.5},
    {"kind": "coin_mixture", "thetas": [0.2, 0.7]},
    {"kind": "categorical", "probs": [0.2, 0.5, 0.3]},
    {"kind": "categorical_mixture", "probs": [[0.6, 0.3, 0.1], [0.1, 0.2, 0.7]]},
    {"kind": "dirichlet_categorical", "alpha": [0.5, 1.0, 2.0, 0.7]},
    {"kind": "topic_mixture", "topics": [[0.8, 0.2], [0.3, 0.7]], "alpha": [0.5, 2.0]},
    {"kind": "topic_mixture", "topics": [[0.7, 0.2, 0.1], [0.1, 0.2, 0.7]], "alpha": [1.0, 1.0]},
    {"kind": "topic_mixture", "topics": [[0.7, 0.1, 0.1, 0.1], [0.1, 0.1, 0.4, 0.4]],
     "alpha": [0.5, 2.0]},
], ids=lambda spec: spec["kind"])
def test_count_log_probabilities_match_enumeration(spec):
    """log P(count vector c of n symbols) of an exchangeable source equals the enumerated
    sum, in the order of `compositions(n, V)` (binary: k ones, k = 0..n)."""
    source = build_source(spec)
    V, n = source.vocab_size, 6
    seqs = np.array(list(itertools.product(range(V), repeat=n)), dtype=np.uint8)
    classes = compositions(n, V)
    assert len(classes) == math.comb(n + V - 1, V - 1)
    assert len({tuple(c) for c in classes}) == len(classes)
    np.testing.assert_array_equal(classes.sum(axis=1), n)
    if V == 2:
        np.testing.assert_array_equal(classes[:, 1], np.arange(n + 1))
    index = {tuple(c): i for i, c in enumerate(classes)}
    which = np.array([index[tuple(c)] for c in _counts(seqs, V)])
    brute = np.bincount(which, weights=np.exp(source.log_prob(seqs)), minlength=len(classes))
    np.testing.assert_allclose(np.exp(source.count_log_probabilities(n)), brute, rtol=1e-12)


# ------------------------------------------------------------------ V-symbol kinds
# With V = 2 each V-symbol kind is one of the binary kinds: the same predictive, to rounding.
BINARY_EQUIVALENTS = [
    ({"kind": "categorical", "probs": [0.7, 0.3]}, {"kind": "coin", "theta": 0.3}),
    ({"kind": "categorical", "probs": [0.15, 0.85]}, {"kind": "coin", "theta": 0.85}),
    ({"kind": "categorical_mixture", "probs": [[0.8, 0.2], [0.3, 0.7]]},
     {"kind": "coin_mixture", "thetas": [0.2, 0.7]}),
    ({"kind": "categorical_mixture", "probs": [[0.9, 0.1], [0.5, 0.5], [0.1, 0.9]],
      "weights": [0.2, 0.3, 0.5]},
     {"kind": "coin_mixture", "thetas": [0.1, 0.5, 0.9], "weights": [0.2, 0.3, 0.5]}),
    ({"kind": "dirichlet_categorical", "alpha": [2.0, 0.5]},
     {"kind": "beta_coin", "alpha": 0.5, "beta": 2.0}),
    ({"kind": "dirichlet_categorical", "alpha": [1.0, 1.0]},
     {"kind": "beta_coin", "alpha": 1.0, "beta": 1.0}),
    ({"kind": "dirichlet_categorical", "alpha": [2.0, 3.0]},
     {"kind": "beta_coin", "alpha": 3.0, "beta": 2.0}),
]


@pytest.mark.parametrize("spec, binary_spec", BINARY_EQUIVALENTS,
                         ids=[f"{a['kind']}-{b['kind']}-{i}"
                              for i, (a, b) in enumerate(BINARY_EQUIVALENTS)])
def test_two_symbol_kinds_equal_their_binary_kinds(spec, binary_spec):
    source, binary = build_source(spec), build_source(binary_spec)
    assert source.vocab_size == binary.vocab_size == 2
    seqs = enumerate_sequences(8, 2)
    np.testing.assert_allclose(source.log_predictive(seqs), binary.log_predictive(seqs),
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(source.log_prob(seqs), binary.log_prob(seqs), rtol=0, atol=1e-12)
    for length in (1, 8, 12):
        for a, b in zip(source.count_moments(length), binary.count_moments(length)):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_categorical_probabilities_within_tolerance_are_normalised():
    source = build_source({"kind": "categorical", "probs": [0.2, 0.5, 0.3 + 5e-10]})
    assert math.isclose(math.fsum(source.probs), 1.0, rel_tol=0, abs_tol=1e-15)
    np.testing.assert_allclose(source.probs, np.array([0.2, 0.5, 0.3 + 5e-10]) / (1 + 5e-10),
                               rtol=1e-15)
    # Normalised once: building it again from its own config changes nothing.
    assert build_source(source.to_dict()) == source
    mixture = build_source({"kind": "categorical_mixture",
                            "probs": [[0.2, 0.8 - 4e-10], [0.25, 0.75 + 1e-10]]})
    for row in mixture.probs:
        assert math.isclose(math.fsum(row), 1.0, rel_tol=0, abs_tol=1e-15)
    assert build_source(mixture.to_dict()) == mixture


@functools.lru_cache(maxsize=None)
def _dirichlet3_integral(alpha: tuple[float, float, float], counts: tuple[int, int, int]) -> float:
    """int over the simplex of prod_v theta_v^c_v Dirichlet(theta; alpha) dtheta, by 2-d
    quadrature over (theta_0, theta_1), theta_2 = 1 - theta_0 - theta_1."""
    a = np.asarray(alpha) + np.asarray(counts) - 1.0
    value, _ = integrate.dblquad(
        lambda t1, t0: t0 ** a[0] * t1 ** a[1] * max(1.0 - t0 - t1, 0.0) ** a[2],
        0.0, 1.0, 0.0, lambda t0: 1.0 - t0, epsabs=0.0, epsrel=1e-11)
    log_norm = special.gammaln(sum(alpha)) - sum(special.gammaln(x) for x in alpha)
    return value * math.exp(log_norm)


@pytest.mark.parametrize("alpha", [(1.0, 1.0, 1.0), (2.0, 1.5, 3.0)])
def test_dirichlet_polya_urn_brute_force_matches_integral_over_the_simplex(alpha):
    """The brute force of `dirichlet_categorical` (the Polya urn) is the generative
    definition: P(x) = E_theta[prod_t theta_{x_t}] under Dirichlet(alpha)."""
    source = build_source({"kind": "dirichlet_categorical", "alpha": list(alpha)})
    for seq in ([0, 0, 1], [2, 1, 0, 2], [1, 1, 1, 1], [0, 2, 2, 2, 1]):
        seqs = np.array([seq], dtype=np.uint8)
        counts = tuple(int(c) for c in _counts(seqs, 3)[0])
        urn = brute_force_probability(source, seqs)[0]
        assert math.isclose(urn, _dirichlet3_integral(alpha, counts), rel_tol=1e-8), seq


def test_docs_sources_md_is_in_sync_with_the_registered_kinds():
    from pathlib import Path

    from promptscape.sources.base import markdown

    path = Path(__file__).resolve().parents[3] / "docs" / "sources.md"
    assert path.read_text() == markdown(), "regenerate: python -m promptscape.sources > docs/sources.md"


def test_in_meta_distribution_follows_the_priors_support():
    from promptscape.sources.base import in_meta_distribution

    def src(**spec):
        return build_source(spec)

    bernmix = src(kind="coin_mixture", thetas=[0.2, 0.7])
    assert in_meta_distribution(bernmix, src(kind="coin", theta=0.7)) is True
    assert in_meta_distribution(bernmix, src(kind="coin", theta=0.5)) is False
    # Not i.i.d.: a mixture task is no member of any exchangeable prior here.
    assert in_meta_distribution(bernmix, src(kind="coin_mixture", thetas=[0.2, 0.7])) is False
    uniform = src(kind="beta_coin", alpha=1.0, beta=1.0)
    assert in_meta_distribution(uniform, src(kind="coin", theta=0.999)) is True
    assert in_meta_distribution(uniform, src(kind="categorical", probs=[0.4, 0.6])) is True
    dirichlet = src(kind="dirichlet_categorical", alpha=[1.0, 1.0, 1.0])
    assert in_meta_distribution(dirichlet, src(kind="categorical", probs=[0.6, 0.3, 0.1]))
    assert not in_meta_distribution(
        dirichlet, src(kind="categorical_mixture", probs=[[0.8, 0.1, 0.1], [0.1, 0.1, 0.8]]))
    rows = src(kind="categorical_mixture", probs=[[0.8, 0.1, 0.1], [0.1, 0.1, 0.8]])
    assert in_meta_distribution(rows, src(kind="categorical", probs=[0.1, 0.1, 0.8])) is True
    assert in_meta_distribution(rows, src(kind="categorical", probs=[0.1, 0.8, 0.1])) is False
    # Switching holds the coins that never switch (issue 26: once taken as given).
    switching = src(kind="switching", thetas=[0.2, 0.7], switch_prob=0.05)
    assert in_meta_distribution(switching, src(kind="coin", theta=0.5)) is False
    assert in_meta_distribution(switching, src(kind="coin", theta=0.7)) is True


def test_markov_beta_prompts_act_only_through_their_transition_class():
    from promptscape.sources.markov import transition_class

    src = build_source({"kind": "markov_beta", "alpha": [0.5, 3.0], "beta": [2.0, 0.7],
                        "initial": 0.3})
    prompts = all_prompts(6, 2)
    tasks = enumerate_sequences(4, 2)
    # (P, 16) by the generic route (every concatenation through the predictive), not the
    # class route that assumes what is tested here.
    losses = Predictor.prompt_losses(BayesPredictor(src), prompts, tasks)
    classes = {}
    for prompt, row in zip(prompts, losses):
        classes.setdefault(transition_class(prompt), []).append(row)
    for key, rows in classes.items():
        np.testing.assert_allclose(rows, np.broadcast_to(rows[0], np.shape(rows)),
                                   rtol=1e-12, err_msg=str(key))
    # Different classes differ (the class is not coarser than the predictor).
    firsts = np.array([rows[0] for rows in classes.values()])
    assert len(np.unique(firsts.round(9), axis=0)) == len(classes)
    # The boundary: the task's first symbol is predicted through the transition from the
    # prompt's last symbol. After "0" the first task symbol is 1 w.p. alpha0/(alpha0+beta0),
    # after "1" w.p. alpha1/(alpha1+beta1).
    first = BayesPredictor(src).prompt_losses(["0", "1"], np.array([[1]], dtype=np.uint8))
    np.testing.assert_allclose(np.exp(-first[:, 0]), [0.5 / 2.5, 3.0 / 3.7], rtol=1e-12)


@pytest.mark.parametrize("spec", [
    {"kind": "markov_beta", "alpha": [1.0, 1.0], "beta": [1.0, 1.0]},
    {"kind": "markov_beta", "alpha": [0.5, 3.0], "beta": [2.0, 0.7], "initial": 0.3},
])
def test_markov_beta_class_losses_equal_brute_force(spec):
    """The closed-form class route (transition counts, the boundary transition, the empty
    prompt's initial symbol) against -log P(s x) / P(s) by quadrature, on every prompt up to
    length 5 (order-sensitive prompts such as 0011 and 0101) and every task of length 4."""
    src = build_source(spec)
    prompts = all_prompts(5, 2)
    tasks = enumerate_sequences(4, 2)
    got = BayesPredictor(src).prompt_losses(prompts, tasks)
    for i, prompt in enumerate(prompts):
        s = [int(c) for c in prompt]
        denominator = _markov_beta_probability(src, s)
        want = [-np.log(_markov_beta_probability(src, s + list(x)) / denominator)
                for x in tasks]
        np.testing.assert_allclose(got[i], want, rtol=1e-9, err_msg=prompt or "(empty)")


def test_transition_classes_are_the_classes_of_all_prompts():
    from promptscape.sources.markov import transition_class, transition_classes

    for length in range(9):
        classes, representatives = transition_classes(length)
        first: dict = {}
        for prompt in (p for p in all_prompts(length, 2) if len(p) == length):
            first.setdefault(transition_class(prompt), prompt)  # canonical order: lexicographic
        assert dict(zip(classes, representatives)) == first, length
        assert representatives == sorted(representatives)
    # Far fewer classes than prompts: 4,034 classes of the 2^64 prompts of length 64.
    assert len(transition_classes(64)[0]) < 5_000


def test_markov_tasks_in_the_meta_distribution():
    from promptscape.sources.base import in_meta_distribution

    prior = build_source({"kind": "markov_beta", "alpha": [1.0, 1.0], "beta": [1.0, 1.0]})
    sticky = build_source({"kind": "markov", "transition": [0.1, 0.9]})
    assert in_meta_distribution(prior, sticky) is True
    late = build_source({"kind": "markov", "transition": [0.1, 0.9], "initial": 0.3})
    assert in_meta_distribution(prior, late) is False  # starts unlike the prior's chains
    assert in_meta_distribution(prior, build_source({"kind": "coin", "theta": 0.5})) is True
    assert in_meta_distribution(prior, build_source({"kind": "coin", "theta": 0.7})) is False
    two_coins = build_source({"kind": "coin_mixture", "thetas": [0.2, 0.8]})
    assert in_meta_distribution(prior, two_coins) is False  # no single chain is a mixture


def test_a_single_switch_rate_keeps_the_switching_identity():
    fixed = build_source({"kind": "switching", "thetas": [0.2, 0.7], "switch_prob": 0.05})
    assert fixed.to_dict() == {"kind": "switching", "thetas": [0.2, 0.7], "switch_prob": 0.05,
                               "weights": [0.5, 0.5]}
    # One rate in the list form is the same process (a different config, a different name).
    listed = build_source({"kind": "switching", "thetas": [0.2, 0.7], "switch_probs": [0.05]})
    seqs = enumerate_sequences(6, 2)
    np.testing.assert_allclose(listed.log_predictive(seqs), fixed.log_predictive(seqs),
                               rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("spec, message", [
    ({"switch_prob": 0.1, "switch_probs": [0.1, 0.2]}, "give exactly one of switch_prob"),
    ({}, "give exactly one of switch_prob"),
    ({"switch_prob": 0.1, "switch_weights": [1.0]}, "switching.switch_weights weighs"),
    ({"switch_probs": [0.1, 0.2], "switch_weights": [0.5]}, "switching.switch_weights"),
    ({"switch_probs": [0.1, 1.2]}, "switching.switch_probs"),
])
def test_bad_switch_rates_are_named_errors(spec, message):
    with pytest.raises(validation.ConfigError, match=re.escape(message)):
        build_source({"kind": "switching", "thetas": [0.2, 0.7], **spec})
