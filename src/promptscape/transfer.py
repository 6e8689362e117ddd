"""Transfer regret: how good one landscape's optimal prompts are under another.

The regret of a target landscape's prompts is their KL minus the target's least KL, with
its standard error and verdict by the target's tie rule (`edits.tie_rule`: exact, a regret
above the tolerance; estimated, the paired test at the landscape's Bonferroni level);
docs/science.md, "Transfer regret". Shape legend as in `edits`: P prompts in canonical
order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from promptscape import landscape
from promptscape.edits import tie_rule


@dataclasses.dataclass(frozen=True)
class Regret:
    """Regret under the target of some of its prompts: ``mean``, ``min``, ``max`` over
    them, each ``KL_target(s) - KL_target(b)`` with b the target's least KL (its best
    estimate under Monte Carlo); ``se``, the standard error of ``mean`` by the target's rule
    (0 exact); ``shown``, whether some of the prompts is shown worse than b by that rule
    (`landscape.TieRule`: exact, a regret above the tolerance; estimated, the paired test at
    the landscape's Bonferroni level), that is, lies outside the target's optimal class."""

    mean: float
    min: float
    max: float
    se: float = 0.0
    shown: bool = False


def regret_of(target_kl: np.ndarray, indices, rule: landscape.TieRule | float | None = None,
              optimal: np.ndarray | None = None) -> Regret:
    """The target's `Regret` of its prompts at `indices` (a prompt may appear more than
    once: the picks of several seeds), by the target's rule (`tie_rule`). ``shown``: some
    prompt lies outside the target's `optimal` class (the landscape's column, where given),
    else outside the prompts the rule does not show worse than the best.

    Why membership and not the mean: a mean over many unresolved members of an estimated
    class is resolved above 0 (each is above the best estimate, itself the least of P noisy
    values, and averaging shrinks the error), so a landscape's optimal class would "cost"
    something under its own landscape; the verdict asks whether the target can show any of
    the prompts worse than its optimum."""
    target_kl = np.asarray(target_kl, dtype=np.float64)
    rule = tie_rule(target_kl, rule)
    indices = np.asarray(indices, dtype=np.int64)
    best = int(np.argmin(target_kl))
    regret = target_kl[indices] - target_kl[best]
    se = rule.mean_difference_se(indices, best)
    if optimal is None:
        outside = rule.less(target_kl, np.full(len(indices), best), indices)
    else:
        outside = ~np.asarray(optimal, dtype=bool)[indices]
    return Regret(float(regret.mean()), float(regret.min()), float(regret.max()), se,
                  bool(outside.any()))


def transfer_regret(source_prompts: Sequence[str], source_optimal: np.ndarray,
                    target_prompts: Sequence[str], target_kl: np.ndarray, *,
                    source: str = "source", target: str = "target",
                    rule: landscape.TieRule | float | None = None,
                    target_optimal: np.ndarray | None = None) -> Regret:
    """Regret under the target landscape of the source's optimal class (docs/science.md,
    "Transfer regret"), over the whole class: the target's KL of each of the source's
    optimal prompts minus the target's optimum (over all of the target's prompts), with its
    standard error and verdict by the target's `rule` and `target_optimal` class
    (`regret_of`).

    The two landscapes are matched by prompt, so they may list prompts in different orders
    or lengths; a source optimum missing from the target is a ValueError naming `source`,
    `target` and the missing prompts."""
    source_optimal = np.asarray(source_optimal, dtype=bool)
    target_kl = np.asarray(target_kl, dtype=np.float64)
    if len(source_optimal) != len(source_prompts):
        raise ValueError(f"{source}: {len(source_optimal)} optimal-class flags for "
                         f"{len(source_prompts)} prompts")
    if len(target_kl) != len(target_prompts):
        raise ValueError(f"{target}: {len(target_kl)} KL values for {len(target_prompts)} "
                         "prompts")
    best = [source_prompts[i] for i in np.flatnonzero(source_optimal)]
    if not best:
        raise ValueError(f"{source}: the optimal class is empty")
    if len(target_prompts) == len(source_prompts) and list(target_prompts) == list(source_prompts):
        indices = np.flatnonzero(source_optimal)
    else:
        where = {p: i for i, p in enumerate(target_prompts)}
        missing = [p for p in best if p not in where]
        if missing:
            shown = ", ".join(repr(p) for p in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise ValueError(f"the optimal prompts of {source} are missing from the landscape "
                             f"of {target}: {shown}{more}")
        indices = np.array([where[p] for p in best], dtype=np.int64)
    return regret_of(target_kl, indices, rule, target_optimal)


def baseline_regrets(target_prompts: Sequence[str], target_kl: np.ndarray,
                     rule: landscape.TieRule | float | None = None,
                     optimal: np.ndarray | None = None) -> dict[str, Regret]:
    """The target's own `Regret` of two baselines: the empty prompt (``empty``) and the
    median prompt (``median``, the lower median of the KLs; the first in canonical order
    among equals)."""
    target_kl = np.asarray(target_kl, dtype=np.float64)
    order = np.argsort(target_kl, kind="stable")
    empty = list(target_prompts).index("")
    median = int(order[(len(order) - 1) // 2])
    return {"empty": regret_of(target_kl, [empty], rule, optimal),
            "median": regret_of(target_kl, [median], rule, optimal)}
