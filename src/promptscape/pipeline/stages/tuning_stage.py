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
from promptscape.neural import optimum as optimum_lib
from promptscape.neural import tuners as tuners_lib
from promptscape.neural import tuning as tuning_lib
from promptscape.study import tables
from promptscape.pipeline.stages.search_stage import read_blocks
from promptscape.sources import build_source

log = logging.getLogger("promptscape")

def tune_network(*, datasets: str, search_file: str, evaluation: str | None, model: str,
                 output: str, predictor: str, replicate: int, pretraining: dict,
                 experiment: str, task_name: str, task: dict, task_length: int, N: int,
                 block: tuple[int, int], first: int, last: int, max_prompt_length: int,
                 enumeration_budget: int, tuning: dict, landscape_file: str | None = None,
                 threads: int = 1, device: str = "auto") -> None:
    """The tuning_runs rows of seeds first..last (of the datasets file's `block`).
    landscape_file: the network's landscape, read only for `init: optimum` (its hard
    optimum, padded to K, is then every seed's start)."""
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
    if tuning["init"] == "optimum":
        if landscape_file is None:
            raise ValueError("init: optimum starts from the landscape's hard optimum, but "
                             "tune_network was given no landscape")
        best = _hard_optimum(landscape_file)
        if len(best) > K:
            raise ValueError(f"init: optimum starts from the hard optimum {best!r}, longer "
                             f"than the prompt_length K = {K}: set K >= {len(best)}")
        init = np.repeat(_padded(best, K)[None], S, axis=0)
    else:
        init = _initial_prompts(pred, data, K, V, tuning["init"], enumeration_budget,
                                identity=(predictor, replicate, experiment, task_name, N),
                                seeds=seeds)
    base.check_context(K + T)
    budgets = tuning["tuning_steps"]
    num_prompts = prompts_lib.num_prompts(max_prompt_length, V)
    rows = []
    # The unprompted network's KL (none; the empty prompt), which a tuned row may end above.
    none_kl = float(score.prompts([""])[0][0])
    resolution = tuners_lib.FLOAT32_RESOLUTION

    def add(tuner, steps, kl, kl_se, train_loss, parameters, evaluations, init_prompt=None,
            projected=None, projected_kl=None, settings="fixed", rate=None, chosen=None,
            holdout=None, path=None):
        for s, seed in enumerate(seeds):
            loss = kl[s] + entropy
            rows.append({
                "seed": int(seed), "tuner": tuner, "settings": settings,
                "tuning_steps": int(steps),
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
                "overfit_path": bool(path is not None and path[s]),
                "worse_than_none": bool(kl[s] > none_kl + resolution * abs(loss)),
                "chosen_learning_rate": None if rate is None else float(rate[s]),
                "chosen_steps": int(steps if chosen is None else chosen[s]),
                "holdout_loss": None if holdout is None else float(holdout[s]),
                "trainable_parameters": int(parameters),
                "sequence_evaluations": int(evaluations[s]),
            })

    # The searched hard prompt: its loss on D_N is the search's, its cost every prompt of
    # length 0..L_max on each distinct sequence of D_N.
    add(tuners_lib.HARD_SEARCH, 0, shat_kl, shat_se, shat["empirical_loss"], 0,
        own_distinct * num_prompts)
    identity = (predictor, replicate, experiment, task_name, N)
    split = _holdout_split(tuning.get("selection"), inverse.reshape(S, N), len(distinct), seeds,
                           identity)
    init_strings = [_unpadded(row, V) for row in init]
    for name, settings in tuning["tuners"].items():
        spec = tuners_lib.TUNERS[name]
        trained = spec.space != tuners_lib.REFERENCE
        rate = settings.get("learning_rate", tuning["learning_rate"])
        groups = _groups(spec.space, own_distinct, T + K)

        def train(group, train_weights, learning_rate, steps, record_at, evaluate):
            """The Records of seeds `group` (indices) trained on `train_weights` (S, U)."""
            generator = torch.Generator().manual_seed(seeding.stable_seed(
                "tuning", predictor, replicate, experiment, task_name, N,
                [int(seeds[s]) for s in group], name) % 2**63)
            tuned = tuning_lib.build(name, base, torch.as_tensor(init[group], device=torch_device),
                                     settings, generator).to(torch_device)
            used = weights[group].sum(axis=0) > 0
            run = tuning_lib.tune(tuned, distinct[used], train_weights[group][:, used],
                                  steps=steps, learning_rate=learning_rate, record_at=record_at,
                                  evaluate=evaluate(used) if evaluate else None)
            return run, tuned.trainable_parameters()

        records, parameters = {}, 0
        for group in groups:
            run, parameters = train(group, weights, rate, tuning["steps"] if trained else 0,
                                    budgets if trained else [0], lambda used: score.tuned)
            for record in run:
                kl, kl_se = record.evaluation[:2]
                projected = record.evaluation[2]
                entry = records.setdefault(record.steps, {"kl": {}, "kl_se": {}, "loss": {},
                                                          "projected": {}})
                for i, s in enumerate(group):
                    entry["kl"][s], entry["kl_se"][s] = kl[i], kl_se[i]
                    entry["loss"][s] = record.train_loss[i]
                    entry["projected"][s] = None if projected is None else projected[i]
        prompt_rows = dict(init_prompt=init_strings if spec.space == tuners_lib.PROMPT else None)
        path = _PathWatch(S, entropy)
        for steps, entry in sorted(records.items()):
            order = range(S)
            path.step(np.array([entry["kl"][s] for s in order]),
                      np.array([entry["loss"][s] for s in order]))
            projected = ([entry["projected"][s] for s in order]
                         if spec.space == tuners_lib.PROMPT and name == "simplex_prompt" else None)
            projected_kl = score.prompts(projected)[0] if projected is not None else None
            add(name, steps, np.array([entry["kl"][s] for s in order]),
                np.array([entry["kl_se"][s] for s in order]),
                np.array([entry["loss"][s] for s in order]), parameters,
                own_distinct * steps, projected=projected, projected_kl=projected_kl,
                rate=np.full(S, rate) if trained else None, path=path.flag.copy(),
                **prompt_rows)
        log.info("%s r%d %s N=%d: %s tuned on %d seeds; median KL %s nats at steps %s "
                 "(searched hard prompt: %.4g)", predictor, replicate, task_name, N, name, S,
                 ", ".join(f"{np.median(list(e['kl'].values())):.4g}"
                           for _, e in sorted(records.items())),
                 sorted(records), float(np.median(shat_kl)))
        if not trained or tuning.get("selection") is None:
            continue
        if isinstance(split, str):
            log.warning("%s r%d %s N=%d: %s keeps its fixed settings only (no holdout rows): "
                        "%s", predictor, replicate, task_name, N, name, split)
            continue
        _holdout_rows(name, tuning, split, groups, train, score, add, own_distinct,
                      prompt_rows, identity, distinct, weights, entropy)
    frame = {key: [r[key] for r in rows] for key in rows[0]}
    n = len(rows)
    frame = {"predictor": [predictor] * n, "replicate": [replicate] * n,
             "experiment": [experiment] * n, "task": [task_name] * n, "N": [N] * n, **frame}
    tables.write(frame, "tuning_runs", output)


