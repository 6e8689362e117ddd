"""The prediction stages: predict_reliability against the theory it applies and against the
pipeline's own measured reliability, and the checks of its inputs in
stages.aggregate_stage.aggregate_prediction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from promptscape import theory
from promptscape.study import checks, tables
from promptscape.pipeline.stages import aggregate_stage
from promptscape.pipeline.stages import datasets_stage
from promptscape.pipeline.stages import landscape_stage
from promptscape.pipeline.stages import prediction_stage

BERNMIX = {"kind": "coin_mixture", "thetas": [0.2, 0.7]}
SWITCHING = {"kind": "switching", "thetas": [0.2, 0.7], "switch_prob": 0.05}
TASKS = {"coin_0.7": {"kind": "coin", "theta": 0.7}, "coin_0.5": {"kind": "coin", "theta": 0.5}}
T, L_MAX, SIZES = 6, 3, [1, 2, 5, 50]
GRID = {"experiment": "e", "predictors": ["bayes"], "replicates": {"bayes": 1},
        "tasks": list(TASKS), "dataset_sizes": SIZES, "num_seeds": 4, "seed_blocks": [[0, 3]]}
SETTINGS = dict(draws=4000, exact_max_outcomes=100_000, reference_N=100)


def landscape_file(tmp_path, task: str, pretraining: dict = BERNMIX) -> str:
    evaluation = str(tmp_path / f"evaluation/{task}.parquet")
    datasets_stage.simulate_evaluation(output=evaluation, experiment="e", task_name=task,
                                       task=TASKS[task], task_length=T, size=200)
    path = str(tmp_path / tables.ARTIFACTS["landscape"].path.format(
        experiment="e", predictor="bayes", replicate=0, task=task))
    landscape_stage.compute_landscape(
        evaluation=evaluation, output=path, predictor="bayes", pretraining=pretraining,
        experiment="e", task_name=task, task=TASKS[task], task_length=T,
        max_prompt_length=L_MAX, enumeration_budget=2 ** 27)
    return path


def predict(tmp_path, task: str, pretraining: dict = BERNMIX, **settings) -> pd.DataFrame:
    path = str(tmp_path / tables.ARTIFACTS["predicted_reliability"].path.format(
        experiment="e", predictor="bayes", replicate=0, task=task))
    prediction_stage.predict_reliability(
        landscape_path=landscape_file(tmp_path, task, pretraining),
        evaluation=str(tmp_path / f"evaluation/{task}.parquet"), output=path,
        predictor="bayes", pretraining=pretraining, experiment="e", task_name=task,
        task=TASKS[task], task_length=T, max_prompt_length=L_MAX, dataset_sizes=SIZES,
        enumeration_budget=2 ** 27, **{**SETTINGS, **settings})
    return path


def test_prediction_is_the_exact_sum_where_it_runs_and_normal_elsewhere(tmp_path):
    frame = tables.read(predict(tmp_path, "coin_0.7"), "predicted_reliability")
    assert list(frame["N"]) == SIZES
    # T + 1 = 7 count values; C(N + 6, 6) outcomes: exact up to N = 5 (462), not N = 50.
    assert set(frame["outcomes"]) == {"count_values"} and set(frame["num_outcomes"]) == {7}
    assert list(frame["method"]) == ["exact", "exact", "exact", "normal"]
    exact = frame["exact_proportion_correct"]
    assert exact.iloc[:3].notna().all() and pd.isna(exact.iloc[3])
    np.testing.assert_array_equal(frame["predicted_proportion_correct"].iloc[:3], exact.iloc[:3])
    assert frame["predicted_proportion_correct"].iloc[3] == frame["normal_proportion_correct"].iloc[3]
    # Simulation agrees with the exact sum within its error bar.
    close = (frame["simulated_proportion_correct"] - exact).abs().iloc[:3]
    assert (close <= 4 * frame["simulated_se"].iloc[:3] + 1e-9).all()
    # Bit-identical when rebuilt (seeds from the unit's identity).
    again = tables.read(predict(tmp_path / "again", "coin_0.7"), "predicted_reliability")
    pd.testing.assert_frame_equal(frame, again)


def test_prediction_agrees_with_the_pipelines_own_search(tmp_path):
    """The predicted proportion correct against the measured one of 4000 simulated
    datasets searched by the pipeline's own rule (exact at N = 2)."""
    from promptscape import search
    from promptscape.predictors import BayesPredictor
    from promptscape.prompts import all_prompts
    from promptscape.sources import build_source

    frame = tables.read(predict(tmp_path, "coin_0.5"), "predicted_reliability")
    land = tables.read(str(tmp_path / "e/landscape/bayes/r0/coin_0.5.parquet"), "landscape")
    pred = BayesPredictor(build_source(BERNMIX))
    data = build_source(TASKS["coin_0.5"]).sample(4000 * 2, T, np.random.default_rng(3))
    chosen = search.choose(search.empirical_losses(pred, all_prompts(L_MAX, 2),
                                                   data.reshape(4000, 2, T), 2 ** 27, 2))
    measured = land["optimal"].to_numpy()[chosen].mean()
    predicted = frame.set_index("N").loc[2, "exact_proportion_correct"]
    assert abs(measured - predicted) <= 4 * np.sqrt(predicted * (1 - predicted) / 4000)


