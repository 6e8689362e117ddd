"""Stages `train_predictor`, `post_train_predictor`, `evaluate_predictor` and `score_prompts`:
neural predictors."""

from __future__ import annotations

import logging
import os

import numpy as np

from promptscape import seeding
from promptscape.study import tables
from promptscape.neural import base, checkpoints, families, post_trainer, scoring, trainer
from promptscape.neural.post_training import PostTraining
from promptscape import prompts as prompts_lib
from promptscape.sources import build_source

log = logging.getLogger("promptscape")


def train_predictor(*, model: str, curve: str, checkpoint: str, name: str, identity: str,
                    source_name: str, replicate: int = 0, pretraining: dict, settings: dict,
                    threads: int = 1, device: str = "auto",
                    checkpoint_every: int = 500) -> None:
    """Train model `name` (complete config `settings`); resume from `checkpoint` when an
    interrupted run left one.

    A checkpoint is written every `checkpoint_every` steps (`trainer.train`) and removed once
    the model is saved."""
    import torch

    torch_device = base.resolve_device(device)  # before any work: a bad device is named
    torch.set_num_threads(threads)
    config = families.PredictorConfig.from_dict(settings, where=f"models.{name}")
    source = build_source(pretraining, where=f"sources.{source_name}")
    resume = checkpoint if checkpoints.checkpoint_matches(checkpoint, config, source) else None
    if resume is None and os.path.exists(checkpoint):
        log.info("ignoring %s: it was made for another config or source", checkpoint)
        os.remove(checkpoint)
    log.info("training %s (%s, identity %s) on %s (%s) on %s with %d thread(s): %s", name,
             config.family, identity, source_name, source.describe(), torch_device, threads,
             config.to_dict())
    net, frame = trainer.train(config, source, progress=log, resume_from=resume,
                              checkpoint_path=checkpoint, checkpoint_every=checkpoint_every,
                              device=device)
    checkpoints.save_checkpoint(model, model=net, config=config, source=source, step=config.steps,
                           curve=frame)
    if os.path.exists(checkpoint):  # the model is saved: nothing left to resume
        os.remove(checkpoint)
    frame["predictor"] = name
    frame["replicate"] = replicate
    frame["source"] = source_name
    frame["identity"] = identity
    frame["evaluated_on"] = source_name
    tables.write(frame, "training_curve", curve)
    log.info("final regret (mean of the last 10%% of steps): %.5f nats/symbol",
             float(frame["regret"].iloc[-max(1, len(frame) // 10):].mean()))


def post_train_predictor(*, base_model: str, model: str, curve: str, name: str, identity: str,
                         source_name: str, replicate: int = 0, pretraining: dict,
                         post_training: dict, post_training_source: dict, threads: int = 1,
                         device: str = "auto") -> None:
    """Tune the trained network `base_model` (a checkpoint of its base model, same
    replicate) on fresh sequences of its post-training source (`post_training`, the checked
    `models.<name>.post_training` mapping; `post_training_source`, that source's parameters)
    and save it as a checkpoint like any other; its training curve holds the loss on both
    sources against their exact Bayes predictors (`promptscape.neural.post_trainer`)."""
    import torch

    base.resolve_device(device)  # before any work: a bad device is named
    torch.set_num_threads(threads)
    post = PostTraining(**post_training)
    where = f"models.{name}.post_training"
    source = build_source(post_training_source, where=f"{where}.source")
    pretraining_source = build_source(pretraining, where=f"sources.{source_name}")
    if checkpoints.load_checkpoint(base_model)["source"] != pretraining_source.to_dict():
        raise ValueError(f"{base_model}: the network of {post.base!r} was not trained on "
                         f"{source_name!r} ({pretraining_source.describe()})")
    trained = checkpoints.load_predictor(base_model, device="cpu")
    log.info("post-training %s (identity %s): %s replicate %d, pretrained on %s (%s), tuned "
             "by %s on %s (%s) with %d thread(s): %s", name, identity, post.base, replicate,
             source_name, pretraining_source.describe(), post.tuner, post.source,
             source.describe(), threads, post.settings())
    net, frame = post_trainer.post_train(
        trained.model, post, source, pretraining_source,
        sequence_length=trained.config.sequence_length, identity=identity, device=device,
        progress=log)
    checkpoints.save_checkpoint(
        model, model=net, config=trained.config, source=pretraining_source, step=post.steps,
        curve=frame[["step", "loss", "bayes_loss"]].assign(
            regret=frame["loss"] - frame["bayes_loss"]))
    rows = []
    for on, loss, bayes in ((post.source, "loss", "bayes_loss"),
                            (source_name, "pretraining_loss", "pretraining_bayes_loss")):
        rows.append({"evaluated_on": on, "step": frame["step"].to_numpy(),
                     "loss": frame[loss].to_numpy(), "bayes_loss": frame[bayes].to_numpy(),
                     "regret": (frame[loss] - frame[bayes]).to_numpy()})
    table = {key: np.concatenate([np.broadcast_to(np.asarray(row[key]), len(frame))
                                  for row in rows]) for key in rows[0]}
    tables.write({"predictor": name, "replicate": replicate, "source": source_name,
                  "identity": identity, **table}, "training_curve", curve)
    tail = slice(-max(1, len(frame) // 10), None)
    log.info("mean of the last 10%% of steps: excess loss %.5f nats/symbol on %s, %.5f on "
             "the pretraining source %s (forgetting; %.5f at the first step)",
             float((frame["loss"] - frame["bayes_loss"]).iloc[tail].mean()), post.source,
             float((frame["pretraining_loss"] - frame["pretraining_bayes_loss"]).iloc[tail]
                   .mean()), source_name,
             float(frame["pretraining_loss"].iloc[0] - frame["pretraining_bayes_loss"].iloc[0]))


def evaluate_predictor(*, model: str, output: str, name: str, identity: str,
                       source_name: str, pretraining: dict, size: int, threads: int = 1,
                       device: str = "auto", replicate: int = 0) -> None:
    """Per-position regret of a trained network against Bayes on held-out sequences."""
    import torch

    base.resolve_device(device)  # before any work: a bad device is named
    torch.set_num_threads(threads)
    source = build_source(pretraining, where=f"sources.{source_name}")
    predictor = checkpoints.load_predictor(model, device=device)
    length = predictor.config.sequence_length
    rng = seeding.numpy_generator("heldout", pretraining, length, size)
    seqs = source.sample(size, length, rng)
    neural, bayes = scoring.losses_by_position(predictor, source, seqs)  # (T,) each
    tables.write({"predictor": name, "replicate": replicate, "source": source_name,
                  "identity": identity, "position": np.arange(length),
                  "sequences": size, "neural_loss": neural, "bayes_loss": bayes,
                  "regret": neural - bayes}, "predictor_regret", output)
    log.info("%s on %s: mean per-symbol regret against Bayes %.5f nats on %d held-out "
             "sequences of %d symbols; largest at position %d (%.5f)", name, source_name,
             float((neural - bayes).mean()), size, length, int(np.argmax(neural - bayes)),
             float((neural - bayes).max()))


def score_prompts(*, model: str, output: str, name: str, experiment: str, task_length: int,
                  max_prompt_length: int, threads: int = 1, device: str = "auto",
                  replicate: int = 0) -> None:
    """The loss of every prompt on every sequence of length T under a trained network."""
    import torch

    base.resolve_device(device)  # before any work: a bad device is named
    torch.set_num_threads(threads)
    predictor = checkpoints.load_predictor(model, device=device)
    prompts = prompts_lib.all_prompts(max_prompt_length, predictor.vocab_size)
    seqs = prompts_lib.enumerate_sequences(task_length, predictor.vocab_size)
    losses = predictor.prompt_losses(prompts, seqs)  # (P, V^T)
    P, S = losses.shape
    tables.write({"predictor": name, "replicate": replicate, "experiment": experiment,
                  "prompt": [p for p in prompts for _ in range(S)],
                  "prompt_length": np.repeat([len(p) for p in prompts], S),
                  "sequence": prompts_lib.to_strings(seqs, predictor.vocab_size) * P,
                  "loss": losses.reshape(-1)}, "prompt_losses", output)
    log.info("scored %d prompts on all %d sequences of length %d with %s on %s", P, S,
             task_length, name, predictor.device)
