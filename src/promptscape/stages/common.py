"""What several stages share: building predictors for a pretraining source."""

from __future__ import annotations

from promptscape import prompts as prompts_lib
from promptscape import tables
from promptscape.predictors import NEURAL_FAMILIES, BayesPredictor, Predictor, TabulatedPredictor
from promptscape.sources import build_source


def load_predictor(family: str, pretraining: dict, model: str | None = None,
                   table: str | None = None) -> Predictor:
    """The predictor of `family` for a pretraining source: the exact Bayes predictor, a
    neural one's table of prompt losses when there is one (no torch needed), or a neural
    one from its checkpoint."""
    if table:
        return load_prompt_losses(table)
    if family == "bayes":
        return BayesPredictor(build_source(pretraining, where="pretraining"))
    if family in NEURAL_FAMILIES:
        if not model:
            raise ValueError(f"predictor {family!r} needs a trained model checkpoint")
        from promptscape import models  # torch only where a neural predictor is used

        return models.load_predictor(model)
    raise ValueError(f"unknown predictor family {family!r}")


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
