"""Stage `search_strategies`: every search strategy on every D_N of a seed block, scored
against exhaustive search on the same D_N and against the landscape.

The block's table of L_N (every prompt on every D_N) is computed as the search stage
computes it (`search.empirical_losses`, bit for bit the same numbers), then the strategies
see it only through an evaluation function (`strategies.Evaluator`) that pays one
evaluation per prompt not seen before; the table is also the ground truth of `found_best`
and of the empirical-optimum class. `gradient` also gets the gradient of L_N with respect to
the one-hot prompt tokens from the network's checkpoint; for the exact Bayes predictor it is
skipped, with a log line.

Beside the runs it writes each run's steps (`strategy_steps`: every prompt evaluation of
the strategies that propose from a parent, up to their largest budget, since the run at a
smaller budget is a prefix of it) and, for hill climbing, whether the prompt it ended on
at its largest budget is a local optimum of L_N under its own neighbourhood and of the
exact landscape (`hill_climb_ends`).
"""

from __future__ import annotations

import dataclasses
import functools
import logging

import numpy as np

from promptscape import edits, prior, search, seeding
from promptscape import landscape as landscape_lib
from promptscape.predictors import BayesPredictor
from promptscape.sources import build_source
from promptscape.study import tables
from promptscape import prompts as prompts_lib
from promptscape import strategies as strategies_lib
from promptscape.pipeline.stages.common import load_predictor, vocab_size
from promptscape.pipeline.stages.datasets_stage import draw_datasets

log = logging.getLogger("promptscape")


def strategy_generator(strategy: str, task: dict, task_length: int, N: int,
                       seed: int) -> np.random.Generator:
    """The generator of one strategy's run on one (task, T, N, seed): the same for every
    predictor (common random numbers: strategies differ through the losses)."""
    return seeding.numpy_generator("search_strategy", strategy, task, task_length, N, seed)


HILL_CLIMB = "hill_climb"
# strategy_runs' ground_truth: every prompt the strategies search is tabulated (EXHAUSTIVE),
# or they search beyond the landscape and are scored against the best prompts known.
EXHAUSTIVE = "exhaustive"
BEST_KNOWN = "best_known"


