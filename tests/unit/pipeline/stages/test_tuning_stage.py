"""Stage tune_network on a tiny trained LSTM: its scores against the landscape and a direct
computation, and what it never reads (the evaluation set shapes no training)."""

import numpy as np
import pandas as pd
import pytest
import torch

from promptscape.neural import checkpoints, families
from promptscape.pipeline.stages import (datasets_stage, landscape_stage, search_stage,
                                         training_stage, tuning_stage)
from promptscape.sources import build_source

PRE = {"kind": "coin_mixture", "thetas": [0.2, 0.7]}
TASK = {"kind": "coin", "theta": 0.7}
T, L_MAX, N = 5, 3, 8
PLAN = {"tuners": {"none": {}, "soft_prompt": {}, "simplex_prompt": {"init_logit": 4.0},
                   "prefix": {}, "lora": {"lora_rank": 2}},
        "prompt_length": 2, "steps": 6, "tuning_steps": [0, 3, 6], "learning_rate": 0.05,
        "init": "search"}


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    root = tmp_path_factory.mktemp("tuning_stage")
    settings = families.PredictorConfig(family="lstm", hidden_size=8, embedding_dim=4, steps=30,
                                        batch_size=16, sequence_length=8).to_dict()
    model = root / "m" / "model.pt"
    training_stage.train_predictor(model=str(model), curve=str(root / "m" / "curve.parquet"),
                             checkpoint=str(root / "m" / "ckpt.pt"), name="lstm", identity="x",
                             source_name="bernmix", pretraining=PRE, settings=settings,
                             device="cpu")
    datasets_stage.simulate_tasks(output=str(root / "d.parquet"), experiment="e",
                            tasks={"coin_0.7": TASK}, task_length=T, dataset_sizes=[N], first=0,
                            last=2)
    search_stage.search_prompts(datasets=str(root / "d.parquet"), output=str(root / "s.parquet"),
                          predictors=[{"predictor": "lstm", "replicate": 0, "family": "lstm",
                                       "model": str(model)}],
                          pretraining=PRE, experiment="e", tasks=["coin_0.7"], task_length=T,
                          dataset_sizes=[N], first=0, last=2, max_prompt_length=L_MAX,
                          enumeration_budget=2**27, device="cpu")
    for name, size in (("a", 64), ("b", 80)):
        datasets_stage.simulate_evaluation(output=str(root / f"eval_{name}.parquet"), experiment="e",
                                     task_name="coin_0.7", task=TASK, task_length=T, size=size)
    return root


def run(scene, name, *, evaluation=None, budget=2**27, plan=PLAN):
    out = scene / f"{name}.parquet"
    tuning_stage.tune_network(datasets=str(scene / "d.parquet"), search_file=str(scene / "s.parquet"),
                        evaluation=evaluation and str(scene / evaluation),
                        model=str(scene / "m" / "model.pt"), output=str(out), predictor="lstm",
                        replicate=0, pretraining=PRE, experiment="e", task_name="coin_0.7",
                        task=TASK, task_length=T, N=N, block=(0, 2), first=0, last=2,
                        max_prompt_length=L_MAX, enumeration_budget=budget, tuning=plan,
                        device="cpu")
    return pd.read_parquet(out)


def landscape_of(scene):
    out = scene / "landscape.parquet"
    landscape_stage.compute_landscape(evaluation=str(scene / "eval_a.parquet"), output=str(out),
                                predictor="lstm", family="lstm", pretraining=PRE, experiment="e",
                                task_name="coin_0.7", task=TASK, task_length=T,
                                max_prompt_length=L_MAX, enumeration_budget=2**27,
                                model=str(scene / "m" / "model.pt"), device="cpu")
    return pd.read_parquet(out).set_index("prompt")


