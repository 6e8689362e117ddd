"""Exchangeable coin sources: `coin`, `coin_mixture`, `beta_coin`.

For an exchangeable source the probability of a sequence depends only on its counts, so
each kind states ``_log_marginal(counts)`` = log P(one particular sequence with counts
``[n0, n1]``: n0 zeros and n1 ones); the base class derives the sequential predictive from it.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from promptscape import special, validation
from promptscape.sources.base import (BinarySource, bernoulli_log, register, same_distribution,
                                      validate_coins)


@register
@dataclasses.dataclass(frozen=True, kw_only=True)
class Coin(BinarySource):
    """i.i.d. Bernoulli(theta) flips."""

    kind = "coin"
    exchangeable = True
    theta: float

    def __post_init__(self):
        object.__setattr__(self, "theta", validation.check_probability(self.theta, "coin.theta"))

    def iid_distribution(self):
        return (1.0 - self.theta, self.theta)

    def supports(self, probs):
        return same_distribution(probs, self.iid_distribution())

    def _sample(self, n, length, rng):
        return rng.random((n, length)) < self.theta

    def _log_marginal(self, counts):
        # Likelihood of a particular sequence: theta^n1 (1 - theta)^n0.
        zeros, ones = counts[..., 0], counts[..., 1]
        log_t, log_1mt = bernoulli_log(self.theta)
        return ones * log_t + zeros * log_1mt

    def ones_moments(self, length):
        return length * self.theta, length * self.theta * (1 - self.theta)


@register
@dataclasses.dataclass(frozen=True, kw_only=True)
class CoinMixture(BinarySource):
    """One coin drawn per sequence from `thetas` with `weights`, then i.i.d. flips.

    The paper's BernMix(0.2, 0.7) is ``thetas=(0.2, 0.7)`` with equal weights (the default
    when `weights` is omitted).
    """

    kind = "coin_mixture"
    exchangeable = True
    thetas: tuple[float, ...]
    weights: tuple[float, ...] | None = None

    def __post_init__(self):
        validate_coins(self)

    def iid_distribution(self):
        return (1.0 - self.thetas[0], self.thetas[0]) if len(set(self.thetas)) == 1 else None

    def supports(self, probs):
        # The support is the K coins themselves.
        return any(same_distribution(probs, (1.0 - t, t)) for t in self.thetas)

    def _sample(self, n, length, rng):
        coin = rng.choice(len(self.thetas), size=n, p=np.asarray(self.weights))
        theta = np.asarray(self.thetas)[coin]
        return rng.random((n, length)) < theta[:, None]

    def _log_marginal(self, counts):
        # Evidence: sum_k w_k theta_k^n1 (1 - theta_k)^n0, in log space over the K axis.
        log_t, log_1mt = bernoulli_log(self.thetas)  # (K,)
        log_w = np.log(np.asarray(self.weights))
        zeros, ones = counts[..., 0, None], counts[..., 1, None]
        return special.logsumexp(log_w + ones * log_t + zeros * log_1mt, axis=-1)

    def ones_moments(self, length):
        w, t = np.asarray(self.weights), np.asarray(self.thetas)
        mean_theta = float(w @ t)
        var_theta = float(w @ t**2) - mean_theta**2
        # Total variance: within-coin binomial variance plus between-coin variance.
        within = length * float(w @ (t * (1 - t)))
        return length * mean_theta, within + length**2 * var_theta


@register
@dataclasses.dataclass(frozen=True, kw_only=True)
class BetaCoin(BinarySource):
    """theta ~ Beta(alpha, beta) once per sequence, then i.i.d. flips."""

    kind = "beta_coin"
    exchangeable = True
    alpha: float
    beta: float

    def __post_init__(self):
        object.__setattr__(self, "alpha", validation.check_positive(self.alpha, "beta_coin.alpha"))
        object.__setattr__(self, "beta", validation.check_positive(self.beta, "beta_coin.beta"))

    def supports(self, probs):
        return len(probs) == 2 and all(0.0 < p < 1.0 for p in probs)  # all of (0, 1)

    def _sample(self, n, length, rng):
        theta = rng.beta(self.alpha, self.beta, size=n)
        return rng.random((n, length)) < theta[:, None]

    def _log_marginal(self, counts):
        zeros, ones = counts[..., 0], counts[..., 1]
        # Integrate theta^n1 (1 - theta)^n0 against the Beta(alpha, beta) density:
        # B(alpha + n1, beta + n0) / B(alpha, beta) (prior virtual counts plus observed).
        return special.betaln(self.alpha + ones, self.beta + zeros) - special.betaln(
            self.alpha, self.beta
        )

    def ones_moments(self, length):
        a, b = self.alpha, self.beta
        mean = a / (a + b)
        var_theta = a * b / ((a + b) ** 2 * (a + b + 1))
        within = length * (mean - (var_theta + mean**2))  # T E[theta (1 - theta)]
        return length * mean, within + length**2 * var_theta