def test_order_sensitive_predictors_predict_over_sequences(tmp_path):
    frame = tables.read(predict(tmp_path, "coin_0.7", SWITCHING), "predicted_reliability")
    assert set(frame["outcomes"]) == {"sequences"}
    assert set(frame["num_outcomes"]) == {2 ** T}  # a switching predictor reads the order
    # C(N + 63, 63) outcomes: exact at N = 1 and 2 only.
    assert list(frame["method"]) == ["exact", "exact", "normal", "normal"]
    assert frame["gap"].notna().all() and (frame["paired_sd"] > 0).all()


def reliability_file(tmp_path, cells, selections=("random",)) -> str:
    rows = [{"predictor": "bayes", "replicate": 0, "experiment": "e", "task": task,
             "in_meta_distribution": task == "coin_0.7", "selection": selection, "N": N,
             "seeds": 4, "correct": 2 if selection == "random" else 4,
             "proportion_correct": 0.5 if selection == "random" else 1.0, "ci_low": 0.15,
             "ci_high": 0.85, "regret_mean": 0.0,
             "regret_median": 0.0, "regret_q25": 0.0, "regret_q75": 0.0, "rank_mean": 0.0,
             "rank_median": 0.0, "epsilon": 1e-6,
             "within_epsilon_seeds": 2 if selection == "random" else 4,
             "within_epsilon": 0.5 if selection == "random" else 1.0,
             "within_epsilon_ci_low": 0.15, "within_epsilon_ci_high": 0.85}
            for task, N in cells for selection in selections]
    path = str(tmp_path / "e/aggregate/reliability.parquet")
    tables.write(pd.DataFrame(rows), "reliability", path)
    return path


def test_aggregate_puts_the_measured_value_beside_the_prediction(tmp_path):
    paths = [predict(tmp_path, task) for task in TASKS]
    reliability = reliability_file(tmp_path, [(t, N) for t in TASKS for N in SIZES])
    out = str(tmp_path / "e/aggregate/reliability_prediction.parquet")
    aggregate_stage.aggregate_prediction(predictions=paths, reliability=reliability,
                                          output=out, expected=GRID)
    frame = tables.read(out, "reliability_prediction")
    assert len(frame) == len(TASKS) * len(SIZES)
    assert (frame["measured_proportion_correct"] == 0.5).all()
    inside = (frame["predicted_proportion_correct"] >= 0.15) & (
        frame["predicted_proportion_correct"] <= 0.85)
    np.testing.assert_array_equal(frame["inside_interval"], inside)
    assert frame.loc[frame["task"] == "coin_0.7", "in_meta_distribution"].all()


def test_the_prediction_is_matched_with_random_d_n_only(tmp_path):
    """The theory is of D_N drawn from the task: the pooled selections' rows beside it in
    the reliability table are neither matched nor an error."""
    paths = [predict(tmp_path, task) for task in TASKS]
    reliability = reliability_file(tmp_path, [(t, N) for t in TASKS for N in SIZES],
                                   selections=("random", "high_variance", "pool"))
    out = str(tmp_path / "e/aggregate/reliability_prediction.parquet")
    aggregate_stage.aggregate_prediction(predictions=paths, reliability=reliability,
                                          output=out, expected=GRID)
    frame = tables.read(out, "reliability_prediction")
    assert len(frame) == len(TASKS) * len(SIZES)
    assert (frame["measured_proportion_correct"] == 0.5).all()  # random's, not 4 of 4


