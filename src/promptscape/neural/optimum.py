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

`train_side_by_side` trains the S copies of one prompt-space Tuned (every learning rate and
start of a tuner and K) in one loop: each copy at its own learning rate (`Adam`, torch's
update with an (S,) learning rate), judged, kept and stopped exactly as `train` judges, keeps
and stops it alone; a converged copy leaves the batch. The copies never meet (their
parameters are separate and Adam is elementwise), so each copy's result is its sequential
run's up to float rounding, at the cost of one loop instead of S.

Where the tuner can walk a sequence trie with gradients (prompt-space tuners of either
family, `Tuned.trie_losses`), the exact objective's losses come from one walk of the task
sequences' prefix trie (`Exact.losses`): a state per distinct prefix instead of one per
position (1,023 inputs instead of 10,240 over the 1,024 sequences of T = 10 binary symbols),
the same losses and gradients up to float rounding.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np
import torch

from promptscape.neural.tuning import Tuned, leaf_trie, sequence_losses, walk_fits


class Exact:
    """The population objective as a sum over all task sequences `seqs` (U, T) with their
    probabilities `probs` (U,): ``sum_x p(x) l(x)``, every step the same."""

    exact = True

    def __init__(self, seqs: np.ndarray, probs: np.ndarray, device="cpu"):
        self.x = torch.as_tensor(np.asarray(seqs), device=device).long()[None]  # (1, U, T)
        self.w = torch.as_tensor(np.asarray(probs, dtype=np.float64), device=device)[None]
        self._trie = self._leaf_w = None

    def batch(self, step: int):
        """The (1, B, T) sequences and (1, B) weights of step `step`'s loss."""
        return self.x, self.w

    def losses(self, tuned: Tuned, max_tokens: int = 1 << 17) -> tuple[torch.Tensor, torch.Tensor]:
        """(S, U') losses of the distinct sequences under each copy of `tuned` and their
        (1, U') probabilities: by a walk of the sequences' prefix trie where the tuned
        tuner has one (`Tuned.trie_losses`: V^T sequences share most of their prefixes, one
        state per node instead of one per position) where `tuning.walk_fits`, else
        its forward."""
        if self._trie is None or self._trie.vocab_size != tuned.vocab_size:
            self._trie, self._leaf_w = leaf_trie(self.x[0].cpu().numpy(), self.w.cpu().numpy(),
                                                 tuned.vocab_size, self.x.device)
        losses = tuned.trie_losses(self._trie) if walk_fits(tuned, self._trie) else None
        if losses is None:
            return sequence_losses(tuned, self.x[0], max_tokens), self.w
        return losses, self._leaf_w

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
        if objective.exact:
            losses, w = objective.losses(tuned)  # (1, U)
        else:
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
        (losses * w.to(losses.dtype)).sum().backward()
        optimizer.step()
    return Run(best, best_step, converged, state)


# Side by side on a cpu, the forward pass goes in chunks of about this many task tokens of
# all copies together, a working set that stays in cache: 2.3-2.6 CPU-s for 3 steps of 6
# copies of the default Transformer's prefix at K = 24 over 1,024 sequences, against 3.5 in
# one chunk and 2.7-3.8 one copy after another (2^10..2^17 tokens per copy tried).
CPU_CHUNK_TOKENS = 1 << 13


