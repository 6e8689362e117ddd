"""What several stages share: building predictors for a pretraining source."""

from __future__ import annotations

from promptscape import prompts as prompts_lib
from promptscape import tables
from promptscape.model_config import FAMILIES
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
    from promptscape import models  # torch only where a network is used

    return models.load_predictor(model, device=device)


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
    """A `prompt_losses` artifact as a predictor (rows are in canonical prompt order, then
    sequence code order, so the table reshapes to (P, V**T))."""
    frame = tables.read_table(path, "prompt_losses")
    prompts = frame["prompt"].to_pylist()
    first = frame["sequence"][0].as_py()
    T = len(first)
    S = vocab_size**T
    P = len(prompts) // S
    order = prompts[::S]
    if len(prompts) != P * S or order != prompts_lib.all_prompts(max(len(p) for p in order),
                                                                 vocab_size):
        raise ValueError(f"{path}: prompts are not the canonical prompt set over "
                         f"{vocab_size} symbols on all {S} sequences of length {T}")
    table = frame["loss"].to_numpy().reshape(P, S)
    return TabulatedPredictor(order, table, T, vocab_size)
