"""Post-training a trained network on fresh sequences of another source, with a weight tuner
of `promptscape.neural.tuning` (full, lora, head, embedding: the tuners' own modules, not a
second implementation), and what it does to the loss on both sources.

Step s draws `batch` fresh sequences of the post-training source (their own stream per
step, seeded from the post-trained network's identity) and takes one Adam step on the mean
over the batch of each sequence's summed log loss, the objective of pretraining
(`promptscape.neural.trainer`) and of the tuners. Before the update, the step's loss is
recorded on its batch beside the exact Bayes predictor of the post-training source on the
same batch, and, without gradients, on `batch` fresh sequences of the pretraining source
beside that source's Bayes predictor: how far the network is from the predictor it
approaches, and what it forgets. The result is a plain network of its base's architecture
(LoRA's low-rank updates merged into the weights), so every stage loads it like any other.
"""

from __future__ import annotations

import copy
import logging

import numpy as np
import pandas as pd
import torch
from torch import nn

from promptscape import predictors, seeding
from promptscape.neural import tuning
from promptscape.neural.base import _deterministic_algorithms, resolve_device
from promptscape.neural.post_training import PostTraining
from promptscape.sources import Source, symbol_losses

logger = logging.getLogger(__name__)

# The columns of a post-training curve: per step, on the post-training source's batch and
# on a pretraining batch, the network's and the exact Bayes predictor's mean per-symbol loss.
COLUMNS = ("step", "loss", "bayes_loss", "pretraining_loss", "pretraining_bayes_loss")


def _per_symbol(tuned, seqs: np.ndarray, device) -> torch.Tensor:
    """The mean over the (B, T) batch of each sequence's summed log loss (a 0-d tensor)."""
    tokens = torch.as_tensor(seqs.astype(np.int64), device=device)
    return tuning.sequence_losses(tuned, tokens)[0].mean()


def post_train(base: nn.Module, post: PostTraining, source: Source, pretraining: Source, *,
               sequence_length: int, identity, device: str = "auto",
               progress: logging.Logger | None = None) -> tuple[nn.Module, pd.DataFrame]:
    """`base` (a trained network, left unchanged) tuned by `post.tuner` on fresh sequences
    of `source`, `sequence_length` symbols each.

    identity: what seeds the batches and a LoRA's initialisation (the post-trained
    network's identity). Returns the tuned network (a copy of `base` with the tuned weights,
    in eval mode, on cpu) and its curve: one row per step with `COLUMNS` (per-symbol nats;
    losses before the step's update). On cpu a fixed identity gives bit-identical weights.
    """
    report = (progress or logger).info
    torch_device = resolve_device(device)
    base = copy.deepcopy(base).to(torch_device)
    generator = torch.Generator().manual_seed(
        seeding.stable_seed("post_training_init", identity) % 2**63)
    no_prompts = torch.zeros((1, 0), dtype=torch.long, device=torch_device)
    tuned = tuning.build(post.tuner, base, no_prompts, post.tuner_settings(),
                         generator).to(torch_device)
    trainable = [p for p in tuned.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=post.learning_rate)
    bayes = predictors.BayesPredictor(source)
    bayes_pretraining = predictors.BayesPredictor(pretraining)
    T = sequence_length
    rows = {name: [] for name in COLUMNS}
    every = max(1, post.steps // 10)
    with _deterministic_algorithms():
        for step in range(post.steps):
            seqs = source.sample(post.batch, T, seeding.numpy_generator(
                "post_training_data", identity, step))
            held = pretraining.sample(post.batch, T, seeding.numpy_generator(
                "post_training_forgetting", identity, step))
            loss = _per_symbol(tuned, seqs, torch_device)
            with torch.no_grad():
                pretraining_loss = _per_symbol(tuned, held, torch_device).item()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            values = (step, loss.item() / T,
                      float(symbol_losses(bayes.log_predictive(seqs), seqs).sum(1).mean()) / T,
                      pretraining_loss / T,
                      float(symbol_losses(bayes_pretraining.log_predictive(held), held)
                            .sum(1).mean()) / T)
            for name, value in zip(COLUMNS, values):
                rows[name].append(value)
            if (step + 1) % every == 0 or step + 1 == post.steps:
                report(f"step {step + 1}/{post.steps}  excess loss on the post-training source "
                       f"{values[1] - values[2]:+.4f}, on the pretraining source "
                       f"{values[3] - values[4]:+.4f} nats/symbol")
    network = copy.deepcopy(base).cpu()
    state = network.state_dict()
    with torch.no_grad():
        state.update({name: value.detach().cpu().clone()
                      for name, value in tuned.replaced().items()})
    network.load_state_dict(state)
    for parameter in network.parameters():
        parameter.requires_grad_(True)
    network.eval()
    return network, pd.DataFrame({
        "step": np.asarray(rows["step"], dtype=np.int64),
        **{name: np.asarray(rows[name], dtype=np.float64) for name in COLUMNS[1:]}})
