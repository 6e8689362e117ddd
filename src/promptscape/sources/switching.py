"""The `switching` source: a hidden coin that is redrawn now and then (a hidden Markov model).

Generative process, K coins with biases ``thetas`` and weights ``weights``::

    z_1 ~ weights
    z_t = z_{t-1}            with probability 1 - switch_prob    (t >= 2)
    z_t ~ weights            with probability switch_prob        (may redraw the same coin)
    x_t ~ Bernoulli(thetas[z_t])

Its Bayes predictor is the forward algorithm (filtering over z).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from promptscape import validation
from promptscape.sources.base import BinarySource, register, validate_coins


@register
@dataclasses.dataclass(frozen=True, kw_only=True)
class Switching(BinarySource):
    """A coin redrawn from `weights` before each flip after the first, w.p. `switch_prob`."""

    kind = "switching"
    exchangeable = False
    thetas: tuple[float, ...]
    switch_prob: float
    weights: tuple[float, ...] | None = None

    def __post_init__(self):
        validate_coins(self)
        rho = validation.check_probability(self.switch_prob, "switching.switch_prob")
        object.__setattr__(self, "switch_prob", rho)

    def _sample(self, n, length, rng):
        w = np.asarray(self.weights)
        z = np.empty((n, length), dtype=np.int64)
        if length:
            z[:, 0] = rng.choice(len(w), size=n, p=w)
        for t in range(1, length):
            redraw = rng.random(n) < self.switch_prob
            fresh = rng.choice(len(w), size=n, p=w)
            z[:, t] = np.where(redraw, fresh, z[:, t - 1])
        theta = np.asarray(self.thetas)[z]
        return rng.random((n, length)) < theta

    def filter_states(self, seqs: np.ndarray) -> np.ndarray:
        """Predicted hidden-coin distribution before each symbol, ``(B, T + 1, K)``.

        Entry t is P(z_{t+1} | x_1..x_t) (entry 0 is the prior `weights`); the last entry is
        the state after the whole sequence, which is how a prompt conditions what follows.
        """
        seqs = np.asarray(seqs)
        B, T = seqs.shape
        theta = np.asarray(self.thetas)  # (K,)
        w = np.asarray(self.weights)
        out = np.empty((B, T + 1, len(theta)))
        state = np.broadcast_to(w, (B, len(theta))).copy()  # (B, K) P(z_t | x_<t)
        out[:, 0] = state
        for t in range(T):
            lik = np.where(seqs[:, t, None] == 1, theta, 1 - theta)  # (B, K)
            # Posterior over z_t after seeing x_t (normalised: filtering is stable in
            # probability space when renormalised each step), then one transition step:
            # P(z_{t+1}) = (1 - rho) posterior + rho * weights.
            post = state * lik
            post /= post.sum(axis=1, keepdims=True)
            state = (1 - self.switch_prob) * post + self.switch_prob * w
            out[:, t + 1] = state
        return out

    def log_predictive_from(self, state: np.ndarray, seqs: np.ndarray) -> np.ndarray:
        """Predictive ``(B, T, V)`` for `seqs` that follow a context whose state is `state`.

        `state` is ``(B, K)`` or ``(K,)``: P(z of the first symbol of seqs | context).
        """
        seqs = np.asarray(seqs)
        B, T = seqs.shape
        theta = np.asarray(self.thetas)
        w = np.asarray(self.weights)
        state = np.broadcast_to(np.asarray(state, dtype=np.float64), (B, len(theta))).copy()
        out = np.empty((B, T, 2))
        for t in range(T):
            p_one = state @ theta  # (B,) predictive mixture of the coins
            out[:, t, 1] = np.log(p_one)
            out[:, t, 0] = np.log1p(-p_one)
            lik = np.where(seqs[:, t, None] == 1, theta, 1 - theta)
            post = state * lik
            post /= post.sum(axis=1, keepdims=True)
            state = (1 - self.switch_prob) * post + self.switch_prob * w
        return out

    def _log_predictive(self, seqs):
        return self.log_predictive_from(np.asarray(self.weights), seqs)

    def ones_moments(self, length):
        w, t = np.asarray(self.weights), np.asarray(self.thetas)
        m = float(w @ t)
        var_theta = float(w @ t**2) - m**2
        # Stationary marginal P(x_t = 1) = m; cov(x_s, x_t) = (1 - rho)^|t - s| Var_w(theta)
        # (the two flips share a coin exactly when no redraw happened in between).
        lags = np.arange(1, length)
        cov = 2 * np.sum((length - lags) * (1 - self.switch_prob) ** lags) * var_theta
        return length * m, length * m * (1 - m) + float(cov)
