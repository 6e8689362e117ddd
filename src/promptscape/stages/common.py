"""What several stages share: building predictors for a pretraining source."""

from __future__ import annotations

from promptscape.predictors import NEURAL_FAMILIES, BayesPredictor, Predictor
from promptscape.sources import build_source


def load_predictor(family: str, pretraining: dict, model: str | None = None) -> Predictor:
    """The predictor of `family` for a pretraining source (neural ones from a checkpoint)."""
    if family == "bayes":
        return BayesPredictor(build_source(pretraining, where="pretraining"))
    if family in NEURAL_FAMILIES:
        if not model:
            raise ValueError(f"predictor {family!r} needs a trained model checkpoint")
        from promptscape import models  # torch only where a neural predictor is used

        return models.load_predictor(model)
    raise ValueError(f"unknown predictor family {family!r}")
