"""Estimated landscapes read as estimates: one rule (`landscape.TieRule`) decides every
comparison of a Monte Carlo landscape by the paired standard error, and exact landscapes
keep their `kl_resolution` rule. Each red-team case of a Monte Carlo landscape read with the
exact rule is reproduced on a small synthetic landscape."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from promptscape import edits, landscape
from promptscape import prompts as prompts_lib
from promptscape.study import tables
from promptscape.report import aggregate

L_MAX, V, M = 2, 2, 400
PROMPTS = prompts_lib.all_prompts(L_MAX, V)  # '', 0, 1, 00, 01, 10, 11
TINY = 1e-12  # a float tie width, as an exact landscape's kl_resolution


def estimated(losses, weights=None, strata=None):
    """``(kl, optimal, rule)`` of per-sequence KLs ``(P, M)`` as the landscape stage makes
    them (task log-probabilities 0: the losses are the per-sequence KLs)."""
    P, m = losses.shape
    weights = np.full(m, 1.0 / m) if weights is None else weights
    strata = np.zeros(m, dtype=np.int64) if strata is None else strata
    _, _, kl, kl_se, _ = landscape.monte_carlo_kl(losses, np.zeros(m), weights, strata)
    optimal = landscape.classify(kl, losses, weights=weights, strata=strata)[1]
    residuals = landscape.paired_residuals(losses, weights, strata)
    return kl, optimal, landscape.TieRule.estimated(TINY, kl_se, residuals)


# ------------------------------------------------------------------ the rule itself
def test_residual_norms_are_the_stratified_paired_standard_errors():
    rng = np.random.default_rng(0)
    losses = rng.normal(size=(len(PROMPTS), 60)) + rng.normal(size=60)
    strata = np.repeat([0, 1, 2], [10, 20, 30])
    weights = np.repeat([0.5, 0.3, 0.2], [10, 20, 30]) / np.repeat([10, 20, 30], [10, 20, 30])
    residuals = landscape.paired_residuals(losses, weights, strata)
    se = landscape.stratified_mean(losses, weights, strata)[1]
    assert np.allclose(np.linalg.norm(residuals, axis=1), se, rtol=1e-12)
    edges = edits.edit_edges(L_MAX, V)
    rule = landscape.TieRule.estimated(0.0, se, residuals)
    assert rule.decided_by == landscape.PAIRED_SE
    assert np.allclose(rule.difference_se(edges.child, edges.parent),
                       edits.delta_standard_error(edges, losses, weights, strata), rtol=1e-10)
    # The SE of a mean regret is that of the per-sequence mean difference.
    group = [3, 4, 4]
    direct = landscape.stratified_mean(losses[group].mean(axis=0) - losses[1], weights,
                                       strata)[1][0]
    assert np.isclose(rule.mean_difference_se(group, 1), direct, rtol=1e-12)


def test_the_bound_is_never_below_the_paired_error_and_says_so():
    rng = np.random.default_rng(1)
    losses = rng.normal(size=(len(PROMPTS), 50)) * rng.uniform(0.5, 2, size=(len(PROMPTS), 1))
    kl, _, paired = estimated(losses)
    bound = landscape.TieRule.estimated(TINY, paired.kl_se)
    a, b = np.triu_indices(len(PROMPTS), 1)
    assert bound.decided_by == landscape.SE_BOUND
    assert (bound.difference_se(a, b) >= paired.difference_se(a, b) - 1e-15).all()


def test_an_exact_rule_is_the_kl_resolution_rule_unchanged():
    rng = np.random.default_rng(2)
    kl = rng.integers(0, 5, len(PROMPTS)) / 4
    rule = landscape.landscape_rule("exact_counts", 0.1, np.zeros(len(kl)))
    a, b = np.meshgrid(np.arange(len(kl)), np.arange(len(kl)))
    a, b = a.ravel(), b.ravel()
    assert rule.decided_by == landscape.KL_RESOLUTION and not rule.is_estimated
    assert np.array_equal(rule.less(kl, a, b), kl[a] < kl[b] - 0.1)
    edges = edits.edit_edges(L_MAX, V)
    old = edits.local_structure(edges, kl, 0.1)
    new = edits.local_structure(edges, kl, rule, kl == kl.min())
    for name in ("local_optimum", "plateau", "descent", "sink", "basin_size"):
        assert np.array_equal(getattr(old, name), getattr(new, name))


def test_the_rule_uses_the_optimal_class_critical_z():
    se = np.full(63, 0.1)
    rule = landscape.TieRule.estimated(0.0, se)
    assert rule.z == landscape.estimate_critical_z(63)
    kl = np.zeros(63)
    kl[1] = -rule.z * 0.2 * 1.01  # just beyond z * (se + se)
    kl[2] = -rule.z * 0.2 * 0.99  # just within
    assert rule.less(kl, [1, 2], [0, 0]).tolist() == [True, False]


# ------------------------------------------------------------------ red-team cases
def test_every_member_of_an_estimated_optimal_class_is_a_local_optimum_on_one_plateau():
    """Five prompts of equal true KL whose estimates differ by sampling noise, two far
    worse: read with a float tie width, only the least estimate of each connected group of
    members is a local optimum; by the paired error, none of the five is shown worse than
    a neighbour, and the five are the optimum's one plateau."""
    rng = np.random.default_rng(3)
    true = np.array([0.5, 0.5, 0.5, 3.0, 0.5, 0.5, 3.0])  # '', 0, 1, 00, 01, 10, 11
    losses = true[:, None] + rng.normal(size=M) + 0.3 * rng.normal(size=(len(PROMPTS), M))
    kl, optimal, rule = estimated(losses)
    members = np.flatnonzero(true == 0.5)
    assert optimal[members].all() and not optimal[true > 1].any()
    edges = edits.edit_edges(L_MAX, V)
    found = edits.local_structure(edges, kl, rule, optimal)
    assert found.local_optimum[members].all()
    assert len(set(found.plateau[members])) == 1
    assert found.plateau[int(np.argmin(kl))] == found.plateau[members[0]]
    as_exact = edits.local_structure(edges, kl, TINY)
    assert as_exact.local_optimum[members].sum() < len(members)  # the red team's reading


