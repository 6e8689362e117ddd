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
        return load_prompt_losses(table)
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


def load_prompt_losses(path: str) -> TabulatedPredictor:
    """A `prompt_losses` artifact as a predictor (rows are in canonical prompt order, then
    sequence code order, so the table reshapes to (P, 2**T))."""
    frame = tables.read_table(path, "prompt_losses")
    prompts = frame["prompt"].to_pylist()
    first = frame["sequence"][0].as_py()
    T = len(first)
    P = len(prompts) // 2**T
    order = prompts[::2**T]
    if order != prompts_lib.all_prompts(max(len(p) for p in order)):
        raise ValueError(f"{path}: prompts are not the canonical prompt set")
    table = frame["loss"].to_numpy().reshape(P, 2**T)
    return TabulatedPredictor(order, table, T)
