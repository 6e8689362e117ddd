"""Stage `search_prompts`: exhaustive search over every prompt for a block of datasets.

Under selection `random` the datasets are the task's D_N (task_data). Under a pooled method
(`promptscape.selection`) the job reads the block's pools (selection_pool), scores every pool
sequence with every prompt once, lets the method keep N sequences per seed with their weights
(written as selected_data), and searches on them: selection sees the pool's losses and
nothing else, never the landscape or the evaluation set.
"""

from __future__ import annotations

import logging

import numpy as np

from promptscape import search, seeding, tables
from promptscape import prompts as prompts_lib
from promptscape import selection as selection_lib
from promptscape.stages.common import load_predictor, vocab_size

log = logging.getLogger("promptscape")


def selection_generator(selection: str, settings: dict, task: dict, task_length: int, N: int,
                        seed: int) -> np.random.Generator:
    """The generator of a random selection design for one (task, T, N, seed): the same for
    every predictor (common random numbers; the designs differ through the losses)."""
    return seeding.numpy_generator("dataset_selection", selection, settings, task, task_length,
                                   N, seed)


def search_prompts(*, datasets: str, output: str, predictor: str,
                   family: str | None = None, replicate: int = 0,
                   pretraining: dict, experiment: str, task_name: str, task_length: int,
                   N: int, max_prompt_length: int, enumeration_budget: int,
                   selection: str = selection_lib.RANDOM, selection_settings: dict | None = None,
                   task: dict | None = None, selected: str | None = None,
                   model: str | None = None, table: str | None = None,
                   device: str = "auto") -> None:
    """Empirical loss of every prompt on every dataset of the block, and each seed's s_hat.

    `datasets` is the block's task_data under `random`, its selection_pool under a pooled
    method, which also writes the datasets it chose to `selected` (selected_data)."""
    pooled = selection_lib.METHODS[selection].pooled
    data = tables.read_table(datasets, "selection_pool" if pooled else "task_data")
    seeds = np.unique(data["seed"].to_numpy())
    seqs = prompts_lib.to_arrays(data["sequence"].to_pylist(), task_length)
    seqs = seqs.reshape(len(seeds), -1, task_length)  # (S, N or P, T): sorted by seed, index
    V = vocab_size(pretraining)
    prompts = prompts_lib.all_prompts(max_prompt_length, V)
    pred = load_predictor(family or predictor, pretraining, model, table, device)
    identity = {"predictor": predictor, "replicate": replicate, "experiment": experiment,
                "task": task_name, "selection": selection, "N": N}
    if pooled:
        losses = _search_selected(pred, prompts, seqs, seeds, identity, selection,
                                  selection_settings or {}, task, task_length,
                                  enumeration_budget, V, selected)
    else:
        losses = search.empirical_losses(pred, prompts, seqs, enumeration_budget, V)  # (S, P)
    chosen = search.choose(losses)
    S, P = losses.shape
    frame = {
        **identity,
        "seed": np.repeat(seeds, P), "prompt": prompts * S,
        "prompt_length": np.tile([len(p) for p in prompts], S),
        "empirical_loss": losses.reshape(-1),
        "chosen": (np.arange(P)[None, :] == chosen[:, None]).reshape(-1),
    }
    tables.write(frame, "search", output)
    log.info("searched %d prompts on %d datasets of N=%d (%s, %s, %s, selection %s)", P, S, N,
             predictor, experiment, task_name, selection)


def _search_selected(pred, prompts, pools, seeds, identity, selection, settings, task,
                     task_length, enumeration_budget, V, selected_path) -> np.ndarray:
    """(S, P) empirical losses on the datasets `selection` keeps from each seed's pool; the
    datasets are written to `selected_path`."""
    S, pool_size, T = pools.shape
    N = identity["N"]
    table, index = search.sequence_losses(pred, prompts, pools.reshape(S * pool_size, T),
                                          enumeration_budget, V)
    index = index.reshape(S, pool_size)
    losses = np.empty((S, len(prompts)))
    rows = []
    for s, seed in enumerate(seeds):
        pool_losses = table[:, index[s]]  # (prompts, P): all that selection sees
        rng = selection_generator(selection, settings, task, task_length, N, int(seed))
        kept = selection_lib.select(selection, pool_losses, N, rng, settings)
        chosen_losses = pool_losses[:, kept.indices]
        if selection_lib.METHODS[selection].weighted:
            losses[s] = chosen_losses @ kept.weights
        else:  # a plain mean, as for D_N
            losses[s] = chosen_losses.mean(axis=1)
        leading = [] if kept.leading is None else [prompts[i] for i in kept.leading]
        n = len(kept.indices)
        rows.append({
            "seed": np.full(n, seed), "index": np.arange(n), "pool_index": kept.indices,
            "sequence": prompts_lib.to_strings(pools[s, kept.indices]),
            "weight": kept.weights,
            "inclusion_probability": (np.full(n, np.nan) if kept.inclusion_probability is None
                                      else kept.inclusion_probability),
            "spread": np.full(n, np.nan) if kept.spread is None else kept.spread,
            "leading_prompts": [leading] * n,
        })
    lists = ("sequence", "leading_prompts")
    frame = {key: [v for r in rows for v in r[key]] if key in lists
             else np.concatenate([r[key] for r in rows]) for key in rows[0]}
    tables.write({**identity, **frame}, "selected_data", selected_path)
    log.info("selected %d of %d pool sequences per seed by %s (%s)", N, pool_size, selection,
             ", ".join(f"{k}={v}" for k, v in settings.items()))
    return losses
