"""Stage `tune_network`: every tuner of an experiment's `tuning` plan on one network, task and
N, for a block of seeds, scored against the hard prompt search picked from the same D_N.

What each tuner sees is D_N and nothing else (the search's own view): its initial hard prompt
(`init: search`, the best prompt of length exactly K on D_N, or `random`) and its training
loss come from D_N. The task's distribution enters only through the score, the same rule a
prompted network's landscape uses: KL(task || tuned) summed over all V^T task sequences
where the landscape enumerates them, else on the stratified evaluation set with its standard
error. The hard prompt search picked (`hard_search`, from the search artifact) is scored by
that same rule here, so each seed's tuned KL and s_hat's are paired.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from promptscape import landscape, search, seeding
from promptscape import prompts as prompts_lib
from promptscape.neural import checkpoints
from promptscape.neural import tuners as tuners_lib
from promptscape.neural import tuning as tuning_lib
from promptscape.pipeline import tables
from promptscape.pipeline.stages.search import read_blocks
from promptscape.sources import build_source

log = logging.getLogger("promptscape")

def tune_network(*, datasets: str, search_file: str, evaluation: str | None, model: str,
                 output: str, predictor: str, replicate: int, pretraining: dict,
                 experiment: str, task_name: str, task: dict, task_length: int, N: int,
                 block: tuple[int, int], first: int, last: int, max_prompt_length: int,
                 enumeration_budget: int, tuning: dict, threads: int = 1,
                 device: str = "auto") -> None:
    """The tuning_runs rows of seeds first..last (of the datasets file's `block`)."""
    torch.set_num_threads(threads)
    V = build_source(pretraining, where="pretraining").vocab_size
    T = task_length
    task_source = build_source(task, where=f"task {task_name}")
    ((seeds, data),) = [read_blocks(datasets, "task_data", [task_name], [N], *block, T,
                                    lambda n: n)[task_name, N]]
    keep = (seeds >= first) & (seeds <= last)
    seeds, data = seeds[keep], data[keep]  # (S, N, T)
    S = len(seeds)
    pred = checkpoints.load_predictor(model, device=device)
    base = pred.model
    torch_device = next(base.parameters()).device

    # Each seed's D_N as weights over the distinct sequences of the block.
    flat = data.reshape(S * N, T)
    distinct, inverse = np.unique(flat, axis=0, return_inverse=True)
    weights = np.zeros((S, len(distinct)))
    np.add.at(weights, (np.repeat(np.arange(S), N), inverse.reshape(-1)), 1.0 / N)
    own_distinct = (weights > 0).sum(axis=1)  # U_s: what one step of seed s evaluates

    shat = _searched(search_file, predictor, replicate, experiment, task_name, N, seeds)
    score = _Scorer(pred, task_source, T, V, max_prompt_length, enumeration_budget, evaluation,
                    torch_device)
    shat_kl, shat_se, method, entropy = score.prompts(shat["prompt"])
    K = tuning["prompt_length"]
    init = _initial_prompts(pred, data, K, V, tuning["init"], enumeration_budget,
                            identity=(predictor, replicate, experiment, task_name, N), seeds=seeds)
    budgets = tuning["tuning_steps"]
    num_prompts = prompts_lib.num_prompts(max_prompt_length, V)
    rows = []

    def add(tuner, steps, kl, kl_se, train_loss, parameters, evaluations, init_prompt=None,
            projected=None, projected_kl=None):
        for s, seed in enumerate(seeds):
            loss = kl[s] + entropy
            rows.append({
                "seed": int(seed), "tuner": tuner, "tuning_steps": int(steps),
                "method": method, "kl": float(kl[s]), "kl_se": float(kl_se[s]),
                "entropy": float(entropy), "train_loss": float(train_loss[s]),
                "init_prompt": None if init_prompt is None else init_prompt[s],
                "projected_prompt": None if projected is None else projected[s],
                "projected_kl": None if projected_kl is None else float(projected_kl[s]),
                "search_prompt": shat["prompt"][s], "search_kl": float(shat_kl[s]),
                "search_train_loss": float(shat["empirical_loss"][s]),
                "kl_minus_search": float(kl[s] - shat_kl[s]),
                "overfit": bool(train_loss[s] < shat["empirical_loss"][s] - tuners_lib.FLOAT32_RESOLUTION
                                * abs(train_loss[s])
                                and kl[s] > shat_kl[s] + tuners_lib.FLOAT32_RESOLUTION * abs(loss)),
                "trainable_parameters": int(parameters),
                "sequence_evaluations": int(evaluations[s]),
            })

    # The searched hard prompt: its loss on D_N is the search's, its cost every prompt of
    # length 0..L_max on each distinct sequence of D_N.
    add(tuners_lib.HARD_SEARCH, 0, shat_kl, shat_se, shat["empirical_loss"], 0,
        own_distinct * num_prompts)
    for name, settings in tuning["tuners"].items():
        spec = tuners_lib.TUNERS[name]
        groups = _groups(spec.space, own_distinct, T + K)
        records = {}
        for group in groups:
            generator = torch.Generator().manual_seed(seeding.stable_seed(
                "tuning", predictor, replicate, experiment, task_name, N,
                [int(seeds[s]) for s in group], name) % 2**63)
            tuned = tuning_lib.build(name, base, torch.as_tensor(init[group], device=torch_device),
                                     settings, generator).to(torch_device)
            used = weights[group].sum(axis=0) > 0
            run = tuning_lib.tune(tuned, distinct[used], weights[group][:, used],
                                  steps=tuning["steps"] if spec.space != tuners_lib.REFERENCE
                                  else 0, learning_rate=tuning["learning_rate"],
                                  record_at=budgets if spec.space != tuners_lib.REFERENCE
                                  else [0], evaluate=score.tuned)
            for record in run:
                kl, kl_se = record.evaluation[:2]
                projected = record.evaluation[2]
                entry = records.setdefault(record.steps, {"kl": {}, "kl_se": {}, "loss": {},
                                                          "projected": {}})
                for i, s in enumerate(group):
                    entry["kl"][s], entry["kl_se"][s] = kl[i], kl_se[i]
                    entry["loss"][s] = record.train_loss[i]
                    entry["projected"][s] = None if projected is None else projected[i]
            parameters = tuned.trainable_parameters()
            del tuned  # its trainable copies; the base network is shared and stays
        for steps, entry in sorted(records.items()):
            order = range(S)
            projected = ([entry["projected"][s] for s in order]
                         if spec.space == tuners_lib.PROMPT and name == "simplex_prompt" else None)
            projected_kl = score.prompts(projected)[0] if projected is not None else None
            add(name, steps, np.array([entry["kl"][s] for s in order]),
                np.array([entry["kl_se"][s] for s in order]),
                np.array([entry["loss"][s] for s in order]), parameters,
                own_distinct * steps,
                init_prompt=(prompts_lib.to_strings(init.astype(np.uint8), V)
                             if spec.space == tuners_lib.PROMPT else None),
                projected=projected, projected_kl=projected_kl)
        log.info("%s r%d %s N=%d: %s tuned on %d seeds; median KL %s nats at steps %s "
                 "(searched hard prompt: %.4g)", predictor, replicate, task_name, N, name, S,
                 ", ".join(f"{np.median(list(e['kl'].values())):.4g}"
                           for _, e in sorted(records.items())),
                 sorted(records), float(np.median(shat_kl)))
    frame = {key: [r[key] for r in rows] for key in rows[0]}
    n = len(rows)
    frame = {"predictor": [predictor] * n, "replicate": [replicate] * n,
             "experiment": [experiment] * n, "task": [task_name] * n, "N": [N] * n, **frame}
    tables.write(frame, "tuning_runs", output)


def _groups(space: str, own_distinct: np.ndarray, tokens_per_sequence: int) -> list[list[int]]:
    """The seeds trained together: weight tuners one at a time; prompt-space tuners side by
    side, as many as fit `tuners.BATCH_TOKENS` (each seed padded to the longest D_N)."""
    S = len(own_distinct)
    if space == tuners_lib.WEIGHTS:
        return [[s] for s in range(S)]
    size = tuners_lib.seeds_side_by_side(S, own_distinct.max(), tokens_per_sequence)
    return [list(range(a, min(a + size, S))) for a in range(0, S, size)]


def _searched(path, predictor, replicate, experiment, task, N, seeds) -> dict:
    """Each seed's s_hat (the prompt exhaustive search chose on D_N) and L_N(s_hat)."""
    frame = tables.read_table(path, "search").to_pandas()
    chosen = frame[(frame["predictor"] == predictor) & (frame["replicate"] == replicate)
                   & (frame["experiment"] == experiment) & (frame["task"] == task)
                   & (frame["N"] == N) & frame["chosen"]].set_index("seed")
    missing = [int(s) for s in seeds if s not in chosen.index]
    if missing:
        raise ValueError(f"{path}: no chosen prompt of {predictor} r{replicate}, task {task}, "
                         f"N={N} for seeds {missing}")
    rows = chosen.loc[list(seeds)]
    return {"prompt": rows["prompt"].tolist(),
            "empirical_loss": rows["empirical_loss"].to_numpy(dtype=float)}


def _initial_prompts(pred, data, K, V, init, enumeration_budget, *, identity, seeds):
    """(S, K) the hard prompts prompt-space tuners start from: the best prompt of length
    exactly K on each seed's D_N (search's tie rule), or K uniform symbols."""
    if init == "random":
        return np.stack([seeding.numpy_generator("tuning_init", *identity, int(seed))
                         .integers(0, V, K) for seed in seeds]).astype(np.int64)
    candidates = prompts_lib.all_prompts(K, V)[prompts_lib.num_prompts(K - 1, V):]
    losses = search.empirical_losses(pred, candidates, data, enumeration_budget, V)  # (S, P_K)
    chosen = search.choose(losses)
    return prompts_lib.to_arrays([candidates[i] for i in chosen], K).astype(np.int64)


class _Scorer:
    """KL(task || q) by the landscape's rule for a network: exact over all V^T sequences where
    the landscape enumerates them, else the evaluation set's stratified estimate."""

    def __init__(self, pred, task, T, V, max_prompt_length, budget, evaluation, device):
        self.pred, self.device, self.vocab_size = pred, device, V
        if landscape.enumerates(prompts_lib.num_prompts(max_prompt_length, V), T, budget, V):
            self.method = "exact_enumeration"
            self.seqs = prompts_lib.enumerate_sequences(T, V)
            log_p = task.log_prob(self.seqs)
            self.weights, self.strata = np.exp(log_p), None
        else:
            if evaluation is None:
                raise ValueError("the landscape estimates this task on the evaluation set, "
                                 "but tune_network was given none")
            self.method = "monte_carlo"
            frame = tables.read_table(evaluation, "evaluation_set")
            self.seqs = prompts_lib.to_arrays(frame["sequence"].to_pylist(), T)
            log_p = task.log_prob(self.seqs)
            self.weights = frame["weight"].to_numpy()
            self.strata = frame["stratum"].to_numpy()
        self.log_p = log_p
        # The landscape's entropy column: the task's exact H_T wherever it is known.
        self.entropy = landscape.task_entropy(task, T)
        self.tensor = torch.as_tensor(self.seqs, device=device).long()

    def _kl(self, losses: np.ndarray):
        """(kl, kl_se, entropy) of (P, M) per-sequence losses."""
        if self.method == "exact_enumeration":
            kl = (losses + self.log_p[None]) @ self.weights
            return kl, np.zeros(len(kl)), -float(self.weights @ self.log_p)
        _, _, kl, kl_se, entropy = landscape.monte_carlo_kl(losses, self.log_p, self.weights,
                                                            self.strata)
        return kl, kl_se, entropy if self.entropy is None else self.entropy

    def prompts(self, prompts: list[str]):
        """(kl, kl_se, method, entropy) of hard prompts, scored as the landscape does."""
        losses = self.pred.prompt_losses(list(prompts), self.seqs)
        kl, kl_se, entropy = self._kl(losses)
        return kl, kl_se, self.method, entropy

    def tuned(self, tuned):
        """(kl (S,), kl_se (S,), projected prompts or None) of a tuned network, no gradients."""
        losses = tuning_lib.sequence_losses(tuned, self.tensor).double().cpu().numpy()
        kl, kl_se, _ = self._kl(losses)
        projected = None
        if hasattr(tuned, "projected"):
            projected = prompts_lib.to_strings(tuned.projected().cpu().numpy().astype(np.uint8),
                                               self.vocab_size)
        return kl, kl_se, projected
