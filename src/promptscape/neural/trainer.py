"""Training a network on its pretraining source, resumable from checkpoints.

Training data come from numpy Generators seeded by ``seeding.numpy_generator("train_data",
...)``, one per step, so that a resumed run draws exactly what an uninterrupted one would.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from promptscape import predictors, seeding, validation
from promptscape.neural.base import (
    _deterministic_algorithms,
    build_model,
    resolve_device,
)
from promptscape.neural.checkpoints import (
    CURVE_COLUMNS,
    load_checkpoint,
    save_checkpoint,
)
from promptscape.neural.families import PredictorConfig
from promptscape.sources import Source, symbol_losses

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- training
def learning_rate_at(config: PredictorConfig, step: int) -> float:
    """Linear warm-up over `warmup_steps`, then constant or a cosine decay to 0 at the end."""
    lr = config.learning_rate
    if step < config.warmup_steps:
        return lr * (step + 1) / config.warmup_steps
    if config.lr_schedule == "cosine":
        done = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
        return lr * 0.5 * (1.0 + math.cos(math.pi * done))
    return lr


def training_batch(config: PredictorConfig, source: Source, step: int) -> np.ndarray:
    """The fresh ``(batch_size, sequence_length)`` sequences of one training step.

    Each step has its own stream, so a resumed run draws what an uninterrupted one would.
    """
    rng = seeding.numpy_generator("train_data", source.to_dict(), config.seed_identity(), step)
    return source.sample(config.batch_size, config.sequence_length, rng)


def _reporter(progress) -> Callable[[str], None]:
    if progress is None:
        return logger.info
    if isinstance(progress, logging.Logger):
        return progress.info
    if callable(progress):
        return progress
    raise TypeError("progress must be a logging.Logger or a callable, "
                    f"not {type(progress).__name__}")


def train(
    config: PredictorConfig,
    pretraining_source: Source,
    *,
    progress: logging.Logger | Callable[[str], None] | None = None,
    progress_every: int | None = None,
    resume_from: str | os.PathLike | None = None,
    checkpoint_path: str | os.PathLike | None = None,
    checkpoint_every: int = 500,
    device: str = "auto",
) -> tuple[nn.Module, pd.DataFrame]:
    """Train a predictor on fresh sequences of `pretraining_source` by minimising log loss.

    Parameters
    ----------
    config : PredictorConfig
        Architecture, optimisation and seed.
    pretraining_source : Source
        Each step draws `batch_size` new sequences of `sequence_length` symbols from it.
    progress : logging.Logger or callable(str), optional
        Receives a line every `progress_every` steps (default: about 20 lines per run) with
        the step, the mean loss and regret since the last line, steps/s and the time left.
        Defaults to this module's logger.
    resume_from : path, optional
        A checkpoint of the same config and source (`save_checkpoint`): training continues
        from its step and ends exactly where an uninterrupted run would.
    checkpoint_path : path, optional
        Where to save a checkpoint every `checkpoint_every` steps and after the last step.
    device : str
        Where to train: 'auto' (CUDA when torch sees a GPU), 'cpu' or 'cuda'.

    Returns
    -------
    model : nn.Module
        The trained model, in eval mode, on the training device.
    curve : pandas.DataFrame
        One row per step: step (int64), loss (mean per-symbol log loss of the batch, nats),
        bayes_loss (the exact Bayes predictor's on the same batch) and regret (their
        difference), all float64.

    Notes
    -----
    The objective is the mean over the batch of each sequence's summed log loss. On cpu, a
    fixed config gives bit-identical weights and curves (the seeds come from the config and
    the source; deterministic kernels are on while training).
    """
    report = _reporter(progress)
    progress_every = progress_every or max(1, config.steps // 20)
    validation.check_scalar(progress_every, "progress_every", numbers.Integral, min_val=1)
    validation.check_scalar(checkpoint_every, "checkpoint_every", numbers.Integral, min_val=1)
    device = resolve_device(device)
    model = build_model(config, pretraining_source.vocab_size).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    bayes = predictors.BayesPredictor(pretraining_source)
    curve = {name: [] for name in CURVE_COLUMNS}
    start = 0
    if resume_from is not None:
        checkpoint = load_checkpoint(resume_from, map_location=device)
        made_for = (PredictorConfig.from_dict(checkpoint["config"]).seed_identity(),
                    checkpoint["source"])
        if made_for != (config.seed_identity(), pretraining_source.to_dict()):
            raise ValueError(f"checkpoint {os.fspath(resume_from)!r} was made for another config "
                             f"or source: {made_for}")
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        start = checkpoint["step"]
        curve = {name: list(checkpoint["curve"][name]) for name in CURVE_COLUMNS}
        report(f"resumed from {os.fspath(resume_from)} at step {start}")

    def save(step):
        save_checkpoint(checkpoint_path, model=model, config=config, source=pretraining_source,
                        step=step, curve=curve, optimizer=optimizer)

    T = config.sequence_length
    # An untrained network (`pretrained: false`) is its initialisation: no step is taken.
    last = config.steps if config.pretrained else 0
    model.train()
    tic, tic_step = time.perf_counter(), start
    with _deterministic_algorithms():
        for step in range(start, last):
            seqs = training_batch(config, pretraining_source, step)
            bayes_losses = symbol_losses(bayes.log_predictive(seqs), seqs)  # (B, T)
            tokens = torch.as_tensor(seqs.astype(np.int64), device=device)
            logp = model(tokens).gather(-1, tokens[..., None])[..., 0]  # (B, T)
            loss = -logp.sum(dim=1).mean()
            for group in optimizer.param_groups:
                group["lr"] = learning_rate_at(config, step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()

            per_symbol = loss.item() / T
            bayes_loss = float(bayes_losses.sum(axis=1).mean()) / T
            for name, value in zip(CURVE_COLUMNS, (step, per_symbol, bayes_loss,
                                                   per_symbol - bayes_loss)):
                curve[name].append(value)
            done = step + 1
            if checkpoint_path is not None and done % checkpoint_every == 0 and done < last:
                save(done)
            if done % progress_every == 0 or done == config.steps:
                rate = (done - tic_step) / max(time.perf_counter() - tic, 1e-9)
                recent = slice(-min(progress_every, len(curve["loss"])), None)
                report(f"step {done}/{config.steps}  loss {np.mean(curve['loss'][recent]):.4f}"
                       f"  regret {np.mean(curve['regret'][recent]):+.4f} nats/symbol"
                       f"  {rate:.1f} steps/s  {(config.steps - done) / rate:.0f} s left")
    if checkpoint_path is not None:
        save(last)
    model.eval()
    return model, curve_frame(curve)


def curve_frame(curve: dict) -> pd.DataFrame:
    """The training curve as a DataFrame with typed columns (see `train`)."""
    return pd.DataFrame({
        "step": np.asarray(curve["step"], dtype=np.int64),
        **{name: np.asarray(curve[name], dtype=np.float64) for name in CURVE_COLUMNS[1:]},
    })