class Adam:
    """torch.optim.Adam's update (betas, eps, bias correction; no weight decay, no amsgrad)
    of parameters that hold S copies along an axis each (`dims`), with a learning rate per
    copy (`learning_rates`, (S,)). `select` keeps some copies (their moments with them)."""

    def __init__(self, params: dict[str, torch.nn.Parameter], dims: dict[str, int],
                 learning_rates, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.params, self.dims = dict(params), dict(dims)
        self.learning_rates = torch.as_tensor(np.asarray(learning_rates, dtype=np.float64))
        self.betas, self.eps, self.steps = betas, float(eps), 0
        self.m = {n: torch.zeros_like(p) for n, p in self.params.items()}
        self.v = {n: torch.zeros_like(p) for n, p in self.params.items()}

    def _along(self, values: torch.Tensor, name: str) -> torch.Tensor:
        """(S,) values shaped to broadcast along parameter `name`'s copy axis."""
        p = self.params[name]
        shape = [1] * p.ndim
        shape[self.dims[name]] = -1
        return values.to(device=p.device, dtype=p.dtype).view(shape)

    @torch.no_grad()
    def step(self) -> None:
        self.steps += 1
        b1, b2 = self.betas
        correction2 = math.sqrt(1 - b2 ** self.steps)
        step_size = self.learning_rates / (1 - b1 ** self.steps)  # float64, as torch's
        for name, p in self.params.items():
            if p.grad is None:
                continue
            g, m, v = p.grad, self.m[name], self.v[name]
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (v.sqrt() / correction2).add_(self.eps)
            p.sub_(self._along(step_size, name) * (m / denom))

    def select(self, keep: torch.Tensor, params: dict[str, torch.nn.Parameter]) -> None:
        """Keep copies `keep` (indices into the current ones); `params`: the parameters that
        now hold them."""
        self.learning_rates = self.learning_rates[keep.cpu()]
        for name, p in params.items():
            index = keep.to(p.device)
            self.m[name] = self.m[name].index_select(self.dims[name], index)
            self.v[name] = self.v[name].index_select(self.dims[name], index)
        self.params = dict(params)


def select_copies(tuned: Tuned, keep: torch.Tensor) -> dict[str, torch.nn.Parameter]:
    """Replace each trainable parameter of `tuned` by its copies `keep` (in that order);
    the new parameters."""
    for name, p in trainable(tuned).items():
        owner, _, attribute = name.rpartition(".")
        module = tuned.get_submodule(owner) if owner else tuned
        kept = p.detach().index_select(tuned.copy_dim, keep.to(p.device))
        setattr(module, attribute, torch.nn.Parameter(kept))
    tuned.seeds = len(keep)
    return trainable(tuned)


def train_side_by_side(tuned: Tuned, objective, *, learning_rates, max_steps: int,
                       patience: int, tolerance: float, check_every: int = 1) -> list[Run]:
    """`train` of each of `tuned`'s S copies, side by side: copy s at `learning_rates[s]`,
    on `objective` (`Exact`: the same sum for every copy) or `objective[s]` (a list of S
    `Sampled`, each drawing its own sequences, all judged on the same check sample). Each
    copy's best objective, best step, state and convergence are decided as `train` decides
    them for that copy alone; once converged, a copy leaves the batch. A Run per copy (its
    state of one copy, as `train`'s); `tuned` is left holding the copies still running at
    the end."""
    S = tuned.seeds
    rates = np.asarray(learning_rates, dtype=np.float64)
    if rates.shape != (S,):
        raise ValueError(f"learning_rates of shape {rates.shape}, not ({S},)")
    sampled = isinstance(objective, (list, tuple))
    if sampled:
        if len(objective) != S or any(o.exact for o in objective):
            raise ValueError(f"side by side: one Sampled objective per copy ({S}), or one Exact")
        check = objective[0].check
        if any(not torch.equal(o.check.x, check.x) for o in objective):
            raise ValueError("side by side: every copy must be judged on the same check sample")
        sizes = {o.batch_size for o in objective}
        if len(sizes) != 1:
            raise ValueError(f"side by side: batch sizes {sorted(sizes)} differ")
    elif not objective.exact:
        raise ValueError("side by side: a Sampled objective per copy (a list of S)")
    dim = tuned.copy_dim
    params = trainable(tuned)
    cpu = next(iter(params.values())).device.type == "cpu"
    adam = Adam(params, {n: dim for n in params}, rates)
    active = np.arange(S)  # the original copy of each copy tuned holds now
    best, best_step = np.full(S, math.inf), np.zeros(S, dtype=np.int64)
    reference, improved = np.full(S, math.inf), np.zeros(S, dtype=np.int64)
    converged: list[int | None] = [None] * S
    state = {n: p.detach().clone() for n, p in params.items()}  # every copy's best
    for step in range(max_steps + 1):
        chunk = max(1, CPU_CHUNK_TOKENS // len(active)) if cpu else 1 << 17  # per copy
        if sampled:
            drawn = [objective[s].batch(step) for s in active]
            x, w = torch.cat([d[0] for d in drawn]), drawn[0][1]  # (A, B, T), (1, B)
            losses = sequence_losses(tuned, x, chunk)  # (A, B)
        else:
            # (A, U), (1, U): the same sum for every copy
            losses, w = objective.losses(tuned, chunk)
        values = None
        if not sampled:
            values = (losses.detach().double() * w).sum(1).cpu().numpy()
        elif step % check_every == 0 or step == max_steps:
            with torch.no_grad():
                values = (sequence_losses(tuned, check.x[0], chunk).double()
                          * check.w).sum(1)
            values = values.cpu().numpy()
        done = np.zeros(len(active), dtype=bool)
        if values is not None:
            better = values < best[active]
            if better.any():
                here = torch.as_tensor(np.flatnonzero(better))
                there = torch.as_tensor(active[better])
                best[active[better]], best_step[active[better]] = values[better], step
                for n, p in params.items():
                    state[n].index_copy_(dim, there.to(p.device),
                                         p.detach().index_select(dim, here.to(p.device)))
            for a, s in enumerate(active):
                if (not math.isfinite(reference[s])
                        or values[a] < reference[s] - tolerance * abs(reference[s])):
                    reference[s], improved[s] = values[a], step
                elif step - improved[s] >= patience:
                    converged[s], done[a] = step, True
        if step == max_steps or done.all():
            break
        for p in params.values():
            p.grad = None
        (losses * w.to(losses.dtype)).sum().backward()  # copies just converged leave after it
        adam.step()
        if done.any():
            keep = torch.as_tensor(np.flatnonzero(~done))
            params = select_copies(tuned, keep)
            adam.select(keep, params)
            active = active[~done]
    return [Run(float(best[s]), int(best_step[s]), converged[s],
                {n: t.index_select(dim, torch.tensor([s], device=t.device)).clone()
                 for n, t in state.items()}) for s in range(S)]


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
