"""Exact effects of single prompt edits, their kinds, and the local structure of a landscape.
Transfer regret is in `promptscape.transfer`, the observational estimate of edit effects in
`promptscape.observational`.

Shape legend (as in `sources.base`): P prompts of length 0..L_max in canonical order
(`prompts.all_prompts`), E edges (single edits), V symbols, M evaluation sequences.

Edits
-----
A single edit of a prompt s (docs/science.md, "Edit") is one of

``insert``
    a symbol v at position i (0 <= i <= len(s): prepending and appending included), below
    L_max; ``position`` is the new symbol's index in the child, ``symbol`` is v.
``delete``
    the symbol at position i; ``symbol`` is the deleted one.
``substitute``
    the symbol at position i by another one; ``symbol`` is the new symbol, ``replaced`` the
    old one.
``swap``
    the neighbours at positions i and i + 1, only where they differ; ``symbol`` is s[i] (it
    moves right), ``replaced`` is s[i + 1] (it moves left).

Deduplication: two edits of one operation that give the same child are one edge, the one
with the least position (then symbol). That happens only inside a run of equal symbols:
inserting v anywhere around a run of v's, or deleting any symbol of a run, gives one child,
recorded at the run's left end. Substitutions and swaps never collide. Edits of different
operations never give the same child either (an insertion lengthens, a deletion shortens, a
substitution changes one position and a swap two), so every (parent, child) pair is one
edge, and each edge has its reverse (insert/delete, substitute/substitute, swap/swap).
`edit_edges` returns them sorted by parent, then operation (in `OPERATIONS` order),
position and symbol. The strategies' ``hill_climb`` neighbourhood (`strategies.neighbours`)
is the edges of operations insert, delete and substitute.

The exact effect of an edge is ``KL(child) - KL(parent)`` (`delta_kl`): no model is
evaluated. Where the landscape is estimated (``monte_carlo``), the difference is estimated
from the same shared evaluation set for both prompts, and its paired standard error comes
from per-sequence losses (`delta_standard_error`; exact landscapes: 0).

Improvement and ties: an edge improves when ``delta < -tolerance`` (nats, absolute), and
two KLs within ``tolerance`` are equal: the landscape's tie rule, one place for both
(`landscape.resolution`, docs/science.md "Ties"). A caller holding a landscape artifact
passes its ``kl_resolution`` (the width its optimal class and ranks were decided with);
without one, the tolerance is `landscape.default_resolution` of the KLs given. Exact ties of
the science (permutations of a prompt under an exchangeable Bayes predictor) come out
bitwise equal, since a count class is computed once; the tolerance absorbs the rounding of
``L - H`` between classes that are mathematically equal, and nothing wider: two KLs 1e-9
nats apart differ, and an edit between them improves.

Estimated landscapes (``monte_carlo``) decide by their standard errors instead: the caller
passes the landscape's `landscape.TieRule` (`landscape.landscape_rule` of its columns) as
the tolerance, and an edge improves only when its child is shown less than its parent by a
one-sided z-test at the landscape's Bonferroni level, with the paired standard error of the
two KLs (from the landscape's ``kl_residuals``) or, where it keeps none, the bound
``kl_se(a) + kl_se(b)``; two KLs neither of which is shown less are equal (unresolved).
docs/science.md, "Every reader of an estimated landscape decides by its standard errors".

Edit kinds
----------
`EDIT_KINDS` is the registry (a new kind is one entry): each kind selects edges relative to
the task, given the task's marginal probability of each symbol (`symbol_marginals`; a coin
task theta: ``[1 - theta, theta]``). An edge *adds* symbol a when it raises a's count by one
(an insertion of a, or a substitution of another symbol by a) and *removes* a when it lowers
it (a deletion of a, or a substitution of a by another symbol): a substitution b -> a thus
both adds a and removes b, and an edge may belong to several kinds. ``lengthens`` is every
insertion, ``shortens`` every deletion, ``reorders`` every swap (the only edits that keep
the counts; they change nothing under an exchangeable predictor). A kind that needs the
task's most (least) probable symbol has no edges where that symbol is tied
(`extreme_symbols`, `unavailable_kinds`: coin(0.5), a task whose symbols are equally
likely): the caller logs the reason.

Local structure
---------------
`local_structure`: a *local optimum* is a prompt no edge from which improves; a *plateau* is
a connected component of the graph on local optima whose edges join two local optima of
equal KL (``|delta| <= tolerance``); steepest descent moves each prompt to its best
improving neighbour (least KL; children within the tolerance of that least KL are tied and
the lowest canonical index wins) and a prompt with none is its own sink, so sinks are
exactly the local optima and basins partition the prompts. (Two neighbouring local optima
always have equal KL within the tolerance, as neither improves on the other: plateaus are
the components of the edit graph restricted to local optima; the KL condition is kept
explicit for a caller that passes a neighbourhood that is not symmetric.)
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence

import numpy as np

from promptscape import landscape
from promptscape import prompts as prompts_lib
from promptscape.sources import Source, symbol_counts

OPERATIONS = ("insert", "delete", "substitute", "swap")
INSERT, DELETE, SUBSTITUTE, SWAP = range(4)

# Prompts whose KL is within this many nats of the optimum are "near the top".
DEFAULT_NEAR_TOP = 0.01
# Marginal probabilities within this relative distance of the largest (smallest) are tied.
MARGINAL_RELATIVE_TOLERANCE = 1e-9
# The most per-edge differences of per-sequence losses `delta_standard_error` holds at once.
DIFFERENCE_BYTES = 1 << 27


# ------------------------------------------------------------------ edges
@dataclasses.dataclass(frozen=True, eq=False)
class Edges:
    """Single edits of every prompt of length 0..L_max over V symbols (module doc).

    Arrays of length E: ``parent`` and ``child`` (canonical indices, int64), ``operation``
    (index into `OPERATIONS`, int8), ``position`` (int16), ``symbol`` and ``replaced``
    (int8; ``replaced`` is -1 for insertions and deletions)."""

    max_length: int
    vocab_size: int
    parent: np.ndarray
    child: np.ndarray
    operation: np.ndarray
    position: np.ndarray
    symbol: np.ndarray
    replaced: np.ndarray

    def __len__(self) -> int:
        return len(self.parent)

    @property
    def num_prompts(self) -> int:
        return prompts_lib.num_prompts(self.max_length, self.vocab_size)

    @property
    def added(self) -> np.ndarray:
        """The symbol whose count the edge raises, -1 where none: ``(E,)`` int8."""
        adds = (self.operation == INSERT) | (self.operation == SUBSTITUTE)
        return np.where(adds, self.symbol, -1).astype(np.int8)

    @property
    def removed(self) -> np.ndarray:
        """The symbol whose count the edge lowers, -1 where none: ``(E,)`` int8."""
        out = np.where(self.operation == DELETE, self.symbol, -1)
        return np.where(self.operation == SUBSTITUTE, self.replaced, out).astype(np.int8)

    @functools.cached_property
    def sorted_keys(self) -> tuple[np.ndarray, np.ndarray]:
        """``(keys, order)``: ``parent * P + child`` of every edge in ascending order, and
        the edges' positions in that order (computed once; `edge_index` looks pairs up in
        it)."""
        keys = self.parent * np.int64(self.num_prompts) + self.child
        order = np.argsort(keys, kind="stable")
        return keys[order], order

    def select(self, mask: np.ndarray) -> "Edges":
        """The edges where `mask` holds, in the same order."""
        mask = np.asarray(mask)
        return dataclasses.replace(
            self, **{name: getattr(self, name)[mask] for name in _EDGE_ARRAYS})


_EDGE_ARRAYS = ("parent", "child", "operation", "position", "symbol", "replaced")


def edit_edges(max_length: int, vocab_size: int,
               operations: Sequence[str] = OPERATIONS) -> Edges:
    """Every single edit of every prompt of length 0..`max_length` whose child stays within
    that range, deduplicated per operation (module doc), of the given `operations`.

    >>> e = edit_edges(1, 2)
    >>> for p, c, o in zip(e.parent, e.child, e.operation):
    ...     print(int(p), int(c), OPERATIONS[o])
    0 1 insert
    0 2 insert
    1 0 delete
    1 2 substitute
    2 0 delete
    2 1 substitute
    """
    V, L = int(vocab_size), int(max_length)
    prompts_lib._digits(V)
    if L < 0:
        raise ValueError(f"max_length == {L}, must be >= 0")
    unknown = [op for op in operations if op not in OPERATIONS]
    if unknown:
        raise ValueError(f"unknown edit operations {unknown}; known: {list(OPERATIONS)}")
    wanted = {OPERATIONS.index(op) for op in operations}
    offset = [(V**length - 1) // (V - 1) for length in range(L + 2)]
    parts: list[tuple[np.ndarray, ...]] = []
    for length in range(L + 1):
        code = np.arange(V**length, dtype=np.int64)
        digits = prompts_lib.enumerate_sequences(length, V).astype(np.int64)  # (V^l, l)
        blocks: list[tuple] = []

        def add(keep, child_code, child_length, op, pos, sym, rep):
            # One block of edges of one (operation, position, symbol): those where `keep`.
            n = int(keep.sum())
            if n:
                blocks.append((code[keep] + offset[length], child_code[keep] + offset[child_length],
                               np.full(n, op, np.int8), np.full(n, pos, np.int16),
                               np.broadcast_to(sym, keep.shape)[keep].astype(np.int8),
                               np.broadcast_to(rep, keep.shape)[keep].astype(np.int8)))

        if INSERT in wanted and length < L:
            for i in range(length + 1):
                tail = V ** (length - i)  # the code's last length - i digits
                high, low = code // tail, code % tail
                for v in range(V):
                    # Inserting v right after a v gives the child of the insertion before it.
                    keep = np.ones(len(code), bool) if i == 0 else digits[:, i - 1] != v
                    add(keep, (high * V + v) * tail + low, length + 1, INSERT, i, v, -1)
        if DELETE in wanted:
            for i in range(length):
                tail = V ** (length - i - 1)
                high, low = code // (tail * V), code % tail
                keep = np.ones(len(code), bool) if i == 0 else digits[:, i - 1] != digits[:, i]
                add(keep, high * tail + low, length - 1, DELETE, i, digits[:, i], -1)
        if SUBSTITUTE in wanted:
            for i in range(length):
                weight = V ** (length - 1 - i)
                for v in range(V):
                    keep = digits[:, i] != v
                    add(keep, code + (v - digits[:, i]) * weight, length, SUBSTITUTE, i, v,
                        digits[:, i])
        if SWAP in wanted:
            for i in range(length - 1):
                a, b = digits[:, i], digits[:, i + 1]
                weight = V ** (length - 2 - i)
                add(a != b, code + (b - a) * (V * weight) + (a - b) * weight, length, SWAP, i,
                    a, b)
        if blocks:
            columns = [np.concatenate(col) for col in zip(*blocks)]
            # Blocks are in (operation, position, symbol) order; a stable sort by parent keeps it.
            order = np.argsort(columns[0], kind="stable")
            parts.append(tuple(col[order] for col in columns))
    if parts:
        columns = [np.concatenate(col) for col in zip(*parts)]
    else:
        columns = [np.zeros(0, dtype) for dtype in
                   (np.int64, np.int64, np.int8, np.int16, np.int8, np.int8)]
    return Edges(L, V, *columns)


def apply_edit(prompt: str, operation: str, position: int, symbol: int,
               vocab_size: int) -> str:
    """The child of one edit, by string operations (the brute-force reference); `symbol` is
    written in the alphabet of `vocab_size` symbols.

    >>> apply_edit("011", "insert", 0, 2, 3), apply_edit("011", "swap", 0, 0, 3)
    ('2011', '101')
    >>> apply_edit("th_", "insert", 2, 4, 27)
    'the_'
    """
    i, v = int(position), prompts_lib.alphabet(vocab_size)[int(symbol)]
    if operation == "insert":
        return prompt[:i] + v + prompt[i:]
    if operation == "delete":
        return prompt[:i] + prompt[i + 1:]
    if operation == "substitute":
        return prompt[:i] + v + prompt[i + 1:]
    if operation == "swap":
        return prompt[:i] + prompt[i + 1] + prompt[i] + prompt[i + 2:]
    raise ValueError(f"unknown edit operation {operation!r}; known: {list(OPERATIONS)}")


def _symbol(character: str) -> int:
    return int(prompts_lib.to_array(character)[0])


def single_edit(parent: str, child: str) -> tuple[str, int, int, int] | None:
    """The edge from `parent` to `child` as `edit_edges` records it, ``(operation, position,
    symbol, replaced)`` (``replaced`` -1 for insertions and deletions), or None where the
    child is not one edit of the parent (or is the parent). Deduplicated as `edit_edges`:
    the least position, so ``apply_edit(parent, *edge[:3]) == child``.

    >>> single_edit("011", "0011"), single_edit("011", "01"), single_edit("011", "101")
    (('insert', 0, 0, -1), ('delete', 1, 1, -1), ('swap', 0, 0, 1))
    >>> single_edit("011", "111"), single_edit("011", "100")
    (('substitute', 0, 1, 0), None)
    """
    n, m = len(parent), len(child)
    if m == n + 1:
        for i in range(m):
            if child[:i] + child[i + 1:] == parent:
                return "insert", i, _symbol(child[i]), -1
        return None
    if m == n - 1:
        for i in range(n):
            if parent[:i] + parent[i + 1:] == child:
                return "delete", i, _symbol(parent[i]), -1
        return None
    if m != n:
        return None
    diff = [i for i in range(n) if parent[i] != child[i]]
    if len(diff) == 1:
        i = diff[0]
        return "substitute", i, _symbol(child[i]), _symbol(parent[i])
    if len(diff) == 2 and diff[1] == diff[0] + 1:
        i = diff[0]
        if parent[i] == child[i + 1] and parent[i + 1] == child[i]:
            return "swap", i, _symbol(parent[i]), _symbol(parent[i + 1])
    return None


def edge_index(edges: Edges, parent: np.ndarray, child: np.ndarray) -> np.ndarray:
    """The position in `edges` of the edge from each `parent` to each `child` (canonical
    indices, ``(n,)``), -1 where there is none (every (parent, child) pair is at most one
    edge: module doc)."""
    P = np.int64(edges.num_prompts)
    keys, order = edges.sorted_keys
    wanted = np.asarray(parent, dtype=np.int64) * P + np.asarray(child, dtype=np.int64)
    if not len(keys):
        return np.full(len(wanted), -1, dtype=np.int64)
    at = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
    return np.where(keys[at] == wanted, order[at], -1).astype(np.int64)


# ------------------------------------------------------------------ exact effects
def delta_kl(edges: Edges, kl: np.ndarray) -> np.ndarray:
    """``KL(child) - KL(parent)`` of every edge, ``(E,)``, from the landscape's KL ``(P,)``
    in canonical order."""
    kl = _check_landscape(edges, kl)
    return kl[edges.child] - kl[edges.parent]


def delta_standard_error(edges: Edges, losses: np.ndarray | None = None,
                         weights: np.ndarray | None = None, strata: np.ndarray | None = None,
                         *, max_bytes: int = DIFFERENCE_BYTES) -> np.ndarray:
    """Paired standard error of every edge's ΔKL, ``(E,)``.

    `losses` ``(P, M)``: each prompt's per-sequence losses on the shared evaluation set (or
    per-sequence KL: the task's log-probability cancels in the difference), with the set's
    stratum `weights` and `strata` as stored with it (default: plain draws, one stratum);
    the error is `landscape.stratified_mean`'s of ``l(child, x) - l(parent, x)``. None (an
    exact landscape): zeros. Computed a block of edges at a time (at most `max_bytes` of
    differences)."""
    if losses is None:
        return np.zeros(len(edges))
    losses = np.asarray(losses, dtype=np.float64)
    if losses.ndim != 2 or losses.shape[0] != edges.num_prompts:
        raise ValueError(f"per-sequence losses of shape {losses.shape}, not "
                         f"({edges.num_prompts}, M)")
    M = losses.shape[1]
    weights = np.full(M, 1.0 / M) if weights is None else np.asarray(weights, dtype=float)
    strata = np.zeros(M, dtype=np.int64) if strata is None else np.asarray(strata)
    step = max(1, int(max_bytes) // (8 * max(1, M)))
    out = np.empty(len(edges))
    for a in range(0, len(edges), step):
        diff = losses[edges.child[a:a + step]] - losses[edges.parent[a:a + step]]
        out[a:a + step] = landscape.stratified_mean(diff, weights, strata)[1]
    return out


# ------------------------------------------------------------------ edit kinds
@dataclasses.dataclass(frozen=True)
class EditKind:
    """One edit kind: its name, what it selects, and which extreme symbol of the task it
    needs (``"most"``, ``"least"`` or None); `select(edges, symbol)` returns the mask of
    its edges, `symbol` the needed symbol (None when it needs none)."""

    name: str
    description: str
    needs: str | None
    select: Callable[[Edges, int | None], np.ndarray]


# The kinds' selections (named functions, not lambdas: a job's code identity follows names,
# `pipeline.provenance`).
def _adds(edges: Edges, symbol: int | None) -> np.ndarray:
    return edges.added == symbol


def _removes(edges: Edges, symbol: int | None) -> np.ndarray:
    return edges.removed == symbol


def _inserts(edges: Edges, symbol: int | None) -> np.ndarray:
    return edges.operation == INSERT


def _deletes(edges: Edges, symbol: int | None) -> np.ndarray:
    return edges.operation == DELETE


def _swaps(edges: Edges, symbol: int | None) -> np.ndarray:
    return edges.operation == SWAP


EDIT_KINDS: dict[str, EditKind] = {kind.name: kind for kind in (
    EditKind("adds_most_probable", "raises the count of the task's most probable symbol "
             "(inserts it, or substitutes it for another)", "most",
             _adds),
    EditKind("adds_least_probable", "raises the count of the task's least probable symbol",
             "least", _adds),
    EditKind("removes_most_probable", "lowers the count of the task's most probable symbol "
             "(deletes it, or substitutes another for it)", "most",
             _removes),
    EditKind("removes_least_probable", "lowers the count of the task's least probable "
             "symbol", "least", _removes),
    EditKind("lengthens", "inserts a symbol", None, _inserts),
    EditKind("shortens", "deletes a symbol", None, _deletes),
    EditKind("reorders", "swaps two different neighbours (keeps every count)", None,
             _swaps),
)}


def symbol_marginals(task: Source, task_length: int, max_sequences: int = 1 << 20) -> np.ndarray:
    """The task's probability of each symbol, averaged over the T positions of a task
    sequence, ``(V,)``: for an exchangeable task the law of any one symbol (coin theta:
    ``[1 - theta, theta]``), otherwise by enumerating the V**T sequences (at most
    `max_sequences`)."""
    V, T = task.vocab_size, int(task_length)
    stated = task.symbol_marginals(T)
    if stated is not None:  # the kind's own exact form (the word kinds: renewal sums)
        return np.asarray(stated, dtype=float)
    if task.exchangeable or T <= 1:
        return np.exp(task.log_prob(np.arange(V, dtype=np.uint8)[:, None]))
    if not prompts_lib.can_encode(T, V) or V**T > max_sequences:
        raise ValueError(f"symbol_marginals of a {task.kind} task enumerates {V}**{T} "
                         f"sequences, more than max_sequences == {max_sequences}")
    seqs = prompts_lib.enumerate_sequences(T, V)
    p = np.exp(task.log_prob(seqs))
    return p @ symbol_counts(seqs, V) / T


def extreme_symbols(marginals, relative_tolerance: float = MARGINAL_RELATIVE_TOLERANCE):
    """``(most, least)``: the task's most and least probable symbols, each None where it
    is tied (within `relative_tolerance` of the largest probability).

    >>> extreme_symbols([0.3, 0.7]), extreme_symbols([0.5, 0.5]), extreme_symbols([0.5, 0.25, 0.25])
    ((1, 0), (None, None), (0, None))
    """
    p = _check_marginals(marginals)
    width = relative_tolerance * p.max()
    most = np.flatnonzero(p >= p.max() - width)
    least = np.flatnonzero(p <= p.min() + width)
    return (int(most[0]) if len(most) == 1 else None,
            int(least[0]) if len(least) == 1 else None)


def unavailable_kinds(marginals, relative_tolerance: float = MARGINAL_RELATIVE_TOLERANCE
                      ) -> dict[str, str]:
    """The kinds that have no edges for this task, each with the reason (for the log).

    >>> unavailable_kinds([0.5, 0.5])["adds_most_probable"]
    'the most probable symbol is tied among symbols [0, 1] (p = [0.5, 0.5])'
    """
    p = _check_marginals(marginals)
    symbols = dict(zip(("most", "least"), extreme_symbols(p, relative_tolerance)))
    width = relative_tolerance * p.max()
    tied = {"most": np.flatnonzero(p >= p.max() - width),
            "least": np.flatnonzero(p <= p.min() + width)}
    return {kind.name: (f"the {kind.needs} probable symbol is tied among symbols "
                        f"{tied[kind.needs].tolist()} (p = {p[tied[kind.needs]].tolist()})")
            for kind in EDIT_KINDS.values()
            if kind.needs is not None and symbols[kind.needs] is None}


def kind_masks(edges: Edges, marginals,
               relative_tolerance: float = MARGINAL_RELATIVE_TOLERANCE) -> dict[str, np.ndarray]:
    """``{kind: (E,) bool}`` for every kind of `EDIT_KINDS` available for this task (in
    registry order); the kinds of `unavailable_kinds` are left out."""
    p = _check_marginals(marginals)
    if len(p) != edges.vocab_size:
        raise ValueError(f"{len(p)} marginal probabilities for edges over "
                         f"{edges.vocab_size} symbols")
    symbols = dict(zip(("most", "least"), extreme_symbols(p, relative_tolerance)))
    out = {}
    for kind in EDIT_KINDS.values():
        symbol = None if kind.needs is None else symbols[kind.needs]
        if kind.needs is None or symbol is not None:
            out[kind.name] = np.asarray(kind.select(edges, symbol), dtype=bool)
    return out


def summarise_kinds(edges: Edges, kl: np.ndarray, marginals, *,
                    tolerance: float | landscape.TieRule | None = None,
                    near_top: float = DEFAULT_NEAR_TOP) -> list[dict]:
    """One row per available kind: ``kind``, ``edges``, the ΔKL distribution's ``median``,
    ``q1``, ``q3`` and ``iqr`` (numpy's linear quantiles), ``share_improving`` (the child
    shown less than the parent by the landscape's rule, `tie_rule`: exact, ΔKL <
    -tolerance), ``share_unresolved`` (ΔKL told from 0 in neither direction), that share
    improving among edges whose parent is near the top (KL within `near_top` nats of the
    optimum: ``near_top_edges``, ``share_improving_near_top``) and among the rest
    (``rest_edges``, ``share_improving_rest``), and the median and largest standard error of
    ΔKL (``se_median``, ``se_max``: 0 on an exact landscape). An edit between two prompts of
    infinite KL (both impossible under the predictor) has no ΔKL (inf - inf): it is counted in
    ``undefined_edges`` and left out of every other statistic. A share over no edges is NaN;
    a kind with no edges (with a ΔKL) has NaN quantiles.

    >>> kl = np.array([0.5, np.inf, np.inf])  # "", "0", "1": both one-symbol prompts impossible
    >>> rows = {r["kind"]: r for r in summarise_kinds(edit_edges(1, 2), kl, [0.7, 0.3])}
    >>> r = rows["adds_least_probable"]  # "" -> "1" (+inf) and "0" -> "1" (inf - inf)
    >>> r["edges"], r["undefined_edges"], r["median"], r["share_improving"]
    (2, 1, inf, 0.0)
    >>> rows["lengthens"]["median"], rows["lengthens"]["undefined_edges"]
    (inf, 0)
    """
    kl = _check_landscape(edges, kl)
    rule = tie_rule(kl, tolerance)
    with np.errstate(invalid="ignore"):  # inf - inf: two impossible prompts, no effect
        delta = kl[edges.child] - kl[edges.parent]
    se = rule.difference_se(edges.child, edges.parent)
    width = rule.width(se)
    with np.errstate(invalid="ignore"):
        improving = delta < -width
        unresolved = np.abs(delta) <= width
    top = (kl - kl.min() <= near_top)[edges.parent]
    defined = ~np.isnan(delta)
    rows = []
    for name, every in kind_masks(edges, marginals).items():
        mask = every & defined
        d = delta[mask]
        q1, median, q3 = _quantiles(d, (0.25, 0.5, 0.75)) if len(d) else (np.nan,) * 3
        rows.append({
            "kind": name, "edges": int(every.sum()), "undefined_edges": int((every & ~defined).sum()),
            "median": float(median), "q1": float(q1), "q3": float(q3), "iqr": float(q3 - q1),
            "share_improving": _share(improving, mask),
            "share_unresolved": _share(unresolved, mask),
            "near_top_edges": int((mask & top).sum()),
            "share_improving_near_top": _share(improving, mask & top),
            "rest_edges": int((mask & ~top).sum()),
            "share_improving_rest": _share(improving, mask & ~top),
            "se_median": float(np.median(se[mask])) if len(d) else np.nan,
            "se_max": float(se[mask].max()) if len(d) else np.nan,
        })
    return rows


def _quantiles(values: np.ndarray, qs) -> list[float]:
    """numpy's linear quantiles where the two order statistics around the quantile are
    finite; where one is infinite (an edit to or from an impossible prompt), the nearer of the
    two (numpy's interpolation makes NaN of a median between two infinite ΔKLs, or between
    -inf and inf).

    >>> _quantiles(np.array([0.0, 1.0]), (0.25,)), _quantiles(np.array([np.inf, np.inf]), (0.5,))
    ([0.25], [inf])
    >>> _quantiles(np.array([-np.inf, 0.0, np.inf]), (0.2, 0.5, 0.8))
    [-inf, 0.0, inf]
    """
    x = np.sort(np.asarray(values, dtype=float))
    out = []
    for q in qs:
        position = q * (len(x) - 1)
        low, high = int(np.floor(position)), int(np.ceil(position))
        weight = position - low
        if x[low] == x[high] or weight == 0:
            out.append(float(x[low]))
        elif np.isfinite(x[low]) and np.isfinite(x[high]):
            out.append(float(x[low] + (x[high] - x[low]) * weight))
        else:
            out.append(float(x[low] if weight < 0.5 else x[high]))
    return out


def tie_tolerance(kl: np.ndarray, tolerance: float | None = None) -> float:
    """The width within which two KLs are equal and below which an edit does not improve:
    `tolerance` (a landscape's ``kl_resolution``) where given, else the landscape's default
    rule on these KLs (`landscape.default_resolution`). Module doc, "Improvement and ties"."""
    if tolerance is None:
        return landscape.default_resolution(kl)
    tolerance = float(tolerance)
    if not (np.isfinite(tolerance) and tolerance >= 0):
        raise ValueError(f"tolerance == {tolerance}, must be a finite number of nats >= 0")
    return tolerance


def tie_rule(kl: np.ndarray, tolerance: float | landscape.TieRule | None = None
             ) -> landscape.TieRule:
    """The rule edits decide by: `tolerance` itself where it is a `landscape.TieRule` (an
    estimated landscape's, `landscape.landscape_rule`), else the exact rule of width
    `tie_tolerance`. Module doc, "Improvement and ties"."""
    if isinstance(tolerance, landscape.TieRule):
        return tolerance
    return landscape.TieRule(tie_tolerance(kl, tolerance))


# ------------------------------------------------------------------ local structure
@dataclasses.dataclass(frozen=True, eq=False)
class LocalStructure:
    """Per prompt ``(P,)``: ``local_optimum`` (bool), ``plateau`` (the plateau's number,
    0.. in the canonical order of each plateau's first member; -1 for other prompts),
    ``kl_above_optimum``, ``descent`` (the next prompt of steepest descent; itself for a
    local optimum), ``sink`` (where descent ends) and ``basin_size`` (prompts whose descent
    ends here; 0 except at local optima)."""

    local_optimum: np.ndarray
    plateau: np.ndarray
    kl_above_optimum: np.ndarray
    descent: np.ndarray
    sink: np.ndarray
    basin_size: np.ndarray

    @property
    def num_plateaus(self) -> int:
        return int(self.plateau.max()) + 1 if len(self.plateau) else 0


def local_structure(edges: Edges, kl: np.ndarray,
                    tolerance: float | landscape.TieRule | None = None,
                    optimal: np.ndarray | None = None) -> LocalStructure:
    """Local optima, plateaus, steepest-descent sinks and basins (module doc) under the
    neighbourhood of `edges` (all four operations, or those `edit_edges` was given), by the
    landscape's rule (`tie_rule`). On an estimated landscape an edit improves only when its
    child is shown less, neighbours join a plateau when neither is shown less, and the
    local optima in the landscape's `optimal` class (``(P,)`` bool, where given) are one
    plateau, the optimum's: the evaluation set does not tell them apart from its best."""
    kl = _check_landscape(edges, kl)
    rule = tie_rule(kl, tolerance)
    tolerance = rule.tolerance
    P = len(kl)
    parent, child = edges.parent, edges.child
    if np.any(parent[1:] < parent[:-1]):  # `edit_edges` sorts by parent; others may not
        order = np.argsort(parent, kind="stable")
        parent, child = parent[order], child[order]
    with np.errstate(invalid="ignore"):  # inf - inf: two impossible prompts, no effect
        delta = kl[child] - kl[parent]
    width = rule.width(rule.difference_se(child, parent))
    with np.errstate(invalid="ignore"):
        improving = delta < -width
    up, down = parent[improving], child[improving]
    optimum = np.ones(P, dtype=bool)
    optimum[up] = False

    # Steepest descent: per parent (a segment of the sorted improving edges), the least
    # child KL, then the lowest index among children within the tolerance of it.
    descent = np.arange(P, dtype=np.int64)
    if len(up):
        new = np.r_[True, up[1:] != up[:-1]]
        starts = np.flatnonzero(new)
        segment = np.cumsum(new) - 1
        least = np.minimum.reduceat(kl[down], starts)
        tied = kl[down] <= least[segment] + tolerance
        descent[up[starts]] = np.minimum.reduceat(np.where(tied, down, P), starts)
    sink = descent.copy()
    while True:  # pointer jumping: every path halves, so O(log depth) rounds
        further = sink[sink]
        if np.array_equal(further, sink):
            break
        sink = further
    basin = np.bincount(sink, minlength=P).astype(np.int64)

    # Plateaus: components of the equal-KL edges between local optima (and, estimated,
    # of the optimal class's local optima, chained).
    with np.errstate(invalid="ignore"):
        flat = optimum[parent] & optimum[child] & (np.abs(delta) <= width)
    rows, cols = parent[flat], child[flat]
    if rule.is_estimated and optimal is not None:
        members = np.flatnonzero(optimum & np.asarray(optimal, dtype=bool))
        rows, cols = np.r_[rows, members[:-1]], np.r_[cols, members[1:]]
    # scipy only here: the workflow imports this module at parse time (the edit kinds name
    # the columns of study.tables), where scipy.sparse would cost a quarter second.
    from scipy import sparse
    from scipy.sparse import csgraph

    graph = sparse.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(P, P)).tocsr()
    _, labels = csgraph.connected_components(graph, directed=True, connection="weak")
    members = np.flatnonzero(optimum)
    plateau = np.full(P, -1, dtype=np.int64)
    _, first, inverse = np.unique(labels[members], return_index=True, return_inverse=True)
    renumber = np.empty(len(first), dtype=np.int64)
    renumber[np.argsort(first, kind="stable")] = np.arange(len(first))
    plateau[members] = renumber[inverse]
    return LocalStructure(optimum, plateau, kl - kl.min(), descent, sink, basin)


# ------------------------------------------------------------------ helpers
def _share(hits: np.ndarray, mask: np.ndarray) -> float:
    n = int(mask.sum())
    return float(hits[mask].sum() / n) if n else float("nan")


def _check_landscape(edges: Edges, kl) -> np.ndarray:
    kl = np.asarray(kl, dtype=np.float64)
    if kl.shape != (edges.num_prompts,):
        raise ValueError(f"a landscape of shape {kl.shape}, not ({edges.num_prompts},): the "
                         f"prompts of length 0..{edges.max_length} over {edges.vocab_size} "
                         "symbols in canonical order")
    return kl


def _check_marginals(marginals) -> np.ndarray:
    p = np.asarray(marginals, dtype=np.float64)
    if p.ndim != 1 or len(p) < 2:
        raise ValueError(f"symbol marginals of shape {p.shape}, must be (V,) with V >= 2")
    if np.any(~np.isfinite(p)) or np.any(p < 0) or abs(p.sum() - 1) > 1e-6:
        raise ValueError(f"symbol marginals {p.tolist()} must be probabilities summing to 1")
    return p
