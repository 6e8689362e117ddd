"""A from-scratch landscape for checking the library's (tests of landscapes and of long
prompts): every task sequence is enumerated, its probability is a direct product, and the
prompted predictive is brute-force Bayes (the posterior over the hidden coins after the
prompt, the sequential rule of succession for a Beta prior, or a sum over every hidden switch
path), never the library's count formulas."""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np

from promptscape import prompts as prompts_lib

BERNMIX = {"kind": "coin_mixture", "thetas": [0.2, 0.7]}
BETA11 = {"kind": "beta_coin", "alpha": 1.0, "beta": 1.0}
SWITCHING = {"kind": "switching", "thetas": [0.2, 0.7], "switch_prob": 0.05}


def coin(theta):
    return {"kind": "coin", "theta": theta}


# ------------------------------------------------------------------ brute force
def _bits(text: str) -> list[int]:
    return [int(c) for c in text]


def _coin_product(theta: float, bits) -> float:
    out = 1.0
    for b in bits:
        out *= theta if b == 1 else 1.0 - theta
    return out


def brute_task_probability(task: dict, bits) -> float:
    """P_task(x) of one sequence, as a direct product (tasks here are coins or mixtures)."""
    if task["kind"] == "coin":
        return _coin_product(task["theta"], bits)
    if task["kind"] == "coin_mixture":
        thetas = task["thetas"]
        weights = task.get("weights") or [1.0 / len(thetas)] * len(thetas)
        return sum(w * _coin_product(t, bits) for w, t in zip(weights, thetas))
    raise AssertionError(f"no brute-force task probability for {task['kind']!r}")


@functools.lru_cache(maxsize=None)
def _switch_paths(n: int, thetas: tuple, weights: tuple, rho: float):
    """Every hidden coin path of n flips and its probability from the generative story."""
    paths = np.array(list(itertools.product(range(len(thetas)), repeat=n)), dtype=np.int64)
    w = np.asarray(weights)
    prob = w[paths[:, 0]].copy()
    for t in range(1, n):
        stay = paths[:, t] == paths[:, t - 1]
        prob *= (1.0 - rho) * stay + rho * w[paths[:, t]]  # keep, or redraw (maybe the same)
    assert math.isclose(prob.sum(), 1.0, rel_tol=1e-12)
    return np.asarray(thetas)[paths], prob  # (K^n, n), (K^n,)


def _switching_probability(pre: dict, seqs: np.ndarray) -> np.ndarray:
    """P(seq) for a batch ``(B, n)`` by summing over every hidden switch path."""
    thetas = tuple(pre["thetas"])
    weights = tuple(pre.get("weights") or [1.0 / len(thetas)] * len(thetas))
    n = seqs.shape[1]
    if n == 0:
        return np.ones(len(seqs))
    th, path_p = _switch_paths(n, thetas, weights, pre["switch_prob"])
    emit = np.where(seqs[:, None, :] == 1, th[None], 1.0 - th[None])  # (B, K^n, n)
    return np.prod(emit, axis=2) @ path_p


def brute_prompted_probability(pre: dict, prompt: str, seqs: np.ndarray) -> np.ndarray:
    """q(x | s) for every sequence x of ``seqs``: the pretraining source's Bayes-posterior
    probability of x after seeing the prompt s, computed from scratch."""
    s = _bits(prompt)
    if pre["kind"] == "coin_mixture":
        thetas = pre["thetas"]
        weights = pre.get("weights") or [1.0 / len(thetas)] * len(thetas)
        joint = [w * _coin_product(t, s) for w, t in zip(weights, thetas)]
        post = [j / sum(joint) for j in joint]  # posterior over the hidden coin
        return np.array([sum(p * _coin_product(t, x) for p, t in zip(post, thetas))
                         for x in seqs.tolist()])
    if pre["kind"] == "beta_coin":
        # Sequential Bayes predictive of a Beta prior: q(1 | n1, n0) = (a + n1) / (a + b + n).
        a, b = pre["alpha"], pre["beta"]
        out = []
        for x in seqs.tolist():
            n1, n0, prob = s.count(1), s.count(0), 1.0
            for bit in x:
                p_one = (a + n1) / (a + b + n1 + n0)
                prob *= p_one if bit == 1 else 1.0 - p_one
                n1, n0 = n1 + bit, n0 + 1 - bit
            out.append(prob)
        return np.array(out)
    if pre["kind"] == "switching":
        prompt_arr = np.array(s, dtype=np.int64).reshape(1, -1)
        joined = np.concatenate([np.repeat(prompt_arr, len(seqs), axis=0),
                                 seqs.astype(np.int64)], axis=1)
        return _switching_probability(pre, joined) / _switching_probability(pre, prompt_arr)[0]
    raise AssertionError(f"no brute-force predictor for {pre['kind']!r}")


def brute_force_landscape(pre: dict, task: dict, prompts: list[str], T: int):
    """(loss (P,), kl (P,), entropy) by explicit enumeration of all 2**T task sequences."""
    seqs = np.array(list(itertools.product([0, 1], repeat=T)), dtype=np.int64)
    q_task = np.array([brute_task_probability(task, x) for x in seqs.tolist()])
    assert math.isclose(q_task.sum(), 1.0, rel_tol=1e-12)
    entropy = -math.fsum(q_task * np.log(q_task))
    loss, kl = [], []
    for prompt in prompts:
        q = brute_prompted_probability(pre, prompt, seqs)
        assert math.isclose(q.sum(), 1.0, rel_tol=1e-12), prompt
        loss.append(math.fsum(q_task * -np.log(q)))
        kl.append(math.fsum(q_task * (np.log(q_task) - np.log(q))))  # KL directly, no H
    return np.array(loss), np.array(kl), entropy


def count_landscape(max_length: int, vocab_size: int, rng, levels: int | None = None):
    """A KL vector that depends on symbol counts only (an exchangeable predictor): a random
    value per count class (drawn from `levels` values where given, to make ties)."""
    prompts = prompts_lib.all_prompts(max_length, vocab_size)
    counts = prompts_lib.prompt_counts(prompts, vocab_size)
    classes, inverse = np.unique(counts, axis=0, return_inverse=True)
    values = (rng.integers(levels, size=len(classes)).astype(float) if levels
              else rng.random(len(classes)))
    return values[inverse.reshape(-1)]
