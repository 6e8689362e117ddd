"""A tuner's own optimum: the tuner trained on the task itself instead of a data set D_N.

The population objective of a tuned network q is its expected log loss per task sequence,
``E_{x ~ task} l_q(x) = KL(task || q) + H_T(task)``. Where the landscape enumerates the V^T
task sequences it is that sum, exactly, weighted by each sequence's probability (`Exact`);
elsewhere every step draws fresh task sequences and the best step is judged on a fixed,
separately drawn sample (`Sampled`): never the evaluation set, which only scores.

`train` runs Adam on the objective up to `max_steps`, keeps the best parameters met along
the way (choosing them by the objective is legitimate: it is the population loss itself) and
stops once the objective has not improved by more than `tolerance` (relative) for
`patience` steps, the step at which it converged. Tuned modules are the tuners' own
(`promptscape.neural.tuning`), one copy (S = 1) per start.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np
import torch

from promptscape.neural.tuning import Tuned, sequence_losses


class Exact:
    """The population objective as a sum over all task sequences `seqs` (U, T) with their
    probabilities `probs` (U,): ``sum_x p(x) l(x)``, every step the same."""

    exact = True

    def __init__(self, seqs: np.ndarray, probs: np.ndarray, device="cpu"):
        self.x = torch.as_tensor(np.asarray(seqs), device=device).long()[None]  # (1, U, T)
        self.w = torch.as_tensor(np.asarray(probs, dtype=np.float64), device=device)[None]

    def batch(self, step: int):
        """The (1, B, T) sequences and (1, B) weights of step `step`'s loss."""
        return self.x, self.w

    def value(self, tuned: Tuned) -> float:
        with torch.no_grad():
            return float((sequence_losses(tuned, self.x).double() * self.w).sum())


class Sampled:
    """The population objective estimated: `batch_size` fresh task sequences at every step
    (`draw(n, step)` -> (n, T) from the task), and the mean loss on `check` (M, T), a
    sample of its own, to judge steps by."""

    exact = False

    def __init__(self, draw: Callable[[int, int], np.ndarray], batch_size: int,
                 check: np.ndarray, device="cpu"):
        self.draw, self.batch_size, self.device = draw, int(batch_size), device
        self.check = Exact(check, np.full(len(check), 1.0 / len(check)), device)

    def batch(self, step: int):
        x = torch.as_tensor(self.draw(self.batch_size, step), device=self.device).long()[None]
        return x, torch.full((1, self.batch_size), 1.0 / self.batch_size,
                             dtype=torch.float64, device=self.device)

    def value(self, tuned: Tuned) -> float:
        return self.check.value(tuned)


@dataclasses.dataclass
class Run:
    """One start at one learning rate: the best objective met and its parameters, the Adam
    steps taken to reach them, and the step at which training converged (None: not within
    max_steps)."""

    objective: float
    steps: int
    converged_step: int | None
    state: dict


def trainable(tuned: Tuned) -> dict[str, torch.nn.Parameter]:
    return {n: p for n, p in tuned.named_parameters() if p.requires_grad}


def load(tuned: Tuned, state: dict) -> Tuned:
    """`tuned` with its trainable parameters set to `state` (a `Run.state`)."""
    with torch.no_grad():
        for name, p in trainable(tuned).items():
            p.copy_(state[name])
    return tuned


def train(tuned: Tuned, objective, *, learning_rate: float, max_steps: int, patience: int,
          tolerance: float, check_every: int = 1) -> Run:
    """Adam on `objective` (`Exact` or `Sampled`) from `tuned`'s parameters. The objective is
    judged after every step (`Exact`: the training sum itself, before the update it drives)
    or every `check_every` steps (`Sampled`: on its check sample)."""
    params = trainable(tuned)
    optimizer = torch.optim.Adam(params.values(), lr=learning_rate) if params else None
    best, best_step, reference, improved = math.inf, 0, math.inf, 0
    state = {n: p.detach().clone() for n, p in params.items()}
    converged = None
    for step in range(max_steps + 1):
        x, w = objective.batch(step)
        losses = sequence_losses(tuned, x)  # (1, B)
        value = None
        if objective.exact:
            value = float((losses.detach().double() * w).sum())
        elif step % check_every == 0 or step == max_steps:
            value = objective.value(tuned)
        if value is not None:
            if value < best:
                best, best_step = value, step
                state = {n: p.detach().clone() for n, p in params.items()}
            if value < reference - tolerance * abs(reference) or not math.isfinite(reference):
                reference, improved = value, step
            elif step - improved >= patience:
                converged = step
                break
        if step == max_steps or optimizer is None:
            if optimizer is None:
                converged = step
            break
        optimizer.zero_grad(set_to_none=True)
        (losses * w.float()).sum().backward()
        optimizer.step()
    return Run(best, best_step, converged, state)


def gradient_norm(tuned: Tuned, objective) -> float:
    """The Euclidean norm of the objective's gradient over `tuned`'s trainable parameters
    (`Exact`: the whole sum; `Sampled`: its check sample)."""
    params = trainable(tuned)
    if not params:
        return 0.0
    exact = objective if objective.exact else objective.check
    for p in params.values():
        p.grad = None
    (sequence_losses(tuned, exact.x) * exact.w.float()).sum().backward()
    norm = math.sqrt(sum(float((p.grad.double() ** 2).sum()) for p in params.values()
                         if p.grad is not None))
    for p in params.values():
        p.grad = None
    return norm
