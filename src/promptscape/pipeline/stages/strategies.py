"""Stage `search_strategies`: every search strategy on every D_N of a seed block, scored
against exhaustive search on the same D_N and against the landscape.

The block's table of L_N (every prompt on every D_N) is computed as the search stage
computes it (`search.empirical_losses`, bit for bit the same numbers), then the strategies
see it only through an evaluation function (`strategies.Evaluator`) that pays one
evaluation per prompt not seen before; the table is also the ground truth of `found_best`
and of the empirical-optimum class. `gradient` also gets the gradient of L_N with respect to
the one-hot prompt tokens from the network's checkpoint; for the exact Bayes predictor it is
skipped, with a log line.
"""

from __future__ import annotations

import functools
import logging

import numpy as np

from promptscape import search, seeding
from promptscape.pipeline import tables
from promptscape import prompts as prompts_lib
from promptscape import strategies as strategies_lib
from promptscape.pipeline.stages.common import load_predictor, vocab_size
from promptscape.pipeline.stages.datasets import draw_datasets

log = logging.getLogger("promptscape")


def strategy_generator(strategy: str, task: dict, task_length: int, N: int,
                       seed: int) -> np.random.Generator:
    """The generator of one strategy's run on one (task, T, N, seed): the same for every
    predictor (common random numbers: strategies differ through the losses)."""
    return seeding.numpy_generator("search_strategy", strategy, task, task_length, N, seed)


def search_strategies(*, landscape: str, output: str, predictor: str,
                      family: str, replicate: int, pretraining: dict, experiment: str,
                      task_name: str, task: dict, task_length: int, N: int, first: int,
                      last: int, max_prompt_length: int, enumeration_budget: int,
                      strategies: dict,
                      budgets: list[int], model: str | None = None, table: str | None = None,
                      device: str = "auto") -> None:
    """Run `strategies` ({name: settings}) at `budgets` on every D_N of seeds first..last;
    a network's L_N from its prompt-loss `table` where there is one, its gradients from its
    checkpoint `model`. The D_N are drawn here (`datasets.draw_datasets`: the sequences
    task_data holds and the search sees), not read from the experiment's task_data file,
    so that a change of the dataset grid elsewhere reruns no strategy job."""
    V = vocab_size(pretraining)
    prompts = prompts_lib.all_prompts(max_prompt_length, V)
    P = len(prompts)
    seeds = np.arange(first, last + 1)
    seqs = draw_datasets(task, task_length, N, seeds)  # (S, N, T)
    scorer = load_predictor(family, pretraining, None if table else model, table, device)
    losses = search.empirical_losses(scorer, prompts, seqs, enumeration_budget, V)  # (S, P)
    kl, rank, optimal = _landscape(landscape, prompts)
    best_kl = float(kl[optimal].min())
    plan = strategies_lib.Plan(tuple(strategies.items()), tuple(sorted(budgets)))
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
    rows = []
    for s, seed in enumerate(seeds):
        row = losses[s]
        in_optimum = strategies_lib.optimum_class(row)
        exhaustive_correct = bool(optimal[search.choose(row[None, :])[0]])
        for name in names:
            rng = strategy_generator(name, task, task_length, N, int(seed))
            found = strategies_lib.run(
                name, row, V, max_prompt_length, plan.budgets_of(name, P), rng,
                plan.settings(name), gradient_of(s) if gradient_of and
                strategies_lib.STRATEGIES[name].needs_gradient else None)
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
    log.info("ran %s at budgets %s on %d datasets of N=%d (%s, %s, %s)", ", ".join(names),
             list(plan.budgets), len(seeds), N, predictor, experiment, task_name)


def _gradient_on(network, seqs: np.ndarray, s: int):
    """The gradient of L_N on dataset `s` of the block as a function of the prompt, over
    D_N's distinct sequences weighted by their counts (the same loss as the mean over its N
    sequences, in fewer backward passes: about 600 distinct of N = 1000 at binary T = 10);
    `network()` gives the network."""
    unique, counts = np.unique(seqs[s], axis=0, return_counts=True)
    weights = counts / counts.sum()
    return lambda prompt: network().prompt_gradient(prompt, unique, weights)[1]


def _landscape(path: str, prompts: list[str]):
    frame = tables.read(path, "landscape")
    if frame["prompt"].tolist() != prompts:
        raise ValueError(f"{path}: the landscape does not hold the {len(prompts)} prompts of "
                         "the search, in canonical order")
    return (frame["kl"].to_numpy(), frame["rank"].to_numpy(),
            frame["optimal"].to_numpy().astype(bool))
