"""Why search fails, predicted: the probability that search on D_N returns an optimal prompt.

The workflow's `predict_reliability` stage (`promptscape.pipeline.stages.prediction_stage`) applies
`predict` to every (predictor, task) of an experiment and writes the artifact
`reliability_prediction`.

The empirical loss of a prompt on a dataset of N task sequences is a weighted sum over the
distinct outcomes x of the task (its distinct sequences, or, for an exchangeable Bayes
predictor, its count values)::

    L_N(s) = sum_x f_x l(s, x),    N f ~ Multinomial(N, p),

with p the task's probability of each outcome. Prompts that are identical for the predictor
(a class: equal loss rows) are collapsed first; rows are in the canonical order of their
first prompts, so the search's tie rule (the first minimum in canonical prompt order) is the
first minimum over rows. Search is correct when the chosen row is in the optimal class S*,
which may hold several rows (mirror-image prompts, say). Three ways to compute
``P(correct)``:

``exact``
    The finite sum over every multinomial outcome (the compositions of N into X parts),
    enumerated in blocks; feasible while C(N + X - 1, X - 1) is at most
    `EXACT_MAX_OUTCOMES` (N <= 20 over the 11 count values of a binary task of length 10:
    30 million outcomes, about 2.5 s on one core; only tiny N over 1,024
    sequences).
``normal``
    The variance theory: f approximately normal with mean p and covariance
    (diag(p) - p p^T) / N, pushed through the loss matrix; the probability is estimated by
    Monte Carlo over that normal in frequency space (which handles the singular covariance),
    with its binomial standard error. It fails at small N where the losses take few values
    (an extreme optimal prompt): the multinomial is far from normal there.
``simulated``
    Monte Carlo over the multinomial itself, many more replicates than the pipeline's seeds:
    the numerical reference of both (a check, not a theory).

Outcomes with identical loss columns are merged too (`collapse_outcomes`; their
frequencies add), which is exact: the empirical losses depend on the merged frequencies
only. It turns the 1,024 sequences of a binary task into its 11 count values wherever the
predictor's losses depend on the counts alone.

Ties between rows within `search.TIE_RELATIVE_TOLERANCE` (floating-point noise of equal
sums) go to the first row: the search's own rule (`search.choose`).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from promptscape import search, special
from promptscape.sources import compositions

# The exact sum enumerates at most this many multinomial outcomes.
EXACT_MAX_OUTCOMES = 40_000_000
# Outcomes per block of the exact sum (at most; bounds its memory with BLOCK_VALUES).
EXACT_BLOCK = 500_000
# Values (float64) of one block's largest array: exact outcomes x (X + R), Monte Carlo
# draws x max(X, R). Bounds every reader's memory whatever the table's size.
BLOCK_VALUES = 1 << 22


def collapse(losses: np.ndarray, optimal: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows identical for the predictor, merged: ``(unique losses (R, X), optimal (R,),
    first (R,))`` with `first` the index of each unique row's first prompt, rows kept in the
    order of those first prompts (the canonical order when the input is in it). Prompts of
    one class must agree on `optimal`."""
    losses = np.asarray(losses, dtype=np.float64)
    optimal = np.asarray(optimal, dtype=bool)
    _, first, inverse = np.unique(losses, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    if np.any(optimal != optimal[first][inverse]):
        raise ValueError("prompts with identical losses disagree on membership of S*")
    order = np.argsort(first)
    return losses[first[order]], optimal[first[order]], first[order]


def collapse_outcomes(losses: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Outcomes whose loss columns are identical, merged (their probabilities added), and
    outcomes of probability 0 dropped: ``(losses (R, X'), p (X',))``, columns in the order
    of their first outcomes. Exact for every reader of the empirical losses."""
    losses = np.asarray(losses, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    live = p > 0
    losses, p = losses[:, live], p[live]
    _, first, inverse = np.unique(losses.T, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    merged = np.bincount(rank[inverse.ravel()], weights=p, minlength=len(first))
    return losses[:, first[order]], merged


def chosen_correct(empirical: np.ndarray, optimal: np.ndarray) -> np.ndarray:
    """Whether the row the search chooses from each row of `empirical` ``(B, R)`` is an
    optimal one: `search.choose`, the pipeline's own tie rule (the first row within its
    relative tolerance of the least)."""
    return np.asarray(optimal, dtype=bool)[search.choose(empirical)]


def num_outcomes(N: int, X: int) -> int:
    """C(N + X - 1, X - 1): the multinomial outcomes of N draws over X values."""
    return math.comb(int(N) + int(X) - 1, int(X) - 1)


def exact_feasible(N: int, X: int, max_outcomes: int = EXACT_MAX_OUTCOMES) -> bool:
    return num_outcomes(N, X) <= max_outcomes


def _blocks(n: int, parts: int, size: int):
    """The compositions of n into `parts` parts, in blocks of at most about `size` rows (in
    another order than `compositions`; every composition once). The first k parts (the
    most whose compositions of n fit a block) vary within a block, the last parts are
    fixed per block: for each total s of the last parts, the compositions of n - s into k
    parts, tiled against a run of the compositions of s into the rest."""
    if num_outcomes(n, parts) <= size or parts == 1:
        yield compositions(n, parts)
        return
    k = max(j for j in range(1, parts) if num_outcomes(n, j) <= size)
    for total in range(n + 1):
        leaf = compositions(n - total, k)
        suffixes = compositions(total, parts - k)
        step = max(1, size // len(leaf))
        for start in range(0, len(suffixes), step):
            suffix = suffixes[start:start + step]
            block = np.empty((len(leaf) * len(suffix), parts), dtype=np.int64)
            block[:, :k] = np.tile(leaf, (len(suffix), 1))
            block[:, k:] = np.repeat(suffix, len(leaf), axis=0)
            yield block


def _multiset_blocks(n: int, parts: int, size: int):
    """The multisets of n of the values 0..parts-1 (sorted index rows ``(b, n)``) in blocks
    of at most `size`: the outcomes of n draws, sparse where n < parts."""
    every = itertools.combinations_with_replacement(range(parts), n)
    while True:
        block = np.fromiter(itertools.chain.from_iterable(itertools.islice(every, size)),
                            dtype=np.int64)
        if not block.size:
            return
        yield block.reshape(-1, n)


def exact_proportion_correct(losses: np.ndarray, p: np.ndarray, optimal: np.ndarray,
                             N: int, max_outcomes: int = EXACT_MAX_OUTCOMES) -> float:
    """P(search on N draws returns an optimal row), summed over every multinomial outcome.

    `losses` ``(R, X)``: the loss of each row on each outcome; `p` ``(X,)``: the outcomes'
    probabilities; `optimal` ``(R,)``: membership of S*. Outcomes are enumerated as count
    vectors (compositions of N into X parts) where N >= X, as multisets of N outcome indices
    where N < X (the same outcomes, stored sparsely), in blocks of at most `BLOCK_VALUES`."""
    losses = np.asarray(losses, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    N, X = int(N), len(p)
    R = losses.shape[0]
    if not exact_feasible(N, X, max_outcomes):
        raise ValueError(f"{num_outcomes(N, X):,} multinomial outcomes of N = {N} over {X} "
                         f"values exceed {max_outcomes:,}")
    live = p > 0
    log_p = np.log(np.where(live, p, 1.0))
    log_factorial = special.gammaln(np.arange(N + 1) + 1.0)  # looked up, not recomputed
    total = 0.0
    if N < X:
        by_outcome = losses.T  # (X, R)
        log_N = np.log(np.arange(1, N + 1, dtype=np.float64))
        size = max(1, min(EXACT_BLOCK, BLOCK_VALUES // max(1, N * R)))
        for picks in _multiset_blocks(N, X, size):
            picks = picks[live[picks].all(axis=1)]
            # log N! - sum log(multiplicity!) + sum log p: within a sorted row, the j-th
            # repeat of an index contributes log j.
            run = np.ones(picks.shape, dtype=np.int64)
            for j in range(1, N):
                run[:, j] = np.where(picks[:, j] == picks[:, j - 1], run[:, j - 1] + 1, 1)
            log_prob = log_factorial[N] - log_N[run - 1].sum(axis=1) + log_p[picks].sum(axis=1)
            correct = chosen_correct(by_outcome[picks].sum(axis=1) / N, optimal)
            total += float(np.exp(log_prob[correct]).sum())
        return _clip_probability(total)
    size = max(1, min(EXACT_BLOCK, BLOCK_VALUES // (X + R)))
    optimal = np.asarray(optimal, dtype=bool)
    ones = np.ones(X)
    finite = bool(np.isfinite(losses).all())
    for counts in _blocks(N, X, size):
        if not live.all():
            counts = counts[~np.any(counts[:, ~live] > 0, axis=1)]
        frequencies = counts.astype(np.float64)
        # log multinomial(N; counts) + sum_x counts_x log p_x (sums over x as products:
        # numpy reduces along a short axis slowly)
        log_prob = log_factorial[N] - log_factorial[counts] @ ones + frequencies @ log_p
        # (R, B): rows by prompt; the product as before where no loss is inf (the same bits)
        empirical = (losses @ frequencies.T if finite
                     else empirical_losses(frequencies, losses).T)
        chosen = search.choose_by_prompt(empirical / N)
        total += float(np.exp(log_prob[optimal[chosen]]).sum())
    return _clip_probability(total)


def _clip_probability(total: float) -> float:
    """A sum of outcome probabilities as a probability: rounding over many terms can carry
    a certain event to 1 + 1e-15 (a binary task at N = 5 does), which a check against an
    interval's upper bound of 1 would count as outside it."""
    return min(max(total, 0.0), 1.0)


def _block_draws(X: int, R: int) -> int:
    """Monte Carlo draws per block: at most `BLOCK_VALUES` values in its largest array."""
    return max(1, min(20_000, BLOCK_VALUES // max(X, R, 1)))


def _correct_share(draw, losses, optimal, draws, rng):
    """(estimate, binomial standard error) of P(correct) over `draws` frequency vectors."""
    block = _block_draws(*reversed(losses.shape))
    hits = 0
    for start in range(0, draws, block):
        f = draw(min(block, draws - start), rng)  # (b, X) frequencies
        hits += int(chosen_correct(empirical_losses(f, losses), optimal).sum())
    return _share(hits, draws)


def normal_curve(losses: np.ndarray, p: np.ndarray, optimal: np.ndarray, sizes,
                 draws: int, rng: np.random.Generator) -> list[tuple[float, float]]:
    """P(correct) under the normal approximation of the frequencies at every N of `sizes`,
    by Monte Carlo in frequency space: f = p + h / sqrt(N) with h = g - p sum(g) and
    g_x ~ Normal(0, p_x) independent, whose covariance is exactly (diag(p) - p p^T) / N
    (the singular covariance of frequencies that sum to one included). The same draws of h
    serve every N (common random numbers: one product h @ losses^T per draw, and a curve
    over N free of independent noise). Returns (estimate, its binomial standard error) per
    N."""
    losses = np.asarray(losses, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    # A row infinite on an outcome of positive probability (an impossible prompt) has
    # empirical loss inf: under the normal approximation every frequency is positive.
    infinite = np.isinf(losses).any(axis=1)
    losses = np.where(np.isinf(losses), 0.0, losses)
    scale = np.sqrt(p)
    mean = np.where(infinite, np.inf, losses @ p)  # (R,)
    sizes = [int(N) for N in sizes]
    hits = np.zeros(len(sizes), dtype=np.int64)
    block = _block_draws(len(p), losses.shape[0])
    for start in range(0, draws, block):
        g = rng.standard_normal((min(block, draws - start), len(p))) * scale
        spread = (g - g.sum(axis=1, keepdims=True) * p) @ losses.T  # (b, R)
        for i, N in enumerate(sizes):
            hits[i] += int(chosen_correct(mean + spread / math.sqrt(N), optimal).sum())
    return [_share(int(h), draws) for h in hits]


def empirical_losses(frequencies: np.ndarray, losses: np.ndarray) -> np.ndarray:
    """``frequencies (B, X) @ losses (R, X)^T``, the empirical loss of every row on every
    dataset, with 0 x inf = 0: a row infinite on an outcome (a prompt the pretraining
    source cannot produce, or after which that sequence is impossible) has empirical loss
    inf exactly when the dataset holds that outcome."""
    infinite = np.isinf(losses)
    if not infinite.any():
        return frequencies @ losses.T
    out = frequencies @ np.where(infinite, 0.0, losses).T
    out[((frequencies != 0).astype(np.float64) @ infinite.T.astype(np.float64)) > 0] = np.inf
    return out


def _share(hits: int, draws: int) -> tuple[float, float]:
    """(hits / draws, its binomial standard error, floored at that of one hit in four)."""
    q = hits / draws
    return q, math.sqrt(max(q * (1 - q), 0.25 / draws) / draws)


def normal_proportion_correct(losses: np.ndarray, p: np.ndarray, optimal: np.ndarray, N: int,
                              draws: int, rng: np.random.Generator) -> tuple[float, float]:
    """P(correct) under the normal approximation at one N (`normal_curve`): (estimate,
    its standard error)."""
    return normal_curve(losses, p, optimal, [N], draws, rng)[0]


def simulated_proportion_correct(losses: np.ndarray, p: np.ndarray, optimal: np.ndarray,
                                 N: int, draws: int,
                                 rng: np.random.Generator) -> tuple[float, float]:
    """P(correct) by simulating `draws` multinomial datasets of N outcomes: (estimate, its
    standard error)."""
    losses = np.asarray(losses, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)

    p = p / p.sum()
    cumulative = np.cumsum(p)
    X = len(p)

    def draw(b, rng):
        if N >= X:
            return rng.multinomial(N, p, size=b) / N
        # Fewer draws than outcomes: N categorical draws per dataset, counted (N per
        # dataset rather than X binomials).
        picks = np.minimum(np.searchsorted(cumulative, rng.random((b, N)), side="right"), X - 1)
        rows = np.repeat(np.arange(b), N) * X
        return np.bincount(rows + picks.ravel(), minlength=b * X).reshape(b, X) / N

    return _correct_share(draw, losses, optimal, draws, rng)


def decomposition(losses: np.ndarray, p: np.ndarray, optimal: np.ndarray,
                  reference_N: int = 100) -> dict:
    """Why search is easy or hard for one (predictor, task):

    ``gap``: expected loss (= KL) of the best row outside S* minus that of S*'s best row;
    ``paired_sd``: the standard deviation, over the task's outcomes, of the per-outcome loss
    difference between those two rows (what the gap is measured against, divided by
    sqrt(N)); ``within_2se``: how many rows outside S* have a gap to S*'s best within two
    paired standard errors at N = `reference_N`. NaN gap when every row is optimal."""
    losses = np.asarray(losses, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64) / np.sum(p)
    optimal = np.asarray(optimal, dtype=bool)
    with np.errstate(invalid="ignore"):
        mean = losses @ p
    mean = np.where(np.isnan(mean), np.inf, mean)  # an inf row on a p = 0 outcome
    best = int(np.flatnonzero(optimal)[np.argmin(mean[optimal])])
    if optimal.all():
        return {"gap": math.nan, "paired_sd": math.nan, "within_2se": 0}
    outside = np.flatnonzero(~optimal)
    rival = int(outside[np.argmin(mean[outside])])
    diff = losses - losses[best]  # (R, X)
    with np.errstate(invalid="ignore"):  # inf rows: gap inf, sd nan (never within 2 SE)
        gaps = diff @ p
        sds = np.sqrt(np.maximum((diff ** 2) @ p - gaps ** 2, 0.0))
    within = int(np.sum(gaps[outside] <= 2 * sds[outside] / math.sqrt(reference_N)))
    return {"gap": float(gaps[rival]), "paired_sd": float(sds[rival]), "within_2se": within}


def predict(losses: np.ndarray, p: np.ndarray, optimal: np.ndarray, sizes, *, draws: int,
            normal_rng: np.random.Generator, simulation_rng: np.random.Generator,
            exact_max_outcomes: int = EXACT_MAX_OUTCOMES) -> list[dict]:
    """The predicted proportion correct at every N of `sizes` for one loss table over
    outcomes (rows in canonical prompt order; prompts of one class may repeat: rows and
    outcomes are collapsed here). One dict per N: ``exact`` (None where the multinomial
    sum exceeds `exact_max_outcomes`), ``normal`` and ``normal_se``, ``simulated`` and
    ``simulated_se`` (`draws` draws each), and ``predicted`` with its ``method``: exact
    where it ran, normal otherwise."""
    rows, row_optimal, _ = collapse(losses, optimal)
    rows, p = collapse_outcomes(rows, p)
    normal = normal_curve(rows, p, row_optimal, sizes, draws, normal_rng)
    out = []
    for N, (q_normal, se_normal) in zip(sizes, normal):
        exact = (exact_proportion_correct(rows, p, row_optimal, N, exact_max_outcomes)
                 if exact_feasible(N, len(p), exact_max_outcomes) else None)
        q_sim, se_sim = simulated_proportion_correct(rows, p, row_optimal, N, draws,
                                                     simulation_rng)
        out.append({"N": int(N), "exact": exact, "normal": q_normal, "normal_se": se_normal,
                    "simulated": q_sim, "simulated_se": se_sim,
                    "predicted": q_normal if exact is None else exact,
                    "method": "normal" if exact is None else "exact",
                    "classes": len(rows), "optimal_classes": int(row_optimal.sum()),
                    "outcomes": len(p)})
    return out


def first_reaching(sizes, predictions, level: float):
    """The least N of `sizes` whose prediction is at least `level`; None if none is."""
    for N, q in sorted(zip(sizes, predictions)):
        if q >= level:
            return int(N)
    return None
