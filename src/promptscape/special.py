"""The few special functions the exact predictors need, in numpy alone.

Kept here rather than imported from scipy so that light workflow jobs (and the Snakefile's
parse) do not pay for importing scipy.special; tests compare them to scipy.
"""

from __future__ import annotations

import math

import numpy as np

_lgamma = np.frompyfunc(math.lgamma, 1, 1)


def gammaln(x) -> np.ndarray:
    """log |Gamma(x)|, elementwise, float64 (math.lgamma's accuracy)."""
    return np.asarray(_lgamma(np.asarray(x, dtype=np.float64)), dtype=np.float64)


def betaln(a, b) -> np.ndarray:
    """log B(a, b) = lgamma(a) + lgamma(b) - lgamma(a + b)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return gammaln(a) + gammaln(b) - gammaln(a + b)


def log_binom(n, k) -> np.ndarray:
    """log C(n, k), elementwise, float64."""
    return gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)


def logsumexp(x, axis: int = -1) -> np.ndarray:
    """log(sum(exp(x))) along `axis`, shifted by the maximum for stability."""
    x = np.asarray(x, dtype=np.float64)
    top = np.max(x, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    return np.squeeze(top, axis=axis) + np.log(np.sum(np.exp(x - top), axis=axis))