def test_scores_agree_with_the_landscape_and_a_direct_computation(scene):
    runs = run(scene, "exact")
    land = landscape_of(scene)
    assert set(runs["method"]) == {"exact_enumeration"}
    assert set(runs["tuner"]) == {"hard_search", *PLAN["tuners"]}
    # hard_search: s_hat scored as its landscape row; projected prompts likewise.
    shat = runs[runs["tuner"] == "hard_search"]
    np.testing.assert_allclose(shat["kl"], land.loc[shat["search_prompt"], "kl"], rtol=1e-9,
                               atol=1e-12)
    simplex = runs[runs["tuner"] == "simplex_prompt"]
    np.testing.assert_allclose(simplex["projected_kl"],
                               land.loc[simplex["projected_prompt"], "kl"], rtol=1e-9, atol=1e-12)
    # none: the empty prompt's landscape KL (float32 scoring against the trie's).
    none = runs[runs["tuner"] == "none"]
    np.testing.assert_allclose(none["kl"], land.loc[""]["kl"], rtol=1e-5)
    # ... and a direct float64 computation of KL(task || network) over all 2^T sequences.
    model = checkpoints.load_predictor(scene / "m" / "model.pt", device="cpu").model.double()
    seqs = np.array([[int(c) for c in np.binary_repr(i, T)] for i in range(2**T)], dtype=np.uint8)
    x = torch.as_tensor(seqs).long()
    with torch.no_grad():
        q = model(x).gather(-1, x[..., None])[..., 0].sum(-1).numpy()
    log_p = build_source(TASK).log_prob(seqs)
    direct = float(np.exp(log_p) @ (log_p - q))
    np.testing.assert_allclose(none["kl"], direct, rtol=1e-5)
    # Overfit and the paired difference follow from their columns.
    np.testing.assert_allclose(runs["kl_minus_search"], runs["kl"] - runs["search_kl"])
    assert (runs.loc[runs["overfit"], "train_loss"]
            < runs.loc[runs["overfit"], "search_train_loss"]).all()
    # Step 0 of a soft prompt started at the search's best prompt of length K is that prompt.
    soft0 = runs[(runs["tuner"] == "soft_prompt") & (runs["tuning_steps"] == 0)]
    np.testing.assert_allclose(soft0["kl"], land.loc[soft0["init_prompt"], "kl"], rtol=1e-5)
    assert (soft0["init_prompt"].str.len() == PLAN["prompt_length"]).all()


def test_the_evaluation_set_scores_but_never_trains(scene):
    """With the landscape estimated on the evaluation set (an enumeration budget too small),
    two different evaluation sets change the scores and nothing that training produced."""
    a = run(scene, "mc_a", evaluation="eval_a.parquet", budget=1)
    b = run(scene, "mc_b", evaluation="eval_b.parquet", budget=1)
    assert set(a["method"]) == {"monte_carlo"} and (a["kl_se"] > 0).all()
    trained = ["seed", "tuner", "tuning_steps", "train_loss", "init_prompt", "projected_prompt",
               "search_prompt", "search_train_loss", "trainable_parameters",
               "sequence_evaluations"]
    pd.testing.assert_frame_equal(a[trained], b[trained])
    assert not np.allclose(a["kl"], b["kl"])


def test_a_rerun_writes_the_same_file(scene):
    run(scene, "again_a")
    run(scene, "again_b")
    assert (scene / "again_a.parquet").read_bytes() == (scene / "again_b.parquet").read_bytes()


# ------------------------------------------------------------------ each tuner's optimum
OPTIMUM = {"tuners": {**PLAN["tuners"], "full": {}}, "prompt_length": PLAN["prompt_length"],
           "optimum": {"learning_rates": [0.01, 0.05], "restarts": 1, "max_steps": 30,
                       "patience": 10, "tolerance": 1e-6, "batch_size": 64, "check_every": 5,
                       "prompt_lengths": []}}


# Fewer tuners and rates, where the test is about the plumbing.
SMALL = {**OPTIMUM, "tuners": {"none": {}, "soft_prompt": {}, "full": {}},
         "optimum": {**OPTIMUM["optimum"], "learning_rates": [0.05], "max_steps": 15,
                     "prompt_lengths": [1, 5]}}