def test_an_edit_whose_effect_is_below_its_standard_error_does_not_improve():
    """Every deletion's estimated effect is the same half standard error (a per-sequence
    slope in the prompt's length whose sample mean is off 0): read with a float tie width,
    shortens improves in every case; by the paired error it improves in none, is
    unresolved in all, and the row carries an error larger than its median effect."""
    rng = np.random.default_rng(4)
    g = rng.normal(size=M)
    g = g - g.mean() + 0.5 * g.std(ddof=1) / np.sqrt(M)  # sample mean: half its SE
    lengths = np.array([len(p) for p in PROMPTS])
    losses = rng.normal(size=M)[None, :] + lengths[:, None] * g[None, :]
    kl, _, rule = estimated(losses)
    edges = edits.edit_edges(L_MAX, V)
    marginals = [0.3, 0.7]
    old = {r["kind"]: r for r in edits.summarise_kinds(edges, kl, marginals, tolerance=TINY)}
    new = {r["kind"]: r for r in edits.summarise_kinds(edges, kl, marginals, tolerance=rule)}
    assert old["shortens"]["share_improving"] == 1.0  # the red team's reading
    assert new["shortens"]["share_improving"] == 0.0
    assert new["shortens"]["share_unresolved"] == 1.0
    assert new["shortens"]["se_median"] > abs(new["shortens"]["median"])
    assert old["shortens"]["se_median"] == 0.0


def tuning_inputs(gap_in_se: float):
    """A Monte Carlo landscape of 15 prompts (kl_se 0.02) and two seeds of one tuner: one
    `gap_in_se` standard errors below the least estimate, one far below."""
    rng = np.random.default_rng(5)
    kl = 0.5 + np.abs(rng.normal(scale=0.02, size=15))
    optimal = kl <= kl.min() + 0.03
    prompts = prompts_lib.all_prompts(3, 2)[:15]
    land = pd.DataFrame({"predictor": "lstm", "replicate": 0, "experiment": "e", "task": "t",
                         "prompt": prompts, "method": "monte_carlo", "kl": kl, "kl_se": 0.02,
                         "optimal": optimal})
    search = prompts[int(np.argmax(kl))]
    rows = []
    for seed, tuned in enumerate((kl.min() - gap_in_se * 0.02, kl.min() - 1.0)):
        for tuner, value in (("hard_search", kl.max()), ("soft_prompt", tuned)):
            rows.append(dict(predictor="lstm", replicate=0, experiment="e", task="t", N=10,
                             seed=seed, tuner=tuner, settings="fixed", kl_se=0.02,
                             search_prompt=search,
                             tuning_steps=0 if tuner == "hard_search" else 5, kl=value,
                             chosen_learning_rate=None, chosen_steps=5, entropy=6.0,
                             search_kl=kl.max(), search_train_loss=5.0,
                             kl_minus_search=value - kl.max(), train_loss=5.0, overfit=False,
                             overfit_path=False, worse_than_none=False,
                             trainable_parameters=20, sequence_evaluations=10))
    optima = pd.DataFrame({"predictor": ["lstm"], "replicate": 0, "experiment": "e",
                           "task": "t", "tuner": "soft_prompt", "prompt_length": 5,
                           "kl": 0.4, "at_tuning_length": True})
    return pd.DataFrame(rows), land, optima


