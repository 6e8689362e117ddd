"""The `topic_mixture` source: an LDA-like admixture of K fixed topics over V symbols.

Generative process, K topics ``topics[k]`` (categoricals over V symbols) and Dirichlet
parameters ``alpha`` (one per topic), for each sequence::

    w ~ Dirichlet(alpha)                 topic weights, once per sequence
    z_t ~ Categorical(w)                 a topic for each symbol
    x_t ~ Categorical(topics[z_t])       the symbol, from its topic

Its exact marginal is a dynamic programme over topic-count vectors (`TopicMixture`).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Sequence

import numpy as np

from promptscape import special, validation
from promptscape.sources.base import Source, compositions, register, row_index
from promptscape.sources.categorical import draw_symbols

_ROW_SUM_ATOL = 1e-9  # each topic sums to 1 within this
# A task lies in the topics' convex hull when the nearest point of the hull is within this
# L1 distance of it (`TopicMixture.hull_distance`, a linear programme).
HULL_TOLERANCE = 1e-9
# The dense route (`TopicMixture._extend_levels`) is taken while the count vectors of every
# length up to the longest asked for, times their topic-count states, are at most this many;
# beyond it (long sequences over many symbols) the sparse route (`_polya_dp`) computes only
# the count vectors asked for. Both are exact; results are memoised per count vector.
LEVEL_BUDGET = 20_000_000


@register
@dataclasses.dataclass(frozen=True, kw_only=True)
class TopicMixture(Source):
    """Topic weights w ~ Dirichlet(`alpha`) once per sequence; each symbol draws a topic
    z ~ w, then a symbol from ``topics[z]``.

    Given w the symbols are i.i.d. categorical(theta), theta = sum_k w_k topics[k], so the
    source is exchangeable: a prior over theta supported on the convex hull of the topics
    (a (K-1)-dimensional polytope inside the simplex, unlike any Dirichlet over theta, which
    covers the whole simplex). K = 1 is i.i.d. categorical(topics[0]).

    A task is in the meta-distribution when it is i.i.d. categorical(theta) with theta in
    that hull, decided by a linear programme (`hull_distance`) whether or not the topics are
    affinely independent; a task that is not i.i.d. (a mixture) is outside it.

    Exact marginal of one particular sequence with symbol counts c (n symbols), by a
    dynamic programme over topic-count vectors m (how many symbols each topic emitted so
    far): integrating w out turns the topics into a Polya urn, P(z_{n+1} = k | m) =
    (alpha_k + m_k) / (A + n), A = sum(alpha), so the forward quantity
    G(c, m) = P(the sequence, topic counts m) obeys

        G(c + e_v, m) = sum_k G(c, m - e_k) * (alpha_k + m_k - 1) / (A + n) * topics[k][v]

    (n = |c|), and P(x) = sum_m G(c, m). The symbols are fed in sorted order (all 0s, then
    all 1s, ...), which exchangeability allows, so count vectors that share leading counts
    share the work. The states after n symbols are the C(n + K - 1, K - 1) compositions of
    n into K parts, so the cost is polynomial in the length for fixed K and V (exponential
    in K: keep K small). Two routes compute it, both exact, and every result is memoised per
    count vector (a training run asks for the same few again at every step):

    * dense (`_extend_levels`): every count vector of every length up to the longest asked
      for, level by level, when that costs at most `LEVEL_BUDGET` states; the count classes
      of landscapes and prompt efficiency ask for most of them anyway;
    * sparse (`_polya_dp`): only the distinct count vectors asked for, sharing prefixes, in
      log space (long sequences over many symbols).
    """

    kind = "topic_mixture"
    exchangeable = True
    topics: tuple[tuple[float, ...], ...]
    alpha: tuple[float, ...]

    def __post_init__(self):
        name = "topic_mixture.topics"
        rows = self.topics
        if isinstance(rows, (str, bytes)) or not isinstance(rows, Sequence):
            raise TypeError(f"{name} must be a list of topics (lists of probabilities), "
                            f"not {type(rows).__name__}.")
        if len(rows) == 0:
            raise ValueError(f"{name} is empty, must hold at least one topic.")
        topics = tuple(validation.check_probabilities(row, f"{name}[{k}]")
                       for k, row in enumerate(rows))
        V = len(topics[0])  # >= 2: entries < 1 that sum to 1
        for k, row in enumerate(topics):
            if len(row) != V:
                raise ValueError(f"{name}[{k}] has {len(row)} symbols, must have {V} like "
                                 f"{name}[0] (every topic is over the same symbols).")
            total = math.fsum(row)
            if abs(total - 1.0) > _ROW_SUM_ATOL:
                raise ValueError(f"{name}[{k}] sums to {total:.12g}, must sum to 1.")
        alpha = self.alpha
        if isinstance(alpha, (str, bytes)) or not isinstance(alpha, Sequence):
            raise TypeError(f"topic_mixture.alpha must be a list of numbers, "
                            f"not {type(alpha).__name__}.")
        if len(alpha) != len(topics):
            raise ValueError(f"topic_mixture.alpha has {len(alpha)} values, must have "
                             f"{len(topics)} (one per topic).")
        alpha = tuple(float(validation.check_scalar(a, f"topic_mixture.alpha[{k}]", numbers.Real,
                                                    min_val=0, include_boundaries="neither"))
                      for k, a in enumerate(alpha))
        object.__setattr__(self, "topics", topics)
        object.__setattr__(self, "alpha", alpha)
        object.__setattr__(self, "_memo", {})  # count vector -> log marginal
        # Per number of symbols n (the dense route): (count vectors, posterior over topic
        # counts, log P).
        object.__setattr__(self, "_levels", [])

    @property
    def vocab_size(self) -> int:
        return len(self.topics[0])

    # ------------------------------------------------------------------ sampler
    def _sample(self, n, length, rng):
        w = rng.dirichlet(np.asarray(self.alpha), size=n)  # (n, K)
        # Drawing z then x from topics[z] is x ~ categorical(theta) given w.
        return draw_symbols(w @ np.asarray(self.topics), length, rng)

    # ------------------------------------------------------------------ support
    def supports(self, probs):
        """Whether `probs` lies in the topics' convex hull: whether some weights w >= 0 with
        sum 1 give sum_k w_k topics[k] = probs. Decided by a linear programme that finds
        the weights nearest to it (least L1 residual |topics^T w - probs|_1 over the
        simplex; `hull_distance`), so it holds whether or not the topics are affinely
        independent (K > V topics always are dependent, and an affine fit then cannot place
        a point uniquely)."""
        if len(probs) != len(self.topics[0]):
            return False
        return bool(self.hull_distance(probs) <= HULL_TOLERANCE)

    def hull_distance(self, probs) -> float:
        """The least L1 distance from `probs` to a point of the topics' convex hull: the
        linear programme min sum(r+ + r-) over w >= 0, r+ >= 0, r- >= 0 with
        topics^T w + r+ - r- = probs and sum(w) = 1 (always feasible)."""
        from scipy.optimize import linprog

        topics = np.asarray(self.topics)  # (K, V)
        K, V = topics.shape
        eye = np.eye(V)
        a_eq = np.block([[topics.T, eye, -eye],
                         [np.ones((1, K)), np.zeros((1, 2 * V))]])  # (V + 1, K + 2V)
        b_eq = np.append(np.asarray(probs, dtype=float), 1.0)
        cost = np.concatenate([np.zeros(K), np.ones(2 * V)])
        result = linprog(cost, A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs")
        if result.status != 0:
            raise RuntimeError(f"topic_mixture: the hull membership programme failed: "
                               f"{result.message}")
        return float(result.fun)

    def count_moments(self, length):
        alpha = np.asarray(self.alpha)
        topics = np.asarray(self.topics)  # (K, V)
        a = alpha / alpha.sum()
        cov_w = (np.diag(a) - np.outer(a, a)) / (alpha.sum() + 1.0)
        mean_theta = a @ topics  # (V,)
        cov_theta = topics.T @ cov_w @ topics  # (V, V)
        second = cov_theta + np.outer(mean_theta, mean_theta)  # E[theta theta^T]
        # Multinomial variance given theta, averaged, plus the variance of its mean T theta.
        return (length * mean_theta,
                length * (np.diag(mean_theta) - second) + length**2 * cov_theta)

    # ------------------------------------------------------------------ marginal
    def _log_marginal(self, counts):
        counts = np.asarray(counts, dtype=np.int64)
        flat = counts.reshape(-1, counts.shape[-1])
        if len(flat) == 0:
            return np.zeros(counts.shape[:-1])
        if flat.min() < 0:
            raise ValueError(f"{self.kind}: counts must be >= 0")
        distinct, inverse = _distinct_rows(flat)
        memo = self._memo
        keys = list(map(tuple, distinct.tolist()))
        missing = [i for i, key in enumerate(keys) if key not in memo]
        if missing:
            if self._levels_affordable(int(distinct.sum(axis=1).max())):
                self._extend_levels(int(distinct.sum(axis=1).max()))
            else:
                values = _polya_dp(distinct[missing], self.alpha, self.topics)
                memo.update(zip((keys[i] for i in missing), values.tolist()))
        values = np.array([memo[key] for key in keys])
        return values[inverse].reshape(counts.shape[:-1])

    def _levels_affordable(self, n: int) -> bool:
        """Whether every count vector of up to `n` symbols (`_extend_levels`) costs at most
        `LEVEL_BUDGET` (count vectors times topic-count states, summed over the levels)."""
        V, K = self.vocab_size, len(self.alpha)
        cost = sum(math.comb(j + V - 1, V - 1) * math.comb(j + K - 1, K - 1)
                   for j in range(len(self._levels), n + 1))
        return cost <= LEVEL_BUDGET

    def _extend_levels(self, n: int) -> None:
        """log P of every count vector of up to `n` symbols, into the memo.

        The dense route, for callers that ask for most count vectors of their lengths (the
        count classes of landscapes and prompt efficiency): level by level in the number of
        symbols, for every count vector c of a level the posterior over the topic-count
        vectors m after one particular sequence with counts c, and log P of that sequence.
        A vector c' of the next level extends one of the level's (c' minus one symbol v;
        exchangeability makes the choice irrelevant): the symbol came from topic k with
        probability proportional to P(m | c) topics[k][v] (alpha_k + m_k) / (A + |m|) (the
        urn above), which moves m to m + e_k; the normaliser is the predictive q(v | c), and
        log P(c') = log P(c) + log q(v | c).
        """
        levels = self._levels
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
            v = V - 1 - np.argmax(new_counts[:, ::-1] > 0, axis=1)  # the last symbol present
            rows = row_index(new_counts - np.eye(V, dtype=np.int64)[v], counts)  # (C',)
            states = compositions(level, K)  # (S, K): the level's topic-count vectors
            new_states = compositions(level + 1, K)  # (S', K)
            prior = posterior[rows]  # (C', S)
            out = np.zeros((len(new_counts), len(new_states)))
            for k in range(K):
                moved = row_index(states + np.eye(K, dtype=np.int64)[k], new_states)  # (S,)
                urn = (alpha[k] + states[:, k]) / (total + level)  # (S,)
                out[:, moved] += prior * urn[None, :] * topics[k, v][:, None]
            predictive = out.sum(axis=1)  # q(v | c)
            out /= predictive[:, None]
            new_log_p = log_p[rows] + np.log(predictive)
            levels.append((new_counts, out, new_log_p))
            self._memo.update(zip(map(tuple, new_counts.tolist()), new_log_p.tolist()))


def _distinct_rows(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of a ``(R, V)`` count array and each row's index among them.

    Rows are keyed by one integer (mixed radix, base max + 1) where that fits in int64:
    sorting integers is far faster than np.unique(axis=0) on rows.
    """
    base = int(counts.max()) + 1
    V = counts.shape[1]
    if V * math.log2(base) < 62:
        key = counts @ (base ** np.arange(V, dtype=np.int64))
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        return counts[first], inverse.reshape(-1)
    distinct, inverse = np.unique(counts, axis=0, return_inverse=True)
    return distinct, inverse.reshape(-1)


def _polya_dp(counts: np.ndarray, alpha: tuple[float, ...],
              topics: tuple[tuple[float, ...], ...]) -> np.ndarray:
    """log P(one particular sequence with counts c) for each distinct row c of `counts`
    ``(U, V)``: the forward recursion of `TopicMixture` over topic-count vectors.

    A state is the counts of the first K - 1 topics, m' with |m'| <= N (N the largest
    length); the last topic's count is the row's length so far minus |m'|. Symbols are
    fed one value at a time: after value v a row is a distinct prefix (c_0..c_v) of the
    input rows, and rows that share a prefix share its states.
    """
    U, V = counts.shape
    K = len(alpha)
    alpha_arr = np.asarray(alpha, dtype=np.float64)
    A = float(alpha_arr.sum())
    log_topics = np.log(np.asarray(topics, dtype=np.float64))  # (K, V)
    N = int(counts.sum(axis=1).max())

    states = compositions(N, K)[:, :K - 1]  # (S, K - 1): every m' with |m'| <= N
    # Ordered by |m'|, so that the states reachable in n symbols are the first
    # C(n + K - 1, K - 1) (and a state's predecessors come before it).
    states = states[np.argsort(states.sum(axis=1), kind="stable")]
    S = len(states)
    # pred[k, s]: the state one symbol of topic k < K - 1 earlier (S = none: m'_k was 0).
    radix = (N + 1) ** np.arange(K - 1, dtype=np.int64)
    code = states @ radix
    order = np.argsort(code)
    pred = np.full((K - 1, S), S, dtype=np.int64)
    for k in range(K - 1):
        has = states[:, k] > 0
        pred[k, has] = order[np.searchsorted(code[order], code[has] - radix[k])]

    # The empty prefix: n = 0, all topic counts 0.
    logg = np.full((1, S + 1), -np.inf)  # column S stays -inf: the absent predecessor
    logg[0, np.flatnonzero(~states.any(axis=1))[0]] = 0.0  # the state m' = 0
    total = np.zeros(1, dtype=np.int64)
    parent_of = np.zeros(U, dtype=np.int64)  # each input row's prefix at the current level
    for v in range(V):
        # The distinct prefixes (c_0..c_v): a parent (c_0..c_{v-1}) and c_v.
        prefixes, child_of = _distinct_rows(counts[:, :v + 1])
        child_parent = np.empty(len(prefixes), dtype=np.int64)
        child_parent[child_of] = parent_of
        child_c = prefixes[:, v]
        child = np.full((len(prefixes), S + 1), -np.inf)
        need = np.zeros(len(logg), dtype=np.int64)  # how many v's each parent needs at most
        np.maximum.at(need, child_parent, child_c)
        cur, cur_total, rows = logg, total, np.arange(len(logg))
        for j in range(int(child_c.max()) + 1):
            done = child_c == j
            if done.any():
                # child_parent -> position in `rows` (rows is sorted, a subset of parents).
                child[done] = cur[np.searchsorted(rows, child_parent[done])]
            keep = need[rows] > j
            if not keep.any():
                break
            cur, cur_total, rows = cur[keep], cur_total[keep], rows[keep]
            cur = _step(cur, cur_total + 1, v, states, pred, alpha_arr, A, log_topics)
            cur_total = cur_total + 1
        logg = child
        total = prefixes.sum(axis=1)
        parent_of = child_of
    return special.logsumexp(logg[parent_of, :S], axis=-1)


def _step(logg, n, v, states, pred, alpha, A, log_topics):
    """One more symbol v for each row: ``(R, S + 1)`` log states at lengths n - 1 -> at n."""
    K = len(alpha)
    # Only the states reachable in max(n) symbols (the first ones) can be nonzero.
    reach = math.comb(int(n.max()) + K - 1, K - 1)
    states, pred = states[:reach], pred[:, :reach]
    with np.errstate(divide="ignore", invalid="ignore"):
        # Urn weight (alpha_k + m_k - 1) / (A + n - 1) with m_k the count after the step;
        # where m_k would be 0 the term is absent (its predecessor is the -inf column S).
        terms = [logg[:, pred[k]]
                 + np.where(states[:, k] >= 1, np.log(alpha[k] + states[:, k] - 1.0), 0.0)
                 for k in range(K - 1)]
        last = n[:, None] - states.sum(axis=1)[None, :]  # (R, reach): last topic's count
        terms.append(logg[:, :reach] + np.where(last >= 1, np.log(alpha[K - 1] + last - 1.0),
                                                  -np.inf))
        stacked = np.stack(terms, axis=0) + log_topics[:, v, None, None]  # (K, R, reach)
        out = np.full(logg.shape, -np.inf)
        out[:, :reach] = special.logsumexp(stacked, axis=0) - np.log(A + n - 1.0)[:, None]
    return out
