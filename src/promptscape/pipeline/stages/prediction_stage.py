"""Stage `predict_reliability`: the predicted proportion correct of every N of one
(predictor, replicate, task). It imports neither pandas nor torch (a network is read from
its prompt-loss table where there is one); `stages.aggregate_stage.aggregate_prediction` sets the
predictions beside the measured reliability."""

from __future__ import annotations

import logging

import numpy as np

from promptscape import landscape, seeding, theory
from promptscape.study import tables
from promptscape import prompts as prompts_lib
from promptscape.sources import build_source
from promptscape.pipeline.stages.common import load_predictor, vocab_size

log = logging.getLogger("promptscape")

# The prediction's method where the exact multinomial sum ran over the evaluation set
# (outcomes evaluation_set): exact for the plug-in law, not for the task.
PLUG_IN = "plug_in"
# The outcomes the dataset's frequencies are over, by landscape method.
OUTCOMES = {"exact_counts": "count_values", "exact_enumeration": "sequences",
            "monte_carlo": "evaluation_set"}


def outcome_table(pred, prompts: list[str], task, task_length: int, method: str,
                  evaluation: str, num_prompts: int | None = None,
                  budget: int = landscape.DEFAULT_ENUMERATION_BUDGET
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``(losses (P, X), p (X,))``: every prompt's loss on every distinct outcome of the task
    and the outcomes' probabilities, the landscape's own table (`landscape.loss_table`);
    under monte_carlo the evaluation set's sequences with their stratum weights, a plug-in
    for the task."""
    if method != "monte_carlo":
        losses, p, _ = landscape.loss_table(pred, prompts, task, task_length, method,
                                            num_prompts=num_prompts, budget=budget)
        return losses, p
    frame = tables.read_table(evaluation, "evaluation_set")
    seqs = prompts_lib.to_arrays(frame["sequence"].to_pylist(), task_length)
    return pred.prompt_losses(prompts, seqs), frame["weight"].to_numpy()


def predict_reliability(*, landscape_path: str, evaluation: str, output: str, predictor: str,
                        family: str | None = None, replicate: int = 0, pretraining: dict,
                        experiment: str, task_name: str, task: dict, task_length: int,
                        max_prompt_length: int, dataset_sizes: list[int],
                        enumeration_budget: int, draws: int, exact_max_outcomes: int,
                        reference_N: int, model: str | None = None, table: str | None = None,
                        device: str = "auto") -> None:
    """The predicted proportion correct of one (predictor, replicate, task) of an
    experiment at every N of its grid, and the task's variance decomposition. The optimal
    class is the landscape's, the one the measured reliability is judged by."""
    V = vocab_size(pretraining)
    prompts = prompts_lib.all_prompts(max_prompt_length, V)
    pred = load_predictor(family or predictor, pretraining, model, table, device)
    sizes = sorted(int(N) for N in dataset_sizes)
    task_source = build_source(task, where=f"task {task_name}")
    land = tables.read_table(landscape_path, "landscape")
    if land["prompt"].to_pylist() != prompts or set(land["task"].to_pylist()) != {task_name}:
        raise ValueError(f"{landscape_path}: not the landscape of task {task_name!r} over the "
                         f"experiment's {len(prompts)} prompts in canonical order")
    method = landscape.choose_method(pred, task_source, task_length, len(prompts),
                                     enumeration_budget)
    # One representative per prompt class (`Predictor.prompt_classes`): theory merges
    # prompts with identical losses anyway, so this is exact and bounds the table.
    first, inverse = pred.prompt_classes(prompts)
    losses, p = outcome_table(pred, first, task_source, task_length, method, evaluation,
                              num_prompts=len(prompts), budget=enumeration_budget)
    optimal = land["optimal"].to_numpy()
    if np.any(optimal != optimal[np.unique(inverse, return_index=True)[1]][inverse]):
        raise ValueError(f"{landscape_path}: prompts of one class disagree on optimal")
    optimal = optimal[np.unique(inverse, return_index=True)[1]]
    identity = (experiment, predictor, replicate, task, task_length, max_prompt_length)
    rows = theory.predict(
        losses, p, optimal, sizes, draws=draws, exact_max_outcomes=exact_max_outcomes,
        normal_rng=seeding.numpy_generator("prediction_normal", *identity),
        simulation_rng=seeding.numpy_generator("prediction_simulated", *identity))
    classes, class_optimal, _ = theory.collapse(losses, optimal)
    classes, merged = theory.collapse_outcomes(classes, p)
    parts = theory.decomposition(classes, merged, class_optimal, reference_N=reference_N)
    if method == "monte_carlo":
        # The multinomial sum ran over the evaluation set's empirical law, a plug-in for the
        # task: exact for that stand-in, not for the task.
        for row in rows:
            row["method"] = PLUG_IN if row["method"] == "exact" else row["method"]
    predicted = [row["predicted"] for row in rows]
    exact_up_to = max((row["N"] for row in rows if row["method"] == "exact"), default=None)
    log.info("%s %s %s: %d classes (%d optimal) over %d %s; exact up to N = %s; gap %.3g "
             "nats, paired sd %.3g; predicted %s", predictor, experiment, task_name,
             rows[0]["classes"], rows[0]["optimal_classes"], rows[0]["outcomes"],
             OUTCOMES[method], exact_up_to, parts["gap"], parts["paired_sd"],
             ", ".join(f"N={r['N']}: {r['predicted']:.3f}" for r in rows))
    columns = {
        "predictor": predictor, "replicate": replicate, "experiment": experiment,
        "task": task_name, "N": [r["N"] for r in rows], "outcomes": OUTCOMES[method],
        "num_outcomes": rows[0]["outcomes"], "num_classes": rows[0]["classes"],
        "optimal_classes": rows[0]["optimal_classes"],
        "predicted_proportion_correct": predicted, "method": [r["method"] for r in rows],
        "exact_proportion_correct": [r["exact"] for r in rows],
        "normal_proportion_correct": [r["normal"] for r in rows],
        "normal_se": [r["normal_se"] for r in rows],
        "simulated_proportion_correct": [r["simulated"] for r in rows],
        "simulated_se": [r["simulated_se"] for r in rows],
        "gap": [parts["gap"]] * len(rows), "paired_sd": [parts["paired_sd"]] * len(rows),
        "classes_within_2se": parts["within_2se"],
        "first_n_half": [theory.first_reaching(sizes, predicted, 0.5)] * len(rows),
        "first_n_ninety": [theory.first_reaching(sizes, predicted, 0.9)] * len(rows),
    }
    tables.write(columns, "predicted_reliability", output)