def test_a_seed_one_standard_error_below_the_least_estimate_is_not_below_the_optimum():
    runs, land, optima = tuning_inputs(1.1)
    out = aggregate.tuning(runs, land, 1e-5, optima).set_index("tuner")
    soft = out.loc["soft_prompt"]
    assert soft["below_optimum"] == 1  # the far one only; the red team counted both
    assert soft["decided_by"] == landscape.SE_BOUND
    # Read as exact, the same numbers count both seeds.
    exact = aggregate.tuning(runs, land.assign(method="exact_enumeration", kl_se=0.0), 1e-5,
                             optima).set_index("tuner")
    assert exact.loc["soft_prompt", "below_optimum"] == 2
    assert exact.loc["soft_prompt", "decided_by"] == landscape.FLOAT32_RESOLUTION
    # The searched prompt (the worst estimate) is shown above the far seed only: the near
    # one is less than z (se + se) below it.
    z = landscape.estimate_critical_z(15)
    assert land["kl"].max() - (land["kl"].min() - 1.1 * 0.02) < z * 2 * 0.02
    assert soft["below_search"] == 1 and exact.loc["soft_prompt", "below_search"] == 2


def test_a_transfer_regret_within_its_standard_error_is_not_shown():
    rng = np.random.default_rng(6)
    true = np.array([0.5, 0.5, 0.5, 3.0, 0.5, 0.5, 3.0])
    losses = true[:, None] + rng.normal(size=M) + 0.3 * rng.normal(size=(len(PROMPTS), M))
    kl, optimal, rule = estimated(losses)
    member = int(np.flatnonzero(optimal & (kl > kl.min()))[0])
    source = np.zeros(len(PROMPTS), dtype=bool)
    source[member] = True
    regret = edits.transfer_regret(PROMPTS, source, PROMPTS, kl, rule=rule)
    assert regret.mean > 0 and regret.se > 0 and not regret.shown
    assert np.isclose(regret.se, rule.difference_se([member], [int(np.argmin(kl))])[0])
    worse = edits.transfer_regret(PROMPTS, true > 1, PROMPTS, kl, rule=rule)
    assert worse.shown
    # A landscape's optimal class under itself costs nothing it can show, though the mean
    # over its members may be resolved above the best estimate.
    for given in (optimal, None):
        whole = edits.transfer_regret(PROMPTS, optimal, PROMPTS, kl, rule=rule,
                                      target_optimal=given)
        assert whole.mean > 0 and not whole.shown
    # Exact: shown when above the tolerance.
    assert edits.transfer_regret(PROMPTS, source, PROMPTS, kl, rule=TINY).shown


