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


def search_strategies(*, landscape: str, output: str, steps: str, hill_climb_ends: str,
                      predictor: str,
                      family: str, replicate: int, pretraining: dict, experiment: str,
                      task_name: str, task: dict, task_length: int, N: int, first: int,
                      last: int, max_prompt_length: int, enumeration_budget: int,
                      strategies: dict,
                      budgets: list[int], model: str | None = None, table: str | None = None,
                      prior_fit: str | None = None, probe_queries: int | None = None,
                      device: str = "auto") -> None:
    """Run `strategies` ({name: settings}) at `budgets` on every D_N of seeds first..last;
    a network's L_N from its prompt-loss `table` where there is one, its gradients from its
    checkpoint `model`. The D_N are drawn here (`datasets.draw_datasets`: the sequences
    task_data holds and the search sees), not read from the experiment's task_data file,
    so that a change of the dataset grid elsewhere reruns no strategy job. The runs go to
    `output`, their steps to `steps`, the hill-climb ends to `hill_climb_ends`. A surrogate
    strategy ranks by L_N on the same D_N under the exact Bayes predictor of the selected
    fit of the predictor's `prior_fit`, read back after `probe_queries` queries."""
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
            skipped = [n for n in names if strategies_lib.STRATEGIES[n].needs_gradient]
            log.warning("skipping %s for %s: the exact Bayes predictor has no gradient",
                        ", ".join(skipped), predictor)
            names = [n for n in names if n not in skipped]
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
        "exhaustive_correct": exhaustive_correct,
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


def run_steps(done: strategies_lib.Run, prompts: list[str], losses: np.ndarray, seed: int,
              strategy: str, budget: int) -> dict:
    """The `strategy_steps` columns of one run (its largest `budget`): a row per prompt
    evaluation (gradient computations are left out, so `step` skips them), with the edit
    that made it where it is one edit of its parent (`edits.single_edit`)."""
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
            "parent_loss": np.where(parents >= 0, losses[np.maximum(parents, 0)], np.nan),
            "loss": losses[trail]}


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


def _landscape(path: str, prompts: list[str]):
    frame = tables.read(path, "landscape", columns=LANDSCAPE_COLUMNS)
    if frame["prompt"].tolist() != prompts:
        raise ValueError(f"{path}: the landscape does not hold the {len(prompts)} prompts of "
                         "the search, in canonical order")
    kl = frame["kl"].to_numpy()
    method = str(frame["method"].iloc[0])
    rule = landscape_lib.landscape_rule(
        method, float(frame["kl_resolution"].iloc[0]), frame["kl_se"].to_numpy(),
        landscape_lib.stored_residuals(frame["kl_residuals"]) if method == "monte_carlo" else None)
    return kl, frame["rank"].to_numpy(), frame["optimal"].to_numpy().astype(bool), rule
