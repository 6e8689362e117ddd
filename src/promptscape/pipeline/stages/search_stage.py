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

from promptscape import search, seeding
from promptscape.study import tables
from promptscape import prompts as prompts_lib
from promptscape import selection as selection_lib
from promptscape.pipeline.stages.common import load_predictor, vocab_size

log = logging.getLogger("promptscape")


def selection_generator(selection: str, settings: dict, task: dict, task_length: int, N: int,
                        seed: int) -> np.random.Generator:
    """The generator of a random selection design for one (task, T, N, seed): the same for
    every predictor (common random numbers; the designs differ through the losses)."""
    return seeding.numpy_generator("dataset_selection", selection, settings, task, task_length,
                                   N, seed)


def search_prompts(*, datasets: str, output: str, predictors: list[dict], pretraining: dict,
                   experiment: str, tasks: list[str], task_length: int,
                   dataset_sizes: list[int], first: int, last: int, max_prompt_length: int,
                   enumeration_budget: int, device: str = "auto") -> None:
    """Empirical loss of every prompt on every dataset D_N of the block (task_data,
    selection random), and each seed's s_hat, for every predictor (`predictors`: one
    mapping each of ``predictor``, ``replicate``, ``family`` and its ``table`` or ``model``
    path), task and N of an experiment. Each predictor is loaded once."""
    blocks = read_blocks(datasets, "task_data", tasks, dataset_sizes, first, last,
                         task_length, lambda N: N)
    frames = []
    for unit in predictors:
        prompts, pred, V = _predictor(max_prompt_length, pretraining, unit, device)
        for task in tasks:
            for N in dataset_sizes:
                seeds, seqs = blocks[task, N]
                losses = search.empirical_losses(pred, prompts, seqs, enumeration_budget,
                                                 V)  # (S, P)
                frames.append(_search_frame(
                    losses, prompts, seeds, pred, predictor=unit["predictor"],
                    replicate=unit["replicate"], experiment=experiment, task=task,
                    selection="random", N=N))
    _write_search(frames, output)


def search_selected(*, datasets: str, output: str, selected: str, predictors: list[dict],
                    pretraining: dict, experiment: str, tasks: dict[str, dict],
                    task_length: int, dataset_sizes: list[int], first: int, last: int,
                    max_prompt_length: int, enumeration_budget: int, selection: str,
                    selection_settings: dict, device: str = "auto") -> None:
    """The search on the datasets pooled method `selection` keeps from each seed's pool
    (`datasets`: the block's selection_pool), for every predictor, task (`tasks`: name ->
    source config, the design's seed) and N of an experiment; the datasets kept are written
    to `selected` (selected_data)."""
    blocks = read_blocks(datasets, "selection_pool", list(tasks), dataset_sizes, first, last,
                         task_length, lambda N: selection_settings["pool_size"])
    frames, kept = [], []
    for unit in predictors:
        prompts, pred, V = _predictor(max_prompt_length, pretraining, unit, device)
        for task_name, task in tasks.items():
            for N in dataset_sizes:
                seeds, pools = blocks[task_name, N]
                identity = {"predictor": unit["predictor"], "replicate": unit["replicate"],
                            "experiment": experiment, "task": task_name,
                            "selection": selection, "N": N}
                losses = _search_selected(pred, prompts, pools, seeds, identity, selection,
                                          selection_settings, task, task_length,
                                          enumeration_budget, V, kept)
                frames.append(_search_frame(losses, prompts, seeds, pred, **identity))
    tables.write({key: _concat([k[key] for k in kept]) for key in kept[0]}, "selected_data",
                 selected)
    _write_search(frames, output)


