"""The `switching` source: a hidden coin that is redrawn now and then (a hidden Markov model).

Generative process, K coins with biases ``thetas`` and weights ``weights``::

    rho ~ switch_weights over switch_probs, once per sequence (or rho = switch_prob)
    z_1 ~ weights
    z_t = z_{t-1}            with probability 1 - rho    (t >= 2)
    z_t ~ weights            with probability rho        (may redraw the same coin)
    x_t ~ Bernoulli(thetas[z_t])

Its Bayes predictor is the forward algorithm, filtering over the pairs (z, rho): with a
single rate that is filtering over z.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from promptscape import validation
from promptscape.sources.base import (BinarySource, register, same_distribution,
                                      validate_coins)


@register
@dataclasses.dataclass(frozen=True, kw_only=True)
class Switching(BinarySource):
    """A coin redrawn from `weights` before each flip after the first, with probability rho.

    Parameters: ``thetas`` (the K coins' biases) and ``weights`` (their probabilities,
    equal by default); the switch rate either fixed, ``switch_prob``, or drawn once per
    sequence from ``switch_probs`` with ``switch_weights`` (equal by default); exactly one
    of ``switch_prob`` and ``switch_probs``. Exact Bayes: the forward algorithm over the
    pairs (coin, rate).

    A task is in the meta-distribution when it is a coin (or a binary categorical) whose
    bias is one of ``thetas``: the source that never switches away from that coin, a path
    of positive prior probability whatever the rate. Any other task is outside it: a coin
    of another bias, and a task that is not i.i.d. (a Markov chain, a mixture, a switching
    source, this one included), which is a distribution over the prior's members rather
    than one of them (as a mixture task is under an exchangeable prior).
    """

    kind = "switching"
    exchangeable = False
    thetas: tuple[float, ...]
    switch_prob: float | None = None
    weights: tuple[float, ...] | None = None
    switch_probs: tuple[float, ...] | None = None
    switch_weights: tuple[float, ...] | None = None

    def __post_init__(self):
        validate_coins(self)
        if (self.switch_prob is None) == (self.switch_probs is None):
            raise ValueError("switching: give exactly one of switch_prob (a fixed rate) and "
                             "switch_probs (rates drawn once per sequence)")
        if self.switch_prob is not None:
            if self.switch_weights is not None:
                raise ValueError("switching.switch_weights weighs switch_probs; with a fixed "
                                 "switch_prob there is nothing to weigh")
            rho = validation.check_probability(self.switch_prob, "switching.switch_prob")
            object.__setattr__(self, "switch_prob", rho)
            return
        rates = validation.check_probabilities(self.switch_probs, "switching.switch_probs")
        weights = self.switch_weights
        if weights is None:
            weights = tuple(1.0 / len(rates) for _ in rates)
        weights = validation.check_weights(weights, "switching.switch_weights", len(rates))
        object.__setattr__(self, "switch_probs", rates)
        object.__setattr__(self, "switch_weights", weights)

    def supports(self, probs):
        return len(probs) == 2 and any(same_distribution(probs, (1.0 - theta, theta))
                                       for theta in self.thetas)

    def supports_task(self, task) -> bool:
        probs = task.iid_distribution()
        return False if probs is None else self.supports(tuple(probs))

    @property
    def rates(self) -> tuple[np.ndarray, np.ndarray]:
        """(rates (R,), their prior weights (R,)): one rate of weight 1 when fixed."""
        if self.switch_prob is not None:
            return np.array([self.switch_prob]), np.array([1.0])
        return np.asarray(self.switch_probs), np.asarray(self.switch_weights)

    def _sample(self, n, length, rng):
        w = np.asarray(self.weights)
        if self.switch_prob is not None:
            rho = self.switch_prob
        else:
            rates, rate_weights = self.rates
            rho = rates[rng.choice(len(rates), size=n, p=rate_weights)]  # (n,)
        z = np.empty((n, length), dtype=np.int64)
        if length:
            z[:, 0] = rng.choice(len(w), size=n, p=w)
        for t in range(1, length):
            redraw = rng.random(n) < rho
            fresh = rng.choice(len(w), size=n, p=w)
            z[:, t] = np.where(redraw, fresh, z[:, t - 1])
        theta = np.asarray(self.thetas)[z]
        return rng.random((n, length)) < theta

    def initial_state(self) -> np.ndarray:
        """P(coin, rate) before any symbol, flattened coin-major: ``(K * R,)``."""
        rates, rate_weights = self.rates
        return np.outer(np.asarray(self.weights), rate_weights).ravel()

    def step_log_predictive(self, state: np.ndarray) -> np.ndarray:
        """log q of the next symbol from ``(B, K * R)`` states: ``(B, V)``."""
        per_state = np.repeat(np.asarray(self.thetas), len(self.rates[0]))  # coin of each pair
        p_one = state @ per_state  # (B,) predictive mixture of the coins
        return np.stack([np.log1p(-p_one), np.log(p_one)], axis=-1)

    def advance(self, state: np.ndarray, symbols: np.ndarray) -> np.ndarray:
        """One forward step: condition the ``(B, K * R)`` state of a symbol on it (`symbols`
        ``(B,)``), renormalise, then let the coin switch at its rate."""
        theta = np.asarray(self.thetas)
        rates, _ = self.rates
        K, R = len(theta), len(rates)
        lik = np.where(symbols[:, None] == 1, theta, 1 - theta)  # (B, K)
        # Posterior over (z_t, rho) after seeing x_t (renormalised each step: filtering is
        # stable in probability space), then one transition step per rate:
        # P(z_{t+1}, rho) = (1 - rho) posterior(z, rho) + rho weights(z) posterior(rho).
        post = state.reshape(-1, K, R) * lik[:, :, None]
        post /= post.sum(axis=(1, 2), keepdims=True)
        redraw = np.asarray(self.weights)[None, :, None] * post.sum(axis=1, keepdims=True)
        return ((1 - rates) * post + rates * redraw).reshape(-1, K * R)

    def filter_states(self, seqs: np.ndarray) -> np.ndarray:
        """Predicted distribution of the hidden (coin, rate) before each symbol,
        ``(B, T + 1, K * R)`` (coin-major; R = 1 with a fixed rate).

        Entry t is P(z_{t+1}, rho | x_1..x_t) (entry 0 is the prior); the last entry is the
        state after the whole sequence, which is how a prompt conditions what follows.
        """
        seqs = np.asarray(seqs)
        B, T = seqs.shape
        state = np.broadcast_to(self.initial_state(), (B, self.initial_state().size)).copy()
        out = np.empty((B, T + 1, state.shape[1]))
        out[:, 0] = state
        for t in range(T):
            state = self.advance(state, seqs[:, t])
            out[:, t + 1] = state
        return out

    def log_predictive_from(self, state: np.ndarray, seqs: np.ndarray) -> np.ndarray:
        """Predictive ``(B, T, V)`` for `seqs` that follow a context whose state is `state`.

        `state` is ``(B, K * R)`` or ``(K * R,)``: P(coin and rate of the first symbol of
        seqs | context).
        """
        seqs = np.asarray(seqs)
        B, T = seqs.shape
        state = np.broadcast_to(np.asarray(state, dtype=np.float64),
                                (B, self.initial_state().size)).copy()
        out = np.empty((B, T, 2))
        for t in range(T):
            out[:, t] = self.step_log_predictive(state)
            state = self.advance(state, seqs[:, t])
        return out

    def _log_predictive(self, seqs):
        return self.log_predictive_from(self.initial_state(), seqs)

    def ones_moments(self, length):
        w, t = np.asarray(self.weights), np.asarray(self.thetas)
        m = float(w @ t)
        var_theta = float(w @ t**2) - m**2
        # Stationary marginal P(x_t = 1) = m; cov(x_s, x_t) = (1 - rho)^|t - s| Var_w(theta)
        # (the two flips share a coin exactly when no redraw happened in between).
        # With a rate drawn per sequence the flips' means do not depend on it, so the
        # covariance is the rate-average of (1 - rho)^|t - s| Var_w(theta).
        lags = np.arange(1, length)
        rates, rate_weights = self.rates
        keep = rate_weights @ (1 - rates[:, None]) ** lags[None, :]  # (length - 1,)
        cov = 2 * np.sum((length - lags) * keep) * var_theta
        return length * m, length * m * (1 - m) + float(cov)
