"""Dataset selection: which N task sequences a search sees, one registered method each.

A method is named in an experiment's ``dataset_selection`` (a list of names, or a mapping of
names to their settings). ``random`` is the study's own D_N: N sequences drawn from the task.
The other methods are *pooled*: they draw a pool of P task sequences (an independent draw,
seeded like D_N by the task, T, P, N and seed), score the pool with every prompt, and keep N
of its sequences, each with the weight its loss carries in the empirical loss:

- ``pool``: the whole pool, uniform weights: random selection with N = P, the fair ceiling
  of every method that sees the same P sequences (added by itself beside any pooled method);
- ``high_variance``: the K prompts with the least mean loss on the pool itself (never the
  landscape; prompts with the same losses on every pool sequence, such as the permutations
  of a count class, count once), then the N pool sequences whose losses vary most across
  those K prompts (population variance; ties to the earlier pool sequence), uniform weights
  1/N;
- ``high_variance_weighted``: N sequences drawn without replacement with inclusion
  probabilities pi_i that grow with that spread (proportional to a mixture of its standard
  deviation and a uniform share, capped at 1, summing to N; systematic sampling in a random
  order, so pi_i is exact), each weighted by 1 / (P pi_i): the Horvitz-Thompson estimate of
  the pool's mean loss, so the empirical loss stays an unbiased estimate of the task's.

Selection reads nothing but the pool's losses under every prompt: never the landscape, the
evaluation set or the task's law. A method is one `Method` entry of `METHODS`: its settings
declared with their defaults and checks (`promptscape.settings`, as a strategy's and a
tuner's), and its `select` function.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from promptscape import settings as settings_lib
from promptscape.settings import Setting
from promptscape.validation import ConfigError

RANDOM = "random"
POOL = "pool"


@dataclasses.dataclass(frozen=True)
class Selected:
    """The N sequences a method keeps from a pool of P, in pool order."""

    indices: np.ndarray  # (N,) int: positions in the pool, increasing
    weights: np.ndarray  # (N,) float: the weight of each one's loss in the empirical loss
    inclusion_probability: np.ndarray | None  # (N,) pi_i of a random design, else None
    spread: np.ndarray | None  # (N,) variance of its loss across the leading prompts
    leading: np.ndarray | None  # (K,) int: the leading prompts' indices, best first


@dataclasses.dataclass(frozen=True)
class Method:
    name: str
    doc: str
    settings: dict  # setting name -> `settings.Setting` (default and check)
    pooled: bool
    select: Callable | None = None  # (pool_losses (prompts, P), N, rng, **settings) -> Selected
    weighted: bool = False  # its weights are not uniform: L_N is their weighted sum


# Two prompts whose losses on every pool sequence agree within this relative distance are
# one prompt for the predictor (the permutations of a prompt under an exchangeable one,
# which floating-point sums separate by ~1e-15): the search's tie tolerance.
SAME_LOSSES_RELATIVE = 1e-12


def _leading(pool_losses: np.ndarray, k: int) -> np.ndarray:
    """The k *distinct* prompts of least mean loss on the pool, best first: prompts whose
    losses agree on every pool sequence count once, as their first member in canonical
    order. Permutations of one count class would otherwise fill the leading set, and the
    spread across them would be rounding noise (fewer than k where the pool tells fewer
    apart)."""
    order = np.argsort(pool_losses.mean(axis=1), kind="stable")
    scale = np.maximum(np.abs(pool_losses).max(axis=1), 1e-300)
    chosen: list[int] = []
    for j in order:
        if any(np.abs(pool_losses[j] - pool_losses[c]).max() <= SAME_LOSSES_RELATIVE * scale[c]
               for c in chosen):
            continue
        chosen.append(int(j))
        if len(chosen) == k:
            break
    # Each leading prompt named by the canonical first member of its class.
    return np.array([int(np.flatnonzero(np.abs(pool_losses - pool_losses[c]).max(axis=1)
                                        <= SAME_LOSSES_RELATIVE * scale[c])[0])
                     for c in chosen], dtype=np.int64)


def _spread(pool_losses: np.ndarray, leading: np.ndarray) -> np.ndarray:
    """(P,) population variance of each pool sequence's loss across the leading prompts."""
    return pool_losses[leading].var(axis=0)


def select_pool(pool_losses, N, rng, *, pool_size):
    P = pool_losses.shape[1]
    return Selected(np.arange(P), np.full(P, 1.0 / P), None, None, None)


