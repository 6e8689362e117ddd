"""The pretraining prior read back from a predictor (docs/science.md, "The pretraining prior
read back").

An exchangeable source is a mixing measure mu over the simplex of categoricals over V
symbols: a sequence draws theta ~ mu once, then i.i.d. symbols. Its Bayes predictive after a
context with symbol counts c is

    q(v | c) = E_mu[theta^c theta_v] / E_mu[theta^c],      theta^c = prod_v theta_v^c_v,

a ratio of moments of mu, so the predictive after every count class of length < d fixes the
moments of mu up to order d (for a binary K-atom mixture, 2K - 1 moments fix its atoms and
weights). Reading the prior back from a predictor is then a regression: query the predictor's
next-symbol distribution after probe contexts (no task data), and fit the predictive of a
family of mixing measures to it:

``mixture``
    K atoms (coins for V = 2, categoricals over V symbols) with weights: K = 1..K_max, each
    fitted by least squares on the probabilities from several starts, K chosen by the largest
    prediction error on held-out contexts (the smallest K within `K_TIE` of the least).
``dirichlet``
    Beta (V = 2) or Dirichlet(alpha): q(v | c) = (alpha_v + c_v) / (sum(alpha) + |c|).

Probe contexts are the count classes (`probe_contexts`): one context per composition of each
length 0..D, its canonical representative 0^c0 1^c1 ...; at probe length d the fit sees the
contexts of length < d and holds out those of length d, and `queries` is the number of
contexts of length <= d (each query is one next-symbol distribution).

The fit is compared with the true prior by W1 between the two mixing measures over the
simplex, under the total-variation distance between categoricals (for V = 2, |theta -
theta'|): exact for two finite measures (a transport problem) and, for V = 2, for a finite or
Beta measure (the integral of the difference of the CDFs); a continuous measure over V > 2
symbols (Dirichlet, topic mixture) is discretised on a grid of the simplex, and the grid's
spacing is reported beside the distance (`W1.resolution`).

Sources that are not exchangeable (switching coins, Markov chains) have no mixing measure over
categoricals: `check_exchangeable` refuses them by name (`PriorFitError`).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from promptscape import special
from promptscape.sources import Source, build_source, compositions
from promptscape.sources.base import canonical_prompt

FAMILIES = ("mixture", "dirichlet")
# Default probe: count classes of length 0..8 and mixtures of up to 4 components.
PROBE_LENGTH = 8
MAX_COMPONENTS = 4
# Held-out errors within this (absolute, in probability) of the least are ties, broken
# towards fewer components: a network's float32 probabilities resolve no finer.
K_TIE = 1e-6
# Grid of the simplex on which a continuous measure over V > 2 symbols is discretised for W1
# against a finite measure, and against another continuous one (a transport problem on the
# product of the two grids).
GRID = 60
GRID_PAIR = 16


class PriorFitError(ValueError):
    """A source or predictor whose prior this module cannot read back, by name."""


def check_exchangeable(source: Source, where: str = "pretraining") -> None:
    """Refuse, by name, a source that is no mixture of i.i.d. categoricals."""
    if not source.exchangeable:
        raise PriorFitError(
            f"{where}: source kind {source.kind!r} is not exchangeable, so it is no mixing "
            "measure over categoricals and probe_prior cannot read its prior back "
            "(exchangeable kinds: coin, coin_mixture, beta_coin, categorical, "
            "categorical_mixture, dirichlet_categorical, topic_mixture)")


# ---------------------------------------------------------------- probing
def probe_contexts(vocab_size: int, max_length: int) -> tuple[list[str], np.ndarray]:
    """One context per count class of each length 0..max_length, its canonical
    representative, by length then `compositions` order: ``(contexts, counts (C, V))``."""
    counts = np.concatenate([compositions(n, vocab_size) for n in range(max_length + 1)])
    return [canonical_prompt(c) for c in counts], counts


def num_queries(vocab_size: int, max_length: int) -> int:
    """The count classes of lengths 0..max_length over V symbols: C(max_length + V, V)."""
    return math.comb(max_length + vocab_size, vocab_size)


def query(predictor, contexts: list[str], vocab_size: int) -> np.ndarray:
    """The predictor's next-symbol distribution after each context, ``(C, V)``: the loss of
    each context, as a prompt, on each one-symbol sequence."""
    symbols = np.arange(vocab_size, dtype=np.uint8)[:, None]  # (V, 1)
    probs = np.exp(-np.asarray(predictor.prompt_losses(list(contexts), symbols)))  # (C, V)
    return probs / probs.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------- the families
def mixture_predictive(counts: np.ndarray, weights: np.ndarray, atoms: np.ndarray) -> np.ndarray:
    """q(v | c) of a finite mixture: ``counts (C, V)``, ``weights (K,)``, ``atoms (K, V)``."""
    log_atoms = np.log(np.maximum(atoms, 1e-300))
    # Posterior over components after c: w_k prod_v theta_kv^c_v, normalised (log space).
    log_post = np.log(np.maximum(weights, 1e-300))[None, :] + counts @ log_atoms.T  # (C, K)
    log_post -= special.logsumexp(log_post, axis=1)[:, None]
    return np.exp(log_post) @ atoms  # (C, V)


def dirichlet_predictive(counts: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """q(v | c) = (alpha_v + c_v) / (sum(alpha) + |c|)."""
    post = counts + alpha[None, :]
    return post / post.sum(axis=1, keepdims=True)


@dataclasses.dataclass(frozen=True)
class Fit:
    """One fitted family: a finite `mixture` (``weights (K,)``, ``atoms (K, V)``) or a
    `dirichlet` (``alpha (V,)``; its mean as the one atom), with its errors: the largest
    total-variation distance between the predictor's and the fit's next-symbol distributions
    over the contexts it was fitted on, and over the held-out ones (NaN where none)."""
    family: str
    weights: np.ndarray
    atoms: np.ndarray
    alpha: np.ndarray | None
    train_error: float
    heldout_error: float

    @property
    def components(self) -> int:
        return len(self.weights)

    def predictive(self, counts: np.ndarray) -> np.ndarray:
        if self.alpha is not None:
            return dirichlet_predictive(counts, self.alpha)
        return mixture_predictive(counts, self.weights, self.atoms)

    def measure(self) -> "Measure":
        if self.alpha is not None:
            return Measure(alpha=self.alpha)
        return Measure(atoms=self.atoms, weights=self.weights)

    def source(self) -> dict:
        """The fitted prior as a source config (its exact Bayes predictor is the
        surrogate's)."""
        V = self.atoms.shape[1]
        if self.alpha is not None:
            a = [float(x) for x in self.alpha]
            return ({"kind": "beta_coin", "alpha": a[1], "beta": a[0]} if V == 2
                    else {"kind": "dirichlet_categorical", "alpha": a})
        w = _normalised([float(x) for x in self.weights])
        if V == 2:
            return {"kind": "coin_mixture", "thetas": [float(t) for t in self.atoms[:, 1]],
                    "weights": w}
        return {"kind": "categorical_mixture",
                "probs": [_normalised([float(x) for x in row]) for row in self.atoms],
                "weights": w}


def _normalised(values: list[float]) -> list[float]:
    """Clip into the open interval a source config requires, and renormalise."""
    v = np.clip(np.asarray(values), 1e-12, None)
    v = v / v.sum()
    return [float(x) for x in v]


def _tv(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    return 0.5 * np.abs(p - q).sum(axis=-1)


def _max_tv(p, q) -> float:
    return float(_tv(p, q).max()) if len(p) else math.nan


def _unpack(x: np.ndarray, K: int, V: int) -> tuple[np.ndarray, np.ndarray]:
    """Free parameters -> (weights (K,), atoms (K, V)) through softmaxes (last logit 0)."""
    logits = np.concatenate([x[:K - 1], [0.0]])
    weights = np.exp(logits - special.logsumexp(logits))
    a = np.concatenate([x[K - 1:].reshape(K, V - 1), np.zeros((K, 1))], axis=1)
    atoms = np.exp(a - special.logsumexp(a, axis=1)[:, None])
    return weights, atoms


def _pack(weights: np.ndarray, atoms: np.ndarray) -> np.ndarray:
    w = np.log(np.clip(weights, 1e-12, None))
    a = np.log(np.clip(atoms, 1e-12, None))
    return np.concatenate([w[:-1] - w[-1], (a[:, :-1] - a[:, -1:]).ravel()])


def fit_mixture(counts: np.ndarray, probs: np.ndarray, K: int,
                starts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares K-component mixture of the predictive `probs` ``(C, V)`` after
    `counts`, from each start ``(weights, atoms)``: the best ``(weights, atoms)``."""
    from scipy.optimize import least_squares

    V = counts.shape[1]

    def residuals(x):
        w, a = _unpack(x, K, V)
        return (mixture_predictive(counts, w, a) - probs).ravel()

    best, best_cost = None, math.inf
    for w0, a0 in starts:
        result = least_squares(residuals, _pack(w0, a0), jac=lambda x: mixture_jacobian(
            counts, *_unpack(x, K, V)), method="trf", xtol=1e-14, ftol=1e-14, gtol=1e-14,
                               max_nfev=30 * (K * V + 1))
        if result.cost < best_cost:
            best, best_cost = result.x, result.cost
    weights, atoms = _unpack(best, K, V)
    order = np.lexsort(atoms.T[::-1])  # components in lexicographic order of their atoms
    return weights[order], atoms[order]


def mixture_jacobian(counts: np.ndarray, weights: np.ndarray, atoms: np.ndarray) -> np.ndarray:
    """d q(v | c) / d (the free parameters of `_unpack`), ``(C * V, K - 1 + K (V - 1))``.

    With pi_ck the posterior of component k after c, w = softmax(l), theta_k = softmax(a_k):
    d q_cv / d l_j = pi_cj (theta_jv - q_cv), and
    d q_cv / d a_ju = pi_cj (theta_jv - q_cv) (c_u - |c| theta_ju) + pi_cj theta_jv
    (delta_vu - theta_ju)."""
    C, V = counts.shape
    K = len(weights)
    log_post = np.log(np.maximum(weights, 1e-300))[None, :] + counts @ np.log(np.maximum(atoms, 1e-300)).T
    post = np.exp(log_post - special.logsumexp(log_post, axis=1)[:, None])  # (C, K)
    q = post @ atoms  # (C, V)
    spread = atoms[None, :, :] - q[:, None, :]  # (C, K, V): theta_jv - q_cv
    d_logit = post[:, :, None] * spread  # (C, K, V)
    excess = counts[:, None, :] - counts.sum(1)[:, None, None] * atoms[None]  # (C, K, U)
    d_atom = (d_logit[:, :, :, None] * excess[:, :, None, :]  # (C, K, V, U)
              + post[:, :, None, None] * atoms[None, :, :, None]
              * (np.eye(V)[None, None] - atoms[None, :, None, :]))
    jac_l = d_logit[:, :K - 1, :].transpose(0, 2, 1).reshape(C * V, K - 1)
    jac_a = d_atom[..., :V - 1].transpose(0, 2, 1, 3).reshape(C * V, K * (V - 1))
    return np.concatenate([jac_l, jac_a], axis=1)


def fit_dirichlet(counts: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Least-squares Dirichlet (Beta for V = 2) `alpha` of the predictive."""
    from scipy.optimize import least_squares

    def residuals(x):
        return (dirichlet_predictive(counts, np.exp(x)) - probs).ravel()

    def jacobian(x):
        # d q_cv / d log alpha_u = alpha_u (delta_vu - q_cv) / (sum(alpha) + |c|).
        alpha = np.exp(x)
        q = dirichlet_predictive(counts, alpha)  # (C, V)
        scale = alpha[None, None, :] / (alpha.sum() + counts.sum(1))[:, None, None]
        return (scale * (np.eye(len(alpha))[None] - q[:, :, None])).reshape(-1, len(alpha))

    # Start: the mean from the empty context, concentration 1 per symbol. A point mass is
    # the limit alpha -> infinity, which the steps approach until `max_nfev`.
    mean = probs[np.argmin(counts.sum(1))]
    result = least_squares(residuals, np.log(mean * counts.shape[1]), jac=jacobian,
                           bounds=(-30.0, 45.0), method="trf", xtol=1e-15, ftol=1e-15,
                           gtol=1e-15, max_nfev=200)
    return np.exp(result.x)


def _starts(probs: np.ndarray, K: int, previous: tuple | None) -> list[tuple]:
    """Deterministic starts of a K-component fit: atoms at K far-apart observed predictives
    (farthest-point order from the most extreme), equal weights; and the (K - 1)-component
    fit with its heaviest atom split in two."""
    clipped = np.clip(probs, 1e-6, None)
    clipped /= clipped.sum(1, keepdims=True)
    first = int(np.argmax(_tv(clipped, clipped.mean(0))))
    chosen = [first]
    while len(chosen) < K:
        d = np.min([_tv(clipped, clipped[i]) for i in chosen], axis=0)
        chosen.append(int(np.argmax(d)))
    starts = [(np.full(K, 1.0 / K), clipped[chosen])]
    if previous is not None:
        w, a = previous
        k = int(np.argmax(w))
        shifted = np.clip(a[k] * np.exp(0.3 * (np.arange(a.shape[1]) % 2 - 0.5)), 1e-6, None)
        weights = np.concatenate([w, [w[k] / 2]])
        weights[k] /= 2
        starts.append((weights, np.concatenate([a, (shifted / shifted.sum())[None, :]])))
    return starts


def read_back(counts: np.ndarray, probs: np.ndarray, probe_length: int,
              max_components: int = MAX_COMPONENTS) -> list[Fit]:
    """Both families fitted at probe length `probe_length` >= 1: on the contexts of length
    < d, holding out those of length d (`counts`, `probs` ``(C, V)`` hold at least those).
    The mixture's K is chosen by held-out error (the smallest K within `K_TIE` of the
    least)."""
    if probe_length < 1:
        raise ValueError(f"probe_length == {probe_length}, must be >= 1")
    length = counts.sum(1)
    train, held = length < probe_length, length == probe_length
    fits, previous = {}, None
    for K in range(1, min(max_components, identifiable_components(probe_length,
                                                                   counts.shape[1])) + 1):
        w, a = fit_mixture(counts[train], probs[train], K, _starts(probs[train], K, previous))
        previous = (w, a)
        # A fit whose atoms coincide is a fit with fewer components: it stands for that K
        # where it predicts the held-out contexts better than that K's own fit.
        fit = _scored("mixture", *_merged(w, a), None, counts, probs, train, held)
        k = fit.components
        if k not in fits or fit.heldout_error < fits[k].heldout_error:
            fits[k] = fit
    fits = [fits[k] for k in sorted(fits)]
    least = min(f.heldout_error for f in fits)
    mixture = next(f for f in fits if f.heldout_error <= least + K_TIE)
    alpha = fit_dirichlet(counts[train], probs[train])
    dirichlet = _scored("dirichlet", np.ones(1), (alpha / alpha.sum())[None, :], alpha,
                        counts, probs, train, held)
    return [mixture, dirichlet]


def identifiable_components(probe_length: int, vocab_size: int) -> int:
    """The most mixture components the predictives after contexts shorter than
    `probe_length` determine: they give the prior's moments up to order d = `probe_length`,
    C(d + V - 1, V - 1) - 1 numbers, and K atoms have K (V - 1) + K - 1 parameters. A larger K
    fits the training contexts in many ways, so which one a least-squares fit lands on (and
    its held-out error, and so the K chosen) turned on the last bits of its arithmetic: the
    same predictor gave 2 components on one machine's kernels and 3 on another's."""
    return max(1, math.comb(probe_length + vocab_size - 1, vocab_size - 1) // vocab_size)


def _merged(weights: np.ndarray, atoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Components whose atoms lie within `K_TIE` (total variation) of an earlier one merged
    into it (weights summed, the heavier atom kept), and components of weight below
    `K_TIE` dropped."""
    keep_w, keep_a = [], []
    for k in np.argsort(-weights, kind="stable"):
        if weights[k] < K_TIE:
            continue
        for j, atom in enumerate(keep_a):
            if _tv(atom, atoms[k]) <= K_TIE:
                keep_w[j] += weights[k]
                break
        else:
            keep_w.append(float(weights[k]))
            keep_a.append(atoms[k])
    w, a = np.asarray(keep_w), np.asarray(keep_a)
    order = np.lexsort(a.T[::-1])
    return w[order] / w.sum(), a[order]


def _scored(family, weights, atoms, alpha, counts, probs, train, held) -> Fit:
    fit = Fit(family, weights, atoms, alpha, math.nan, math.nan)
    pred = fit.predictive(counts)
    return dataclasses.replace(fit, train_error=_max_tv(pred[train], probs[train]),
                               heldout_error=_max_tv(pred[held], probs[held]))


def choose(fits: list[Fit]) -> Fit:
    """The fit the surrogate uses: the least held-out error, ties (within `K_TIE`) to the
    family listed first (the mixture)."""
    least = min(f.heldout_error for f in fits)
    return next(f for f in fits if f.heldout_error <= least + K_TIE)


# ---------------------------------------------------------------- mixing measures and W1
@dataclasses.dataclass(frozen=True)
class Measure:
    """A mixing measure over the simplex of categoricals: finite (``atoms (K, V)``,
    ``weights (K,)``), Dirichlet(``alpha``), or a topic mixture's (theta = w @ topics with
    w ~ Dirichlet(alpha))."""
    atoms: np.ndarray | None = None
    weights: np.ndarray | None = None
    alpha: np.ndarray | None = None
    topics: np.ndarray | None = None

    @property
    def finite(self) -> bool:
        return self.atoms is not None

    @property
    def vocab_size(self) -> int:
        if self.atoms is not None:
            return self.atoms.shape[1]
        return self.topics.shape[1] if self.topics is not None else len(self.alpha)

    def discretised(self, grid: int) -> tuple[np.ndarray, np.ndarray]:
        """``(atoms, weights)``: itself if finite, else the density on the interior grid
        ((c + 1/D) / (grid + 1) over the compositions c of `grid` into D parts), normalised."""
        if self.finite:
            return self.atoms, self.weights
        alpha = np.asarray(self.alpha, dtype=np.float64)
        D = len(alpha)
        points = (compositions(grid, D) + 1.0 / D) / (grid + 1)
        log_density = ((alpha - 1) * np.log(points)).sum(1)
        w = np.exp(log_density - log_density.max())
        atoms = points if self.topics is None else points @ self.topics
        return atoms, w / w.sum()


def true_measure(source: Source) -> Measure:
    """The mixing measure of an exchangeable source, or a `PriorFitError` naming its kind."""
    check_exchangeable(source)
    kind = source.kind
    if kind == "coin":
        return Measure(atoms=np.array([[1 - source.theta, source.theta]]), weights=np.ones(1))
    if kind == "coin_mixture":
        t = np.asarray(source.thetas)
        return Measure(atoms=np.stack([1 - t, t], axis=1), weights=np.asarray(source.weights))
    if kind == "beta_coin":
        return Measure(alpha=np.array([source.beta, source.alpha]))
    if kind == "categorical":
        return Measure(atoms=np.asarray([source.probs]), weights=np.ones(1))
    if kind == "categorical_mixture":
        return Measure(atoms=np.asarray(source.probs), weights=np.asarray(source.weights))
    if kind == "dirichlet_categorical":
        return Measure(alpha=np.asarray(source.alpha))
    if kind == "topic_mixture":
        return Measure(alpha=np.asarray(source.alpha), topics=np.asarray(source.topics))
    raise PriorFitError(f"pretraining: source kind {kind!r} states no mixing measure that "
                        "probe_prior knows")


@dataclasses.dataclass(frozen=True)
class W1:
    """W1 between two mixing measures; `resolution` the spacing of the grid a continuous
    measure was discretised on (0 where exact)."""
    distance: float
    resolution: float


def w1(a: Measure, b: Measure) -> W1:
    """W1 between mixing measures under the total-variation distance between categoricals."""
    if a.vocab_size != b.vocab_size:
        raise ValueError(f"measures over {a.vocab_size} and {b.vocab_size} symbols")
    if a.vocab_size == 2 and a.topics is None and b.topics is None:
        return W1(_w1_line(a, b), 0.0)
    if a.finite and b.finite:
        return W1(_transport(a.atoms, a.weights, b.atoms, b.weights), 0.0)
    grid = GRID if a.finite or b.finite else GRID_PAIR
    (xa, pa), (xb, pb) = a.discretised(grid), b.discretised(grid)
    return W1(_transport(xa, pa, xb, pb), 1.0 / (grid + 1))


def _cdf(m: Measure):
    """CDF of theta = P(symbol 1) under a binary finite or Beta measure."""
    if m.finite:
        t, w = m.atoms[:, 1], m.weights
        return lambda x: float(w[t <= x].sum())
    from scipy.special import betainc

    return lambda x: float(betainc(m.alpha[1], m.alpha[0], x))


def _w1_line(a: Measure, b: Measure) -> float:
    """Binary: W1 = integral over [0, 1] of |F_a - F_b| (piecewise between atoms: exact
    for two finite measures, adaptive quadrature where a Beta is involved)."""
    edges = {0.0, 1.0}
    for m in (a, b):
        if m.finite:
            edges |= set(m.atoms[:, 1].tolist())
    points = sorted(edges)
    Fa, Fb = _cdf(a), _cdf(b)
    if a.finite and b.finite:
        return float(sum(abs(Fa(x) - Fb(x)) * (y - x) for x, y in zip(points, points[1:])))
    from scipy.integrate import quad

    total = 0.0
    for x, y in zip(points, points[1:]):
        if y > x:
            total += quad(lambda t: abs(Fa(t) - Fb(t)), x, y, limit=200, epsabs=1e-12,
                          epsrel=1e-10)[0]
    return total


def _transport(xa, pa, xb, pb) -> float:
    """Optimal transport cost between two finite measures, TV ground distance (HiGHS)."""
    from scipy.optimize import linprog
    from scipy.sparse import coo_matrix

    n, m = len(pa), len(pb)
    cost = 0.5 * np.abs(xa[:, None, :] - xb[None, :, :]).sum(-1).ravel()  # (n * m,)
    rows = np.concatenate([np.repeat(np.arange(n), m), n + np.tile(np.arange(m), n)])
    cols = np.concatenate([np.arange(n * m), np.arange(n * m)])
    eq = coo_matrix((np.ones(2 * n * m), (rows, cols)), shape=(n + m, n * m)).tocsr()
    pb = pb * (pa.sum() / pb.sum())
    result = linprog(cost, A_eq=eq[:-1], b_eq=np.concatenate([pa, pb])[:-1], bounds=(0, None),
                     method="highs")
    if result.status != 0:
        raise RuntimeError(f"W1 transport problem: {result.message}")
    return float(result.fun)


# ---------------------------------------------------------------- the whole read-back
def probe_prior(predictor, pretraining: dict, probe_length: int = PROBE_LENGTH,
                max_components: int = MAX_COMPONENTS) -> dict:
    """Read the prior back from `predictor` at every probe length 1..probe_length, each
    family against the true prior of `pretraining` (a source config): the prior_fit columns
    (one row per component; the Dirichlet's one row is its mean with its `alpha`)."""
    source = build_source(pretraining, where="pretraining")
    truth = true_measure(source)
    V = source.vocab_size
    contexts, counts = probe_contexts(V, probe_length)
    probs = query(predictor, contexts, V)
    cols = {k: [] for k in ("family", "probe_length", "queries", "components", "component",
                            "weight", "probabilities", "alpha", "train_error", "heldout_error",
                            "w1", "w1_resolution", "selected")}
    length = counts.sum(1)
    for d in range(1, probe_length + 1):
        keep = length <= d
        fits = read_back(counts[keep], probs[keep], d, max_components)
        chosen = choose(fits)
        for fit in fits:
            distance = w1(fit.measure(), truth)
            for k in range(fit.components):
                cols["family"].append(fit.family)
                cols["probe_length"].append(d)
                cols["queries"].append(int(keep.sum()))
                cols["components"].append(fit.components)
                cols["component"].append(k)
                cols["weight"].append(float(fit.weights[k]))
                cols["probabilities"].append([float(x) for x in fit.atoms[k]])
                cols["alpha"].append(None if fit.alpha is None
                                     else [float(x) for x in fit.alpha])
                cols["train_error"].append(fit.train_error)
                cols["heldout_error"].append(fit.heldout_error)
                cols["w1"].append(distance.distance)
                cols["w1_resolution"].append(distance.resolution)
                cols["selected"].append(d == probe_length and fit is chosen)
    return cols


def selected_source(frame) -> dict:
    """The source config of the selected fit of a prior_fit table (a DataFrame)."""
    rows = frame[frame["selected"]].sort_values("component")
    if rows.empty:
        raise ValueError("the prior_fit table has no selected fit")
    family = rows["family"].iloc[0]
    atoms = np.asarray(rows["probabilities"].tolist(), dtype=np.float64)
    alpha = rows["alpha"].iloc[0]
    fit = Fit(family, rows["weight"].to_numpy(dtype=np.float64), atoms,
              None if alpha is None else np.asarray(alpha, dtype=np.float64), 0.0, 0.0)
    return fit.source()