class _PathWatch:
    """Whether a tuner's path has overfit so far: between two recorded budgets its KL rose
    while its training loss on D_N fell (each beyond float32 resolution, relative to the
    loss). `step(kl, train_loss)` at each budget in order; `flag` (S,) so far."""

    def __init__(self, S: int, entropy: float):
        self.flag = np.zeros(S, dtype=bool)
        self.entropy, self.last = entropy, None

    def step(self, kl: np.ndarray, train_loss: np.ndarray) -> None:
        kl, train_loss = np.asarray(kl, dtype=float), np.asarray(train_loss, dtype=float)
        if self.last is not None:
            old_kl, old_loss = self.last
            margin = tuners_lib.FLOAT32_RESOLUTION * np.abs(kl + self.entropy)
            rose = kl > old_kl + margin
            fell = train_loss < old_loss - tuners_lib.FLOAT32_RESOLUTION * np.abs(train_loss)
            self.flag |= rose & fell
        self.last = (kl, train_loss)


def _holdout_split(selection, inverse, U, seeds, identity):
    """Each seed's D_N split for choosing settings on held-out data (`tuning.selection`): a
    seeded share `holdout` of its N sequences (inverse (S, N): the index of each among the
    U distinct sequences) held out, the rest trained on. Returns
    (train weights (S, U), held-out weights (S, U), held-out count), or, where D_N is too
    small to hold anything out and train on the rest, the reason (a string); None without a
    selection."""
    if selection is None:
        return None
    S, N = inverse.shape
    held = int(round(selection["holdout"] * N))
    if held < 1 or held >= N:
        return (f"holding out {selection['holdout']:g} of N = {N} sequences leaves "
                f"{held} held out and {N - held} to train on; both must be at least 1")
    train_w, hold_w = np.zeros((S, U)), np.zeros((S, U))
    for s, seed in enumerate(seeds):
        order = seeding.numpy_generator("tuning_holdout", *identity, int(seed)).permutation(N)
        np.add.at(hold_w[s], inverse[s, order[:held]], 1.0 / held)
        np.add.at(train_w[s], inverse[s, order[held:]], 1.0 / (N - held))
    return train_w, hold_w, held


