"""An observational estimate of edit effects, judged against the truth.

An observational study of prompt optimisation sees only the steps its searches took: per
edit kind (`edits.EDIT_KINDS`), the change of the empirical loss L_N along visited edges.
`observational_estimates` fits the per-kind estimates such a study would (naive least
squares, propensity-weighted); `error_decomposition` splits the raw mean's error against
the exact mean ΔKL over all of the kind's edges into D_N noise and selection
(docs/science.md). Shape legend: n rows of an observational table, k covariates.
"""

from __future__ import annotations

import numpy as np


def observational_estimates(kind, delta, covariates=None, *, bins: int = 4) -> list[dict]:
    """Per-kind estimates of the mean change of loss from a table of visited edges, as an
    observational study of prompt optimisation would fit them.

    `kind` ``(n,)``: each row's edit kind (an edge of several kinds is one row per kind);
    `delta` ``(n,)``: its change of L_N; `covariates` ``(n, k)``: for example the parent's
    length, symbol counts and rank (None: none).

    One row per kind (sorted by name) with ``kind``, ``visits``, ``mean`` (the raw mean of
    `delta` over its rows) and

    ``naive``
        least squares of `delta` on indicators of the kinds (no intercept) and the
        covariates centred at their mean over all rows, a slope shared by every kind: the
        kind's coefficient is its fitted mean at the average covariates.
    ``weighted``
        inverse probability weighting by the kind's frequency given the covariates, the
        propensity estimated by stratified frequencies: each covariate is cut into at most
        `bins` quantile bins (used as is where it takes at most `bins` values), a stratum is
        one joint cell, and e_k(cell) = (rows of kind k in the cell) / (rows in the cell).
        The normalised (Hajek) weighted mean, sum_i Y_i / e_k(cell_i) / sum_i 1 / e_k(cell_i)
        over the kind's rows, is the mean over cells of the kind's mean in the cell,
        weighted by the cell's share of all rows: the kind's mean had its covariates the
        distribution of all visited rows. Cells where the kind never occurs cannot be
        weighted (no overlap): they are left out, and ``overlap`` is the share of rows in
        cells where it does occur.

    Unlike the naive fit, the weighted estimate needs no model of how the effect depends on
    the covariates, so it removes confounding that a shared linear slope cannot (an effect
    that varies with the covariates while the kind's frequency does too)."""
    kind = np.asarray(kind)
    delta = np.asarray(delta, dtype=np.float64)
    n = len(delta)
    if kind.shape != (n,):
        raise ValueError(f"{kind.shape[0] if kind.ndim else 0} kinds for {n} changes of loss")
    X = np.zeros((n, 0)) if covariates is None else np.asarray(covariates, dtype=np.float64)
    if X.ndim == 1:
        X = X[:, None]
    if X.shape[0] != n:
        raise ValueError(f"{X.shape[0]} rows of covariates for {n} changes of loss")
    if int(bins) < 1:
        raise ValueError(f"bins == {bins}, must be >= 1")
    if n == 0:
        return []
    names, k = np.unique(kind, return_inverse=True)
    K = len(names)
    design = np.concatenate([np.eye(K)[k], X - X.mean(axis=0)], axis=1)
    beta = np.linalg.lstsq(design, delta, rcond=None)[0]

    cell = _cells(X, int(bins))
    C = int(cell.max()) + 1
    in_cell = np.bincount(cell, minlength=C).astype(np.float64)
    rows = []
    for j, name in enumerate(names):
        mine = k == j
        count = np.bincount(cell[mine], minlength=C).astype(np.float64)
        total = np.bincount(cell[mine], weights=delta[mine], minlength=C)
        live = count > 0
        share = in_cell[live] / n
        covered = float(in_cell[live].sum()) / n  # counts summed first: exactly 1 when full
        rows.append({
            "kind": _plain(name),
            "visits": int(mine.sum()),
            "mean": float(delta[mine].mean()),
            "naive": float(beta[j]),
            "weighted": float((share * total[live] / count[live]).sum() / share.sum()),
            "overlap": covered,
        })
    return rows


def error_decomposition(visited_kind, visited_delta_loss, visited_delta_kl,
                        all_kind, all_delta_kl) -> list[dict]:
    """Split the error of the raw observational mean of each kind into D_N noise and
    selection.

    Per kind (sorted by name, the kinds of the visited rows): ``visited_loss`` (the mean
    ΔL_N over its visited rows), ``visited_kl`` (the mean exact ΔKL over the same rows),
    ``all_kl`` (the mean exact ΔKL over all of the kind's edges: the target), ``noise`` =
    visited_loss - visited_kl (what the finite dataset adds), ``selection`` = visited_kl -
    all_kl (what visiting some edges rather than all adds) and ``error`` = their sum =
    visited_loss - all_kl. A visited kind without edges in `all_kind` is an error."""
    vk = np.asarray(visited_kind)
    vl = np.asarray(visited_delta_loss, dtype=np.float64)
    vd = np.asarray(visited_delta_kl, dtype=np.float64)
    ak = np.asarray(all_kind)
    ad = np.asarray(all_delta_kl, dtype=np.float64)
    if not len(vk) == len(vl) == len(vd):
        raise ValueError(f"visited rows: {len(vk)} kinds, {len(vl)} changes of L_N, "
                         f"{len(vd)} changes of KL")
    if len(ak) != len(ad):
        raise ValueError(f"all edges: {len(ak)} kinds, {len(ad)} changes of KL")
    rows = []
    for name in np.unique(vk):
        mine, every = vk == name, ak == name
        if not every.any():
            raise ValueError(f"edit kind {_plain(name)!r} was visited but has no edges among "
                             "all edges")
        loss, visited, target = vl[mine].mean(), vd[mine].mean(), ad[every].mean()
        rows.append({"kind": _plain(name),
                     "visits": int(mine.sum()), "edges": int(every.sum()),
                     "visited_loss": float(loss), "visited_kl": float(visited),
                     "all_kl": float(target), "noise": float(loss - visited),
                     "selection": float(visited - target), "error": float(loss - target)})
    return rows


# ------------------------------------------------------------------ helpers
def _cells(X: np.ndarray, bins: int) -> np.ndarray:
    """Joint cell of each row after cutting each column into at most `bins` bins: ``(n,)``
    int64 codes 0..C-1."""
    codes = np.zeros((X.shape[0], X.shape[1]), dtype=np.int64)
    for j in range(X.shape[1]):
        values, inverse = np.unique(X[:, j], return_inverse=True)
        if len(values) <= bins:
            codes[:, j] = inverse
        else:
            cuts = np.unique(np.quantile(X[:, j], np.linspace(0, 1, bins + 1)[1:-1]))
            codes[:, j] = np.searchsorted(cuts, X[:, j], side="right")
    if X.shape[1] == 0:
        return np.zeros(X.shape[0], dtype=np.int64)
    return np.unique(codes, axis=0, return_inverse=True)[1].reshape(-1).astype(np.int64)

def _plain(value):
    """A numpy scalar as the Python value (a kind name for rows and messages)."""
    return value.item() if isinstance(value, np.generic) else value