def read_blocks(path: str, artifact: str, tasks: list[str], dataset_sizes: list[int],
                first: int, last: int, task_length: int, size) -> dict:
    """{(task, N): (seeds, sequences (S, size(N), T))} of a block file (task_data,
    selection_pool), read and decoded once for every predictor of the job; a (task, N) that
    lacks a seed of first..last, or whose seeds do not hold `size(N)` sequences each (N of a
    dataset, P of a pool), is refused by name."""
    data = tables.read_table(path, artifact)
    task_column = data["task"].to_numpy(zero_copy_only=False)
    n_column, seed_column = data["N"].to_numpy(), data["seed"].to_numpy()
    expected = np.arange(first, last + 1)
    blocks = {}
    for task in tasks:
        for N in dataset_sizes:
            # Rows are sorted by the file's key (task, N, seed, index): (task, N) is a slice.
            rows = np.flatnonzero((task_column == task) & (n_column == N))
            start, stop = (int(rows[0]), int(rows[-1]) + 1) if len(rows) else (0, 0)
            seeds, counts = np.unique(seed_column[start:stop], return_counts=True)
            n = size(N)
            if (stop - start != len(rows) or not np.array_equal(seeds, expected)
                    or (counts != n).any()):
                bad = ", ".join(f"seed {s}: {c}" for s, c in zip(seeds, counts) if c != n)
                raise ValueError(
                    f"{path}: task {task}, N={N} must hold seeds {first}..{last} with {n} "
                    f"sequences each (its job's "
                    f"{'N' if artifact == 'task_data' else 'pool_size'}); it holds "
                    f"{len(seeds)} seeds{'; ' + bad if bad else ''}")
            sequences = data["sequence"].slice(start, stop - start).to_pylist()
            seqs = prompts_lib.to_arrays(sequences, task_length)
            blocks[task, N] = seeds, seqs.reshape(len(seeds), n, task_length)
    return blocks


def _predictor(max_prompt_length, pretraining, unit, device):
    V = vocab_size(pretraining)
    prompts = prompts_lib.all_prompts(max_prompt_length, V)
    pred = load_predictor(unit["family"], pretraining, unit.get("model"), unit.get("table"),
                          device)
    return prompts, pred, V


def _concat(parts):
    return [v for part in parts for v in part] if isinstance(parts[0], list) \
        else np.concatenate(parts)


def _search_frame(losses: np.ndarray, prompts: list[str], seeds, pred, **identity) -> dict:
    """Each seed's `search.KEPT_CLASSES` best prompt classes, s_hat among them."""
    chosen = search.choose(losses)
    first, inverse = pred.prompt_classes(prompts)
    kept, ranks = search.best_classes(losses, inverse, chosen)  # (S, K) prompt indices
    S, K = kept.shape
    sizes = np.bincount(inverse, minlength=len(first))
    log.info("searched %d prompts (%d classes) on %d datasets of N=%d (%s r%d, %s, %s, "
             "selection %s)", len(prompts), len(first), S, identity["N"],
             identity["predictor"], identity["replicate"], identity["experiment"],
             identity["task"], identity["selection"])
    return {
        **{key: [value] * (S * K) for key, value in identity.items()},
        "seed": np.repeat(seeds, K), "prompt": [prompts[i] for i in kept.reshape(-1)],
        "prompt_length": [len(prompts[i]) for i in kept.reshape(-1)],
        "class_size": sizes[inverse[kept.reshape(-1)]], "empirical_rank": ranks.reshape(-1),
        "empirical_loss": np.take_along_axis(losses, kept, axis=1).reshape(-1),
        "chosen": (kept == chosen[:, None]).reshape(-1),
    }


def _write_search(frames: list[dict], output: str) -> None:
    tables.write({key: _concat([f[key] for f in frames]) for key in frames[0]}, "search",
                 output)


def _search_selected(pred, prompts, pools, seeds, identity, selection, settings, task,
                     task_length, enumeration_budget, V, kept_frames: list) -> np.ndarray:
    """(S, P) empirical losses on the datasets `selection` keeps from each seed's pool; the
    datasets (selected_data columns) are appended to `kept_frames`."""
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
            "sequence": prompts_lib.to_strings(pools[s, kept.indices], V),
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
    n = len(frame["seed"])
    kept_frames.append({**{key: [value] * n for key, value in identity.items()}, **frame})
    log.info("selected %d of %d pool sequences per seed by %s (%s)", N, pool_size, selection,
             ", ".join(f"{k}={v}" for k, v in settings.items()))
    return losses