def search_strategies(*, landscape: str, output: str, steps: str, hill_climb_ends: str,
                      predictor: str,
                      family: str, replicate: int, pretraining: dict, experiment: str,
                      task_name: str, task: dict, task_length: int, N: int, first: int,
                      last: int, max_prompt_length: int, enumeration_budget: int,
                      strategies: dict,
                      budgets: list[int], model: str | None = None, table: str | None = None,
                      prior_fit: str | None = None, probe_queries: int | None = None,
                      strategy_max_prompt_length: int | None = None,
                      evaluation: str | None = None, device: str = "auto") -> None:
    """Run `strategies` ({name: settings}) at `budgets` on every D_N of seeds first..last;
    a network's L_N from its prompt-loss `table` where there is one, its gradients from its
    checkpoint `model`. The D_N are drawn here (`datasets.draw_datasets`: the sequences
    task_data holds and the search sees), not read from the experiment's task_data file,
    so that a change of the dataset grid elsewhere reruns no strategy job. The runs go to
    `output`, their steps to `steps`, the hill-climb ends to `hill_climb_ends`. A surrogate
    strategy ranks by L_N on the same D_N under the exact Bayes predictor of the selected
    fit of the predictor's `prior_fit`, read back after `probe_queries` queries.

    Where `strategy_max_prompt_length` is beyond `max_prompt_length`, the strategies search
    the longer prompts on L_N computed on demand (`search_on_demand`, which reads the
    task's `evaluation` set for the KL of the prompts the landscape does not hold)."""
    if (strategy_max_prompt_length is not None
            and strategy_max_prompt_length > max_prompt_length):
        return search_on_demand(
            landscape=landscape, output=output, steps=steps, hill_climb_ends=hill_climb_ends,
            predictor=predictor, family=family, replicate=replicate, pretraining=pretraining,
            experiment=experiment, task_name=task_name, task=task, task_length=task_length,
            N=N, first=first, last=last, max_prompt_length=max_prompt_length,
            max_length=strategy_max_prompt_length, enumeration_budget=enumeration_budget,
            strategies=strategies, budgets=budgets, model=model, table=table,
            evaluation=evaluation, device=device)
    V = vocab_size(pretraining)
    prompts = prompts_lib.all_prompts(max_prompt_length, V)
    P = len(prompts)
    seeds = np.arange(first, last + 1)
    seqs = draw_datasets(task, task_length, N, seeds)  # (S, N, T)
    scorer = load_predictor(family, pretraining, None if table else model, table, device)
    losses = search.empirical_losses(scorer, prompts, seqs, enumeration_budget, V)  # (S, P)
    kl, rank, optimal, rule = _landscape(landscape, prompts)
    best_kl = float(kl[optimal].min())
    plan = strategies_lib.Plan(tuple(strategies.items()), tuple(sorted(budgets)),
                               probe_queries)
    guide = (_surrogate_losses(prior_fit, probe_queries, prompts, seqs, enumeration_budget, V)
             if plan.needs_prior else None)  # (S, P)
    gradient_of = None
    names = list(plan.names)
    if plan.needs_gradient:
        if model is None:
            names = _without_gradient(names, predictor)
        else:
            # Loaded at the first gradient computed: over two symbols GCG computes none
            # (`strategies.gradient_search`), and the job never imports torch.
            @functools.cache
            def network():
                return (scorer if table is None
                        else load_predictor(family, pretraining, model, None, device))

            gradient_of = functools.partial(_gradient_on, network, seqs)
    rows, step_parts, ends = [], [], []
    for s, seed in enumerate(seeds):
        row = losses[s]
        in_optimum = strategies_lib.optimum_class(row)
        exhaustive_correct = bool(optimal[search.choose(row[None, :])[0]])
        for name in names:
            rng = strategy_generator(name, task, task_length, N, int(seed))
            budgets = plan.budgets_of(name, P)
            done = strategies_lib.search_run(
                name, row, V, max_prompt_length, budgets, rng,
                plan.settings(name), gradient_of(s) if gradient_of and
                strategies_lib.STRATEGIES[name].needs_gradient else None,
                guide[s] if strategies_lib.STRATEGIES[name].needs_prior else None)
            found = done.found
            if strategies_lib.STRATEGIES[name].proposes:
                step_parts.append(run_steps(done, prompts, row, int(seed), name,
                                            max(budgets)))
            if name == HILL_CLIMB:
                ends.append(hill_climb_end(found[-1][1], prompts, row, kl, V,
                                           max_prompt_length, int(seed), max(budgets),
                                           bool(in_optimum[found[-1][1]]), rule))
            for budget, i, used in found:
                rows.append((int(seed), name, budget, i, used, bool(in_optimum[i]),
                             int(in_optimum.sum()), exhaustive_correct))
    seed_col, name_col, budget_col, idx, used, found_best, m, exhaustive_correct = map(
        list, zip(*rows))
    idx = np.asarray(idx)
    frame = {
        "predictor": predictor, "replicate": replicate, "experiment": experiment,
        "task": task_name, "N": N, "seed": seed_col, "strategy": name_col,
        "budget": budget_col, "prompt": [prompts[i] for i in idx],
        "prompt_length": [len(prompts[i]) for i in idx],
        "empirical_loss": losses[np.searchsorted(seeds, seed_col), idx],
        "found_best": found_best, "correct": optimal[idx], "regret": kl[idx] - best_kl,
        "rank": rank[idx], "evaluations": used, "optimum_class_size": m, "num_prompts": P,
        "exhaustive_correct": exhaustive_correct, "kl": kl[idx], "ground_truth": EXHAUSTIVE,
    }
    tables.write(frame, "strategy_runs", output)
    dims = {"predictor": predictor, "replicate": replicate, "experiment": experiment,
            "task": task_name, "N": N}
    tables.write({**dims, **_concatenate(step_parts, STEP_COLUMNS)}, "strategy_steps", steps)
    tables.write({**dims, **_concatenate(ends, END_COLUMNS)}, "hill_climb_ends",
                 hill_climb_ends)
    log.info("ran %s at budgets %s on %d datasets of N=%d (%s, %s, %s)", ", ".join(names),
             list(plan.budgets), len(seeds), N, predictor, experiment, task_name)


