"""The `topic_mixture` source: an LDA-like admixture of K fixed topics over V symbols.

Its exact marginal sums over how many of the sequence's symbols each topic produced, by a
dynamic programme over topic-count vectors (polynomial in the length for fixed K and V),
computed for every count vector of a length at once and memoised: the predictive of a batch
asks for few distinct count vectors, and the same ones again at every training step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from promptscape import validation
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
        # Per number of symbols n: (count vectors, posterior over topic counts, log P).
        object.__setattr__(self, "_levels", [])

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
        self._extend(int(flat.sum(axis=1).max(initial=0)))
        memo = self._memo
        values = np.array([memo[row] for row in map(tuple, flat.tolist())])
        return values.reshape(counts.shape[:-1])

    def _extend(self, n: int) -> None:
        """Compute log P for every count vector of up to `n` symbols (memoised in `_memo`).

        Level by level in the number of symbols: for every count vector c of a level, the
        posterior over the topic-count vectors m (how many of the symbols each topic
        produced; compositions of the level into K parts) after one particular sequence with
        counts c, and log P of that sequence. A vector c' of the next level extends one of
        the level's (c' minus one symbol v; exchangeability makes the choice irrelevant):
        the symbol came from topic k with probability proportional to
        P(m) topics[k][v] (alpha_k + m_k) / (A + |m|) (the Polya urn of the topic weights),
        which moves m to m + e_k; the normaliser is the predictive q(v | c), and
        log P(c') = log P(c) + log q(v | c). Exact: it sums over every topic assignment.
        """
        levels = self._levels
        if len(levels) > n:
            return
        V, K = self.vocab_size, len(self.alpha)
        alpha = np.asarray(self.alpha)
        total = float(alpha.sum())
        topics = np.asarray(self.topics)  # (K, V)
        if not levels:
            levels.append((np.zeros((1, V), dtype=np.int64), np.ones((1, 1)), np.zeros(1)))
            self._memo[(0,) * V] = 0.0
        while len(levels) <= n:
            level = len(levels) - 1  # extend level -> level + 1
            counts, posterior, log_p = levels[-1]
            new_counts = compositions(level + 1, V)  # (C', V)
            # The symbol to remove: the last one present (any would do).
            v = V - 1 - np.argmax(new_counts[:, ::-1] > 0, axis=1)  # (C',)
            previous = new_counts - np.eye(V, dtype=np.int64)[v]
            rows = _rank(previous, counts)  # (C',) index into the level
            states = compositions(level, K)  # (S, K): the level's topic-count vectors
            new_states = compositions(level + 1, K)  # (S', K)
            prior = posterior[rows]  # (C', S)
            out = np.zeros((len(new_counts), len(new_states)))
            for k in range(K):
                moved = _rank(states + np.eye(K, dtype=np.int64)[k], new_states)  # (S,)
                urn = (alpha[k] + states[:, k]) / (total + level)  # (S,)
                out[:, moved] += prior * urn[None, :] * topics[k, v][:, None]
            predictive = out.sum(axis=1)  # q(v | c)
            out /= predictive[:, None]
            new_log_p = log_p[rows] + np.log(predictive)
            levels.append((new_counts, out, new_log_p))
            self._memo.update(zip(map(tuple, new_counts.tolist()), new_log_p.tolist()))

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


def _rank(rows: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Index in `table` (distinct non-negative integer rows) of each row of `rows`."""
    base = int(max(table.max(initial=0), rows.max(initial=0))) + 1
    weights = base ** np.arange(table.shape[1], dtype=np.int64)
    keys = table @ weights
    order = np.argsort(keys)
    return order[np.searchsorted(keys[order], rows @ weights)]