def optimum(scene, name, *, evaluation=None, budget=2**27, plan=OPTIMUM):
    out = scene / f"optimum_{name}.parquet"
    if not (scene / "landscape.parquet").exists():
        landscape_of(scene)
    tuning_stage.tune_optimum(model=str(scene / "m" / "model.pt"),
                        landscape_file=str(scene / "landscape.parquet"),
                        evaluation=evaluation and str(scene / evaluation), output=str(out),
                        predictor="lstm", replicate=0, pretraining=PRE, experiment="e",
                        task_name="coin_0.7", task=TASK, task_length=T,
                        max_prompt_length=L_MAX, enumeration_budget=budget, tuning=plan,
                        device="cpu")
    return pd.read_parquet(out).set_index("tuner")


@pytest.fixture(scope="module")
def best(scene):
    return optimum(scene, "exact")


def test_the_population_objective_is_the_exact_kl_plus_the_task_entropy(scene, best):
    land = landscape_of(scene)
    assert set(best.index) == set(OPTIMUM["tuners"])
    assert set(best["method"]) == {"exact_enumeration"} and (best["kl_se"] == 0).all()
    # The objective the optimum was chosen by is KL + H_T, for every tuner.
    np.testing.assert_allclose(best["objective"], best["kl"] + best["entropy"], rtol=1e-6)
    # none: the network as trained, the empty prompt's landscape KL; and its objective a
    # direct float64 sum over all 2^T sequences with the task's closed-form entropy.
    np.testing.assert_allclose(best.loc["none", "kl"], land.loc[""]["kl"], rtol=1e-5)
    assert best.loc["none", "steps"] == 0 and pd.isna(best.loc["none", "learning_rate"])
    model = checkpoints.load_predictor(scene / "m" / "model.pt", device="cpu").model.double()
    seqs = np.array([[int(c) for c in np.binary_repr(i, T)] for i in range(2**T)], dtype=np.uint8)
    x = torch.as_tensor(seqs).long()
    with torch.no_grad():
        q = model(x).gather(-1, x[..., None])[..., 0].sum(-1).numpy()
    log_p = build_source(TASK).log_prob(seqs)
    entropy = T * -(0.7 * np.log(0.7) + 0.3 * np.log(0.3))
    np.testing.assert_allclose(best.loc["none", "objective"], -np.exp(log_p) @ q, rtol=1e-5)
    np.testing.assert_allclose(best.loc["none", "entropy"], entropy, rtol=1e-12)
    # Prompt-space tuners start at the landscape's best prompt of length K or at random
    # ones; a soft prompt started there is that hard prompt, so its optimum (the best step
    # kept) is never worse (a simplex or a prefix starts near it, not at it).
    K = OPTIMUM["prompt_length"]
    hard = land[land["prompt_length"] == K]["kl"].min()
    for name in ("soft_prompt", "simplex_prompt", "prefix"):
        assert best.loc[name, "prompt_length"] == K and best.loc[name, "restarts"] == 2
        assert len(best.loc[name, "start_prompt"]) == K
    assert best.loc["soft_prompt", "kl"] <= hard * (1 + 1e-5) + 1e-7
    assert (best.loc[["lora", "full"], "prompt_length"] == 0).all()
    assert (best.loc[["lora", "full"], "restart_spread"] == 0).all()
    trained = best.drop(index="none")
    assert (trained["gradient_norm"] >= 0).all() and (trained["learning_rate"] > 0).all()
    assert (trained["steps"] <= OPTIMUM["optimum"]["max_steps"]).all()


def test_an_optimum_is_never_above_the_finite_n_median_beyond_its_restart_spread(scene, best):
    runs = run(scene, "exact")
    last = runs[runs["tuning_steps"] == runs.groupby("tuner")["tuning_steps"].transform("max")]
    median = last.groupby("tuner")["kl"].median()
    for name in PLAN["tuners"]:
        slack = best.loc[name, "restart_spread"] + 1e-5 * (best.loc[name, "objective"])
        assert best.loc[name, "kl"] <= median[name] + slack, name