def _holdout_rows(name, tuning, split, groups, train, score, add, own_distinct,
                  prompt_rows, identity, distinct, weights, entropy):
    """A tuner's `holdout` rows: each rate of `tuning.selection` trained on the part of each
    seed's D_N not held out, the rate and step budget (among tuning_steps) with the least
    held-out loss chosen (ties: fewer steps, then the smaller rate), then the tuner trained
    on all of D_N with them. Nothing here reads the landscape or the evaluation set but the
    final score. `train(group, weights, rate, steps, record_at, evaluate)` trains seeds
    `group` as the fixed rows do; distinct (U, T) and weights (S, U) are the D_N."""
    train_w, hold_w, _ = split
    S = len(weights)
    rates = tuning["selection"]["learning_rates"]
    budgets = sorted(tuning["tuning_steps"])
    held_loss = np.full((S, len(rates), len(budgets)), np.inf)
    parameters = 0
    for group in groups:
        def heldout(used, group=group):
            x, w = tuning_lib.paired(distinct[used], hold_w[group][:, used])
            xs = torch.as_tensor(x, device=score.device).long()
            ws = torch.as_tensor(w, device=score.device).double()
            return lambda tuned: (tuning_lib.sequence_losses(tuned, xs).double() * ws).sum(
                1).cpu().numpy()
        for r, rate in enumerate(rates):
            run, parameters = train(group, train_w, rate, tuning["steps"], budgets, heldout)
            for record in run:
                held_loss[group, r, budgets.index(record.steps)] = record.evaluation
    # Fewer steps first, then the smaller rate: argmin over (budget, rate) in that order.
    flat = held_loss.transpose(0, 2, 1).reshape(S, -1)
    best = flat.argmin(axis=1)
    chosen_steps = np.array([budgets[b // len(rates)] for b in best])
    chosen_rate = np.array([rates[b % len(rates)] for b in best])
    loss = flat[np.arange(S), best]
    kl, kl_se, train_loss = np.zeros(S), np.zeros(S), np.zeros(S)
    path = np.zeros(S, dtype=bool)
    projected = [None] * S
    for group in groups:
        for rate in sorted(set(chosen_rate[group])):
            sub = [s for s in group if chosen_rate[s] == rate]
            last = max(int(chosen_steps[s]) for s in sub)
            run, _ = train(sub, weights, rate, last, [b for b in budgets if b <= last],
                           lambda used: score.tuned)
            for i, s in enumerate(sub):
                # Each seed's path on all of D_N up to its chosen budget.
                watch = _PathWatch(1, entropy)
                for record in run:
                    if record.steps > chosen_steps[s]:
                        break
                    watch.step(record.evaluation[0][i:i + 1], record.train_loss[i:i + 1])
                    kl[s], kl_se[s] = record.evaluation[0][i], record.evaluation[1][i]
                    train_loss[s] = record.train_loss[i]
                    if record.evaluation[2] is not None:
                        projected[s] = record.evaluation[2][i]
                path[s] = watch.flag[0]
    simplex = name == "simplex_prompt"
    trained_distinct = (train_w > 0).sum(axis=1)
    evaluations = len(rates) * tuning["steps"] * trained_distinct + own_distinct * chosen_steps
    add(name, tuning["steps"], kl, kl_se, train_loss, parameters, evaluations,
        projected=projected if simplex else None,
        projected_kl=score.prompts(projected)[0] if simplex else None, settings="holdout",
        rate=chosen_rate, chosen=chosen_steps, holdout=loss, path=path, **prompt_rows)
    log.info("%s r%d %s %s N=%d: %s with settings chosen on held-out data: learning rates "
             "%s, steps %s; median KL %.4g", *identity, name, chosen_rate.tolist(),
             chosen_steps.tolist(), float(np.median(kl)))


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
    """KL(task || q) by the landscape's rule for a network: exact over the task sequences the
    landscape enumerates (`landscape.exact_sequences`: all V^T, or the task's support), else
    the evaluation set's stratified estimate."""

    def __init__(self, pred, task, T, V, max_prompt_length, budget, evaluation, device):
        self.pred, self.device, self.vocab_size = pred, device, V
        exact = landscape.exact_sequences(task, T, prompts_lib.num_prompts(max_prompt_length, V),
                                          budget)
        if exact is not None:  # all V^T sequences, or the task's support
            self.method = "exact_enumeration"
            self.seqs, log_p = exact
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


def tune_optimum(*, model: str, landscape_file: str, evaluation: str | None, output: str,
                 predictor: str, replicate: int, pretraining: dict, experiment: str,
                 task_name: str, task: dict, task_length: int, max_prompt_length: int,
                 enumeration_budget: int, tuning: dict, threads: int = 1,
                 device: str = "auto") -> None:
    """The tuner_optima rows of one network and task: each tuner of the plan trained on the
    task itself (`promptscape.neural.optimum`), over the plan's learning rates and starts,
    the best by the population objective; prompt-space tuners at K and at each of
    `optimum.prompt_lengths`; scored as tune_network scores (the landscape's rule). The
    landscape gives the prompt-space tuners' hard starts; the evaluation set, where the
    landscape estimates on it, only scores."""
    torch.set_num_threads(threads)
    V = build_source(pretraining, where="pretraining").vocab_size
    T, K = task_length, tuning["prompt_length"]
    settings = tuning["optimum"]
    task_source = build_source(task, where=f"task {task_name}")
    pred = checkpoints.load_predictor(model, device=device)
    base = pred.model
    torch_device = next(base.parameters()).device
    score = _Scorer(pred, task_source, T, V, max_prompt_length, enumeration_budget, evaluation,
                    torch_device)
    identity = (predictor, replicate, experiment, task_name)
    entropy = score.prompts([""])[3]
    objective = check = None  # Sampled: one objective per run, each drawing its own
    if score.method == "exact_enumeration":
        objective = optimum_lib.Exact(score.seqs, np.exp(score.log_p), torch_device)
    else:
        check = task_source.sample(4 * settings["batch_size"], T,
                                   seeding.numpy_generator("tuner_optimum_check", *identity))
    best_hard = _hard_optimum(landscape_file)
    lengths = sorted(set(settings.get("prompt_lengths") or [K]) | {K})
    rows = []
    for name, own in tuning["tuners"].items():
        prompt_space = tuners_lib.TUNERS[name].space == tuners_lib.PROMPT
        for length in (lengths if prompt_space else [0]):
            rows.append(_tuner_optimum(
                name, own, length, at_tuning_length=length in (K, 0), base=base, V=V, T=T,
                max_prompt_length=max_prompt_length, settings=settings, identity=identity,
                score=score, objective=objective, check=check, task_source=task_source,
                landscape_file=landscape_file, best_hard=best_hard, entropy=entropy,
                torch_device=torch_device))
    n = len(rows)
    frame = {"predictor": [predictor] * n, "replicate": [replicate] * n,
             "experiment": [experiment] * n, "task": [task_name] * n,
             **{key: [r[key] for r in rows] for key in rows[0]}}
    tables.write(frame, "tuner_optima", output)


def _tuner_optimum(name, own, K, *, at_tuning_length, base, V, T, max_prompt_length, settings,
                   identity, score, objective, check, task_source, landscape_file, best_hard,
                   entropy, torch_device) -> dict:
    """One tuner_optima row: tuner `name` (its settings `own`) with K prompt positions (0:
    not a prompt-space tuner) at its optimum."""
    spec = tuners_lib.TUNERS[name]
    prompt_space = spec.space == tuners_lib.PROMPT
    if prompt_space:
        base.check_context(K + T)
    # The hard starts: the landscape's hard optimum (padded on the left to K; no start where
    # it is longer than K), and its best prompt of length exactly K where the landscape has
    # that length and it differs.
    starts = [("network", "")]
    if prompt_space:
        starts = [("optimum", best_hard)] if len(best_hard) <= K else []
        if K <= max_prompt_length and _hard_optimum(landscape_file, K) != best_hard:
            starts.append(("optimum_of_length_k", _hard_optimum(landscape_file, K)))
        rng = seeding.numpy_generator("tuner_optimum_starts", *identity, name, K)
        starts += [("random", prompts_lib.to_strings(rng.integers(0, V, (1, K))
                                                     .astype(np.uint8), V)[0])
                   for _ in range(settings["restarts"])]
    rates = settings["learning_rates"] if spec.space != tuners_lib.REFERENCE else [None]
    width = max(K, 1)

    def built(start: str, restart: int) -> tuning_lib.Tuned:
        generator = torch.Generator().manual_seed(seeding.stable_seed(
            "tuner_optimum", *identity, name, restart) % 2**63)
        prompt = torch.as_tensor(_padded(start, width)[None], device=torch_device)
        return tuning_lib.build(name, base, prompt, own, generator).to(torch_device)

    def target(rate: float, j: int):
        if objective is not None:
            return objective
        stream = seeding.numpy_generator("tuner_optimum_stream", *identity, name, K, rate, j)
        return optimum_lib.Sampled(lambda n, step, g=stream: task_source.sample(n, T, g),
                                   settings["batch_size"], check, torch_device)

    training = dict(max_steps=settings["max_steps"], patience=settings["patience"],
                    tolerance=settings["tolerance"], check_every=settings["check_every"])
    runs = {}  # (rate index, start index) -> Run
    pairs = [(i, j) for i in range(len(rates)) for j in range(len(starts))]
    if rates[0] is None:  # none: nothing to train
        runs = {key: optimum_lib.Run(0.0, 0, None, {}) for key in pairs}
    elif prompt_space:
        # Every (rate, start) a copy of one Tuned, trained side by side: each copy's run is
        # its sequential run (`optimum.train_side_by_side`).
        prompts = np.stack([_padded(starts[j][1], width) for _, j in pairs])
        generator = torch.Generator().manual_seed(seeding.stable_seed(
            "tuner_optimum", *identity, name, 0) % 2**63)
        tuned = tuning_lib.build(name, base, torch.as_tensor(prompts, device=torch_device),
                                 own, generator).to(torch_device)
        side = optimum_lib.train_side_by_side(
            tuned, objective if objective is not None else
            [target(rates[i], j) for i, j in pairs],
            learning_rates=[rates[i] for i, _ in pairs], **training)
        runs = dict(zip(pairs, side))
    else:
        for i, j in pairs:
            runs[i, j] = optimum_lib.train(built(starts[j][1], j), target(rates[i], j),
                                           learning_rate=rates[i], **training)
    (i, j) = min(runs, key=lambda key: (runs[key].objective, key))
    best = runs[i, j]
    tuned = optimum_lib.load(built(starts[j][1], j), best.state)
    with torch.no_grad():
        kl, kl_se, _ = score.tuned(tuned)
    judge = objective if objective is not None else optimum_lib.Sampled(
        None, 1, check, torch_device)
    trained = rates[i] is not None
    spread = [runs[i, k].objective for k in range(len(starts))]
    row = {
        "tuner": name, "prompt_length": K,
        "method": score.method, "kl": float(kl[0]), "kl_se": float(kl_se[0]),
        "entropy": float(entropy),
        "objective": float(best.objective) if trained else float(judge.value(tuned)),
        "learning_rate": rates[i], "steps": int(best.steps),
        "converged_step": best.converged_step,
        "gradient_norm": optimum_lib.gradient_norm(tuned, judge) if trained else None,
        "restart_spread": float(max(spread) - min(spread)),
        "restarts": len(starts), "start": starts[j][0],
        "start_prompt": starts[j][1] if prompt_space else None,
        "at_tuning_length": bool(at_tuning_length),
        "trainable_parameters": int(tuned.trainable_parameters()),
    }
    log.info("%s r%d %s: %s's optimum (K = %d) KL %.4g nats (learning rate %s, %d steps, "
             "converged at %s, from its %s start; restart spread %.3g)", identity[0],
             identity[1], identity[3], name, K, kl[0], rates[i], best.steps,
             best.converged_step, starts[j][0], row["restart_spread"])
    return row


def _hard_optimum(landscape_file: str, K: int | None = None) -> str:
    """The best hard prompt in a landscape, of length exactly K if given (the first in
    canonical order, shorter first, among equals)."""
    frame = tables.read_table(landscape_file, "landscape").to_pandas()
    if K is not None:
        frame = frame[frame["prompt_length"] == K]
    rows = frame.sort_values(["prompt_length", "prompt"], kind="stable")
    if not len(rows):
        raise ValueError(f"{landscape_file}: no prompt of length {K}")
    return str(rows["prompt"].iloc[int(np.argmin(rows["kl"].to_numpy()))])


def _padded(prompt: str, K: int) -> np.ndarray:
    """(K,) int64 symbols of a hard prompt of at most K symbols, padded on the left with
    `tuning.PAD` (a position prompt-space tuners start at the mean symbol embedding)."""
    if len(prompt) > K:
        raise ValueError(f"hard prompt {prompt!r} is longer than K = {K}")
    out = np.full(K, tuning_lib.PAD, dtype=np.int64)
    if prompt:
        out[K - len(prompt):] = prompts_lib.to_arrays([prompt], len(prompt))[0]
    return out


def _unpadded(row: np.ndarray, vocab_size: int) -> str:
    """The hard prompt of a (K,) start, its `tuning.PAD` positions left out."""
    kept = np.asarray(row)[np.asarray(row) != tuning_lib.PAD]
    return prompts_lib.to_strings(kept[None].astype(np.uint8), vocab_size)[0] if len(kept) else ""
