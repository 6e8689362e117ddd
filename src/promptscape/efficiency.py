"""Prompt efficiency: typical prompts drawn from the task against optimal prompts.

A *typical prompt* of length l is a sequence of l symbols drawn from the task source itself
(a demonstration). Its KL is summarised by quantiles of the task's distribution of prompts:
the q-quantile is the *lower* quantile, the least KL value v with P(KL <= v) >= q (KLs
equal up to the tie tolerance of `no_worse` count as equal), so the median is the lower
median. Nothing assumes the quantiles fall with l. Two routes (column ``typical_method``):

``exact_counts``
    Bayes predictor of an exchangeable source on an exchangeable task: a prompt's KL depends
    only on its symbol counts c, and c has probability ``multinomial(l; c) m_task(c)`` (a
    multinomial, or a mixture of them for a mixture task; binary: k ones with probability
    ``C(l, k) m_task(k, l - k)``). The quantiles are those of this exact distribution over the
    C(l + V - 1, V - 1) count classes (l + 1 when binary); any length costs little.
``sampled``
    Otherwise (networks, non-exchangeable predictors or tasks): K prompts are drawn with
    ``seeding.numpy_generator("typical_prompts", task, l, K)``, independent of the predictor
    and the experiment, so every predictor is scored on the same prompts (paired
    comparisons). Identical draws are scored once (every length-0 draw is the empty prompt).
    The quantiles are the same lower quantiles of the K draws' empirical distribution, and
    each has a distribution-free 95% confidence interval from order statistics
    (`order_statistic_ranks`), valid for discrete distributions too (conservative there).

How the KL of a prompt is computed (column ``method``). Every route is a weighted sum over
task sequences x, ``KL(s) = sum_x w(x) (l(s, x) + log P_task(x))``, as in
`promptscape.landscape`:

``exact_counts``
    Bayes predictor of an exchangeable source: l(s, x) depends on s only through its symbol
    counts c(s) and on x only through its counts k, so prompts fall into count classes and
    ``KL(c) = sum_k P(k) l(c, k) - H_T(task)``. P(k) is ``multinomial(T; k) m_task(k)`` for an
    exchangeable task, else the V^T enumerated sequence probabilities binned by counts (when
    the enumeration fits the budget).
``exact_enumeration``
    Any other predictor when the landscape's rule (`landscape.exact_sequences`) enumerates
    the task sequences for the scored prompts within ``landscape.enumeration_budget``:
    w(x) = P_task(x) over all V^T sequences, or over the task's support.
``monte_carlo``
    Otherwise: w(x) = the evaluation set's stored weights (stratified by count for an
    exchangeable task, else 1/M), the same sequences for every prompt (a paired estimate, as
    in the landscape). An exchangeable Bayes predictor still uses count classes, weighted by
    the evaluation set's weights binned by count (exactly P(k) when the set is stratified).

Optimal prompts by length: up to L_max they come from the exhaustive landscape: the least KL
of each exact length, and the best prompt of length at most l (ties, as decided by the
landscape's dense ranks, go to the shorter, then lexicographically first prompt). For an
exchangeable Bayes predictor count classes give the optimum at every length: the best prompt
of exact length l is the best class c (a composition of l into V parts), represented by its
lexicographically first prompt ``0^c0 1^c1 ...`` (among tied classes, the one whose
representative is lexicographically first); the best of length at most l is the running
best, which moves to a longer prompt only when that is better by more than the landscape's
tie tolerance. Other predictors have no known optimum beyond L_max (null).

Neural predictors condition on at most ``max_context`` symbols (an attribute of the predictor
object, counting the prompt and the task); lengths l with l + T > max_context are skipped.
Bayes predictors have no limit.

Token efficiency: the shortest measured typical length whose median KL is no worse than the
KL of the optimal prompt of length at most L_max, and its ratio to that prompt's length; the
median is exact where ``typical_method`` is ``exact_counts``, else the sampled median (its
confidence interval is in the efficiency table).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from promptscape import landscape, logs, seeding, special
from promptscape import prompts as prompts_lib
from promptscape.predictors import BayesPredictor, Predictor
from promptscape.sources import Source, compositions, row_index, symbol_counts

# Two KLs are equal when they differ by at most the landscape's relative tie tolerance plus
# this absolute floor (nats), which absorbs floating-point noise for KLs near 0.
ABSOLUTE_TOLERANCE = 1e-12
QUANTILES = (0.25, 0.5, 0.75)
QUANTILE_COLUMNS = ("typical_kl_q25", "typical_kl_median", "typical_kl_q75")
CONFIDENCE = 0.95  # of the order-statistic interval of each sampled quantile
# Cumulative probabilities are compared with this relative slack, so that P(KL <= v) = q
# exactly (e.g. 1/2) qualifies v despite rounding in the sums.
CUMULATIVE_TOLERANCE = 1e-12
# The exact count-class probabilities must sum to 1 within this.
PROBABILITY_TOLERANCE = 1e-9


def no_worse(value: float, target: float) -> bool:
    """`value` <= `target` up to the tie tolerance."""
    slack = landscape.EXACT_RELATIVE_TOLERANCE * abs(target) + ABSOLUTE_TOLERANCE
    return bool(value <= target + slack)


def typical_prompts(task: Source, length: int, count: int) -> list[str]:
    """`count` prompts of `length` symbols drawn from the task (the same for every predictor)."""
    rng = seeding.numpy_generator("typical_prompts", task.to_dict(), length, count)
    return prompts_lib.to_strings(task.sample(count, length, rng), task.vocab_size)


class KLScorer:
    """KL(task ‖ predictor prompted with s) for any prompt of one (predictor, task).

    ``method`` names the route (module doc); ``counts_apply`` says whether count classes
    apply (exchangeable Bayes predictor), in which case `count_kl` scores a class directly.
    """

    def __init__(self, predictor: Predictor, task: Source, task_length: int,
                 num_prompts: int, enumeration_budget: int,
                 evaluation: np.ndarray | None = None,
                 evaluation_weights: np.ndarray | None = None):
        """`num_prompts`: how many prompts will be scored (it decides, with T, whether
        enumeration fits the budget); `evaluation_weights`: the evaluation set's stored
        weights (default 1/M)."""
        T = int(task_length)
        V = self.vocab_size = task.vocab_size
        self.predictor, self.task_length = predictor, T
        self.counts_apply = isinstance(predictor, BayesPredictor) and predictor.source.exchangeable
        self._seqs = self._weights = None
        # (C, V): the task sequences' count classes, where counts apply (C(T + V - 1, V - 1)
        # rows: 254 million for the 27 symbols of word tasks at T = 10, never built there).
        self._classes = compositions(T, V) if self.counts_apply else None
        if self.counts_apply and task.exchangeable:
            log_m = task.log_marginal(self._classes)
            self._count_weights = np.exp(task.count_log_probabilities(T))  # P(k)
            self._offset = float(self._count_weights @ log_m)  # -H_T(task)
            self.method = "exact_counts"
            return
        exact = landscape.exact_sequences(task, T, num_prompts, enumeration_budget)
        if exact is not None:  # all V^T sequences, or the task's support
            seqs, log_p = exact
            weights = np.exp(log_p)
            method = "exact_counts" if self.counts_apply else "exact_enumeration"
        else:
            if evaluation is None or len(evaluation) == 0:
                raise ValueError(f"{num_prompts} prompts x {V}^{T} sequences exceed the "
                                 f"enumeration budget {enumeration_budget}: Monte Carlo needs "
                                 "the evaluation set")
            seqs = np.asarray(evaluation, dtype=np.uint8)
            log_p = task.log_prob(seqs)
            weights = (np.full(len(seqs), 1.0 / len(seqs)) if evaluation_weights is None
                       else np.asarray(evaluation_weights, dtype=float))
            method = "monte_carlo"
        self.method = method
        self._offset = float(weights @ log_p)
        if self.counts_apply:
            classes = row_index(symbol_counts(seqs, V), self._classes)
            self._count_weights = np.bincount(classes, weights=weights,
                                              minlength=len(self._classes))
        else:
            self._seqs, self._weights = seqs, weights

    def resolution(self, kl, length: int) -> float:
        """`landscape.resolution` of these KLs of prompts of `length` symbols: their losses
        are KL + H_T (H_T = -offset, the magnitude of the entropy's sum), summed over the
        task's count classes or its sequences (capped as the landscape caps them), in the
        predictor's precision, over length + T symbols."""
        entropy = -self._offset
        counted = self._seqs is None
        outcomes = len(self._classes) if counted else min(len(self._seqs), 1 << 20)
        return landscape.resolution(np.asarray(kl, dtype=float) + entropy, entropy,
                                    outcomes=outcomes, symbols=int(length) + self.task_length,
                                    precision=landscape.loss_precision(self.predictor))

    def count_kl(self, counts) -> np.ndarray:
        """KL of every prompt with symbol counts `counts` ``(..., V)`` -> ``(...)``."""
        if not self.counts_apply:
            raise TypeError(f"count classes need an exchangeable Bayes predictor, not "
                            f"{type(self.predictor).__name__}")
        counts = np.asarray(counts, dtype=np.int64)[..., None, :]  # (..., 1, V)
        losses = self.predictor.count_losses(counts, self._classes)  # (..., C)
        return losses @ self._count_weights + self._offset

    @property
    def classes_apply(self) -> bool:
        """Whether prompts fall into classes (`BayesPredictor.classes_apply`), so that
        `class_kl` scores a class directly and optima are known at every length (not for
        sources whose classes of one length are found only by enumerating its prompts,
        `Source.classes_by_length` false: the word kinds)."""
        return (isinstance(self.predictor, BayesPredictor) and self.predictor.classes_apply
                and self.predictor.source.classes_by_length)

    def class_kl(self, classes: list) -> np.ndarray:
        """KL of a prompt of each class (`Source.prompt_class`), ``(C,)``."""
        if self.counts_apply:
            return self.count_kl(np.asarray(classes, dtype=np.int64).reshape(-1, self.vocab_size))
        if not self.classes_apply:
            raise TypeError(f"{type(self.predictor).__name__} states no prompt classes")
        losses = self.predictor.source.class_losses(classes, self._seqs)  # (C, S)
        return losses @ self._weights + self._offset

    def prompt_kl(self, prompts: list[str]) -> np.ndarray:
        """KL of each prompt, ``(P,)``."""
        if self.counts_apply:
            return self.count_kl(prompts_lib.prompt_counts(prompts, self.vocab_size))
        losses = self.predictor.prompt_losses(prompts, self._seqs)  # (P, S)
        return losses @ self._weights + self._offset


def typical_kls(scorer: KLScorer, prompts: list[str]) -> np.ndarray:
    """KL of each prompt, scoring each distinct prompt once."""
    unique, inverse = np.unique(np.asarray(prompts, dtype=object), return_inverse=True)
    return scorer.prompt_kl([str(p) for p in unique])[inverse.ravel()]


def measured_lengths(lengths, task_length: int, max_context: int | None) -> tuple[list, list]:
    """(lengths that fit, lengths skipped): l fits when l + T <= max_context (None: all)."""
    lengths = sorted(int(length) for length in lengths)
    if max_context is None:
        return lengths, []
    fits = [length for length in lengths if length + task_length <= max_context]
    return fits, [length for length in lengths if length + task_length > max_context]


def lower_quantiles(values, weights, quantiles=QUANTILES) -> np.ndarray:
    """Lower quantiles of the distribution putting `weights` (any positive scale) on `values`:
    for each q the least value v with P(X <= v) >= q, where X <= v means `no_worse(X, v)`
    (values equal up to the tie tolerance count as equal) and the cumulative probability is
    compared with a relative slack of CUMULATIVE_TOLERANCE."""
    values = np.asarray(values, dtype=float).ravel()
    weights = np.asarray(weights, dtype=float).ravel()
    if values.shape != weights.shape or values.size == 0:
        raise ValueError(f"need as many weights as values, at least one: {values.shape}, "
                         f"{weights.shape}")
    if not np.isfinite(values).all() or (weights < 0).any():
        raise ValueError("values must be finite and weights non-negative")
    order = np.argsort(values, kind="stable")
    v, w = values[order], weights[order]
    total = float(w.sum())
    slack = landscape.EXACT_RELATIVE_TOLERANCE * np.abs(v) + ABSOLUTE_TOLERANCE
    # P(X no worse than v_i): the mass of every value <= v_i + slack_i (v is sorted).
    upto = np.searchsorted(v, v + slack, side="right")
    at_most = np.concatenate([[0.0], np.cumsum(w)])[upto]  # non-decreasing in i
    out = []
    for q in quantiles:
        qualifies = at_most >= (q - CUMULATIVE_TOLERANCE) * total
        if not qualifies.any():
            raise ArithmeticError(f"no value reaches cumulative probability {q}")
        out.append(v[int(np.argmax(qualifies))])
    return np.asarray(out)


def count_class_distribution(scorer: KLScorer, task: Source, length: int):
    """(KL, probability) of each count class (composition of `length` into V parts) of a
    typical prompt: the classes of an exchangeable Bayes predictor, their probabilities
    ``multinomial(l; c) m_task(c)``."""
    if not (scorer.counts_apply and task.exchangeable):
        raise TypeError("exact typical quantiles need an exchangeable Bayes predictor and an "
                        "exchangeable task")
    classes = compositions(length, task.vocab_size)
    prob = np.exp(task.count_log_probabilities(length))
    if abs(float(prob.sum()) - 1.0) > PROBABILITY_TOLERANCE:
        raise ArithmeticError(f"count-class probabilities of length {length} sum to "
                              f"{prob.sum()!r}, not 1")
    return scorer.count_kl(classes), prob


def exact_typical_quantiles(scorer: KLScorer, task: Source, length: int,
                            quantiles=QUANTILES) -> np.ndarray:
    """The lower quantiles of the exact KL distribution of a typical prompt of `length`."""
    kl, prob = count_class_distribution(scorer, task, length)
    return lower_quantiles(kl, prob, quantiles)


def order_statistic_ranks(count: int, q: float, confidence: float = CONFIDENCE):
    """1-based ranks (r, s) such that [X_(r), X_(s)] of `count` i.i.d. draws covers the lower
    q-quantile with probability >= `confidence` (equal tails; B ~ Binomial(count, q) gives
    P(B < r) <= (1 - confidence) / 2 and P(B >= s) <= (1 - confidence) / 2). A side with no
    such rank is None (too few draws for that bound). Valid for discrete distributions."""
    alpha = (1.0 - confidence) / 2.0
    k = np.arange(count + 1)
    with np.errstate(divide="ignore"):
        log_pmf = special.log_binom(count, k) + k * np.log(q) + (count - k) * np.log1p(-q)
    pmf = np.exp(log_pmf)
    cdf = np.cumsum(pmf)  # P(B <= j)
    sf = np.cumsum(pmf[::-1])[::-1]  # P(B >= j)
    below = np.flatnonzero(cdf <= alpha)  # j with P(B <= j) <= alpha: r = j + 1 works
    r = int(below[-1]) + 1 if below.size else None
    above = np.flatnonzero(sf <= alpha)  # j with P(B >= j) <= alpha: s = j works
    s = int(above[0]) if above.size and above[0] >= 1 else None
    return r, s


def sampled_typical_quantiles(kls, quantiles=QUANTILES, confidence: float = CONFIDENCE):
    """(estimates, lows, highs) from the KLs of K drawn prompts: the lower quantiles of their
    empirical distribution and each one's order-statistic confidence interval (None where a
    bound needs more draws)."""
    kls = np.asarray(kls, dtype=float).ravel()
    estimates = lower_quantiles(kls, np.ones_like(kls), quantiles)
    ordered = np.sort(kls)
    lows, highs = [], []
    for q in quantiles:
        r, s = order_statistic_ranks(kls.size, q, confidence)
        lows.append(None if r is None else float(ordered[r - 1]))
        highs.append(None if s is None else float(ordered[s - 1]))
    return estimates, lows, highs


def typical_method(scorer: KLScorer, task: Source) -> str:
    """``exact_counts`` where the typical KL distribution is exact, else ``sampled``."""
    return "exact_counts" if scorer.counts_apply and task.exchangeable else "sampled"


def typical_curve(scorer: KLScorer, task: Source, lengths, num_typical: int) -> dict:
    """Lower median and quartiles of the typical prompts' KL at each length: columns of
    arrays, with ``typical_method``, the 95% interval of each sampled quantile
    (``<column>_low``/``_high``, None where exact) and K (``typical_prompts``, None where
    exact)."""
    method = typical_method(scorer, task)
    columns = {name: [] for name in QUANTILE_COLUMNS}
    bounds = {f"{name}_{side}": [] for name in QUANTILE_COLUMNS for side in ("low", "high")}
    progress = logs.Progress(logging.getLogger("promptscape"), len(lengths), "prompt lengths:")
    for done, length in enumerate(lengths, 1):
        if method == "exact_counts":
            values = exact_typical_quantiles(scorer, task, length)
            lows = highs = [None] * len(QUANTILES)
        else:
            kl = typical_kls(scorer, typical_prompts(task, length, num_typical))
            values, lows, highs = sampled_typical_quantiles(kl)
        progress.update(done)
        for name, value, low, high in zip(QUANTILE_COLUMNS, values, lows, highs):
            columns[name].append(float(value))
            bounds[f"{name}_low"].append(low)
            bounds[f"{name}_high"].append(high)
    n = len(columns["typical_kl_median"])
    return {"prompt_length": np.asarray(list(lengths), dtype=np.int64),
            **{name: np.asarray(values) for name, values in columns.items()},
            **bounds, "typical_method": [method] * n,
            "typical_prompts": [None if method == "exact_counts" else int(num_typical)] * n}


def landscape_optima(land: pd.DataFrame) -> pd.DataFrame:
    """Per prompt length 0..L_max of a landscape: ``exact_kl`` (least KL of that length),
    ``upto_prompt`` and ``upto_kl`` (the best prompt of length at most l and its KL; exact
    KLs: ties by the landscape's dense rank go to the shorter, then lexicographically first
    prompt; estimated KLs: the least estimate, as KL(s*) is the least KL of the optimal
    class, since an estimated class spans the estimates' errors) and ``upto_below`` (that KL
    is below the landscape's resolution, `below_resolution`)."""
    land = land.sort_values(["prompt_length", "prompt"], kind="stable",
                           key=prompts_lib.order_key).reset_index(drop=True)
    # The optimal class of an estimated landscape holds every prompt not shown worse than
    # the best estimate: on Portuguese words its first prompt (`aa`, 13.3 nats) was a nat
    # above the best estimate (12.3) and above the empty prompt (13.0), so the efficiency
    # table said real text of length 0 matches the optimum.
    estimated = "method" in land and (land["method"] == "monte_carlo").any()
    key = "kl" if estimated else "rank"
    rows, best = [], None
    for length, group in land.groupby("prompt_length", sort=True):
        first = group.loc[group[key].idxmin()]  # idxmin: the first in canonical order
        if best is None or first[key] < best[key]:
            best = first
        rows.append({"prompt_length": int(length), "exact_kl": float(group["kl"].min()),
                     "upto_prompt": str(best["prompt"]), "upto_kl": float(best["kl"]),
                     "upto_below": bool(best.get("below_resolution", False))})
    return pd.DataFrame(rows).set_index("prompt_length")


def class_optima(scorer: KLScorer, max_length: int) -> pd.DataFrame:
    """Per length 0..max_length (a Bayes predictor whose source states prompt classes):
    ``exact_kl`` of the best class of prompts of that length and ``exact_prompt``, its
    representative, the class's lexicographically first prompt (count classes: the
    canonical prompt ``0^c0 1^c1 ...``; ties between classes: the lexicographically first
    representative; binary counts: fewer ones)."""
    if not scorer.classes_apply:
        raise TypeError(f"prompt classes need a Bayes predictor whose source states them, not "
                        f"{type(scorer.predictor).__name__}")
    source = scorer.predictor.source
    rows = []
    for length in range(max_length + 1):
        classes, names = source.length_classes(length)
        kl = scorer.class_kl(classes)
        # Classes tie within the KL's resolution (the landscape's rule, `classify`), not
        # within 1e-12 nats: at 64 symbols that width let a class with one more zero and a
        # true KL of 6e-13 stand for the optimum, whose KL is ~1e-50.
        resolution = scorer.resolution(kl, length)
        best = min((i for i, v in enumerate(kl) if v <= kl.min() + resolution),
                   key=names.__getitem__)
        rows.append({"prompt_length": length, "exact_kl": float(kl[best]),
                     "exact_prompt": names[best], "resolution": resolution})
    return pd.DataFrame(rows).set_index("prompt_length")


def optimal_by_length(land: pd.DataFrame, lengths, classes: pd.DataFrame | None = None) -> dict:
    """Columns ``optimal_exact_kl``, ``optimal_upto_kl``, ``optimal_prompt`` and
    ``optimal_below_resolution`` for each of `lengths`: from the landscape up to its L_max,
    from the prompt-class optima `classes` (`class_optima`) beyond it (when given), else
    None. ``optimal_below_resolution``: the optimal prompt's KL is at most the resolution of
    the computation it came from (the landscape's ``below_resolution``, or the class optima's
    ``resolution`` at the length where that prompt was found)."""
    table = landscape_optima(land)
    l_max = int(table.index.max())
    exact = table["exact_kl"].to_dict()
    upto = {length: (row.upto_prompt, row.upto_kl, bool(row.upto_below))
            for length, row in table.iterrows()}
    if classes is not None:
        prompt, kl, below = upto[l_max]
        for length in range(l_max + 1, int(classes.index.max()) + 1):
            row = classes.loc[length]
            exact[length] = row["exact_kl"]
            if row["exact_kl"] < kl - row["resolution"]:  # better beyond the resolution
                prompt, kl = row["exact_prompt"], row["exact_kl"]
                below = bool(kl <= row["resolution"])
            upto[length] = (prompt, kl, below)
    return {
        "optimal_exact_kl": [exact.get(length) for length in lengths],
        "optimal_upto_kl": [upto[length][1] if length in upto else None for length in lengths],
        "optimal_prompt": [upto[length][0] if length in upto else None for length in lengths],
        "optimal_below_resolution": [upto[length][2] if length in upto else None
                                     for length in lengths],
    }


def shortest_typical_length(lengths, medians, target_kl: float) -> int | None:
    """The shortest length whose median KL is no worse than `target_kl`; None if none is."""
    for length, median in sorted(zip(lengths, medians)):
        if no_worse(median, target_kl):
            return int(length)
    return None


def token_efficiency(efficiency: pd.DataFrame, landscapes: pd.DataFrame,
                     in_meta_distribution: dict) -> dict:
    """One row per (predictor, replicate, task) of an experiment: columns of the
    token_efficiency table."""
    rows = []
    for (predictor, replicate, task), land in landscapes.groupby(["predictor", "replicate",
                                                                  "task"], sort=True):
        optimum = landscape_optima(land).iloc[-1]
        curve = efficiency[(efficiency["predictor"] == predictor)
                           & (efficiency["replicate"] == replicate) & (efficiency["task"] == task)]
        if curve.empty:
            raise ValueError(f"no efficiency rows for predictor {predictor!r} (replicate "
                             f"{replicate}), task {task!r}")
        typical = shortest_typical_length(curve["prompt_length"], curve["typical_kl_median"],
                                          optimum["upto_kl"])
        # The method of the median the answer rests on: at the typical length, else at the
        # longest measured length (the last one compared).
        lengths = curve["prompt_length"].to_numpy()
        at = int(np.argmax(lengths) if typical is None else np.flatnonzero(lengths == typical)[0])
        method = str(curve["typical_method"].iloc[at])
        optimal_length = len(optimum["upto_prompt"])
        ratio = (typical / optimal_length
                 if typical is not None and optimal_length > 0 else None)
        rows.append({"predictor": predictor, "replicate": int(replicate),
                     "experiment": str(land["experiment"].iloc[0]),
                     "task": task, "in_meta_distribution": bool(in_meta_distribution[task]),
                     "max_prompt_length": int(land["prompt_length"].max()),
                     "optimal_prompt": optimum["upto_prompt"], "optimal_length": optimal_length,
                     "optimal_kl": float(optimum["upto_kl"]),
                     "max_typical_length": int(curve["prompt_length"].max()),
                     "typical_length": typical, "typical_method": method,
                     "length_ratio": ratio})
    return {name: [row[name] for row in rows] for name in rows[0]} if rows else {}


def format_token_efficiency(columns: dict) -> str:
    """The token-efficiency table as fixed-width text (for logs); a typical length beyond the
    measured range shows as "> longest measured length"."""
    head = ("predictor", "task", "IMD", "optimal prompt", "len", "KL", "typical len", "median",
            "ratio")
    lines = []
    for i in range(len(columns.get("task", []))):
        prompt = columns["optimal_prompt"][i] or "(empty)"
        typical = columns["typical_length"][i]
        ratio = columns["length_ratio"][i]
        beyond = f"> {columns['max_typical_length'][i]}"
        lines.append((columns["predictor"][i], columns["task"][i],
                      "IMD" if columns["in_meta_distribution"][i] else "OOMD", prompt,
                      str(columns["optimal_length"][i]), f"{columns['optimal_kl'][i]:.3e}",
                      beyond if typical is None else str(typical),
                      "exact" if columns["typical_method"][i] == "exact_counts" else "sampled",
                      "-" if ratio is None else f"{ratio:.1f}"))
    widths = [max(len(r[j]) for r in [head, *lines]) for j in range(len(head))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
                     for row in [head, *lines])