def select_high_variance(pool_losses, N, rng, *, pool_size, leading_prompts):
    leading = _leading(pool_losses, leading_prompts)
    spread = _spread(pool_losses, leading)
    keep = np.sort(np.argsort(-spread, kind="stable")[:N])
    return Selected(keep, np.full(N, 1.0 / N), None, spread[keep], leading)


def select_high_variance_weighted(pool_losses, N, rng, *, pool_size, leading_prompts,
                                  uniform_share):
    P = pool_losses.shape[1]
    leading = _leading(pool_losses, leading_prompts)
    spread = _spread(pool_losses, leading)
    pi = inclusion_probabilities(np.sqrt(spread), N, uniform_share)
    keep = systematic_sample(pi, rng)
    return Selected(keep, 1.0 / (P * pi[keep]), pi[keep], spread[keep], leading)


def inclusion_probabilities(size: np.ndarray, n: int, uniform_share: float) -> np.ndarray:
    """Inclusion probabilities of a fixed-size-n design, proportional to
    ``(1 - uniform_share) size / sum(size) + uniform_share / P``, every one capped at 1
    (the capped units are taken for sure and the rest rescaled until none exceeds 1); they
    sum to n and are all positive when uniform_share > 0.

    >>> inclusion_probabilities(np.array([0.0, 1.0, 3.0]), 2, 0.25).round(4).tolist()
    [0.2353, 0.7647, 1.0]
    """
    P = len(size)
    total = size.sum()
    share = (1 - uniform_share) * (size / total if total > 0 else np.full(P, 1 / P))
    raw = share + uniform_share / P
    pi = np.zeros(P)
    certain = np.zeros(P, dtype=bool)
    while True:
        rest = ~certain
        pi[rest] = raw[rest] * (n - certain.sum()) / raw[rest].sum()
        over = rest & (pi >= 1)
        if not over.any():
            break
        certain |= over
        pi[certain] = 1.0
    return pi


