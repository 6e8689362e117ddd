"""Order-1 binary Markov chains: the fixed chain `markov` (tasks) and `markov_beta`, a chain
whose two transition probabilities are drawn from Beta priors once per sequence.

Both are order-sensitive (not exchangeable). The Bayes predictor of `markov_beta` depends on
a context only through its four transition counts and its last symbol, so a prompt acts on
it only through those (its *transition class*, `transition_class`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import numpy as np

from promptscape import special, validation
from promptscape.sources.base import BinarySource, register, same_distribution


def _pair(values, name: str, check) -> tuple[float, float]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) != 2:
        raise ValueError(f"{name} must be a list of two numbers (for previous symbol 0 and "
                         f"previous symbol 1), not {values!r}.")
    return tuple(check(v, f"{name}[{i}]") for i, v in enumerate(values))


def chain_moments(initial: float, transition, length: int) -> tuple[float, float]:
    """Mean and variance of the number of ones in `length` symbols of a fixed chain."""
    p10, p11 = transition
    P = np.array([[1 - p10, p10], [1 - p11, p11]])  # P[a, b] = P(next = b | previous = a)
    marginals = [np.array([1 - initial, initial])]
    for _ in range(1, length):
        marginals.append(marginals[-1] @ P)
    ones = np.array([m[1] for m in marginals])
    variance = float(np.sum(ones * (1 - ones)))
    # cov(x_s, x_t) = P(x_s = 1) (P(x_t = 1 | x_s = 1) - P(x_t = 1)) for s < t.
    for s in range(length):
        state = np.array([0.0, 1.0])
        for t in range(s + 1, length):
            state = state @ P
            variance += 2 * ones[s] * (state[1] - ones[t])
    return float(ones.sum()), variance


def transition_counts(seqs: np.ndarray) -> np.ndarray:
    """Counts of the transitions a -> b strictly before each position, ``(B, T, 2, 2)``:
    entry [i, t, a, b] counts the pairs (x_{s-1}, x_s) = (a, b) with 1 <= s < t."""
    seqs = np.asarray(seqs, dtype=np.int64)
    B, T = seqs.shape
    out = np.zeros((B, T, 2, 2), dtype=np.int64)
    if T < 2:
        return out
    pair = 2 * seqs[:, :-1] + seqs[:, 1:]  # (B, T - 1) codes of (a, b)
    onehot = (pair[..., None] == np.arange(4)).astype(np.int64)  # (B, T - 1, 4)
    cumulative = np.cumsum(onehot, axis=1)  # transitions up to and including position s
    out[:, 2:] = cumulative[:, :-1].reshape(B, T - 2, 2, 2)
    return out


@register
@dataclasses.dataclass(frozen=True, kw_only=True)
class Markov(BinarySource):
    """A fixed order-1 binary Markov chain.

    Generative process: ``x_1 ~ Bernoulli(initial)``; then ``x_t = 1`` with probability
    ``transition[x_{t-1}]``: ``transition = [p(1 | 0), p(1 | 1)]``.

    Parameters: ``transition``, the two probabilities of a 1 after a 0 and after a 1, each
    in (0, 1); ``initial`` (default 0.5), the probability that the first symbol is 1. A chain
    with p(1 | 0) = p(1 | 1) = initial is the coin of that bias.

    As a prior its meta-distribution is this one chain: a task is in it when it is the same
    chain (equal ``transition`` and ``initial``), or the coin that chain is when
    p(1 | 0) = p(1 | 1) = initial; any other task is outside it.
    """

    kind = "markov"
    exchangeable = False
    transition: tuple[float, float]
    initial: float = 0.5

    def __post_init__(self):
        object.__setattr__(self, "transition", _pair(self.transition, "markov.transition",
                                                     validation.check_probability))
        object.__setattr__(self, "initial",
                           validation.check_probability(self.initial, "markov.initial"))

    def iid_distribution(self):
        p10, p11 = self.transition
        if p10 == p11 == self.initial:
            return (1.0 - p10, p10)
        return None

    def supports(self, probs):
        return same_distribution(probs, (1.0 - self.initial, self.initial)) and (
            self.transition[0] == self.transition[1] == self.initial)

    def supports_task(self, task) -> bool:
        if isinstance(task, Markov):
            return same_distribution((task.initial, *task.transition),
                                     (self.initial, *self.transition))
        probs = task.iid_distribution()
        return False if probs is None else self.supports(tuple(probs))

    def entropy(self, length):
        """H(x_1) + sum over t >= 2 of E h(p(1 | x_{t-1})): the binary entropy of the first
        symbol and of each transition, weighted by the law of the symbol before it."""
        def h(p):
            return -(p * np.log(p) + (1 - p) * np.log1p(-p))

        p10, p11 = self.transition
        total, ones = 0.0, self.initial  # P(x_t = 1)
        for t in range(int(length)):
            total += h(self.initial) if t == 0 else (1 - ones) * h(p10) + ones * h(p11)
            if t:
                ones = (1 - ones) * p10 + ones * p11
        return float(total)

    def _sample(self, n, length, rng):
        out = np.empty((n, length), dtype=np.uint8)
        if length:
            out[:, 0] = rng.random(n) < self.initial
        p = np.asarray(self.transition)
        for t in range(1, length):
            out[:, t] = rng.random(n) < p[out[:, t - 1]]
        return out

    def _log_predictive(self, seqs):
        B, T = seqs.shape
        p_one = np.empty((B, T))
        p_one[:, :1] = self.initial
        p_one[:, 1:] = np.asarray(self.transition)[seqs[:, :-1]]
        return np.stack([np.log1p(-p_one), np.log(p_one)], axis=-1)

    def ones_moments(self, length):
        return chain_moments(self.initial, self.transition, length)


@register
@dataclasses.dataclass(frozen=True, kw_only=True)
class MarkovBeta(BinarySource):
    """A binary Markov chain whose transition probabilities are drawn once per sequence.

    Generative process: ``p(1 | 0) ~ Beta(alpha[0], beta[0])`` and
    ``p(1 | 1) ~ Beta(alpha[1], beta[1])``, independent, once per sequence;
    ``x_1 ~ Bernoulli(initial)``; then ``x_t = 1`` with probability ``p(1 | x_{t-1})``.

    Parameters: ``alpha`` and ``beta``, the two Beta priors' parameters (positive), one per
    previous symbol; ``initial`` (default 0.5). Exact Bayes through transition counts: after
    n_{a1} ones and n_{a0} zeros that followed symbol a, the next symbol after an a is 1 with
    probability (alpha[a] + n_{a1}) / (alpha[a] + beta[a] + n_{a0} + n_{a1}). A context acts
    on the predictor only through its four transition counts and its last symbol.

    A task is in the meta-distribution when it is a chain with the same ``initial`` whose
    transitions lie in (0, 1) (every such chain has positive prior density), or a coin of
    bias ``initial`` (the chain with both transitions equal to it).
    """

    kind = "markov_beta"
    exchangeable = False
    alpha: tuple[float, float]
    beta: tuple[float, float]
    initial: float = 0.5

    def __post_init__(self):
        object.__setattr__(self, "alpha", _pair(self.alpha, "markov_beta.alpha",
                                                validation.check_positive))
        object.__setattr__(self, "beta", _pair(self.beta, "markov_beta.beta",
                                               validation.check_positive))
        object.__setattr__(self, "initial",
                           validation.check_probability(self.initial, "markov_beta.initial"))

    def supports(self, probs):
        # An i.i.d. task is the chain with both transitions equal to its bias; it starts
        # like the prior's chains only when that bias is `initial`.
        return len(probs) == 2 and same_distribution(probs, (1.0 - self.initial, self.initial))

    def supports_task(self, task) -> bool | None:
        if isinstance(task, Markov):
            return task.initial == self.initial  # any transitions in (0, 1)
        probs = task.iid_distribution()
        # Not a chain and not i.i.d. (a mixture): no single chain of the prior is the task.
        return False if probs is None else self.supports(tuple(probs))

    def _sample(self, n, length, rng):
        p = np.stack([rng.beta(self.alpha[a], self.beta[a], size=n) for a in (0, 1)], axis=1)
        out = np.empty((n, length), dtype=np.uint8)
        if length:
            out[:, 0] = rng.random(n) < self.initial
        rows = np.arange(n)
        for t in range(1, length):
            out[:, t] = rng.random(n) < p[rows, out[:, t - 1]]
        return out

    def _log_predictive(self, seqs):
        B, T = seqs.shape
        counts = transition_counts(seqs)  # (B, T, 2, 2)
        p_one = np.empty((B, T))
        p_one[:, :1] = self.initial
        if T > 1:
            previous = seqs[:, :-1].astype(np.int64)  # (B, T - 1)
            rows = np.arange(B)[:, None]
            cols = np.arange(1, T)[None, :]
            after = counts[rows, cols, previous]  # (B, T - 1, 2): zeros, ones after it
            a = np.asarray(self.alpha)[previous]
            b = np.asarray(self.beta)[previous]
            p_one[:, 1:] = (a + after[..., 1]) / (a + b + after.sum(-1))
        return np.stack([np.log1p(-p_one), np.log(p_one)], axis=-1)

    # Prompt classes: transition counts and last symbol (module doc).
    def prompt_class(self, prompt):
        return transition_class(prompt)

    def length_classes(self, length):
        return transition_classes(length)

    def class_losses(self, classes, seqs):
        """``-log P(x | s)`` in closed form: a prompt of class (n, last) and a sequence x
        with first symbol f and transition counts m give
        ``sum_a log B(alpha_a + n_a1, beta_a + n_a0) - log B(alpha_a + t_a1, beta_a + t_a0)``
        with t = n + m + the boundary transition (last, f); the empty prompt gives
        ``-log P(x)``, whose first symbol is predicted by `initial`."""
        seqs = self.check_sequences(seqs)
        first, counts = transition_statistics(seqs)  # (B,), (B, 2, 2)
        # Sequences with equal statistics have equal losses: score each distinct one once.
        stats = np.concatenate([first[:, None], counts.reshape(-1, 4)], axis=1)
        unique, inverse = np.unique(stats, axis=0, return_inverse=True)
        first, counts = unique[:, 0], unique[:, 1:].reshape(-1, 2, 2)
        empty = np.array([len(c) == 0 for c in classes], dtype=bool)
        full = np.array([c if c else (0, 0, 0, 0, 0) for c in classes],
                        dtype=np.int64).reshape(-1, 5)
        n, last = full[:, :4].reshape(-1, 2, 2), full[:, 4]
        evidence = self._log_evidence
        # The boundary transition (prompt's last symbol, sequence's first symbol).
        boundary = np.zeros((len(full), len(unique), 2, 2), dtype=np.int64)
        boundary[np.arange(len(full))[:, None], np.arange(len(unique))[None, :],
                 last[:, None], first[None, :]] = 1
        total = n[:, None] + counts[None, :] + boundary
        out = evidence(n)[:, None] - evidence(total)  # (C, U)
        initial = np.where(first == 1, np.log(self.initial), np.log1p(-self.initial))
        out[empty] = -(initial + evidence(counts))[None, :]
        return out[:, inverse.ravel()]

    def _log_evidence(self, counts: np.ndarray) -> np.ndarray:
        """``sum_a log B(alpha_a + n_a1, beta_a + n_a0) - log B(alpha_a, beta_a)`` for
        transition counts ``(..., 2, 2)`` (log P of the transitions given the first symbol),
        by table lookup of log-gamma at the integer-shifted parameters."""
        counts = np.asarray(counts, dtype=np.int64)
        top = int(counts.sum(axis=-1).max(initial=0)) + 1
        k = np.arange(top + 1)
        out = 0.0
        for a in (0, 1):
            alpha, beta = self.alpha[a], self.beta[a]
            lg_alpha = special.gammaln(alpha + k)
            lg_beta = special.gammaln(beta + k)
            lg_both = special.gammaln(alpha + beta + k)
            ones, zeros = counts[..., a, 1], counts[..., a, 0]
            out = out + (lg_alpha[ones] + lg_beta[zeros] - lg_both[ones + zeros]
                         - (lg_alpha[0] + lg_beta[0] - lg_both[0]))
        return out

    def ones_moments(self, length):
        """Exact, from the Beta moments: E over the transitions of the chain's moments is not
        closed-form, so the mean and variance are taken from the exact distribution of the
        count of ones, summing the Bayes marginal over all 2^length sequences (length <= 16
        here; the sampler tests use 12)."""
        if length > 16:
            raise NotImplementedError("markov_beta moments are enumerated up to 16 symbols")
        codes = np.arange(2**length, dtype=np.int64)
        seqs = ((codes[:, None] >> np.arange(length - 1, -1, -1)) & 1).astype(np.uint8)
        p = np.exp(self.log_prob(seqs))
        ones = seqs.sum(axis=1)
        mean = float(p @ ones)
        return mean, float(p @ (ones - mean) ** 2)


def transition_class(prompt: str) -> tuple[int, int, int, int, int] | tuple[()]:
    """The class of a prompt for `markov_beta`'s Bayes predictor: its four transition counts
    (n_00, n_01, n_10, n_11) and its last symbol; the empty prompt is its own class ``()``.
    Prompts of one class condition the predictor identically."""
    if not prompt:
        return ()
    n = [0, 0, 0, 0]
    for a, b in zip(prompt, prompt[1:]):
        n[2 * int(a) + int(b)] += 1
    return (*n, int(prompt[-1]))


def transition_statistics(seqs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First symbol ``(B,)`` and counts of all transitions a -> b ``(B, 2, 2)`` of each
    sequence ``(B, T)``, T >= 1: what a chain's probability depends on."""
    seqs = np.asarray(seqs, dtype=np.int64)
    pair = 2 * seqs[:, :-1] + seqs[:, 1:]
    counts = np.stack([(pair == code).sum(axis=1) for code in range(4)], axis=1)
    return seqs[:, 0], counts.reshape(-1, 2, 2)