def test_aggregate_refuses_a_missing_cell_or_a_stray_file(tmp_path):
    paths = [predict(tmp_path, task) for task in TASKS]
    out = str(tmp_path / "e/aggregate/reliability_prediction.parquet")
    short = reliability_file(tmp_path, [(t, N) for t in TASKS for N in SIZES[:-1]])
    with pytest.raises(ValueError, match="only in the prediction"):
        aggregate_stage.aggregate_prediction(predictions=paths, reliability=short,
                                              output=out, expected=GRID)
    full = reliability_file(tmp_path, [(t, N) for t in TASKS for N in SIZES])
    with pytest.raises(ValueError, match="no prediction file of predictor bayes"):
        aggregate_stage.aggregate_prediction(predictions=paths[:1], reliability=full,
                                              output=out, expected=GRID)
    frame = tables.read(paths[0], "predicted_reliability")
    tables.write(frame[frame["N"] != 50], "predicted_reliability", paths[0])
    with pytest.raises(ValueError, match="holds N = "):
        aggregate_stage.aggregate_prediction(predictions=paths, reliability=full,
                                              output=out, expected=GRID)
    assert not (tmp_path / "e/aggregate/reliability_prediction.parquet").exists()


def test_decomposition_columns_follow_the_theory(tmp_path):
    frame = tables.read(predict(tmp_path, "coin_0.5"), "predicted_reliability")
    first = frame.iloc[0]
    predicted = list(frame["predicted_proportion_correct"])
    assert first["first_n_half"] == theory.first_reaching(SIZES, predicted, 0.5) or (
        pd.isna(first["first_n_half"]) and theory.first_reaching(SIZES, predicted, 0.5) is None)
    land = tables.read(str(tmp_path / "e/landscape/bayes/r0/coin_0.5.parquet"), "landscape")
    kl = land["kl"].to_numpy()
    optimal = land["optimal"].to_numpy()
    assert first["gap"] == pytest.approx(kl[~optimal].min() - kl[optimal].min(), rel=1e-9)


def test_verify_prediction_file_names_a_file_of_another_experiment(tmp_path):
    path = predict(tmp_path, "coin_0.7")
    frame = tables.read(path, "predicted_reliability")
    with pytest.raises(ValueError, match="experiment"):
        checks.verify_prediction_file(frame, path, {**GRID, "experiment": "other"})


def test_beyond_the_enumeration_budget_the_evaluation_set_stands_in(tmp_path):
    """Where no exact table fits (here a budget of one evaluation forces monte_carlo on a
    switching predictor), the outcomes are the evaluation set's sequences with their
    weights, and the artifact says so."""
    evaluation = str(tmp_path / "evaluation/coin_0.7.parquet")
    datasets_stage.simulate_evaluation(output=evaluation, experiment="e", task_name="coin_0.7",
                                       task=TASKS["coin_0.7"], task_length=T, size=200)
    land = str(tmp_path / "e/landscape/bayes/r0/coin_0.7.parquet")
    common = dict(predictor="bayes", pretraining=SWITCHING, experiment="e",
                  task_name="coin_0.7", task=TASKS["coin_0.7"], task_length=T,
                  max_prompt_length=L_MAX, enumeration_budget=1)
    landscape_stage.compute_landscape(evaluation=evaluation, output=land, **common)
    out = str(tmp_path / "e/prediction/bayes/r0/coin_0.7.parquet")
    prediction_stage.predict_reliability(landscape_path=land, evaluation=evaluation,
                                         output=out, dataset_sizes=SIZES, **common, **SETTINGS)
    frame = tables.read(out, "predicted_reliability")
    assert set(frame["outcomes"]) == {"evaluation_set"}
    assert 1 < frame["num_outcomes"].iloc[0] <= 200  # distinct sequences of the 200 drawn
    assert frame["simulated_proportion_correct"].between(0, 1).all()
    # N = 1 over at most 200 outcomes: the exact sum, over the evaluation set's law (a
    # plug-in for the task, so not labelled exact: issue 26).
    assert frame["method"].iloc[0] == "plug_in"
