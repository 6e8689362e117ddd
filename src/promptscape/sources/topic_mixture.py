"""The `topic_mixture` source: an LDA-like admixture of K fixed topics over V symbols.

Its exact marginal sums over how many of the sequence's symbols each topic produced, by a
dynamic programme over topic-count vectors (polynomial in the length for fixed K), memoised
per count vector: the predictive of a batch asks for few distinct count vectors, and the
same ones again at every training step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from promptscape import special, validation
from promptscape.sources.base import Source, compositions, register
from promptscape.sources.categorical import check_distribution, draw_symbols

# A task lies in the topics' convex hull when the affine least-squares fit reproduces it to
# within this, with no weight below -this.
HULL_TOLERANCE = 1e-9


@register
@dataclasses.dataclass(frozen=True, kw_only=True)
class TopicMixture(Source):
    """An admixture of K fixed topics (LDA's generative process for one document).

    Generative process: topic weights ``w ~ Dirichlet(alpha)`` once per sequence; then for
    every position t a topic ``z_t ~ Categorical(w)`` and a symbol
    ``x_t ~ Categorical(topics[z_t])``. A prompt and the task continuation are one sequence
    and share w.

    Parameters: ``topics``, K rows, each a distribution over the same V >= 2 symbols
    (entries in (0, 1), each row summing to 1 within 1e-9); ``alpha``, the K positive
    Dirichlet concentrations of the topic weights.

    Given w the symbols are i.i.d. with ``theta = sum_k w_k topics[k]``, so the source is
    exchangeable (count classes apply) and is a prior on the convex hull of the topics,
    unlike any Dirichlet over the simplex. Its exact marginal sums over the topic-count
    vectors m (how many symbols each topic produced): a dynamic programme over the symbols
    that splits each symbol's count among the topics, weighted by the topics' probabilities
    and the Dirichlet-multinomial probability of m.
    """

    kind = "topic_mixture"
    exchangeable = True
    topics: tuple[tuple[float, ...], ...]
    alpha: tuple[float, ...]

    def __post_init__(self):
        topics = self.topics
        if isinstance(topics, (str, bytes)) or not isinstance(topics, Sequence) or not topics:
            raise ValueError("topic_mixture.topics must be a non-empty list of topics, each a "
                             "list of symbol probabilities.")
        rows = []
        for k, row in enumerate(topics):
            if isinstance(row, (str, bytes)) or not isinstance(row, Sequence):
                raise ValueError(f"topic_mixture.topics[{k}] must be a list of symbol "
                                 f"probabilities, not {row!r}.")
            rows.append(check_distribution(row, f"topic_mixture.topics[{k}]"))
        if len({len(row) for row in rows}) != 1:
            raise ValueError("topic_mixture.topics: rows have different lengths "
                             f"{[len(row) for row in rows]}; every topic is a distribution "
                             "over the same V symbols.")
        alpha = self.alpha
        if isinstance(alpha, (str, bytes)) or not isinstance(alpha, Sequence):
            raise ValueError(f"topic_mixture.alpha must be a list of {len(rows)} positive "
                             f"numbers, one per topic, not {alpha!r}.")
        if len(alpha) != len(rows):
            raise ValueError(f"topic_mixture.alpha has {len(alpha)} value(s), must have "
                             f"{len(rows)}: one per topic.")
        alpha = tuple(validation.check_positive(a, f"topic_mixture.alpha[{k}]")
                      for k, a in enumerate(alpha))
        object.__setattr__(self, "topics", tuple(rows))
        object.__setattr__(self, "alpha", alpha)
        object.__setattr__(self, "_memo", {})  # count vector -> log marginal

    @property
    def vocab_size(self) -> int:
        return len(self.topics[0])

    def supports(self, probs):
        """Whether `probs` lies in the topics' convex hull; None where the topics are
        affinely dependent (more topics than an affine fit can place uniquely)."""
        topics = np.asarray(self.topics)  # (K, V)
        if len(probs) != topics.shape[1]:
            return False
        system = np.vstack([topics.T, np.ones(len(topics))])  # (V + 1, K)
        if np.linalg.matrix_rank(system) < len(topics):
            return None
        target = np.append(np.asarray(probs, dtype=float), 1.0)
        w = np.linalg.lstsq(system, target, rcond=None)[0]
        fits = np.abs(system @ w - target).max() <= HULL_TOLERANCE
        return bool(fits and w.min() >= -HULL_TOLERANCE)

    def _sample(self, n, length, rng):
        w = rng.dirichlet(np.asarray(self.alpha), size=n)  # (n, K)
        # Given w the symbols are i.i.d. from theta = w @ topics: drawing each symbol's
        # topic, then the symbol, has exactly this distribution.
        return draw_symbols(w @ np.asarray(self.topics), length, rng)

    def _log_marginal(self, counts):
        counts = np.asarray(counts, dtype=np.int64)
        flat = counts.reshape(-1, counts.shape[-1])
        unique, inverse = np.unique(flat, axis=0, return_inverse=True)
        values = np.array([self._one(tuple(int(c) for c in row)) for row in unique])
        return values[inverse.ravel()].reshape(counts.shape[:-1])

    def _one(self, counts: tuple[int, ...]) -> float:
        """log P(one particular sequence with symbol counts `counts`), memoised."""
        memo = self._memo
        if counts not in memo:
            memo[counts] = self._dynamic_programme(counts)
        return memo[counts]

    def _dynamic_programme(self, counts: tuple[int, ...]) -> float:
        """Sum over topic-count vectors, one symbol value at a time.

        A state is a topic-count vector m (how many of the symbols seen so far each topic
        produced) with its log weight. Symbol v's c_v occurrences (at fixed positions) are
        split among the topics as a composition a of c_v: c_v! / prod_k a_k! ways, each
        with probability prod_k topics[k][v]^a_k, and the Dirichlet-multinomial factor of
        the topic counts grows by the Polya-urn ratio prod_k [alpha_k + m_k]^(a_k) /
        [A + |m|]^(c_v) (rising factorials). At the end the log weights sum to
        log P(x) = log E_w[prod_v theta_v^c_v].
        """
        alpha = np.asarray(self.alpha)
        total = float(alpha.sum())
        log_topics = np.log(np.asarray(self.topics))  # (K, V)
        K = len(alpha)
        states = np.zeros((1, K), dtype=np.int64)
        log_w = np.zeros(1)
        seen = 0
        for v, c in enumerate(counts):
            if c == 0:
                continue
            splits = compositions(c, K)  # (A, K)
            split_w = (special.gammaln(c + 1) - special.gammaln(splits + 1).sum(1)
                       + splits @ log_topics[:, v])  # (A,)
            new = states[:, None, :] + splits[None, :, :]  # (S, A, K)
            urn = (special.gammaln(alpha + new) - special.gammaln(alpha + states[:, None, :])
                   ).sum(-1) - (special.gammaln(total + seen + c) - special.gammaln(total + seen))
            weights = (log_w[:, None] + split_w[None, :] + urn).ravel()
            new = new.reshape(-1, K)
            states, index = np.unique(new, axis=0, return_inverse=True)
            top = weights.max()
            summed = np.zeros(len(states))
            np.add.at(summed, index.ravel(), np.exp(weights - top))
            log_w = np.log(summed) + top
            seen += c
        return float(special.logsumexp(log_w))

    def count_moments(self, length):
        alpha = np.asarray(self.alpha)
        topics = np.asarray(self.topics)  # (K, V)
        a = alpha / alpha.sum()
        mean_theta = a @ topics
        cov_w = (np.diag(a) - np.outer(a, a)) / (alpha.sum() + 1)
        cov_theta = topics.T @ cov_w @ topics
        second = cov_theta + np.outer(mean_theta, mean_theta)  # E[theta theta^T]
        # Within: n (diag E theta - E theta theta^T); between: n^2 Cov(theta).
        within = length * (np.diag(mean_theta) - second)
        return length * mean_theta, within + length**2 * cov_theta
