"""Stage `analyse_edits` (issue 28) on tiny real landscapes: exact Bayes predictors of an
exchangeable (bernmix) and a Markov (markov_beta) pretraining source, written by the
landscape stage, and an order-sensitive landscape edited by hand."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from promptscape import edits as edits_lib
from promptscape.study import tables
from promptscape.pipeline.stages import datasets_stage
from promptscape.pipeline.stages import edits_stage
from promptscape.pipeline.stages import landscape_stage

T, L_MAX = 4, 3
BERNMIX = {"kind": "coin_mixture", "thetas": [0.2, 0.7]}
BETA = {"kind": "beta_coin", "alpha": 1.0, "beta": 1.0}
MARKOV = {"kind": "markov_beta", "alpha": [1.0, 1.0], "beta": [1.0, 1.0]}
TASKS = {"coin_0.7": {"kind": "coin", "theta": 0.7}, "coin_0.5": {"kind": "coin", "theta": 0.5}}
IMD = {"coin_0.7": True, "coin_0.5": False}


def landscape_path(root, experiment, predictor, task, replicate=0):
    return str(root / tables.ARTIFACTS["landscape"].path.format(
        experiment=experiment, predictor=predictor, replicate=replicate, task=task))


def build(root, experiment, pretraining, predictors=("bayes",), max_length=L_MAX):
    """Landscapes of exact Bayes for `pretraining` on both tasks; `predictors` names the
    copies (the same predictor under several names stands in for several predictors)."""
    paths = []
    for task, spec in TASKS.items():
        evaluation = str(root / f"{experiment}/evaluation/{task}.parquet")
        datasets_stage.simulate_evaluation(output=evaluation, experiment=experiment,
                                           task_name=task, task=spec, task_length=T, size=50)
        for predictor in predictors:
            paths.append(landscape_path(root, experiment, predictor, task))
            landscape_stage.compute_landscape(
                evaluation=evaluation, output=paths[-1], predictor=predictor, family="bayes",
                pretraining=pretraining, experiment=experiment, task_name=task, task=spec,
                task_length=T, max_prompt_length=max_length, enumeration_budget=2 ** 20)
    return paths


def analyse(root, experiment, paths, others=(), selections=None, max_length=L_MAX):
    out = {name: str(root / f"{experiment}/aggregate/{name}.parquet")
           for name in ("edits", "local_optima", "transfer")}
    edits_stage.analyse_edits(landscapes=paths, others=list(others), selections=selections,
                        experiment=experiment, tasks=TASKS, in_meta_distribution=IMD,
                        task_length=T, max_prompt_length=max_length, **out)
    return {name: tables.read(path, name) for name, path in out.items()}


@pytest.fixture(scope="module")
def bernmix(tmp_path_factory):
    root = tmp_path_factory.mktemp("edits")
    paths = build(root, "bernmix", BERNMIX, predictors=("bayes", "twin"))
    return root, paths, analyse(root, "bernmix", paths)


def test_every_delta_kl_is_the_difference_of_the_two_prompts_landscape_kls(bernmix):
    _, paths, out = bernmix
    land = tables.read(paths[0], "landscape")
    kl = dict(zip(land["prompt"], land["kl"]))
    edges = edits_lib.edit_edges(L_MAX, 2)
    prompts = list(land["prompt"])
    delta = np.array([kl[prompts[c]] - kl[prompts[p]] for p, c in zip(edges.parent, edges.child)])
    marginals = [0.3, 0.7]
    rows = out["edits"].set_index(["predictor", "task", "edit_kind"])
    for kind, mask in edits_lib.kind_masks(edges, marginals).items():
        row = rows.loc[("bayes", "coin_0.7", kind)]
        d = delta[mask]
        assert row["edges"] == mask.sum()
        assert row["delta_median"] == np.median(d)
        assert (row["delta_q25"], row["delta_q75"]) == tuple(np.quantile(d, [0.25, 0.75]))
        assert row["share_improving"] == np.mean(d < -land["kl_resolution"].iloc[0])
        assert row["near_top_edges"] + row["rest_edges"] == row["edges"]
        assert row["decided_by"] == "kl_resolution" and row["delta_se_max"] == 0


def test_swaps_change_nothing_under_an_exchangeable_bayes_predictor(bernmix):
    _, _, out = bernmix
    swaps = out["edits"][out["edits"]["edit_kind"] == "reorders"]
    assert len(swaps) == 4  # two predictors x two tasks
    assert (swaps[["delta_median", "delta_q25", "delta_q75", "share_improving"]] == 0).all().all()


def test_swaps_change_kl_under_a_markov_bayes_predictor(tmp_path):
    paths = build(tmp_path, "markov", MARKOV)
    swaps = analyse(tmp_path, "markov", paths)["edits"]
    swaps = swaps[swaps["edit_kind"] == "reorders"]
    assert (swaps["share_improving"] > 0).all()


def test_kinds_of_a_tied_symbol_have_no_rows_and_the_log_says_so(bernmix, tmp_path, caplog):
    _, paths, out = bernmix
    kinds = out["edits"].groupby("task")["edit_kind"].apply(set)
    needs = {k for k, spec in edits_lib.EDIT_KINDS.items() if spec.needs}
    assert kinds["coin_0.7"] == set(edits_lib.EDIT_KINDS)
    assert kinds["coin_0.5"] == set(edits_lib.EDIT_KINDS) - needs
    with caplog.at_level(logging.INFO, logger="promptscape"):
        analyse(tmp_path, "bernmix", paths)
    said = [r.getMessage() for r in caplog.records if "has no rows" in r.getMessage()]
    assert len(said) == len(needs) and all("coin_0.5" in line for line in said)


def test_each_local_optimum_has_no_improving_edit_by_brute_force(bernmix):
    _, paths, out = bernmix
    optima = out["local_optima"]
    for path in paths:
        land = tables.read(path, "landscape")
        kl = dict(zip(land["prompt"], land["kl"]))
        (predictor,), (task,) = land["predictor"].unique(), land["task"].unique()
        mine = optima[(optima["predictor"] == predictor) & (optima["task"] == task)]
        found = set(mine["prompt"])
        for prompt in land["prompt"]:
            neighbours = _neighbours(prompt)
            improvable = any(kl[n] < kl[prompt] - land["kl_resolution"].iloc[0]
                             for n in neighbours)
            assert (prompt in found) == (not improvable), prompt
        assert mine["basin_size"].sum() == len(land)  # basins partition the prompts
        assert np.allclose(mine["kl_above_optimum"], mine["kl"] - land["kl"].min())
        assert mine.loc[mine["optimal"], "kl_above_optimum"].max() <= 1e-9


def _neighbours(prompt: str) -> set[str]:
    L = len(prompt)
    out = {prompt[:i] + prompt[i + 1:] for i in range(L)}
    out |= {prompt[:i] + v + prompt[i + 1:] for i in range(L) for v in "01"}
    out |= {prompt[:i] + prompt[i + 1] + prompt[i] + prompt[i + 2:] for i in range(L - 1)}
    if L < L_MAX:
        out |= {prompt[:i] + v + prompt[i:] for i in range(L + 1) for v in "01"}
    return out - {prompt}


def test_transfer_of_a_predictor_or_task_to_itself_is_zero(bernmix):
    _, _, out = bernmix
    t = out["transfer"]
    optimal = t[t["source_prompts"] == "optimal_class"]
    same_predictor = optimal[(optimal["comparison"] == "predictors")
                             & (optimal["source_predictor"] == optimal["target_predictor"])]
    same_task = optimal[(optimal["comparison"] == "tasks")
                        & (optimal["source_task"] == optimal["target_task"])]
    assert len(same_predictor) == 4 and len(same_task) == 4
    for rows in (same_predictor, same_task):
        assert (rows[["regret", "regret_min", "regret_max"]] == 0).all().all()
    # The twin is the same predictor: its optimum transfers at no cost; another task's does.
    twin = optimal[(optimal["comparison"] == "predictors")]
    assert (twin["regret"] == 0).all()
    across = optimal[(optimal["comparison"] == "tasks")
                     & (optimal["source_task"] != optimal["target_task"])]
    assert (across["regret"] > 0).all() and (across["regret_min"] <= across["regret"]).all()


def test_baselines_are_the_targets_own_regret_of_the_empty_and_median_prompt(bernmix):
    _, paths, out = bernmix
    t = out["transfer"].set_index(["source_prompts", "target_predictor", "target_task"])
    land = tables.read(paths[0], "landscape")
    empty = land.loc[land["prompt"] == "", "kl"].iloc[0] - land["kl"].min()
    assert t.loc[("empty", "bayes", "coin_0.7"), "regret"] == empty
    assert t.loc[("median", "bayes", "coin_0.7"), "regret"] >= 0


def test_across_pretraining_rows_name_the_source_experiment(bernmix, tmp_path):
    root, paths, _ = bernmix
    others = build(tmp_path, "betacoin", BETA)
    out = analyse(root, "bernmix", paths, others=others)["transfer"]
    rows = out[out["comparison"] == "pretraining"]
    assert set(rows["source_experiment"]) == {"betacoin"}
    assert set(rows["target_experiment"]) == {"bernmix"} and len(rows) == 2 * 2
    assert (rows["regret"] >= 0).all()


def test_a_prompt_missing_from_the_target_landscape_names_both_experiments(bernmix, tmp_path):
    _, paths, _ = bernmix
    other = build(tmp_path, "longer", BETA)
    source = tables.read(other[0], "landscape")
    own = edits_stage.read_landscapes(paths[:1], L_MAX, 2)
    foreign = edits_stage.Landscape(source, other[0], L_MAX, 2)
    # The target landscape lost the source's optimal prompts (as if its L_max were shorter).
    best = foreign.prompts[int(np.flatnonzero(foreign.optimal)[0])]
    keep = np.array([p != best for p in own[0].prompts])
    own[0].prompts = [p for p, k in zip(own[0].prompts, keep) if k]
    own[0].kl, own[0].optimal = own[0].kl[keep], own[0].optimal[keep]
    with pytest.raises(ValueError, match="experiment 'longer'.*missing from the landscape of "
                                         "experiment 'bernmix'"):
        edits_stage.transfer_rows(own, [foreign], None, ["coin_0.7"])


def test_search_rows_score_each_seeds_pick_under_every_target(bernmix, tmp_path):
    _, paths, _ = bernmix
    land = tables.read(paths[0], "landscape")
    picks = ["1", "11", "111", "1"]
    selections = pd.DataFrame({
        "predictor": "bayes", "replicate": 0, "experiment": "bernmix", "task": "coin_0.7",
        "selection": "random", "N": 10, "seed": range(4), "prompt": picks,
        "prompt_length": [len(p) for p in picks], "empirical_loss": 1.0, "kl": 0.0,
        "regret": 0.0, "rank": 0, "correct": True})
    for predictor in ("twin",):
        selections = pd.concat([selections, selections.assign(predictor=predictor)])
    both = pd.concat([selections, selections.assign(task="coin_0.5")])
    path = str(tmp_path / "selections.parquet")
    tables.write(both, "selections", path)
    out = analyse(tmp_path, "bernmix", paths, selections=path)["transfer"]
    rows = out[(out["source_prompts"] == "search") & (out["target_predictor"] == "bayes")
               & (out["source_predictor"] == "bayes") & (out["target_task"] == "coin_0.7")]
    kl = dict(zip(land["prompt"], land["kl"]))
    expected = np.array([kl[p] for p in picks]) - land["kl"].min()
    assert len(rows) == 1 and rows["search_N"].iloc[0] == 10
    assert np.isclose(rows["regret"].iloc[0], expected.mean())
    assert rows["regret_max"].iloc[0] == expected.max() and rows["source_count"].iloc[0] == 4


def test_a_landscape_of_another_prompt_space_is_an_error_naming_its_file(bernmix):
    _, paths, _ = bernmix
    with pytest.raises(ValueError, match=f"{paths[0]}: its prompts are not the 31 prompts of "
                                         "length 0..4 over 2 symbols"):
        edits_stage.read_landscapes(paths[:1], 4, 2)


def test_without_edits_every_kind_has_a_row_of_no_edges_and_one_local_optimum(tmp_path):
    """L_max 0: the empty prompt alone, no edit; the tables say so rather than fail."""
    paths = build(tmp_path, "bernmix", BERNMIX, max_length=0)
    out = analyse(tmp_path, "bernmix", paths, max_length=0)
    edits = out["edits"]
    assert (edits["edges"] == 0).all() and edits["delta_median"].isna().all()
    assert len(out["local_optima"]) == 2 and (out["local_optima"]["basin_size"] == 1).all()


def test_transfer_across_pretraining_needs_one_prompt_space_and_task_length(tmp_path):
    """The tiny config's experiments share coin_0.7; with L_max made equal they still differ
    in T (6 and 5): a KL over 6 symbols is not comparable with one over 5, so no landscape
    crosses, and each left-out pair is counted with the reason."""
    from promptscape.study import config as config_lib
    from promptscape.study import layout
    from workflow_helpers import load_config, write_config

    config = load_config()
    config["experiments"]["switching"]["max_prompt_length"] = 3
    study = config_lib.load_file(write_config(tmp_path / "config.yaml", config))
    bernmix, switching = study.experiments["bernmix"], study.experiments["switching"]
    assert layout.transfer_sources(study, bernmix) == []
    assert layout.transfer_sources(study, switching) == []
    assert layout.transfer_left_out(study, bernmix) == [
        {"experiment": "switching", "tasks": ["coin_0.7"], "pairs": 1, "reason": "T = 5, not 6"}]
    config["experiments"]["switching"]["task_length"] = 6  # now only pretraining differs
    study = config_lib.load_file(write_config(tmp_path / "config.yaml", config))
    assert layout.transfer_sources(study, study.experiments["bernmix"]) == [
        f"{study.results_dir}/switching/landscape/bayes/r0/coin_0.7.parquet"]
    assert layout.transfer_left_out(study, study.experiments["bernmix"]) == []
