"""The `Source` base class and the one registry of source kinds.

Shape legend, used across promptscape::

    B  batch of sequences          T  sequence length (task length, or context length)
    L  prompt length               V  alphabet size (2: symbols 0 and 1)
    K  number of hidden components (coins) of a source

A source is its own config: a frozen, keyword-only dataclass whose fields are its
parameters (tuples of floats, never arrays), so it is hashable, comparable, feeds the
stable seed hash and round-trips through YAML. Each kind implements two hooks:

* ``_sample(n, length, rng)`` draws ``(n, length)`` sequences;
* ``_log_predictive(seqs)`` returns the exact Bayes-optimal sequential predictive
  ``log q(x_t = v | x_<t)`` as ``(B, T, V)``: position t predicts x_t from x_1..x_{t-1}.

Exchangeable kinds implement ``_log_marginal(n1, n0)`` instead of ``_log_predictive``: the
log probability of *one particular* sequence with n1 ones and n0 zeros. Everything a
Bayes predictor needs then follows from counts (see `log_predictive`).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np

from promptscape import special, validation

V = 2  # alphabet size; every source here is binary

SOURCES: dict[str, type["Source"]] = {}


def register(cls: type["Source"]) -> type["Source"]:
    """Class decorator: make `cls` buildable from config under its `kind`."""
    if cls.kind in SOURCES:
        raise ValueError(f"source kind {cls.kind!r} is registered twice")
    SOURCES[cls.kind] = cls
    return cls


def build_source(spec: dict, where: str = "source") -> "Source":
    """Build a source from a config mapping ``{kind: ..., <parameters>}``.

    Errors are ConfigError naming `where` (the config key) and the field at fault.
    """
    if not isinstance(spec, dict):
        raise validation.ConfigError(f"{where}: must be a mapping with a 'kind', not {spec!r}")
    spec = dict(spec)
    kind = spec.pop("kind", None)
    if kind not in SOURCES:
        raise validation.ConfigError(
            f"{where}.kind == {kind!r}, unknown source kind; known kinds: "
            + ", ".join(sorted(SOURCES))
        )
    cls = SOURCES[kind]
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(spec) - names)
    if unknown:
        raise validation.ConfigError(
            f"{where}: unknown field(s) {unknown} for source kind {kind!r}; "
            f"its fields are {sorted(names)}"
        )
    required = sorted(f.name for f in dataclasses.fields(cls)
                      if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
    absent = [name for name in required if name not in spec]
    if absent:
        raise validation.ConfigError(f"{where}: missing field(s) {absent} for source kind {kind!r}")
    try:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()})
    except TypeError as error:
        raise validation.ConfigError(f"{where}: {error}") from None
    except ValueError as error:
        raise validation.ConfigError(f"{where}: {error}") from None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Source:
    """Base of every source kind. Subclasses are frozen keyword-only dataclasses."""

    kind: ClassVar[str] = "source"
    exchangeable: ClassVar[bool] = False  # sequence probability depends on counts only

    def to_dict(self) -> dict:
        """Plain config mapping, the inverse of `build_source`."""
        out = {"kind": self.kind}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            out[field.name] = list(value) if isinstance(value, tuple) else value
        return out

    def describe(self) -> str:
        """Short human-readable form such as ``coin_mixture(thetas=[0.2, 0.7])``."""
        fields = ", ".join(
            f"{k}={v}" for k, v in self.to_dict().items() if k != "kind"
        )
        return f"{self.kind}({fields})"

    # ----------------------------------------------------------------- public API
    def sample(self, n: int, length: int, rng: np.random.Generator) -> np.ndarray:
        """Draw `n` sequences of `length` symbols; returns uint8 ``(n, length)``."""
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"{self.kind}.sample needs a numpy Generator, not {type(rng).__name__}")
        seqs = self._sample(int(n), int(length), rng)
        if seqs.shape != (n, length):
            raise AssertionError(f"{self.kind}._sample returned {seqs.shape}, not {(n, length)}")
        return seqs.astype(np.uint8, copy=False)

    def log_predictive(self, seqs: np.ndarray) -> np.ndarray:
        """Exact Bayes predictive ``log q(x_t = v | x_<t)`` for every position: ``(B, T, V)``.

        Position t predicts symbol t from the symbols before it, so position 0 is the prior
        predictive. The last symbol's own prediction is included; nothing after it is.
        """
        seqs = _as_sequences(seqs)
        if self.exchangeable:
            # Counts of ones and zeros strictly before each position: (B, T).
            ones = np.cumsum(seqs, axis=1, dtype=np.int64) - seqs
            zeros = np.arange(seqs.shape[1])[None, :] - ones
            base = self._log_marginal(ones, zeros)
            # q(1 | n1, n0) = m(n1 + 1, n0) / m(n1, n0), where m is the probability of one
            # particular sequence with those counts (exchangeability makes order irrelevant).
            log_one = self._log_marginal(ones + 1, zeros) - base
            log_zero = self._log_marginal(ones, zeros + 1) - base
            out = np.stack([log_zero, log_one], axis=-1)  # (B, T, V)
        else:
            out = self._log_predictive(seqs)
        if out.shape != seqs.shape + (V,):
            raise AssertionError(f"{self.kind} predictive has shape {out.shape}")
        return out

    def log_prob(self, seqs: np.ndarray) -> np.ndarray:
        """Log probability of each whole sequence under the source: ``(B,)``."""
        seqs = _as_sequences(seqs)
        if self.exchangeable:
            ones = seqs.sum(axis=1, dtype=np.int64)
            return self._log_marginal(ones, seqs.shape[1] - ones)
        return -symbol_losses(self.log_predictive(seqs), seqs).sum(1)

    def log_marginal(self, ones, zeros) -> np.ndarray:
        """Exchangeable kinds only: log P(one particular sequence with these counts)."""
        if not self.exchangeable:
            raise TypeError(f"source kind {self.kind!r} is not exchangeable")
        return self._log_marginal(np.asarray(ones, dtype=np.int64), np.asarray(zeros, dtype=np.int64))

    def count_log_probabilities(self, length: int) -> np.ndarray:
        """Exchangeable kinds only: log P(k ones in `length` symbols) for k = 0..length,
        ``log C(length, k) + log_marginal(k, length - k)``: ``(length + 1,)``."""
        k = np.arange(length + 1)
        return special.log_binom(length, k) + self.log_marginal(k, length - k)

    def count_moments(self, length: int) -> tuple[float, float]:
        """Mean and variance of the number of ones in a sequence of `length` symbols.

        The sampler's stated moments; tests hold every sampler to them.
        """
        raise NotImplementedError

    # ------------------------------------------------------------------- hooks
    def _sample(self, n: int, length: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def _log_predictive(self, seqs: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _log_marginal(self, ones: np.ndarray, zeros: np.ndarray) -> np.ndarray:
        raise NotImplementedError


def symbol_losses(log_predictive: np.ndarray, seqs: np.ndarray) -> np.ndarray:
    """Log loss of each symbol, ``-log q(x_t | ...)``: ``(B, T, V)`` predictive and ``(B, T)``
    symbols -> ``(B, T)`` nats. The one place every loss is read off a predictive."""
    target = np.asarray(seqs)[..., None].astype(np.int64)
    return -np.take_along_axis(log_predictive, target, axis=-1)[..., 0]


def validate_coins(source: "Source") -> None:
    """Validate and normalise `thetas` and `weights` (equal when omitted) of a source made of
    a finite set of coins, in place on the frozen dataclass."""
    thetas = validation.check_probabilities(source.thetas, f"{source.kind}.thetas")
    weights = source.weights
    if weights is None:
        weights = tuple(1.0 / len(thetas) for _ in thetas)
    weights = validation.check_weights(weights, f"{source.kind}.weights", len(thetas))
    object.__setattr__(source, "thetas", thetas)
    object.__setattr__(source, "weights", weights)


def _as_sequences(seqs) -> np.ndarray:
    seqs = np.asarray(seqs)
    if seqs.ndim != 2:
        raise ValueError(f"sequences must be a 2-d array (B, T), got shape {seqs.shape}")
    if seqs.size and (seqs.min() < 0 or seqs.max() >= V):
        raise ValueError(f"sequences must hold symbols 0..{V - 1}")
    return seqs.astype(np.uint8, copy=False)


def bernoulli_log(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(log theta, log(1 - theta)) computed accurately."""
    theta = np.asarray(theta, dtype=np.float64)
    return np.log(theta), np.log1p(-theta)