STEP_COLUMNS = ("seed", "strategy", "budget", "step", "parent_prompt", "prompt", "operation",
                "position", "symbol", "replaced", "parent_loss", "loss")
END_COLUMNS = ("seed", "strategy", "budget", "prompt", "found_best",
               "local_optimum_empirical", "local_optimum_exact", "decided_by")


def run_steps(done: strategies_lib.Run, prompts, losses, seed: int,
              strategy: str, budget: int) -> dict:
    """The `strategy_steps` columns of one run (its largest `budget`): a row per prompt
    evaluation (gradient computations are left out, so `step` skips them), with the edit
    that made it where it is one edit of its parent (`edits.single_edit`). `prompts` and
    `losses` are indexed by canonical index (the lists of every prompt, or on demand
    `_Prompts` and a `strategies.LossCache`'s `get`)."""
    keep = np.flatnonzero(done.trail >= 0)
    trail, parents = done.trail[keep], done.parents[keep]
    child = [prompts[i] for i in trail]
    parent = [prompts[j] if j >= 0 else None for j in parents]
    edit = [None if p is None else edits.single_edit(p, c) for p, c in zip(parent, child)]
    none = (None, None, None, None)
    operation, position, symbol, replaced = (list(col) for col in zip(
        *[e or none for e in edit])) if edit else ([], [], [], [])
    n = len(keep)
    return {"seed": np.full(n, seed), "strategy": [strategy] * n, "budget": np.full(n, budget),
            "step": keep, "parent_prompt": parent, "prompt": child,
            "operation": operation, "position": position, "symbol": symbol,
            "replaced": [None if r == -1 else r for r in replaced],
            "parent_loss": np.where(parents >= 0, _at(losses, np.maximum(parents, 0)), np.nan),
            "loss": _at(losses, trail)}


def _at(losses, idx: np.ndarray) -> np.ndarray:
    """`losses[idx]` of an array, or `losses(idx)` of a function (on demand)."""
    return losses(idx) if callable(losses) else losses[idx]


def hill_climb_end(best: int, prompts: list[str], losses: np.ndarray, kl: np.ndarray,
                   vocab_size: int, max_length: int, seed: int, budget: int,
                   found_best: bool, resolution) -> dict:
    """One `hill_climb_ends` row: is the prompt a hill-climb run ended on (the best within
    its largest budget, canonical index `best`) a local optimum under the strategy's own
    neighbourhood (`strategies.neighbours`) of L_N on its D_N (no neighbour better by the
    strategy's rule) and of the exact landscape (no neighbour's KL lower by more than the
    landscape's rule, `resolution`: its `kl_resolution`, or its `landscape.TieRule`, which
    on an estimated landscape asks for a neighbour shown lower by the standard error:
    `edits.tie_rule`)?"""
    near = [prompts_lib.prompt_index(p, vocab_size)
            for p in strategies_lib.neighbours(prompts[best], vocab_size, max_length)]
    empirical = not any(strategies_lib.improves(losses[j], losses[best]) for j in near)
    rule = edits.tie_rule(kl, resolution)
    exact = not rule.less(kl, near, np.full(len(near), best)).any() if near else True
    return {"seed": [seed], "strategy": [HILL_CLIMB], "budget": [budget],
            "prompt": [prompts[best]], "found_best": [found_best],
            "local_optimum_empirical": [empirical], "local_optimum_exact": [exact],
            "decided_by": [rule.decided_by]}


def _concatenate(parts: list[dict], columns: tuple[str, ...]) -> dict:
    """Column-wise concatenation of row blocks (no block: empty columns)."""
    if not parts:
        return {c: [] for c in columns}
    out = {}
    for c in columns:
        values = [part[c] for part in parts]
        if all(isinstance(v, np.ndarray) for v in values):
            out[c] = np.concatenate(values)
        else:
            out[c] = [x for v in values for x in (v.tolist() if isinstance(v, np.ndarray) else v)]
    return out


def _gradient_on(network, seqs: np.ndarray, s: int):
    """The gradient of L_N on dataset `s` of the block as a function of the prompt, over
    D_N's distinct sequences weighted by their counts (the same loss as the mean over its N
    sequences, in fewer backward passes: about 600 distinct of N = 1000 at binary T = 10);
    `network()` gives the network."""
    unique, counts = np.unique(seqs[s], axis=0, return_counts=True)
    weights = counts / counts.sum()
    return lambda prompt: network().prompt_gradient(prompt, unique, weights)[1]