def transition_classes(length: int) -> tuple[list, list[str]]:
    """Every transition class of prompts of exactly `length` symbols, and each one's
    representative, its lexicographically first prompt: ``(classes, representatives)`` in
    the order of the representatives. Built by extending the classes of length - 1 by one
    symbol: every prompt of a class extends a prompt of some shorter class, so the least
    extension of the shorter representatives is the least member."""
    best = _least_members(int(length))
    ordered = sorted(best.items(), key=lambda item: item[1])
    return [c for c, _ in ordered], [r for _, r in ordered]


@functools.lru_cache(maxsize=None)
def _least_members(length: int) -> dict:
    """{class: lexicographically first prompt} of the prompts of exactly `length` symbols
    (memoised: the classes of every length up to `length` are built once)."""
    if length == 0:
        return {(): ""}
    if length == 1:
        return {transition_class("0"): "0", transition_class("1"): "1"}
    grown: dict = {}
    for (n00, n01, n10, n11, last), rep in _least_members(length - 1).items():
        for symbol in (0, 1):
            n = [n00, n01, n10, n11]
            n[2 * last + symbol] += 1
            key = (*n, symbol)
            candidate = rep + str(symbol)
            if key not in grown or candidate < grown[key]:
                grown[key] = candidate
    return grown
