"""Stage `search_prompts`: exhaustive search over every prompt for a block of datasets."""

from __future__ import annotations

import logging

import numpy as np

from promptscape import search, tables
from promptscape import prompts as prompts_lib
from promptscape.stages.common import load_predictor, vocab_size

log = logging.getLogger("promptscape")


def search_prompts(*, datasets: str, output: str, predictor: str,
                   family: str | None = None, replicate: int = 0,
                   pretraining: dict, experiment: str, task_name: str, task_length: int,
                   N: int, max_prompt_length: int, enumeration_budget: int,
                   model: str | None = None, table: str | None = None,
                   device: str = "auto") -> None:
    """Empirical loss of every prompt on every dataset of the block, and each seed's s_hat."""
    data = tables.read_table(datasets, "task_data")
    seeds = np.unique(data["seed"].to_numpy())
    seqs = prompts_lib.to_arrays(data["sequence"].to_pylist(), task_length)
    seqs = seqs.reshape(len(seeds), N, task_length)  # (S, N, T): rows sorted by seed, index
    V = vocab_size(pretraining)
    prompts = prompts_lib.all_prompts(max_prompt_length, V)
    pred = load_predictor(family or predictor, pretraining, model, table, device)
    losses = search.empirical_losses(pred, prompts, seqs, enumeration_budget, V)  # (S, P)
    chosen = search.choose(losses)
    S, P = losses.shape
    frame = {
        "predictor": predictor, "replicate": replicate, "experiment": experiment,
        "task": task_name, "N": N,
        "seed": np.repeat(seeds, P), "prompt": prompts * S,
        "prompt_length": np.tile([len(p) for p in prompts], S),
        "empirical_loss": losses.reshape(-1),
        "chosen": (np.arange(P)[None, :] == chosen[:, None]).reshape(-1),
    }
    tables.write(frame, "search", output)
    log.info("searched %d prompts on %d datasets of N=%d (%s, %s, %s)", P, S, N, predictor,
             experiment, task_name)