def _surrogate_losses(path: str | None, queries: int | None, prompts: list[str],
                      seqs: np.ndarray, enumeration_budget: int, V: int) -> np.ndarray:
    """L_N ``(S, P)`` of every prompt on every D_N of the block under the exact Bayes
    predictor of the selected fit of the prior_fit table at `path`, whose queries must be
    the plan's."""
    if path is None:
        raise ValueError("a surrogate strategy needs the predictor's prior_fit table")
    frame = tables.read(path, "prior_fit")
    chosen = frame[frame["selected"]]
    if chosen.empty or int(chosen["queries"].iloc[0]) != queries:
        raise ValueError(f"{path}: its selected fit was read back after "
                         f"{chosen['queries'].tolist()[:1]} queries, not the plan's {queries}")
    fitted = build_source(prior.selected_source(frame), where=f"{path}: the selected fit")
    return search.empirical_losses(BayesPredictor(fitted), prompts, seqs, enumeration_budget,
                                   V)


# The landscape columns the hill-climb ends read (its rule: `landscape.landscape_rule`).
LANDSCAPE_COLUMNS = ("prompt", "method", "kl", "kl_se", "rank", "optimal", "kl_resolution",
                     "kl_residuals")


def _landscape(path: str, prompts: list[str], with_method: bool = False):
    frame = tables.read(path, "landscape", columns=LANDSCAPE_COLUMNS)
    if frame["prompt"].tolist() != prompts:
        raise ValueError(f"{path}: the landscape does not hold the {len(prompts)} prompts of "
                         "the search, in canonical order")
    kl = frame["kl"].to_numpy()
    method = str(frame["method"].iloc[0])
    rule = landscape_lib.landscape_rule(
        method, float(frame["kl_resolution"].iloc[0]), frame["kl_se"].to_numpy(),
        landscape_lib.stored_residuals(frame["kl_residuals"]) if method == "monte_carlo" else None)
    out = kl, frame["rank"].to_numpy(), frame["optimal"].to_numpy().astype(bool), rule
    return (*out, method) if with_method else out


# ------------------------------------------------------------------ beyond the landscape
class _Prompts:
    """Every prompt over V symbols by canonical index, without listing them."""

    def __init__(self, vocab_size: int):
        self.vocab_size = vocab_size

    def __getitem__(self, i) -> str:
        return prompts_lib.prompt_at(int(i), self.vocab_size)


class _KL:
    """KL (standard error, paired residuals) of prompts the landscape does not hold, by the
    landscape's own method on the same outcomes: the task's evaluation set (monte_carlo:
    `landscape.evaluation_kl`, residuals `landscape.paired_residuals`, as the landscape
    stage) or its exact sum (`landscape.theoretical_losses`); `num_prompts`: the landscape's
    prompts, on which its choice of tabulated sequences was made."""

    def __init__(self, predictor, task: dict, task_name: str, task_length: int, method: str,
                 evaluation: str | None, enumeration_budget: int, vocab_size: int,
                 num_prompts: int):
        self.predictor, self.method = predictor, method
        self.task = build_source(task, where=f"task {task_name}")
        self.T, self.budget, self.V, self.P = task_length, enumeration_budget, vocab_size, \
            num_prompts
        if method == "monte_carlo":
            if evaluation is None:
                raise ValueError(f"task {task_name}: an estimated landscape's KL beyond it "
                                 "needs the task's evaluation set")
            frame = tables.read_table(evaluation, "evaluation_set")
            self.seqs = prompts_lib.to_arrays(frame["sequence"].to_pylist(), task_length)
            self.weights = frame["weight"].to_numpy()
            self.strata = frame["stratum"].to_numpy()
            self.log_prob = self.task.log_prob(self.seqs)

    def __call__(self, prompts: list[str]):
        """``(kl (P,), kl_se (P,), residuals (P, M) or None)``."""
        first, inverse = self.predictor.prompt_classes(prompts)
        if self.method == "monte_carlo":
            table, index = search.sequence_losses(self.predictor, first, self.seqs,
                                                  self.budget, self.V, decide_on=self.P)
            _, _, kl, kl_se, _ = landscape_lib.evaluation_kl(table, index, self.log_prob,
                                                             self.weights, self.strata)
            residuals = landscape_lib.paired_residuals(
                table[:, index] + self.log_prob[None, :], self.weights, self.strata)
            return kl[inverse], kl_se[inverse], residuals[inverse]
        loss, _, entropy = landscape_lib.theoretical_losses(
            self.predictor, first, self.task, self.T, self.method, num_prompts=self.P,
            budget=self.budget)
        return (loss - entropy)[inverse], np.zeros(len(prompts)), None


