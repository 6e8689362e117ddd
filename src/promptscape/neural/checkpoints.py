"""Checkpoints: written atomically, plain values and tensors only, and the predictor they hold."""

from __future__ import annotations

import logging
import os

import pandas as pd
import torch
from torch import nn

from promptscape import files
from promptscape.neural.base import build_model
from promptscape.neural.families import MAX_TOKENS, PredictorConfig
from promptscape.neural.scoring import NeuralPredictor
from promptscape.sources import Source, build_source

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- checkpoints
# The columns of a training curve, as a checkpoint stores it (column lists).
CURVE_COLUMNS = ("step", "loss", "bayes_loss", "regret")


def save_checkpoint(path: str | os.PathLike, *, model: nn.Module, config: PredictorConfig,
                    source: Source, step: int, curve: dict | pd.DataFrame,
                    optimizer: torch.optim.Optimizer | None = None) -> None:
    """Write a checkpoint atomically (a temporary file in the same folder, then os.replace).

    It holds plain values and tensors only: the config and source as mappings, the model
    (and optimizer) state, the number of steps done and the curve so far (column lists).
    """
    if isinstance(curve, pd.DataFrame):
        curve = {name: curve[name].tolist() for name in CURVE_COLUMNS}
    checkpoint = {
        "config": config.to_dict(),
        "source": source.to_dict(),
        "step": int(step),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "curve": {name: list(curve[name]) for name in CURVE_COLUMNS},
    }

    def put(temp):
        # Through a file object: torch names the records inside the archive after a path it
        # is given (here the random temporary one), after nothing ("archive") for a file, so
        # a rewrite is byte-identical.
        with open(temp, "wb") as out:
            torch.save(checkpoint, out)

    files.atomic_write(path, put, suffix=".pt.tmp")


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """The checkpoint mapping written by `save_checkpoint` (tensors only, no pickled code)."""
    return torch.load(os.fspath(path), map_location=map_location, weights_only=True)


def load_predictor(path: str | os.PathLike, *, device: str = "auto",
                   max_tokens: int = MAX_TOKENS) -> NeuralPredictor:
    """The trained predictor of a checkpoint, on `device` (`training.device`)."""
    checkpoint = load_checkpoint(path)
    config = PredictorConfig.from_dict(checkpoint["config"])
    model = build_model(config, build_source(checkpoint["source"]).vocab_size)
    model.load_state_dict(checkpoint["model"])
    return NeuralPredictor(model, config, device=device, max_tokens=max_tokens)


def load_source(path: str | os.PathLike) -> Source:
    """The pretraining source a checkpoint was trained on."""
    return build_source(load_checkpoint(path)["source"])


def checkpoint_matches(path: str | os.PathLike, config: PredictorConfig, source: Source) -> bool:
    """Whether `path` is a readable checkpoint of this config and source (resumable)."""
    if not os.path.exists(path):
        return False
    try:
        checkpoint = load_checkpoint(path)
        made_for = PredictorConfig.from_dict(checkpoint["config"]).seed_identity()
    except Exception:  # a truncated or foreign file is not resumable  # noqa: BLE001
        return False
    return made_for == config.seed_identity() and checkpoint["source"] == source.to_dict()
