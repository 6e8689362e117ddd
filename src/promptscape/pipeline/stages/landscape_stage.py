"""Stage `compute_landscape`: theoretical loss, KL, rank and optimal class of every prompt."""

from __future__ import annotations

import logging

import numpy as np

from promptscape import landscape, search
from promptscape.study import tables
from promptscape import prompts as prompts_lib
from promptscape.sources import build_source
from promptscape.pipeline.stages.common import load_predictor, vocab_size

log = logging.getLogger("promptscape")


def compute_landscape(*, evaluation: str, output: str, predictor: str,
                      family: str | None = None, replicate: int = 0, pretraining: dict,
                      experiment: str, task_name: str, task: dict, task_length: int,
                      max_prompt_length: int, enumeration_budget: int,
                      model: str | None = None, table: str | None = None,
                      device: str = "auto") -> None:
    """The landscape of one (predictor, experiment, task)."""
    V = vocab_size(pretraining)
    prompts = prompts_lib.all_prompts(max_prompt_length, V)
    pred = load_predictor(family or predictor, pretraining, model, table, device)
    task_source = build_source(task, where=f"task {task_name}")
    method = landscape.choose_method(pred, task_source, task_length, len(prompts),
                                     enumeration_budget)

    # Prompts the predictor treats alike are scored once (`Predictor.prompt_classes`: 153
    # count classes for the 131,071 binary prompts of length <= 16) and expanded.
    first, inverse = pred.prompt_classes(prompts)
    eval_frame = tables.read_table(evaluation, "evaluation_set")
    eval_seqs = prompts_lib.to_arrays(eval_frame["sequence"].to_pylist(), task_length)
    weights = eval_frame["weight"].to_numpy()
    strata = eval_frame["stratum"].to_numpy()
    # Each distinct evaluation sequence is scored once (all V^T of them where they fit the
    # enumeration budget: the exact table is then the same one), and the evaluation-set
    # estimates are reduced a block of prompts at a time.
    table, index = search.sequence_losses(pred, first, eval_seqs, enumeration_budget, V,
                                          decide_on=len(prompts))
    task_log_prob = task_source.log_prob(eval_seqs)
    mc = landscape.evaluation_kl(table, index, task_log_prob, weights, strata)
    if method == "monte_carlo":
        loss, loss_se, kl, kl_se, entropy = mc
        # KL stays the paired estimate (smaller errors than L(s) - H_T); the entropy
        # column is the task's exact H_T wherever a closed form or an enumeration gives it.
        exact_entropy = landscape.task_entropy(task_source, task_length)
        entropy = entropy if exact_entropy is None else exact_entropy
        eval_losses = table[:, index]  # (C, M), paired across prompts
        ranks, optimal, resolved = landscape.classify(loss, eval_losses, weights=weights,
                                                      strata=strata, comparisons=len(prompts))
        ranks, optimal, resolved = ranks[inverse], optimal[inverse], resolved[inverse]
        kl_resolution = landscape.landscape_resolution(pred, loss, entropy, method, task_length,
                                                       max_prompt_length, V)
        # What every reader needs for paired standard errors (`landscape.TieRule`), where
        # it fits the budget; beyond it the readers decide by the bound se(a) + se(b).
        residuals = []
        if len(prompts) * len(index) <= landscape.RESIDUAL_BUDGET:
            residuals = landscape.paired_residuals(eval_losses + task_log_prob[None, :],
                                                   weights, strata)[inverse]
        else:
            log.info("%d prompts x %d evaluation sequences exceed the residual budget (%d "
                     "values): the landscape keeps no residuals, and its readers decide by "
                     "the bound se(a) + se(b)", len(prompts), len(index),
                     landscape.RESIDUAL_BUDGET)
        decided_by = landscape.PAIRED_SE
    else:
        # The evaluation set's table is the exact one where it covers all V^T sequences;
        # where the task's support is enumerated instead, the exact sum scores that.
        enumerated = table if (method == "exact_enumeration" and landscape.enumeration(
            task_source, task_length, len(prompts), enumeration_budget) == "all") else None
        loss, loss_se, entropy = landscape.theoretical_losses(
            pred, first, task_source, task_length, method, enumerated,
            num_prompts=len(prompts), budget=enumeration_budget)
        del table, enumerated
        kl, kl_se = loss - entropy, np.zeros_like(loss)
        # A stratified estimate can be exact (standard error 0): floor the error at the
        # floating-point resolution of a KL, so agreement to rounding reads as |z| ~ 0.
        floor = landscape.EXACT_RELATIVE_TOLERANCE * np.abs(loss) + 1e-12
        # An impossible prompt's KL is inf both ways: they agree (inf - inf is no gap).
        with np.errstate(invalid="ignore"):
            z = np.where(kl == mc[2], 0.0, np.abs(kl - mc[2]) / np.maximum(mc[3], floor))
        log.info("evaluation-set cross-check of exact KL: max |z| = %.2f over %d prompt "
                 "classes (%d strata)", float(z.max()), len(first), len(np.unique(strata)))
        kl_resolution = landscape.landscape_resolution(pred, loss, entropy, method, task_length,
                                                       max_prompt_length, V)
        ranks, optimal, resolved = landscape.classify(loss[inverse], tolerance=kl_resolution)
        residuals, decided_by = [], landscape.KL_RESOLUTION
    loss, loss_se, kl, kl_se = (v[inverse] for v in (loss, loss_se, kl, kl_se))
    mc_kl, mc_kl_se = mc[2][inverse], mc[3][inverse]
    below = landscape.below_resolution(kl, kl_resolution, method)
    best = [p if p else "(empty)" for p, o in zip(prompts, optimal) if o]
    best_kl = float(kl[optimal].min())
    log.info("%s %s %s: method %s over %d prompts (%d classes); optimal class %s%s (%d not "
             "resolved from the best), KL %s (resolution %.2g nats)", predictor, experiment,
             task_name, method, len(prompts), len(first), best[:10],
             " ..." if len(best) > 10 else "", int((~resolved).sum()),
             "below resolution" if below[optimal].any() else f"{best_kl:.6g} nats",
             kl_resolution)
    prediction = landscape.first_symbol_prediction(pred, first, V)  # (C, V)
    first_kl = landscape.first_symbol_kl(pred, first, task_source, prediction)[inverse]
    prediction = prediction[inverse]
    frame = {
        "predictor": predictor, "replicate": replicate, "experiment": experiment,
        "task": task_name, "prompt": prompts, "prompt_length": [len(p) for p in prompts],
        "prompt_counts": prompts_lib.prompt_counts(prompts, V).tolist(), "method": method,
        "loss": loss, "loss_se": loss_se, "entropy": entropy, "kl": kl, "kl_se": kl_se,
        "first_symbol_kl": first_kl,
        "first_symbol_prediction": prediction.tolist(),
        "rank": ranks, "optimal": optimal, "resolved": resolved,
        "kl_resolution": kl_resolution, "below_resolution": below,
        "mc_kl": mc_kl, "mc_kl_se": mc_kl_se, "decided_by": decided_by,
        "kl_residuals": list(residuals) if len(residuals) else [[]] * len(prompts),
    }
    tables.write(frame, "landscape", output)