class _Known:
    """The prompts whose KL is known: the landscape's (canonical indices 0..P-1) and those
    added beyond it, in one indexed set with the landscape's rule extended to them."""

    def __init__(self, kl, rule, vocab_size: int):
        self.kl = [np.asarray(kl, dtype=np.float64)]
        self.se = [rule.kl_se if rule.is_estimated else np.zeros(len(kl))]
        self.residuals = [rule.residuals] if rule.residuals is not None else None
        self.rule, self.V = rule, vocab_size
        self.position: dict[int, int] = {}
        self.size = len(kl)

    def add(self, idx, oracle: _KL) -> None:
        new = sorted({int(i) for i in idx if i >= len(self.kl[0]) and i not in self.position})
        if not new:
            return
        kl, se, residuals = oracle([prompts_lib.prompt_at(i, self.V) for i in new])
        self.kl.append(kl)
        self.se.append(se)
        if self.residuals is not None:
            self.residuals.append(residuals)
        for i in new:
            self.position[i] = self.size
            self.size += 1

    def at(self, idx) -> np.ndarray:
        """Positions in the known set of canonical indices `idx`."""
        P = len(self.kl[0])
        return np.asarray([i if i < P else self.position[int(i)] for i in idx], dtype=np.int64)

    def frozen(self):
        """``(kl, rule)`` over every known prompt: the landscape's rule (its tolerance and
        critical z) with their standard errors, paired where the landscape keeps residuals."""
        kl = np.concatenate(self.kl)
        if not self.rule.is_estimated:
            return kl, self.rule
        return kl, dataclasses.replace(
            self.rule, kl_se=np.concatenate(self.se),
            residuals=None if self.residuals is None else np.concatenate(self.residuals))


