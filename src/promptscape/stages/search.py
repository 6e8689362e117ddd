"""Stages `search_prompts` and `search_selected`: exhaustive search over every prompt for a
block of datasets.

`search_prompts` searches the task's D_N (task_data, selection random); its code knows
nothing of selection, so editing a selection method reruns no random search.
`search_selected`, for a pooled method (`promptscape.selection`), reads the block's pools (selection_pool), scores every pool
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
                   model: str | None = None, table: str | None = None,
                   device: str = "auto") -> None:
    """Empirical loss of every prompt on every dataset D_N of the block (task_data,
    selection random), and each seed's s_hat."""
    seeds, seqs = read_block(datasets, "task_data", task_length, N)
    prompts, pred, V = _predictor(max_prompt_length, pretraining, family or predictor, model,
                                  table, device)
    losses = search.empirical_losses(pred, prompts, seqs, enumeration_budget, V)  # (S, P)
    _write_search(losses, prompts, seeds, output, pred, predictor=predictor, replicate=replicate,
                  experiment=experiment, task=task_name, selection="random", N=N)


def search_selected(*, datasets: str, output: str, selected: str, predictor: str,
                    family: str | None = None, replicate: int = 0,
                    pretraining: dict, experiment: str, task_name: str, task: dict,
                    task_length: int, N: int, max_prompt_length: int,
                    enumeration_budget: int, selection: str, selection_settings: dict,
                    model: str | None = None, table: str | None = None,
                    device: str = "auto") -> None:
    """The search on the datasets pooled method `selection` keeps from each seed's pool
    (`datasets`: the block's selection_pool), which it writes to `selected`
    (selected_data)."""
    seeds, pools = read_block(datasets, "selection_pool", task_length,
                               selection_settings["pool_size"])
    prompts, pred, V = _predictor(max_prompt_length, pretraining, family or predictor, model,
                                  table, device)
    identity = {"predictor": predictor, "replicate": replicate, "experiment": experiment,
                "task": task_name, "selection": selection, "N": N}
    losses = _search_selected(pred, prompts, pools, seeds, identity, selection,
                              selection_settings, task, task_length, enumeration_budget, V,
                              selected)
    _write_search(losses, prompts, seeds, output, pred, **identity)


def read_block(path: str, artifact: str, task_length: int, size: int):
    """The seeds of a block and their sequences ``(S, size, T)``; a file whose seeds do not
    hold `size` sequences each (N of a dataset, P of a pool) is refused by name."""
    data = tables.read_table(path, artifact)
    seeds, counts = np.unique(data["seed"].to_numpy(), return_counts=True)
    if (counts != size).any():
        bad = ", ".join(f"seed {s}: {c}" for s, c in zip(seeds, counts) if c != size)
        raise ValueError(f"{path}: every seed of this {artifact} must hold {size} sequences "
                         f"(its job's {'N' if artifact == 'task_data' else 'pool_size'}); "
                         f"{bad}")
    seqs = prompts_lib.to_arrays(data["sequence"].to_pylist(), task_length)
    return seeds, seqs.reshape(len(seeds), size, task_length)  # rows sorted by seed, index


def _predictor(max_prompt_length, pretraining, family, model, table, device):
    V = vocab_size(pretraining)
    prompts = prompts_lib.all_prompts(max_prompt_length, V)
    return prompts, load_predictor(family, pretraining, model, table, device), V


def _write_search(losses: np.ndarray, prompts: list[str], seeds, output: str, pred,
                  **identity) -> None:
    """Each seed's `search.KEPT_CLASSES` best prompt classes, s_hat among them."""
    chosen = search.choose(losses)
    first, inverse = pred.prompt_classes(prompts)
    kept, ranks = search.best_classes(losses, inverse, chosen)  # (S, K) prompt indices
    S, K = kept.shape
    sizes = np.bincount(inverse, minlength=len(first))
    frame = {
        **identity,
        "seed": np.repeat(seeds, K), "prompt": [prompts[i] for i in kept.reshape(-1)],
        "prompt_length": [len(prompts[i]) for i in kept.reshape(-1)],
        "class_size": sizes[inverse[kept.reshape(-1)]], "empirical_rank": ranks.reshape(-1),
        "empirical_loss": np.take_along_axis(losses, kept, axis=1).reshape(-1),
        "chosen": (kept == chosen[:, None]).reshape(-1),
    }
    tables.write(frame, "search", output)
    log.info("searched %d prompts (%d classes) on %d datasets of N=%d (%s, %s, %s, "
             "selection %s)", len(prompts), len(first), S, identity["N"],
             identity["predictor"], identity["experiment"], identity["task"],
             identity["selection"])


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
    rows, short = [], []
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
        if "leading_prompts" in settings and len(leading) < settings["leading_prompts"]:
            short.append(int(seed))
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
    if short:
        log.warning("the pool tells fewer than leading_prompts = %d prompts apart (prompts "
                    "with the same losses on every pool sequence count once) for seeds %s: "
                    "the spread is taken across those it does", settings["leading_prompts"],
                    short)
    tables.write({**identity, **frame}, "selected_data", selected_path)
    log.info("selected %d of %d pool sequences per seed by %s (%s)", N, pool_size, selection,
             ", ".join(f"{k}={v}" for k, v in settings.items()))
    return losses
