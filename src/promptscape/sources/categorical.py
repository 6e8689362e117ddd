"""Exchangeable sources over V symbols: `categorical` and `categorical_mixture`.

Both state ``_log_marginal(counts)``, the log probability of one particular sequence whose
symbol counts are ``counts`` (``(..., V)``); the base class derives the sequential predictive
from it. With V = 2, ``categorical(probs=[1 - t, t])`` is ``coin(theta=t)`` and
``categorical_mixture`` is ``coin_mixture``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from promptscape import special, validation
from promptscape.sources.base import Source, register, same_distribution

# A distribution given in config must sum to 1 within this; it is then normalised exactly.
SUM_TOLERANCE = 1e-9
# Normalising is skipped when the sum is already within a few rounding errors of 1, so that a
# normalised distribution is left as it is: building a source from its own `to_dict` gives
# the same source.
_ROUNDING = 1e-14


def check_distribution(values, name: str) -> tuple[float, ...]:
    """A distribution over V >= 2 symbols: probabilities in (0, 1) that sum to 1 (within
    `SUM_TOLERANCE`), returned normalised as a tuple of floats."""
    probs = validation.check_probabilities(values, name)
    if len(probs) < 2:
        raise ValueError(f"{name} has {len(probs)} value(s), must have at least 2 "
                         f"(one per symbol).")
    total = math.fsum(probs)
    if abs(total - 1.0) > SUM_TOLERANCE:
        raise ValueError(f"{name} sums to {total:.12g}, must sum to 1.")
    if abs(total - 1.0) > _ROUNDING:
        probs = tuple(p / total for p in probs)
    return probs


def draw_symbols(probs: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """``length`` i.i.d. symbols per row of `probs` (``(n, V)``, one distribution per
    sequence) by the inverse CDF of uniforms: ``(n, length)``."""
    n = probs.shape[0]
    # Symbol v is drawn when cdf[v - 1] <= u < cdf[v]: count the cdf steps at or below u.
    cdf = np.cumsum(probs, axis=1)[:, None, :-1]  # (n, 1, V - 1); the last step is 1
    u = rng.random((n, length))
    return (u[..., None] >= cdf).sum(axis=-1)


def multinomial_moments(probs: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(V,)`` and covariance ``(V, V)`` of the counts of `length` i.i.d. symbols drawn
    from `probs`: ``n p`` and ``n (diag p - p p^T)``."""
    p = np.asarray(probs, dtype=np.float64)
    return length * p, length * (np.diag(p) - np.outer(p, p))


@register
@dataclasses.dataclass(frozen=True, kw_only=True)
class Categorical(Source):
    """i.i.d. symbols from one fixed categorical distribution.

    Generative process: ``x_t ~ Categorical(probs)`` independently for every position t.

    Parameters: ``probs``, the probability of each symbol 0..V-1 (V = len(probs) >= 2), each
    in (0, 1), summing to 1 (within 1e-9; they are then normalised). With V = 2,
    ``categorical(probs=[1 - t, t])`` is ``coin(theta=t)``.
    """

    kind = "categorical"

    exchangeable = True
    probs: tuple[float, ...]

    def __post_init__(self):
        object.__setattr__(self, "probs", check_distribution(self.probs, "categorical.probs"))

    @property
    def vocab_size(self) -> int:
        return len(self.probs)

    def iid_distribution(self):
        return tuple(self.probs)

    def supports(self, probs):
        return same_distribution(probs, self.probs)

    def _sample(self, n, length, rng):
        probs = np.broadcast_to(np.asarray(self.probs), (n, self.vocab_size))
        return draw_symbols(probs, length, rng)

    def _log_marginal(self, counts):
        # Likelihood of a particular sequence: prod_v p_v^c_v.
        return counts @ np.log(np.asarray(self.probs))

    def count_moments(self, length):
        return multinomial_moments(self.probs, length)


@register
@dataclasses.dataclass(frozen=True, kw_only=True)
class CategoricalMixture(Source):
    """One categorical drawn per sequence from K of them, then i.i.d. symbols from it.

    Generative process: ``k ~ Categorical(weights)`` once per sequence, then
    ``x_t ~ Categorical(probs[k])`` independently for every position t.

    Parameters: ``probs``, K rows, each a distribution over the same V >= 2 symbols (each
    entry in (0, 1), each row summing to 1 within 1e-9, then normalised); ``weights``, the
    K component probabilities (positive, summing to 1; equal when omitted). With V = 2,
    ``probs=[[1 - a, a], [1 - b, b]]`` is ``coin_mixture(thetas=[a, b])``.
    """

    kind = "categorical_mixture"

    exchangeable = True
    probs: tuple[tuple[float, ...], ...]
    weights: tuple[float, ...] | None = None

    def __post_init__(self):
        name = "categorical_mixture.probs"
        rows = self.probs
        if isinstance(rows, (str, bytes)) or not isinstance(rows, Sequence):
            raise TypeError(f"{name} must be a list of lists of numbers, "
                            f"not {type(rows).__name__}.")
        if len(rows) == 0:
            raise ValueError(f"{name} is empty, must hold at least one distribution.")
        probs = tuple(check_distribution(row, f"{name}[{k}]") for k, row in enumerate(rows))
        for k, row in enumerate(probs[1:], start=1):
            if len(row) != len(probs[0]):
                raise ValueError(f"{name}[{k}] has {len(row)} values, must have "
                                 f"{len(probs[0])} (as {name}[0]): every row is over the "
                                 f"same symbols.")
        weights = self.weights
        if weights is None:
            weights = tuple(1.0 / len(probs) for _ in probs)
        if (isinstance(weights, Sequence) and not isinstance(weights, (str, bytes))
                and len(weights) != len(probs)):
            raise ValueError(f"categorical_mixture.weights has {len(weights)} values, must have "
                             f"{len(probs)} (one per row of probs).")
        weights = validation.check_weights(weights, "categorical_mixture.weights", len(probs))
        object.__setattr__(self, "probs", probs)
        object.__setattr__(self, "weights", weights)

    @property
    def vocab_size(self) -> int:
        return len(self.probs[0])

    def iid_distribution(self):
        return tuple(self.probs[0]) if len(set(self.probs)) == 1 else None

    def supports(self, probs):
        # The support is the K categoricals themselves.
        return any(same_distribution(probs, row) for row in self.probs)

    def _sample(self, n, length, rng):
        component = rng.choice(len(self.probs), size=n, p=np.asarray(self.weights))
        return draw_symbols(np.asarray(self.probs)[component], length, rng)

    def _log_marginal(self, counts):
        # Evidence: sum_k w_k prod_v p_kv^c_v, in log space over the K axis.
        log_p = np.log(np.asarray(self.probs))  # (K, V)
        log_w = np.log(np.asarray(self.weights))  # (K,)
        return special.logsumexp(log_w + counts @ log_p.T, axis=-1)

    def count_moments(self, length):
        w, p = np.asarray(self.weights), np.asarray(self.probs)  # (K,), (K, V)
        mean_p = w @ p  # (V,)
        # Law of total covariance: the mean of the within-component multinomial covariances
        # plus the covariance of the component means n p_k.
        within = length * (np.diag(mean_p) - np.einsum("k,ki,kj->ij", w, p, p))
        between = length**2 * (np.einsum("k,ki,kj->ij", w, p, p) - np.outer(mean_p, mean_p))
        return length * mean_p, within + between