def test_the_optimum_trains_on_fresh_samples_and_the_evaluation_set_only_scores(scene):
    """Where the landscape estimates KL on the evaluation set, the optimum trains on fresh
    task samples: two evaluation sets change its score and nothing its training chose."""
    a = optimum(scene, "mc_a", evaluation="eval_a.parquet", budget=1, plan=SMALL)
    b = optimum(scene, "mc_b", evaluation="eval_b.parquet", budget=1, plan=SMALL)
    assert set(a["method"]) == {"monte_carlo"} and (a["kl_se"] > 0).all()
    trained = ["objective", "learning_rate", "steps", "converged_step", "gradient_norm",
               "restart_spread", "start", "start_prompt", "trainable_parameters"]
    pd.testing.assert_frame_equal(a[trained], b[trained])
    assert not np.allclose(a["kl"], b["kl"])
    # The soft prompt at K = 2 (tuned on D_N) and at 1 and 5 (> L_max = 3): one row each,
    # only K = 2 read by the aggregate.
    soft = a.loc[["soft_prompt"]].set_index("prompt_length")
    assert sorted(soft.index) == [1, 2, 5]
    assert list(soft["at_tuning_length"].sort_index()) == [False, True, False]
    assert a.loc["full", "prompt_length"] == 0 and a.loc["full", "at_tuning_length"]


def test_a_rerun_of_the_optimum_writes_the_same_file(scene):
    optimum(scene, "again_a", plan=SMALL)
    optimum(scene, "again_b", plan=SMALL)
    assert ((scene / "optimum_again_a.parquet").read_bytes()
            == (scene / "optimum_again_b.parquet").read_bytes())


# ------------------------------------------------------------------ held-out settings
HOLDOUT = {**PLAN, "tuners": {"none": {}, "soft_prompt": {"learning_rate": 0.1},
                              "lora": {"lora_rank": 2, "learning_rate": 0.05}},
           "selection": {"holdout": 0.25, "learning_rates": [0.01, 0.2]}}


def test_settings_chosen_on_held_out_data(scene, caplog):
    with caplog.at_level("INFO", logger="promptscape"):
        both = run(scene, "holdout", plan=HOLDOUT)
    # The log line names the chosen settings (its format once took one argument too few).
    assert "soft_prompt with settings chosen on held-out data: learning rates" in caplog.text
    fixed = run(scene, "fixed_only", plan={**HOLDOUT, "selection": None})
    # The fixed rows are those of a run without selection, at each tuner's own rate.
    keep = both[both["settings"] == "fixed"].reset_index(drop=True)
    pd.testing.assert_frame_equal(keep, fixed)
    rates = fixed.groupby("tuner")["chosen_learning_rate"].first()
    assert rates["soft_prompt"] == 0.1 and rates["lora"] == 0.05 and pd.isna(rates["none"])
    held = both[both["settings"] == "holdout"]
    assert set(held["tuner"]) == {"soft_prompt", "lora"} and len(held) == 2 * 3
    assert set(held["chosen_learning_rate"]) <= {0.01, 0.2}
    assert set(held["chosen_steps"]) <= set(PLAN["tuning_steps"])
    assert (held["tuning_steps"] == PLAN["steps"]).all() and held["holdout_loss"].notna().all()
    assert fixed["holdout_loss"].isna().all()
    # Trained on all of D_N with the chosen settings: a chosen 0 steps is the start itself.
    start = fixed[fixed["tuning_steps"] == 0].set_index(["tuner", "seed"])["kl"]
    for row in held[held["chosen_steps"] == 0].itertuples():
        assert row.kl == start[row.tuner, row.seed]
    # The chosen (rate, steps) has the least held-out loss: rerunning that rate on the
    # rest of D_N is what the selection saw; a rerun reproduces it all.
    again = run(scene, "holdout_again", plan=HOLDOUT)
    pd.testing.assert_frame_equal(both, again)


def test_too_small_a_data_set_keeps_fixed_settings_and_says_so(scene, caplog):
    plan = {**HOLDOUT, "selection": {"holdout": 0.01, "learning_rates": [0.01]}}
    with caplog.at_level("WARNING", logger="promptscape"):
        rows = run(scene, "holdout_small", plan=plan)
    assert set(rows["settings"]) == {"fixed"}
    assert "keeps its fixed settings only" in caplog.text and f"N = {N}" in caplog.text