def systematic_sample(pi: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A sample of size sum(pi) (an integer) in which unit i is included with probability
    exactly pi_i: systematic sampling over a random permutation of the units (one uniform
    start, then steps of 1 along the cumulated pi). Returns the units, increasing."""
    order = rng.permutation(len(pi))
    edges = np.concatenate([[0.0], np.cumsum(pi[order])])
    n = int(round(edges[-1]))
    edges *= n / edges[-1]  # exactly n, so that every point falls on a unit
    points = rng.uniform() + np.arange(n)
    # Unit j of the order holds the points in [edges[j], edges[j+1]): at most one, as pi <= 1.
    hits = np.searchsorted(edges, points, side="right") - 1
    if len(np.unique(hits)) != n:
        raise AssertionError("systematic sampling drew a unit twice: an inclusion "
                             "probability exceeds 1")
    return np.sort(order[hits])


# The settings of the pooled methods: P, the pool's size (at least the largest N, checked
# in `parse`); K, the leading prompts (2..the prompts searched, checked in `parse`); the
# uniform share of the inclusion probabilities.
_POOL_SIZE = Setting(500, settings_lib.POSITIVE_INTEGER)
_LEADING_PROMPTS = Setting(5, settings_lib.POSITIVE_INTEGER)
_UNIFORM_SHARE = Setting(0.1, settings_lib.Check(
    lambda v: settings_lib.is_number(v) and 0 < v <= 1,
    "in (0, 1]: a positive share keeps every pool sequence drawable, which the "
    "Horvitz-Thompson estimate needs to stay unbiased"))
METHODS = {m.name: m for m in [
    Method(RANDOM, "N sequences drawn from the task (the study's D_N)", {}, pooled=False),
    Method(POOL, "every sequence of the pool: random selection with N = P, the ceiling of "
                 "the pooled methods", {"pool_size": _POOL_SIZE}, pooled=True,
           select=select_pool),
    Method("high_variance", "the N pool sequences whose losses vary most across the K "
                            "prompts best on the pool",
           {"pool_size": _POOL_SIZE, "leading_prompts": _LEADING_PROMPTS},
           pooled=True, select=select_high_variance),
    Method("high_variance_weighted", "N pool sequences drawn with probabilities growing "
                                     "with that variance, Horvitz-Thompson weighted",
           {"pool_size": _POOL_SIZE, "leading_prompts": _LEADING_PROMPTS,
            "uniform_share": _UNIFORM_SHARE}, pooled=True,
           select=select_high_variance_weighted, weighted=True),
]}


@dataclasses.dataclass(frozen=True)
class Plan:
    """An experiment's dataset selection: every method to run, with complete settings, in
    the config's order (``pool`` added after them where a pooled method is listed)."""

    methods: tuple[tuple[str, dict], ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.methods)

    def settings(self, name: str) -> dict:
        return dict(dict(self.methods)[name])

    @property
    def pool_size(self) -> int | None:
        """P of the pooled methods (they share one pool), None when none is listed."""
        sizes = {s["pool_size"] for name, s in self.methods if METHODS[name].pooled}
        return sizes.pop() if sizes else None

    @property
    def pooled(self) -> tuple[str, ...]:
        return tuple(name for name in self.names if METHODS[name].pooled)


def parse(spec, *, where: str, dataset_sizes, num_prompts: int,
          prompts_key: str = "max_prompt_length") -> Plan:
    """The `Plan` of a ``dataset_selection`` value (a list of names or a mapping of names to
    settings), checked: known methods and settings, a pool size shared by the pooled
    methods and at least the largest N, 2 <= leading_prompts <= the prompts searched,
    0 < uniform_share <= 1. Every error is a ConfigError naming the key; `prompts_key`
    names the setting that decides `num_prompts` (the experiment's max_prompt_length)."""
    if isinstance(spec, (list, tuple)):
        seen = set()
        for i, name in enumerate(spec):
            if name in seen:
                raise ConfigError(f"{where}[{i}] == {name!r} is listed twice")
            seen.add(name)
        spec = {name: {} for name in spec}
    if not spec:
        raise ConfigError(f"{where} is empty: name at least one method "
                          f"({', '.join(METHODS)})")
    methods = []
    for name, given in spec.items():
        if name not in METHODS:
            raise ConfigError(f"{where}.{name}: unknown dataset-selection method; known: "
                              f"{', '.join(METHODS)}")
        method = METHODS[name]
        given = settings_lib.validate(given, method.settings, f"{where}.{name}", name)
        settings = {**settings_lib.defaults(method.settings), **given}
        _check_settings(settings, f"{where}.{name}", dataset_sizes, num_prompts, prompts_key)
        methods.append((name, settings))
    if RANDOM not in dict(methods):
        raise ConfigError(f"{where} == {list(dict(methods))} lacks {RANDOM!r}: every "
                          "experiment searches on D_N drawn from the task, which the "
                          "reliability prediction, the choices and the study's figures read; "
                          "list the other methods beside it")
    sizes = {s["pool_size"]: n for n, s in methods if METHODS[n].pooled}
    if len(sizes) > 1:
        shown = ", ".join(f"{where}.{n}.pool_size == {p}" for p, n in sizes.items())
        raise ConfigError(f"{shown}: the pooled methods select from one shared pool (a "
                          "paired comparison); give them one pool_size")
    if sizes and POOL not in dict(methods):
        methods.append((POOL, {"pool_size": next(iter(sizes))}))
    return Plan(tuple(methods))


def _check_settings(settings: dict, where: str, dataset_sizes, num_prompts: int,
                    prompts_key: str) -> None:
    if "pool_size" in settings and max(dataset_sizes) > settings["pool_size"]:
        raise ConfigError(f"{where}.pool_size == {settings['pool_size']} is less than the "
                          f"largest dataset size N = {max(dataset_sizes)}: selection keeps N "
                          "of the P pool sequences")
    if "leading_prompts" in settings:
        k = settings["leading_prompts"]
        if num_prompts < 2:
            raise ConfigError(f"{where}.leading_prompts cannot apply: {prompts_key} leaves "
                              f"{num_prompts} prompt to search, and the spread of a "
                              "sequence's loss is taken across 2 leading prompts at least; "
                              f"raise {prompts_key} or drop {where.rsplit('.', 1)[-1]}")
        if not 2 <= k <= num_prompts:
            raise ConfigError(f"{where}.leading_prompts == {k}, must be in 2..{num_prompts} "
                              f"(the prompts searched, set by {prompts_key}): the spread of "
                              "a sequence's loss is taken across them")


def select(name: str, pool_losses: np.ndarray, N: int, rng: np.random.Generator,
           settings: dict) -> Selected:
    """Run pooled method `name` on one pool's losses ``(prompts, P)``."""
    method = METHODS[name]
    if not method.pooled:
        raise ValueError(f"{name} selects no pool sequences: its datasets are the task's")
    return method.select(np.asarray(pool_losses, dtype=np.float64), N, rng, **settings)
