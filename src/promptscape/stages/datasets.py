"""Stage `simulate_tasks` and `simulate_evaluation`: task datasets and evaluation sets."""

from __future__ import annotations

import logging

import numpy as np

from promptscape import landscape, seeding, tables
from promptscape import prompts as prompts_lib
from promptscape.sources import build_source

log = logging.getLogger("promptscape")


def task_data_generator(task: dict, task_length: int, N: int, seed: int) -> np.random.Generator:
    """The generator of dataset (task, T, N, seed): independent of experiment and block."""
    return seeding.numpy_generator("task_data", task, task_length, N, seed)


def simulate_tasks(*, output: str, experiment: str, task_name: str, task: dict,
                   task_length: int, N: int, first: int, last: int) -> None:
    """Datasets D_N for seeds first..last of one task."""
    _write_draws(output, "task_data", experiment, task_name, task, task_length, N, N, first,
                 last, lambda seed: task_data_generator(task, task_length, N, seed))
    log.info("wrote %d datasets of %d sequences of task %s", last - first + 1, N, task_name)


def pool_generator(task: dict, task_length: int, pool_size: int, N: int,
                   seed: int) -> np.random.Generator:
    """The generator of the selection pool of (task, T, P, N, seed): independent of D_N, of
    the pools of other N and of the experiment and block."""
    return seeding.numpy_generator("selection_pool", task, task_length, pool_size, N, seed)


def simulate_pool(*, output: str, experiment: str, task_name: str, task: dict,
                  task_length: int, N: int, pool_size: int, first: int, last: int) -> None:
    """The pools of P task sequences that the pooled selection methods choose the datasets
    of N sequences from, for seeds first..last of one task (promptscape.selection)."""
    _write_draws(output, "selection_pool", experiment, task_name, task, task_length, N,
                 pool_size, first, last,
                 lambda seed: pool_generator(task, task_length, pool_size, N, seed))
    log.info("wrote %d pools of %d sequences of task %s (N=%d)", last - first + 1, pool_size,
             task_name, N)


def _write_draws(output: str, artifact: str, experiment: str, task_name: str, task: dict,
                 task_length: int, N: int, size: int, first: int, last: int,
                 generator) -> None:
    """`size` task sequences per seed first..last, each seed's from ``generator(seed)``,
    written as `artifact` (task_data, selection_pool), seed-major."""
    source = build_source(task, where=f"task {task_name}")
    seeds = np.arange(first, last + 1)
    seqs = np.concatenate([source.sample(size, task_length, generator(int(seed)))
                           for seed in seeds])  # (S * size, T)
    tables.write({"experiment": experiment, "task": task_name, "N": N,
                  "seed": np.repeat(seeds, size), "index": np.tile(np.arange(size), len(seeds)),
                  "sequence": prompts_lib.to_strings(seqs)}, artifact, output)


def simulate_evaluation(*, output: str, experiment: str, task_name: str, task: dict,
                        task_length: int, size: int) -> None:
    """The evaluation set of one task: M sequences no search ever sees, stratified by the
    symbol counts where the task is exchangeable (`landscape.draw_evaluation`)."""
    source = build_source(task, where=f"task {task_name}")
    rng = seeding.numpy_generator("evaluation", task, task_length, size)
    seqs, stratum, weight = landscape.draw_evaluation(source, task_length, size, rng)
    tables.write({"experiment": experiment, "task": task_name, "index": np.arange(size),
                  "sequence": prompts_lib.to_strings(seqs), "stratum": stratum,
                  "weight": weight}, "evaluation_set", output)
    log.info("wrote %d evaluation sequences of task %s in %d strata", size, task_name,
             len(np.unique(stratum)))
