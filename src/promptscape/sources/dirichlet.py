"""The `dirichlet_categorical` source: a categorical distribution drawn from a Dirichlet prior
once per sequence (the V-symbol generalisation of `beta_coin`).

Its Bayes predictor is the Polya urn: after counts c of n symbols, the next symbol is v with
probability ``(alpha_v + c_v) / (A + n)``, A = sum_v alpha_v.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from promptscape import special, validation
from promptscape.sources.base import Source, register
from promptscape.sources.categorical import draw_symbols


@register
@dataclasses.dataclass(frozen=True, kw_only=True)
class DirichletCategorical(Source):
    """A categorical drawn once per sequence from a Dirichlet prior, then i.i.d. symbols.

    Generative process: ``theta ~ Dirichlet(alpha)`` once per sequence, then
    ``x_t ~ Categorical(theta)`` independently for every position t.

    Parameters: ``alpha``, the positive concentration of each symbol 0..V-1
    (V = len(alpha) >= 2; alpha_v acts as a prior count of symbol v). With V = 2,
    ``dirichlet_categorical(alpha=[a0, a1])`` is ``beta_coin(alpha=a1, beta=a0)``; all-ones
    alpha is the uniform prior over distributions.
    """

    kind = "dirichlet_categorical"

    exchangeable = True
    alpha: tuple[float, ...]

    def __post_init__(self):
        name = "dirichlet_categorical.alpha"
        alpha = self.alpha
        if isinstance(alpha, (str, bytes)) or not isinstance(alpha, Sequence):
            raise TypeError(f"{name} must be a list of numbers, not {type(alpha).__name__}.")
        if len(alpha) < 2:
            raise ValueError(f"{name} has {len(alpha)} value(s), must have at least 2 "
                             f"(one per symbol).")
        alpha = tuple(validation.check_positive(a, f"{name}[{v}]") for v, a in enumerate(alpha))
        object.__setattr__(self, "alpha", alpha)

    @property
    def vocab_size(self) -> int:
        return len(self.alpha)

    def supports(self, probs):
        # The open simplex: every categorical with positive probabilities.
        return len(probs) == len(self.alpha) and all(p > 0.0 for p in probs)

    def _sample(self, n, length, rng):
        theta = rng.dirichlet(np.asarray(self.alpha), size=n)  # (n, V)
        return draw_symbols(theta, length, rng)

    def _log_marginal(self, counts):
        # Integrate prod_v theta_v^c_v against the Dirichlet(alpha) density:
        # B(alpha + c) / B(alpha), B the multivariate Beta function
        # prod_v Gamma(alpha_v) / Gamma(A) (prior virtual counts plus observed).
        # By table lookup of log-gamma at the integer-shifted parameters (the same values as
        # gammaln(alpha + counts), without an lgamma call per element).
        alpha = np.asarray(self.alpha)
        total = float(alpha.sum())
        counts = np.asarray(counts)
        n = counts.sum(axis=-1)
        if counts.dtype.kind not in "iu" or counts.size == 0 or counts.min() < 0:
            return (special.gammaln(total) - special.gammaln(total + n)
                    + (special.gammaln(alpha + counts) - special.gammaln(alpha)).sum(axis=-1))
        k = np.arange(int(n.max()) + 1)
        lg_total = special.gammaln(total + k)
        lg_alpha = special.gammaln(alpha[:, None] + k)  # (V, top + 1)
        return (lg_total[0] - lg_total[n]
                + (lg_alpha[np.arange(len(alpha)), counts] - lg_alpha[:, 0]).sum(axis=-1))

    def count_moments(self, length):
        alpha = np.asarray(self.alpha)
        total = float(alpha.sum())
        m = alpha / total  # E[theta]
        # Cov(theta) = (diag m - m m^T) / (A + 1). Within: n E[diag theta - theta theta^T]
        # = n A / (A + 1) (diag m - m m^T); between: n^2 Cov(theta). Together the
        # Dirichlet-multinomial covariance n (A + n) / (A + 1) (diag m - m m^T).
        shape = np.diag(m) - np.outer(m, m)
        return length * m, length * (total + length) / (total + 1) * shape