# ------------------------------------------------------------------ the stage
def test_a_monte_carlo_landscape_keeps_residuals_its_readers_decide_by(tmp_path):
    """A Markov Bayes landscape forced onto the evaluation set (enumeration budget 1): its
    kl_residuals give kl_se and the paired errors of the raw per-sequence losses, and the
    edit analysis says it decided by them."""
    from promptscape.pipeline.stages import datasets_stage
    from promptscape.pipeline.stages import edits_stage
    from promptscape.pipeline.stages import landscape_stage
    from promptscape.predictors import BayesPredictor
    from promptscape.sources import build_source

    markov = {"kind": "markov_beta", "alpha": [1.0, 1.0], "beta": [1.0, 1.0]}
    task = {"kind": "coin", "theta": 0.7}
    evaluation, path = str(tmp_path / "evaluation.parquet"), str(tmp_path / "land.parquet")
    datasets_stage.simulate_evaluation(output=evaluation, experiment="m", task_name="coin_0.7",
                                       task=task, task_length=4, size=60)
    landscape_stage.compute_landscape(
        evaluation=evaluation, output=path, predictor="bayes", family="bayes",
        pretraining=markov, experiment="m", task_name="coin_0.7", task=task, task_length=4,
        max_prompt_length=L_MAX, enumeration_budget=1)
    everything = tables.ARTIFACTS["landscape"].schema.names
    assert "kl_residuals" not in tables.read(path, "landscape").columns  # on request only
    land = tables.read(path, "landscape", columns=everything)
    assert (land["method"] == "monte_carlo").all() and (land["decided_by"] == "paired_se").all()
    residuals = landscape.stored_residuals(land["kl_residuals"])
    assert residuals.shape == (len(PROMPTS), 60)
    assert np.allclose(np.linalg.norm(residuals, axis=1), land["kl_se"], rtol=1e-9)
    frame = tables.read(evaluation, "evaluation_set")
    seqs = prompts_lib.to_arrays(frame["sequence"].tolist(), 4)
    raw = BayesPredictor(build_source(markov)).prompt_losses(PROMPTS, seqs)
    edges = edits.edit_edges(L_MAX, V)
    rule = edits_stage.read_landscapes([path], L_MAX, V)[0].rule
    assert rule.decided_by == landscape.PAIRED_SE
    assert np.allclose(rule.difference_se(edges.child, edges.parent),
                       edits.delta_standard_error(edges, raw, frame["weight"].to_numpy(),
                                                  frame["stratum"].to_numpy()), rtol=1e-8)
    out = {name: str(tmp_path / f"{name}.parquet") for name in ("edits", "local_optima",
                                                                "transfer")}
    edits_stage.analyse_edits(landscapes=[path], others=[], selections=None, experiment="m",
                              tasks={"coin_0.7": task}, in_meta_distribution={"coin_0.7": True},
                              task_length=4, max_prompt_length=L_MAX, **out)
    for name in out:
        assert (tables.read(out[name], name)["decided_by"] == "paired_se").all()
    kinds = tables.read(out["edits"], "edits")
    assert (kinds["delta_se_median"] > 0).all()
    shares = kinds["share_improving"] + kinds["share_unresolved"]
    assert (shares <= 1 + 1e-12).all()


def test_an_exact_landscape_keeps_no_residuals_and_decides_by_its_resolution(tmp_path):
    from promptscape.pipeline.stages import datasets_stage
    from promptscape.pipeline.stages import landscape_stage

    task = {"kind": "coin", "theta": 0.7}
    evaluation, path = str(tmp_path / "evaluation.parquet"), str(tmp_path / "land.parquet")
    datasets_stage.simulate_evaluation(output=evaluation, experiment="b", task_name="coin_0.7",
                                       task=task, task_length=4, size=30)
    landscape_stage.compute_landscape(
        evaluation=evaluation, output=path, predictor="bayes", family="bayes",
        pretraining={"kind": "coin_mixture", "thetas": [0.2, 0.7]}, experiment="b",
        task_name="coin_0.7", task=task, task_length=4, max_prompt_length=L_MAX,
        enumeration_budget=2 ** 20)
    land = tables.read(path, "landscape", columns=tables.ARTIFACTS["landscape"].schema.names)
    assert (land["decided_by"] == "kl_resolution").all()
    assert landscape.stored_residuals(land["kl_residuals"]) is None


def test_figures_draw_no_residuals():
    from promptscape.report import figures

    land = pd.DataFrame({"predictor": "bayes", "replicate": 0, "task": "t", "prompt": PROMPTS,
                         "rank": range(len(PROMPTS)), "kl": np.linspace(0, 1, len(PROMPTS)),
                         "kl_residuals": [np.zeros(M)] * len(PROMPTS)})
    points, _ = figures.landscape_points(land)
    assert "kl_residuals" not in points.columns and len(points) == len(PROMPTS)


@pytest.mark.parametrize("column", ["decided_by"])
def test_every_deciding_artifact_says_which_rule_decided(column):
    for name in ("landscape", "edits", "local_optima", "transfer", "tuning", "hill_climb_ends"):
        assert column in tables.ARTIFACTS[name].schema.names, name
