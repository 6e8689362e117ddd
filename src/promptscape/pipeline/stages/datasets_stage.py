"""Stage `simulate_tasks` and `simulate_evaluation`: task datasets and evaluation sets."""

from __future__ import annotations

import logging

import numpy as np

from promptscape import landscape, seeding
from promptscape.study import tables
from promptscape import prompts as prompts_lib
from promptscape.sources import build_source

log = logging.getLogger("promptscape")


def task_data_generator(task: dict, task_length: int, N: int, seed: int) -> np.random.Generator:
    """The generator of dataset (task, T, N, seed): independent of experiment and block."""
    return seeding.numpy_generator("task_data", task, task_length, N, seed)


def draw_datasets(task: dict, task_length: int, N: int, seeds) -> np.ndarray:
    """The datasets D_N of `seeds` of one task, ``(S, N, T)``: what task_data holds and what
    every stage that needs a D_N of its own (strategies) draws, sequence for sequence."""
    return _draw(build_source(task, where="task"), N, task_length, seeds,
                 lambda seed: task_data_generator(task, task_length, N, seed))


def _draw(source, n: int, task_length: int, seeds, generator) -> np.ndarray:
    """``(S, n, T)``: `n` sequences of `source` per seed, each seed's from
    ``generator(seed)``."""
    return np.stack([source.sample(n, task_length, generator(int(seed))) for seed in seeds])


def simulate_tasks(*, output: str, experiment: str, tasks: dict[str, dict],
                   task_length: int, dataset_sizes: list[int], first: int,
                   last: int) -> None:
    """Datasets D_N for seeds first..last of every task (`tasks`: name -> source config)
    and N of an experiment, in one file."""
    _write_draws(output, "task_data", experiment, tasks, task_length, dataset_sizes, first,
                 last, lambda task, N: N,
                 lambda task, N, seed: task_data_generator(task, task_length, N, seed))
    log.info("wrote %d datasets per (task, N) of tasks %s, N in %s", last - first + 1,
             ", ".join(tasks), list(dataset_sizes))


def pool_generator(task: dict, task_length: int, pool_size: int, N: int,
                   seed: int) -> np.random.Generator:
    """The generator of the selection pool of (task, T, P, N, seed): independent of D_N, of
    the pools of other N and of the experiment and block."""
    return seeding.numpy_generator("selection_pool", task, task_length, pool_size, N, seed)


def simulate_pool(*, output: str, experiment: str, tasks: dict[str, dict], task_length: int,
                  dataset_sizes: list[int], pool_size: int, first: int, last: int) -> None:
    """The pools of P task sequences that the pooled selection methods choose the datasets
    of N sequences from, for seeds first..last of every task and N of an experiment
    (promptscape.selection)."""
    _write_draws(output, "selection_pool", experiment, tasks, task_length, dataset_sizes,
                 first, last, lambda task, N: pool_size,
                 lambda task, N, seed: pool_generator(task, task_length, pool_size, N, seed))
    log.info("wrote %d pools of %d sequences per (task, N) of tasks %s", last - first + 1,
             pool_size, ", ".join(tasks))


def _write_draws(output: str, artifact: str, experiment: str, tasks: dict[str, dict],
                 task_length: int, dataset_sizes: list[int], first: int, last: int, size,
                 generator) -> None:
    """``size(task, N)`` task sequences per (task, N, seed first..last), each seed's from
    ``generator(task, N, seed)``, written as `artifact` (task_data, selection_pool)."""
    seeds = np.arange(first, last + 1)
    columns = {"task": [], "N": [], "seed": [], "index": [], "sequence": []}
    for name, task in tasks.items():
        source = build_source(task, where=f"task {name}")
        for N in dataset_sizes:
            n = size(task, N)
            seqs = _draw(source, n, task_length, seeds,
                         lambda seed: generator(task, N, seed)).reshape(-1, task_length)
            columns["task"] += [name] * len(seqs)
            columns["N"].append(np.full(len(seqs), N))
            columns["seed"].append(np.repeat(seeds, n))
            columns["index"].append(np.tile(np.arange(n), len(seeds)))
            columns["sequence"] += prompts_lib.to_strings(seqs, source.vocab_size)
    tables.write({"experiment": experiment, "task": columns["task"],
                  **{k: np.concatenate(columns[k]) for k in ("N", "seed", "index")},
                  "sequence": columns["sequence"]}, artifact, output)


def simulate_evaluation(*, output: str, experiment: str, task_name: str, task: dict,
                        task_length: int, size: int) -> None:
    """The evaluation set of one task: M sequences no search ever sees, stratified by the
    symbol counts where the task is exchangeable (`landscape.draw_evaluation`)."""
    source = build_source(task, where=f"task {task_name}")
    rng = seeding.numpy_generator("evaluation", task, task_length, size)
    seqs, stratum, weight = landscape.draw_evaluation(source, task_length, size, rng)
    tables.write({"experiment": experiment, "task": task_name, "index": np.arange(size),
                  "sequence": prompts_lib.to_strings(seqs, source.vocab_size), "stratum": stratum,
                  "weight": weight}, "evaluation_set", output)
    log.info("wrote %d evaluation sequences of task %s in %d strata", size, task_name,
             len(np.unique(stratum)))
