"""Stage `analyse_edits`: exact edit effects, local structure and transfer regret of one
experiment, from its landscapes (the science is `promptscape.edits`).

One job per experiment writes three aggregates:

``edits``
    per (predictor, replicate, task, edit kind): the distribution of the ΔKL of every single
    edit of every prompt (`edits.summarise_kinds`), exact or estimated as the landscape is,
    each edit's verdict by the landscape's rule (`landscape.TieRule`, column decided_by);
    kinds that need a tied most or least probable symbol have no rows for that task, and
    the log says why.
``local_optima``
    a row per local optimum of each landscape (`edits.local_structure`).
``transfer``
    regret under a target landscape of a source's prompts: across the experiment's
    predictors and replicates (per task; the source's optimal class, the prompt search
    picks from D_N per N, and the target's own empty and median prompts as baselines),
    across its tasks (per predictor and replicate), and across pretraining (the optimal
    classes of every other experiment that shares a task, L_max, V and T, under this
    experiment's predictors). The file of an experiment holds the rows whose target is that
    experiment.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from promptscape import edits as edits_lib
from promptscape import landscape as landscape_lib
from promptscape import prompts as prompts_lib
from promptscape.study import tables
from promptscape.report import aggregate
from promptscape.sources import build_source

log = logging.getLogger("promptscape")

# `transfer.source_prompts`: what the regret is of.
OPTIMAL_CLASS, SEARCH, EMPTY, MEDIAN = "optimal_class", "search", "empty", "median"
# `transfer.comparison`: what changes between source and target.
PREDICTORS, TASKS, PRETRAINING = "predictors", "tasks", "pretraining"


class Landscape:
    """One landscape file, checked: its prompts in canonical order, KL, standard errors,
    optimal class and method."""

    def __init__(self, frame: pd.DataFrame, path: str, max_length: int, vocab_size: int,
                 expected: list[str] | None = None):
        keys = frame[["predictor", "replicate", "experiment", "task"]].drop_duplicates()
        if len(keys) != 1:
            raise ValueError(f"{path}: a landscape file holds one (predictor, replicate, "
                             f"experiment, task), not {len(keys)}")
        self.predictor, self.replicate, self.experiment, self.task = keys.iloc[0].tolist()
        self.replicate = int(self.replicate)
        self.path = path
        if expected is None:
            expected = prompts_lib.all_prompts(max_length, vocab_size)
        self.prompts = frame["prompt"].tolist()
        if self.prompts != expected:
            raise ValueError(f"{path}: its prompts are not the {len(expected)} prompts of "
                             f"length 0..{max_length} over {vocab_size} symbols of experiment "
                             f"{self.experiment!r} in canonical order (it has "
                             f"{len(self.prompts)}); rebuild it")
        self.prompts = expected  # one list shared by every landscape of the job
        self.kl = frame["kl"].to_numpy(np.float64)
        self.kl_se = frame["kl_se"].to_numpy(np.float64)
        self.optimal = frame["optimal"].to_numpy(bool)
        methods = frame["method"].unique()
        self.method = str(methods[0])
        self.estimated = self.method == "monte_carlo"
        # The landscape's rule (`landscape.TieRule`): edits improve, local optima tie and
        # regrets are told from 0 by it; on an estimate, by the paired standard error.
        resolution = float(frame["kl_resolution"].iloc[0]) if len(frame) else 0.0
        self.rule = landscape_lib.landscape_rule(
            self.method, resolution, self.kl_se,
            landscape_lib.stored_residuals(frame["kl_residuals"]) if self.estimated else None)

    @property
    def unit(self) -> tuple[str, int]:
        return self.predictor, self.replicate

    def name(self) -> str:
        return (f"experiment {self.experiment!r} {self.predictor} r{self.replicate} "
                f"task {self.task!r}")


# The landscape columns the stage reads: not the list columns, the costliest to read, but
# kl_residuals (empty where exact), which an estimated landscape's rule decides by.
COLUMNS = ("predictor", "replicate", "experiment", "task", "prompt", "method", "kl", "kl_se",
           "kl_resolution", "optimal", "kl_residuals")


def read_landscapes(paths: list[str], max_length: int, vocab_size: int) -> list[Landscape]:
    expected = prompts_lib.all_prompts(max_length, vocab_size)
    return [Landscape(tables.read(p, "landscape", columns=COLUMNS), p, max_length,
                      vocab_size, expected) for p in paths]


def analyse_edits(*, landscapes: list[str], others: list[str], selections: str | None,
                  edits: str, local_optima: str, transfer: str, experiment: str,
                  tasks: dict[str, dict], in_meta_distribution: dict[str, bool],
                  task_length: int, max_prompt_length: int,
                  transfer_left_out: list[dict] | None = None,
                  near_top: float = edits_lib.DEFAULT_NEAR_TOP) -> None:
    """The `edits`, `local_optima` and `transfer` aggregates of `experiment` from its
    `landscapes` (one file per predictor, replicate and task), the `selections` aggregate
    (the prompts search picks; None: no search rows) and `others`, the landscapes of other
    experiments on tasks this one shares (same name, L_max, V and T); `transfer_left_out`
    (`layout.transfer_left_out`) the experiments sharing a task that differ in these,
    logged. An edit improves, local optima tie and a regret is told from 0 by each
    landscape's own rule (`landscape.TieRule`: its `kl_resolution` where exact, its paired
    standard errors where estimated)."""
    specs = {name: build_source(spec, where=f"task {name}") for name, spec in tasks.items()}
    V = {s.vocab_size for s in specs.values()}
    if len(V) != 1:
        raise ValueError(f"experiment {experiment!r}: tasks over different alphabets {V}")
    (V,) = V
    own = read_landscapes(landscapes, max_prompt_length, V)
    wrong = [x.path for x in own if x.experiment != experiment or x.task not in tasks]
    if wrong:
        raise ValueError(f"landscapes not of experiment {experiment!r} and its tasks "
                         f"{list(tasks)}: {wrong}")
    edges = edits_lib.edit_edges(max_prompt_length, V)
    log.info("experiment %s: %d prompts, %d single edits each landscape", experiment,
             edges.num_prompts, len(edges))

    kind_rows, optimum_rows = [], []
    for task, source in specs.items():
        marginals = edits_lib.symbol_marginals(source, task_length)
        for kind, reason in edits_lib.unavailable_kinds(marginals).items():
            log.info("task %s: edit kind %s has no rows: %s", task, kind, reason)
        for land in (x for x in own if x.task == task):
            kind_rows += _kind_rows(land, edges, marginals, near_top,
                                    in_meta_distribution[task])
            optimum_rows += _optimum_rows(land, edges)
    tables.write(_frame(kind_rows, "edits"), "edits", edits)
    tables.write(_frame(optimum_rows, "local_optima"), "local_optima", local_optima)
    _log_local_optima(optimum_rows)

    chosen = None
    if selections is not None:
        chosen = tables.random_selection(tables.read(selections, "selections"))
        chosen = chosen[chosen["experiment"] == experiment]
    for other in transfer_left_out or []:
        log.info("transfer across pretraining: experiment %s left out (%d landscape pairs on "
                 "tasks %s): %s", other["experiment"], other["pairs"],
                 ", ".join(other["tasks"]), other["reason"])
    foreign = read_landscapes(others, max_prompt_length, V) if others else []
    rows = transfer_rows(own, foreign, chosen, list(tasks))
    tables.write(_frame(rows, "transfer"), "transfer", transfer)
    for line in aggregate.transfer_lines(pd.DataFrame(rows, columns=_frame([], "transfer").columns)):
        log.info("%s", line)


def _frame(rows: list[dict], artifact: str) -> pd.DataFrame:
    columns = tables.ARTIFACTS[artifact].schema.names
    return pd.DataFrame(rows, columns=columns)


# ------------------------------------------------------------------ edits
def _kind_rows(land: Landscape, edges, marginals, near_top, imd) -> list[dict]:
    rows = edits_lib.summarise_kinds(edges, land.kl, marginals, tolerance=land.rule,
                                     near_top=near_top)
    return [{
        "predictor": land.predictor, "replicate": land.replicate,
        "experiment": land.experiment, "task": land.task, "edit_kind": row["kind"],
        "in_meta_distribution": bool(imd), "method": land.method, "edges": row["edges"],
        "undefined_edges": row["undefined_edges"],
        "delta_median": row["median"], "delta_q25": row["q1"], "delta_q75": row["q3"],
        "share_improving": row["share_improving"],
        "share_unresolved": row["share_unresolved"],
        "near_top_edges": row["near_top_edges"],
        "share_improving_near_top": row["share_improving_near_top"],
        "rest_edges": row["rest_edges"],
        "share_improving_rest": row["share_improving_rest"],
        "decided_by": land.rule.decided_by,
        "delta_se_median": row["se_median"], "delta_se_max": row["se_max"],
    } for row in rows]


# ------------------------------------------------------------------ local optima
def _optimum_rows(land: Landscape, edges) -> list[dict]:
    found = edits_lib.local_structure(edges, land.kl, land.rule, land.optimal)
    return [{"predictor": land.predictor, "replicate": land.replicate,
             "experiment": land.experiment, "task": land.task, "prompt": land.prompts[i],
             "prompt_length": len(land.prompts[i]), "kl": float(land.kl[i]),
             "kl_above_optimum": float(found.kl_above_optimum[i]),
             "optimal": bool(land.optimal[i]), "plateau": int(found.plateau[i]),
             "basin_size": int(found.basin_size[i]), "decided_by": land.rule.decided_by}
            for i in np.flatnonzero(found.local_optimum)]


def _log_local_optima(rows: list[dict]) -> None:
    if not rows:
        return
    frame = pd.DataFrame(rows)
    for (predictor, replicate, task), part in frame.groupby(["predictor", "replicate", "task"]):
        log.info("%s r%d %s: %d local optima on %d plateaus (%d in the optimal class); the "
                 "worst %.3g nats above the optimum", predictor, replicate, task, len(part),
                 part["plateau"].nunique(), int(part["optimal"].sum()),
                 part["kl_above_optimum"].max())


# ------------------------------------------------------------------ transfer
def _row(comparison, prompts, source: Landscape, target: Landscape, regret, count,
         search_n=None, source_task=None) -> dict:
    return {"experiment": target.experiment, "comparison": comparison,
            "source_prompts": prompts,
            "source_experiment": source.experiment, "target_experiment": target.experiment,
            "source_predictor": source.predictor, "source_replicate": source.replicate,
            "target_predictor": target.predictor, "target_replicate": target.replicate,
            "source_task": source_task or source.task, "target_task": target.task,
            "search_N": search_n, "source_count": int(count),
            "regret": regret.mean, "regret_min": regret.min, "regret_max": regret.max,
            "regret_se": regret.se, "regret_shown": regret.shown,
            "target_method": target.method, "decided_by": target.rule.decided_by}


def transfer_rows(own: list[Landscape], foreign: list[Landscape], chosen: pd.DataFrame | None,
                  tasks: list[str]) -> list[dict]:
    """The transfer rows whose target is the experiment of `own` (module doc)."""
    rows = []
    by_task = {t: [x for x in own if x.task == t] for t in tasks}
    by_unit = {}
    for x in own:
        by_unit.setdefault(x.unit, {})[x.task] = x
    for task in tasks:
        for target in by_task[task]:
            for source in by_task[task]:
                rows.append(_row(PREDICTORS, OPTIMAL_CLASS, source, target,
                                 _regret(source, target), source.optimal.sum()))
            for kind, regret in edits_lib.baseline_regrets(target.prompts, target.kl,
                                                           target.rule,
                                                           target.optimal).items():
                rows.append(_row(PREDICTORS, kind, target, target, regret, 1))
    if chosen is not None:
        rows += _search_rows(by_task, chosen)
    for lands in by_unit.values():
        for source in lands.values():
            for target in lands.values():
                rows.append(_row(TASKS, OPTIMAL_CLASS, source, target,
                                 _regret(source, target), source.optimal.sum()))
    for source in foreign:
        for target in by_task.get(source.task, []):
            rows.append(_row(PRETRAINING, OPTIMAL_CLASS, source, target,
                             _regret(source, target), source.optimal.sum()))
    return rows


def _regret(source: Landscape, target: Landscape) -> edits_lib.Regret:
    return edits_lib.transfer_regret(source.prompts, source.optimal, target.prompts,
                                     target.kl, source=source.name(), target=target.name(),
                                     rule=target.rule, target_optimal=target.optimal)


def _search_rows(by_task: dict, chosen: pd.DataFrame) -> list[dict]:
    """The prompt search picks from each seed's D_N under a source predictor, scored under
    every target predictor of the task: mean, least and greatest regret over seeds, per N."""
    rows = []
    for task, lands in by_task.items():
        picks = chosen[chosen["task"] == task]
        for source in lands:
            mine = picks[(picks["predictor"] == source.predictor)
                         & (picks["replicate"] == source.replicate)]
            if not len(mine):
                raise ValueError(f"the selections table has no search of {source.name()}")
            for N, part in mine.groupby("N", sort=True):
                for target in lands:
                    where = {p: i for i, p in enumerate(target.prompts)}
                    missing = sorted(set(part["prompt"]) - set(where))
                    if missing:
                        raise ValueError(f"prompts search picked under {source.name()} are "
                                         f"missing from the landscape of {target.name()}: "
                                         f"{missing[:5]}")
                    regret = edits_lib.regret_of(target.kl,
                                                 [where[p] for p in part["prompt"]],
                                                 target.rule, target.optimal)
                    rows.append(_row(PREDICTORS, SEARCH, source, target, regret, len(part),
                                     search_n=int(N)))
    return rows