def test_each_row_says_whether_its_path_overfit_and_whether_it_ended_above_none(scene):
    runs = run(scene, "exact")
    none = runs.loc[runs["tuner"] == "none", "kl"].iloc[0]
    margin = 1e-5 * (runs["kl"] + runs["entropy"]).abs()
    np.testing.assert_array_equal(runs["worse_than_none"], runs["kl"] > none + margin)
    # overfit_path: along each seed's path, KL rose while the training loss fell between
    # two recorded budgets, at or before this one.
    trained = runs[~runs["tuner"].isin(["none", "hard_search"])]
    for (tuner, seed), path in trained.groupby(["tuner", "seed"]):
        path = path.sort_values("tuning_steps")
        kl, loss = path["kl"].to_numpy(), path["train_loss"].to_numpy()
        rose = kl[1:] > kl[:-1] + 1e-5 * np.abs(kl[1:] + path["entropy"].to_numpy()[1:])
        fell = loss[1:] < loss[:-1] - 1e-5 * np.abs(loss[1:])
        expected = np.concatenate([[False], np.logical_or.accumulate(rose & fell)])
        np.testing.assert_array_equal(path["overfit_path"], expected, err_msg=tuner)
    assert not runs.loc[runs["tuner"] == "hard_search", "overfit_path"].any()


def test_init_optimum_starts_every_seed_at_the_hard_optimum_padded(scene):
    landscape_of(scene)
    plan = {**PLAN, "init": "optimum", "prompt_length": 4,
            "tuners": {"soft_prompt": {}, "prefix": {}}, "steps": 2, "tuning_steps": [0, 2]}
    out = scene / "init_optimum.parquet"
    tuning_stage.tune_network(datasets=str(scene / "d.parquet"), search_file=str(scene / "s.parquet"),
                        evaluation=None, model=str(scene / "m" / "model.pt"), output=str(out),
                        predictor="lstm", replicate=0, pretraining=PRE, experiment="e",
                        task_name="coin_0.7", task=TASK, task_length=T, N=N, block=(0, 2),
                        first=0, last=2, max_prompt_length=L_MAX, enumeration_budget=2**27,
                        tuning=plan, landscape_file=str(scene / "landscape.parquet"),
                        device="cpu")
    runs = pd.read_parquet(out)
    land = landscape_of(scene)
    best = land["kl"].idxmin()
    tuned = runs[runs["tuner"] != "hard_search"]
    assert set(tuned["init_prompt"]) == {best}  # K = 4 > L_max = 3: no enumeration needed
    # A prefix started at a prompt is that prompt followed by the task's own BOS: at step 0
    # it is not the prompt's landscape KL.
    prefix0 = tuned[(tuned["tuner"] == "prefix") & (tuned["tuning_steps"] == 0)]
    assert not np.allclose(prefix0["kl"], land.loc[best, "kl"], rtol=1e-5)


def test_the_held_out_split_is_seeded_disjoint_and_says_when_d_n_is_too_small():
    seeds = np.array([0, 1])
    inverse = np.array([[0, 1, 2, 3, 0, 1, 2, 3], [4, 4, 4, 4, 5, 5, 5, 5]])
    identity = ("lstm", 0, "e", "t", 8)
    train_w, hold_w, held = tuning_stage._holdout_split({"holdout": 0.25, "learning_rates": [0.1]},
                                                  inverse, 6, seeds, identity)
    assert held == 2
    np.testing.assert_allclose(train_w.sum(axis=1), 1)
    np.testing.assert_allclose(hold_w.sum(axis=1), 1)
    # Counts: 2 of each seed's 8 draws held out (each weight a multiple of 1/2), the
    # other 6 trained on (multiples of 1/6), together D_N's counts.
    np.testing.assert_allclose(hold_w * 2 + train_w * 6, np.stack(
        [np.bincount(row, minlength=6) for row in inverse]))
    again = tuning_stage._holdout_split({"holdout": 0.25, "learning_rates": [0.1]}, inverse, 6,
                                  seeds, identity)
    np.testing.assert_array_equal(again[1], hold_w)
    reason = tuning_stage._holdout_split({"holdout": 0.05, "learning_rates": [0.1]}, inverse,
                                   6, seeds, identity)
    assert isinstance(reason, str) and "N = 8" in reason
    assert tuning_stage._holdout_split(None, inverse, 6, seeds, identity) is None
