"""The science of the sources: every kind's Bayes predictive, sampler and validation.

Each property is checked against an independent computation written here (brute-force
enumeration of sequences, hidden paths or numerical integration), never against the
source's own hooks. The example list covers every registered kind; a new kind without
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
from promptscape.predictors import BayesPredictor
from promptscape.prompts import all_prompts, enumerate_sequences, to_array
from promptscape.sources import SOURCES, build_source

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
]
EXAMPLES = [build_source(spec) for spec in EXAMPLE_SPECS]
IDS = [src.describe() for src in EXAMPLES]
EXCHANGEABLE = [src for src in EXAMPLES if src.exchangeable]

MAX_ENUM_LENGTH = 8
SAMPLE_N = 200_000
SAMPLE_LENGTH = 12
Z = 5.0  # tolerance of the statistical tests, in standard errors


def test_examples_cover_every_registered_source_kind():
    assert {src.kind for src in EXAMPLES} == set(SOURCES)


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
    raise AssertionError(f"no brute force for source kind {src.kind!r}; add one")


def _codes(seqs: np.ndarray) -> np.ndarray:
    T = seqs.shape[1]
    return seqs.astype(np.int64) @ (1 << np.arange(T - 1, -1, -1, dtype=np.int64))


@pytest.mark.parametrize("src", EXAMPLES, ids=IDS)
def test_bayes_predictive_matches_brute_force_enumeration(src):
    # P of every sequence of every length 0..MAX, indexed by length then code.
    prob = {
        T: brute_force_probability(src, enumerate_sequences(T))
        for T in range(0, MAX_ENUM_LENGTH + 1)
    }
    for T in range(1, MAX_ENUM_LENGTH + 1):
        assert math.isclose(prob[T].sum(), 1.0, rel_tol=1e-10), T
        seqs = enumerate_sequences(T)
        # Brute-force predictive q(x_t = 1 | x_<t) = P(x_<t 1) / P(x_<t).
        expected_one = np.empty((len(seqs), T))
        for t in range(T):
            prefix = _codes(seqs[:, :t]) if t else np.zeros(len(seqs), dtype=np.int64)
            expected_one[:, t] = prob[t + 1][2 * prefix + 1] / prob[t][prefix]
        logq = src.log_predictive(seqs)
        assert logq.shape == (len(seqs), T, 2)
        q = np.exp(logq)
        np.testing.assert_allclose(q.sum(axis=-1), 1.0, rtol=0, atol=1e-12)
        np.testing.assert_allclose(q[..., 1], expected_one, rtol=0, atol=1e-10)
        np.testing.assert_allclose(q[..., 0], 1.0 - expected_one, rtol=0, atol=1e-10)
        np.testing.assert_allclose(src.log_prob(seqs), np.log(prob[T]), rtol=1e-10, atol=0)


# ------------------------------------------------------------------ sampler
@functools.lru_cache(maxsize=None)
def _big_sample(index: int) -> np.ndarray:
    rng = np.random.default_rng(20_250_214 + index)
    return EXAMPLES[index].sample(SAMPLE_N, SAMPLE_LENGTH, rng)


def _sample_of(src) -> np.ndarray:
    return _big_sample(EXAMPLES.index(src))


@pytest.mark.parametrize("src", EXAMPLES, ids=IDS)
def test_sampler_count_moments_within_statistical_tolerance(src):
    seqs = _sample_of(src)
    assert seqs.shape == (SAMPLE_N, SAMPLE_LENGTH) and seqs.dtype == np.uint8
    mean, var = src.count_moments(SAMPLE_LENGTH)
    counts = seqs.sum(axis=1, dtype=np.int64).astype(np.float64)
    n = len(counts)
    sample_mean = counts.mean()
    centred = counts - sample_mean
    sample_var = np.mean(centred**2)
    m4 = np.mean(centred**4)
    se_mean = math.sqrt(var / n)
    se_var = math.sqrt((m4 - sample_var**2) / n)
    assert abs(sample_mean - mean) < Z * se_mean, (sample_mean, mean, se_mean)
    assert abs(sample_var - var) < Z * se_var, (sample_var, var, se_var)

    # Per-position marginals P(x_t = 1) at the first and last position. The stated count
    # mean implies a constant marginal mean / T; check that against exact enumeration of
    # the source's own probabilities, then the sampler against it.
    marginal = mean / SAMPLE_LENGTH
    last = enumerate_sequences(SAMPLE_LENGTH)
    exact_last = np.exp(src.log_prob(last))[last[:, -1] == 1].sum()
    assert math.isclose(exact_last, marginal, rel_tol=1e-9)
    se_pos = math.sqrt(marginal * (1 - marginal) / n)
    for position in (0, SAMPLE_LENGTH - 1):
        frac = seqs[:, position].mean()
        assert abs(frac - marginal) < Z * se_pos, (position, frac, marginal, se_pos)


@pytest.mark.parametrize("src", EXAMPLES, ids=IDS)
def test_sampler_matches_bayes_predictive_at_first_position(src):
    seqs = _sample_of(src)
    p_one = float(np.exp(src.log_predictive(seqs[:1]))[0, 0, 1])
    se = math.sqrt(p_one * (1 - p_one) / len(seqs))
    frac = seqs[:, 0].mean()
    assert abs(frac - p_one) < Z * se, (frac, p_one, se)


# ------------------------------------------------------------------ exchangeability
def _permutations(text: str) -> np.ndarray:
    return np.array(sorted({p for p in itertools.permutations(to_array(text))}), dtype=np.uint8)


@pytest.mark.parametrize("src", EXAMPLES, ids=IDS)
def test_exchangeable_sources_give_order_invariant_probabilities(src):
    spreads = []
    for text in ("110100", "1000011", "0110"):
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
    assert set(np.unique(a)) <= {0, 1}
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
PROMPTS = all_prompts(4)
TASK_SEQS = enumerate_sequences(6)


@pytest.mark.parametrize("src", EXAMPLES, ids=IDS)
def test_bayes_prompt_losses_equal_concatenation_scoring(src):
    losses = BayesPredictor(src).prompt_losses(PROMPTS, TASK_SEQS)
    assert losses.shape == (len(PROMPTS), len(TASK_SEQS))
    T = TASK_SEQS.shape[1]
    for i, prompt in enumerate(PROMPTS):
        p = to_array(prompt)
        joined = np.concatenate([np.broadcast_to(p, (len(TASK_SEQS), len(p))), TASK_SEQS], axis=1)
        logq = src.log_predictive(joined)[:, len(p):]  # only the sequence's own positions
        assert logq.shape == (len(TASK_SEQS), T, 2)
        picked = np.take_along_axis(logq, TASK_SEQS[..., None].astype(np.int64), axis=-1)[..., 0]
        np.testing.assert_allclose(losses[i], -picked.sum(axis=1), rtol=0, atol=1e-10,
                                   err_msg=f"prompt {prompt!r}")
    # The empty prompt scores the sequence alone; a prompt's own symbols are never scored.
    empty = PROMPTS.index("")
    np.testing.assert_allclose(losses[empty], -src.log_prob(TASK_SEQS), rtol=0, atol=1e-10)
    # With a prompt, the loss is -log P(s x) + log P(s): the prompt's probability is excluded.
    for prompt in ("1", "0110", "1111"):
        p = to_array(prompt)
        joined = np.concatenate([np.broadcast_to(p, (len(TASK_SEQS), len(p))), TASK_SEQS], axis=1)
        expected = -(src.log_prob(joined) - src.log_prob(p[None])[0])
        np.testing.assert_allclose(losses[PROMPTS.index(prompt)], expected, rtol=0, atol=1e-10)


SWITCHING = [src for src in EXAMPLES if src.kind == "switching"]


@pytest.mark.parametrize("src", SWITCHING, ids=[s.describe() for s in SWITCHING])
def test_switching_filter_state_conditions_what_follows_like_concatenation(src):
    contexts = enumerate_sequences(5)
    states = src.filter_states(contexts)  # (B, T + 1, K)
    assert states.shape == (len(contexts), 6, len(src.thetas))
    np.testing.assert_allclose(states.sum(axis=-1), 1.0, rtol=0, atol=1e-12)
    # The state before each symbol gives that symbol's predictive.
    q_one = np.exp(src.log_predictive(contexts))[..., 1]
    np.testing.assert_allclose(states[:, :-1] @ np.asarray(src.thetas), q_one, rtol=0, atol=1e-12)
    # The state after a whole prompt conditions a continuation as the concatenation would.
    for code in (0, 5, 22, 31):
        prompt = contexts[code]
        joined = np.concatenate([np.broadcast_to(prompt, (len(TASK_SEQS), 5)), TASK_SEQS], axis=1)
        np.testing.assert_allclose(
            src.log_predictive_from(states[code, -1], TASK_SEQS),
            src.log_predictive(joined)[:, 5:], rtol=0, atol=1e-12,
        )


def test_count_log_probabilities_match_enumeration():
    """log P(k ones in n symbols) of an exchangeable source equals the enumerated sum."""
    import itertools

    for spec in ({"kind": "coin", "theta": 0.3}, {"kind": "beta_coin", "alpha": 2.0, "beta": 0.5},
                 {"kind": "coin_mixture", "thetas": [0.2, 0.7]}):
        source = build_source(spec)
        n = 6
        seqs = np.array(list(itertools.product([0, 1], repeat=n)), dtype=np.uint8)
        brute = np.bincount(seqs.sum(axis=1), weights=np.exp(source.log_prob(seqs)), minlength=n + 1)
        np.testing.assert_allclose(np.exp(source.count_log_probabilities(n)), brute, rtol=1e-12)
