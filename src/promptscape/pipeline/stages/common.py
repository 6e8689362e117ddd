"""What several stages share: building predictors for a pretraining source."""

from __future__ import annotations

import numpy as np

from promptscape import prompts as prompts_lib
from promptscape.study import tables
from promptscape.neural.families import FAMILIES
from promptscape.predictors import BayesPredictor, Predictor, TabulatedPredictor
from promptscape.sources import build_source


def load_predictor(family: str, pretraining: dict, model: str | None = None,
                   table: str | None = None, device: str = "auto") -> Predictor:
    """The predictor of `family` for a pretraining source: the exact Bayes predictor, a
    network's table of prompt losses when there is one (no torch needed), or a network
    from its checkpoint on `device` (`training.device`)."""
    if table:
        return load_prompt_losses(table, vocab_size(pretraining))
    if family not in FAMILIES:
        raise ValueError(f"unknown predictor family {family!r}")
    if not FAMILIES[family].neural:
        return BayesPredictor(build_source(pretraining, where="pretraining"))
    if not model:
        raise ValueError(f"a {family} predictor needs a trained model checkpoint")
    from promptscape.neural import checkpoints  # torch only where a network is used

    return checkpoints.load_predictor(model, device=device)


def training_device(config: dict) -> str:
    """`training.device` of a job's Snakemake config (the workflow fills in its default).
    Jobs read it here rather than from their params: the device is no part of any
    artifact's identity, so changing it reruns nothing."""
    return config["training"]["device"]


def vocab_size(pretraining: dict) -> int:
    """V of a pretraining source's config mapping: every prompt and sequence of the
    experiment is over its symbols (the config checks that the tasks agree)."""
    return build_source(pretraining, where="pretraining").vocab_size


def load_prompt_losses(path: str, vocab_size: int) -> TabulatedPredictor:
    """A `prompt_losses` artifact as a predictor. Rows must be every canonical prompt (in
    canonical order) on every sequence of length T (in code order), so the losses reshape to
    (P, V**T); every row is checked, through the dictionary codes of the two string columns
    (8.4 million rows at L_max 12 are never Python strings)."""
    frame = tables.read_table(path, "prompt_losses",
                              dictionary=("prompt", "sequence")).unify_dictionaries()
    prompt = frame["prompt"].combine_chunks()
    sequence = frame["sequence"].combine_chunks()
    order = prompt.dictionary.to_pylist()  # distinct prompts, in order of first appearance
    names = sequence.dictionary.to_pylist()
    T = len(names[0]) if names else 0
    P, S = len(order), vocab_size**T
    canonical = prompts_lib.all_prompts(max((len(p) for p in order), default=0), vocab_size)
    if (order != canonical or names != prompts_lib.to_strings(
            prompts_lib.enumerate_sequences(T, vocab_size), vocab_size)
            or len(frame) != P * S
            or not np.array_equal(prompt.indices.to_numpy(), np.repeat(np.arange(P), S))
            or not np.array_equal(sequence.indices.to_numpy(), np.tile(np.arange(S), P))):
        raise ValueError(f"{path}: prompts are not the canonical prompt set over "
                         f"{vocab_size} symbols on all {S} sequences of length {T}, each once "
                         "in canonical order")
    table = frame["loss"].to_numpy().reshape(P, S)
    return TabulatedPredictor(order, table, T, vocab_size)