def search_on_demand(*, landscape: str, output: str, steps: str, hill_climb_ends: str,
                     predictor: str, family: str, replicate: int, pretraining: dict,
                     experiment: str, task_name: str, task: dict, task_length: int, N: int,
                     first: int, last: int, max_prompt_length: int, max_length: int,
                     enumeration_budget: int, strategies: dict, budgets: list[int],
                     model: str | None = None, table: str | None = None,
                     evaluation: str | None = None, device: str = "auto") -> None:
    """The strategies on prompts of length 0..`max_length`, beyond the landscape's
    `max_prompt_length`: L_N of the prompts up to max_prompt_length is tabulated as on the
    tabulated path (the same numbers), that of every longer prompt a strategy visits is
    computed on demand, in batches, once per D_N (`strategies.LossCache`, shared by the
    strategies of a seed). No prompt space is enumerated beyond the landscape, so the ground
    truth is the best known (`ground_truth` best_known, docs/science.md): the least L_N
    over the tabulated prompts and every prompt the job's strategies evaluated on the D_N
    (`found_best`, `optimum_class_size`); the least KL over the landscape and every prompt
    the strategies chose (its KL computed by the landscape's method,
    `_KL`): `regret` is a lower bound of the true regret, `correct` says that the least
    known KL is not shown less by the landscape's rule, `exhaustive_correct` the same of
    exhaustive search up to max_prompt_length, and `rank` is null."""
    V = vocab_size(pretraining)
    short = prompts_lib.all_prompts(max_prompt_length, V)
    tabulated = len(short)
    P = prompts_lib.num_prompts(max_length, V)
    seeds = np.arange(first, last + 1)
    seqs = draw_datasets(task, task_length, N, seeds)  # (S, N, T)
    scorer = load_predictor(family, pretraining, None if table else model, table, device)
    losses = search.empirical_losses(scorer, short, seqs, enumeration_budget, V)  # (S, P_L)
    # A network's table holds the prompts up to max_prompt_length only: the longer ones
    # are scored by the network itself.
    longer = (scorer if table is None
              else functools.cache(lambda: load_predictor(family, pretraining, model, None,
                                                          device)))
    kl_short, _, _, rule, method = _landscape(landscape, short, with_method=True)
    plan = strategies_lib.Plan(tuple(strategies.items()), tuple(sorted(budgets)),
                               max_length=max_length)
    names = list(plan.names)
    whole = [n for n in names if not strategies_lib.STRATEGIES[n].on_demand]
    if whole:
        raise ValueError(f"{', '.join(whole)} cannot search beyond the landscape's "
                         f"max_prompt_length {max_prompt_length}: it needs every prompt's L_N")
    gradient_of = None
    if plan.needs_gradient:
        if model is None:
            names = _without_gradient(names, predictor)
        else:
            network = functools.cache(lambda: scorer if table is None else longer())
            gradient_of = functools.partial(_gradient_on, network, seqs)
    all_prompts = _Prompts(V)
    runs, step_parts, climbs, caches = [], [], [], {}
    computed = 0
    for s, seed in enumerate(seeds):
        cache = strategies_lib.LossCache(
            functools.partial(_on_demand_losses, losses[s], seqs[s:s + 1],
                              longer if table is None else None,
                              None if table is None else longer, enumeration_budget, V, P),
            V)
        caches[s] = cache
        for name in names:
            rng = strategy_generator(name, task, task_length, N, int(seed))
            done = strategies_lib.search_run(
                name, None, V, max_length, plan.budgets_of(name, P), rng, plan.settings(name),
                gradient_of(s) if gradient_of and
                strategies_lib.STRATEGIES[name].needs_gradient else None, cache=cache)
            runs.append((s, name, done))
            if strategies_lib.STRATEGIES[name].proposes:
                step_parts.append(run_steps(done, all_prompts, cache.get, int(seed), name,
                                            max(plan.budgets_of(name, P))))
        computed += sum(1 for i in cache.values if i >= tabulated)
    # The best L_N known on each D_N: the tabulated prompts' and those the strategies visited
    # (taken before the hill-climb ends look at neighbours no strategy evaluated).
    least, class_size = {}, {}
    for s, cache in caches.items():
        known = np.concatenate([losses[s], np.fromiter(
            (v for i, v in cache.values.items() if i >= tabulated), dtype=np.float64)])
        least[s] = float(known.min())
        class_size[s] = int(strategies_lib.optimum_class(known).sum())
    known = _Known(kl_short, rule, V)
    oracle = _KL(longer if table is None else longer(), task, task_name, task_length, method,
                 evaluation, enumeration_budget, V, tabulated)
    chosen = sorted({i for _, _, done in runs for _, i, _ in done.found})
    known.add(chosen, oracle)
    kl_all, rule_all = known.frozen()
    best = int(np.argmin(kl_all))
    rows = []
    for s, name, done in runs:
        cache = caches[s]
        s_hat = int(search.choose(losses[s][None, :])[0])
        exhaustive_correct = bool(not rule_all.less(kl_all, [best], known.at([s_hat]))[0])
        for budget, i, used in done.found:
            position = known.at([i])
            loss = float(cache.get([i])[0])
            rows.append((int(seeds[s]), name, budget, i, used, loss,
                         bool(strategies_lib.optimum_class(np.array([least[s], loss]))[1]),
                         bool(not rule_all.less(kl_all, [best], position)[0]),
                         float(kl_all[position[0]]), class_size[s], exhaustive_correct))
        if name == HILL_CLIMB:
            climbs.append((s, done.found[-1][1], max(b for b, _, _ in done.found),
                           bool(rows[-1][6])))
    ends = [_hill_climb_end_on_demand(caches[s], i, known, oracle, V, max_length,
                                      int(seeds[s]), budget, found)
            for s, i, budget, found in climbs]
    seed_col, name_col, budget_col, idx, used, loss, found_best, correct, kl, m, exact = map(
        list, zip(*rows))
    kl = np.asarray(kl)
    frame = {
        "predictor": predictor, "replicate": replicate, "experiment": experiment,
        "task": task_name, "N": N, "seed": seed_col, "strategy": name_col,
        "budget": budget_col, "prompt": [all_prompts[i] for i in idx],
        "prompt_length": [len(all_prompts[i]) for i in idx], "empirical_loss": loss,
        "found_best": found_best, "correct": correct, "regret": kl - float(kl_all[best]),
        "rank": [None] * len(idx), "evaluations": used, "optimum_class_size": m,
        "num_prompts": P, "exhaustive_correct": exact, "kl": kl, "ground_truth": BEST_KNOWN,
    }
    tables.write(frame, "strategy_runs", output)
    dims = {"predictor": predictor, "replicate": replicate, "experiment": experiment,
            "task": task_name, "N": N}
    tables.write({**dims, **_concatenate(step_parts, STEP_COLUMNS)}, "strategy_steps", steps)
    tables.write({**dims, **_concatenate(ends, END_COLUMNS)}, "hill_climb_ends",
                 hill_climb_ends)
    log.info("ran %s at budgets %s on %d datasets of N=%d (%s, %s, %s) on prompts of length "
             "0..%d, L_N on demand beyond the %d prompts up to %d: %d longer prompts scored; "
             "the best known KL %.6g (%s) against the landscape's best %.6g",
             ", ".join(names), list(plan.budgets), len(seeds), N, predictor, experiment,
             task_name, max_length, tabulated, max_prompt_length, computed,
             float(kl_all[best]), repr(all_prompts[best] if best < tabulated else
                                       [all_prompts[i] for i, p in known.position.items()
                                        if p == best][0]), float(kl_short.min()))


def _on_demand_losses(table_row: np.ndarray, seqs: np.ndarray, predictor, network,
                      enumeration_budget: int, vocab_size: int, num_prompts: int,
                      prompts: list[str]) -> np.ndarray:
    """L_N on one D_N (`seqs` ``(1, N, T)``) of `prompts`: the tabulated value (`table_row`)
    of those up to the landscape's length, the `predictor`'s (or the loaded `network()`'s)
    of the longer ones, in one batch; the choice of tabulated sequences is made on all the
    `num_prompts` prompts searched (`search.empirical_losses`' decide_on)."""
    idx = np.fromiter((prompts_lib.prompt_index(p, vocab_size) for p in prompts),
                      dtype=np.int64, count=len(prompts))
    inside = idx < len(table_row)
    out = np.empty(len(prompts))
    out[inside] = table_row[idx[inside]]
    rest = [p for p, k in zip(prompts, inside) if not k]
    if rest:
        scorer = predictor if predictor is not None else network()
        out[~inside] = search.empirical_losses(scorer, rest, seqs, enumeration_budget,
                                               vocab_size, decide_on=num_prompts)[0]
    return out


def _hill_climb_end_on_demand(cache, best: int, known: _Known, oracle: _KL, vocab_size: int,
                              max_length: int, seed: int, budget: int,
                              found_best: bool) -> dict:
    """`hill_climb_end` beyond the landscape: the neighbours' L_N from the seed's cache
    (computed where no strategy visited them) and their KL by the landscape's method."""
    prompt = prompts_lib.prompt_at(best, vocab_size)
    near = [prompts_lib.prompt_index(p, vocab_size)
            for p in strategies_lib.neighbours(prompt, vocab_size, max_length)]
    values = cache.get([best, *near])
    empirical = not any(strategies_lib.improves(v, values[0]) for v in values[1:])
    known.add([best, *near], oracle)
    kl, rule = known.frozen()
    where = known.at([best, *near])
    exact = (not rule.less(kl, where[1:], np.full(len(near), where[0])).any()) if near else True
    return {"seed": [seed], "strategy": [HILL_CLIMB], "budget": [budget],
            "prompt": [prompt], "found_best": [found_best],
            "local_optimum_empirical": [empirical], "local_optimum_exact": [exact],
            "decided_by": [rule.decided_by]}


def _without_gradient(names: list[str], predictor: str) -> list[str]:
    """`names` less the strategies that need a gradient, which the exact Bayes predictor
    has none of (logged, not silent)."""
    skipped = [n for n in names if strategies_lib.STRATEGIES[n].needs_gradient]
    log.warning("skipping %s for %s: the exact Bayes predictor has no gradient",
                ", ".join(skipped), predictor)
    return [n for n in names if n not in skipped]
