"""The edit_effects stage on synthetic files: it maps every single-edit step to its edge and
kinds, and recovers a planted effect against the landscape's truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from promptscape import edits
from promptscape import prompts as prompts_lib
from promptscape.study import tables
from promptscape.pipeline.stages.edit_effects_stage import edit_effects

V, L, T = 2, 3, 4
PROMPTS = prompts_lib.all_prompts(L, V)
COIN = {"kind": "coin", "theta": 0.8}  # symbol 0 is the least probable, 1 the most
EFFECT = 0.1  # nats of KL per 0 in the prompt: every edge adding a 0 costs exactly this
LENGTH_NOISE = 0.05  # D_N's bias: L_N adds this per symbol


def _landscape(path, kl):
    n = len(PROMPTS)
    tables.write({"predictor": "bayes", "replicate": 0, "experiment": "e", "task": "coin",
                  "prompt": PROMPTS, "prompt_length": [len(p) for p in PROMPTS],
                  "prompt_counts": [[p.count("0"), p.count("1")] for p in PROMPTS],
                  "method": "exact_enumeration", "loss": kl, "loss_se": np.zeros(n),
                  "entropy": np.zeros(n), "kl": kl, "kl_se": np.zeros(n),
                  "first_symbol_kl": np.zeros(n),
                  "first_symbol_prediction": [[0.5, 0.5]] * n, "rank": np.zeros(n, int),
                  "optimal": np.zeros(n, bool), "resolved": np.ones(n, bool),
                  "mc_kl": kl, "mc_kl_se": np.zeros(n), "kl_resolution": 1e-13,
                  "below_resolution": np.asarray(kl) <= 1e-13, "decided_by": "kl_resolution",
                  "kl_residuals": [[]] * n}, "landscape", path)


def _steps(path, parents, loss):
    """Every edge of each of `parents` (canonical indices) as a step, plus a restart and a
    crossover-like step (a parent that is no single edit away), which have no edge."""
    edges = edits.edit_edges(L, V)
    rows = []
    for p in parents:
        for c in edges.child[edges.parent == p]:
            op = edits.single_edit(PROMPTS[p], PROMPTS[c])
            rows.append((PROMPTS[p], PROMPTS[c], *op))
    rows.append((None, "01", None, None, None, -1))
    rows.append(("000", "1", None, None, None, -1))
    parent, child, op, pos, sym, rep = map(list, zip(*rows))
    tables.write({"predictor": "bayes", "replicate": 0, "experiment": "e", "task": "coin",
                  "N": 10, "seed": 0, "strategy": "hill_climb", "budget": 1000,
                  "step": np.arange(len(rows)), "parent_prompt": parent, "prompt": child,
                  "operation": op, "position": pos, "symbol": sym,
                  "replaced": [None if r in (-1, None) else r for r in rep],
                  "parent_loss": [np.nan if p is None else loss[PROMPTS.index(p)]
                                  for p in parent],
                  "loss": [loss[PROMPTS.index(c)] for c in child]}, "strategy_steps", path)


def _run(tmp_path, parents, noise=LENGTH_NOISE, impossible=()):
    kl = np.array([EFFECT * p.count("0") for p in PROMPTS])
    kl[list(impossible)] = np.inf
    loss = kl + noise * np.array([len(p) for p in PROMPTS])
    _landscape(tmp_path / "land.parquet", kl)
    _steps(tmp_path / "steps.parquet", parents, loss)
    edit_effects(steps=[str(tmp_path / "steps.parquet")],
                 landscapes={"bayes": {"coin": str(tmp_path / "land.parquet")}},
                 hill_climb_ends=[], output=str(tmp_path / "out.parquet"),
                 hill_climb_optima=str(tmp_path / "hc.parquet"), experiment="e",
                 tasks={"coin": COIN}, task_length=T, max_prompt_length=L, vocab_size=V,
                 in_meta_distribution={"coin": True})
    return tables.read(tmp_path / "out.parquet", "edit_effects").set_index("edit_kind")


@pytest.mark.parametrize("noise", [0.0, LENGTH_NOISE])
def test_recovers_a_planted_effect_and_splits_the_error(tmp_path, noise):
    # A biased sample: the parents are the prompts with at most one 0.
    parents = [i for i, p in enumerate(PROMPTS) if p.count("0") <= 1]
    out = _run(tmp_path, parents, noise)
    edges = edits.edit_edges(L, V)
    visited = np.isin(edges.parent, parents)
    assert out.loc["adds_least_probable", "all_kl"] == pytest.approx(EFFECT)
    assert out.loc["removes_least_probable", "all_kl"] == pytest.approx(-EFFECT)
    for kind, mask in edits.kind_masks(edges, [0.2, 0.8]).items():
        row = out.loc[kind]
        assert row["visits"] == int((mask & visited).sum())
        assert row["edges"] == int(mask.sum())
        truth = np.mean([EFFECT * (PROMPTS[c].count("0") - PROMPTS[p].count("0"))
                         for p, c in zip(edges.parent[mask], edges.child[mask])])
        assert row["all_kl"] == pytest.approx(truth)
        assert row["raw_error"] == pytest.approx(row["noise_error"] + row["selection_error"])
        assert row["naive_error"] == pytest.approx(row["naive"] - truth)
    # Where every edge of a kind has the same effect, the weighted estimate (no model of
    # the covariates) recovers it despite the biased sample; noise is what D_N adds.
    assert out.loc["adds_least_probable", "selection_error"] == pytest.approx(0, abs=1e-12)
    assert out.loc["reorders", "weighted"] == pytest.approx(0, abs=1e-12)
    assert out.loc["lengthens", "noise_error"] == pytest.approx(noise, abs=1e-12)
    assert out.loc["shortens", "noise_error"] == pytest.approx(-noise, abs=1e-12)
    if noise == 0:
        for kind, effect in (("adds_least_probable", EFFECT),
                             ("removes_least_probable", -EFFECT)):
            assert out.loc[kind, "weighted"] == pytest.approx(effect)
            assert out.loc[kind, "visited_loss"] == pytest.approx(effect)
            assert out.loc[kind, "raw_error"] == pytest.approx(0, abs=1e-12)
    assert out.loc["reorders", "noise_error"] == pytest.approx(0, abs=1e-12)
    assert set(out["in_meta_distribution"]) == {True}


def test_a_step_whose_edit_does_not_match_its_prompts_is_an_error(tmp_path):
    _run(tmp_path, [0])
    frame = tables.read(tmp_path / "steps.parquet", "strategy_steps")
    frame.loc[frame["operation"] == "insert", "operation"] = "substitute"
    tables.write(frame, "strategy_steps", tmp_path / "steps.parquet")
    with pytest.raises(ValueError, match="records operation 'substitute'"):
        edit_effects(steps=[str(tmp_path / "steps.parquet")],
                     landscapes={"bayes": {"coin": str(tmp_path / "land.parquet")}},
                     hill_climb_ends=[], output=str(tmp_path / "out.parquet"),
                     hill_climb_optima=str(tmp_path / "hc.parquet"), experiment="e",
                     tasks={"coin": COIN}, task_length=T, max_prompt_length=L,
                     vocab_size=V, in_meta_distribution={"coin": True})


def test_hill_climb_summary_counts_the_missed_runs(tmp_path):
    from promptscape.pipeline.stages.edit_effects_stage import hill_climb_summary

    path = tmp_path / "ends.parquet"
    tables.write(pd.DataFrame({
        "predictor": "bayes", "replicate": 0, "experiment": "e", "task": "coin", "N": 10,
        "seed": range(4), "strategy": "hill_climb", "budget": 30,
        "prompt": ["1", "0", "00", "01"], "found_best": [True, False, False, False],
        "local_optimum_empirical": [True, True, True, False],
        "local_optimum_exact": [True, True, False, False],
        "decided_by": "kl_resolution"}), "hill_climb_ends", path)
    row = hill_climb_summary([str(path)]).iloc[0]
    assert (row["runs"], row["missed"], row["missed_empirical_local_optimum"],
            row["missed_exact_local_optimum"], row["missed_both_local_optimum"]) == (4, 3, 2, 1, 1)


def test_edges_with_an_impossible_end_are_left_out(tmp_path):
    """Prompts of KL inf (as a word source's leading _ or __): an edge to or from one has no
    finite change of KL, so it is left out of the visited edges and of all edges alike, and
    every estimate is finite (the table refused the NaNs of inf - inf before)."""
    impossible = [i for i, p in enumerate(PROMPTS) if "00" in p]
    parents = list(range(len(PROMPTS)))
    out = _run(tmp_path, parents, impossible=impossible)
    assert np.isfinite(out.select_dtypes("number").to_numpy(dtype=float)).all()
    edges = edits.edit_edges(L, V)
    finite = ~np.isin(edges.parent, impossible) & ~np.isin(edges.child, impossible)
    for kind, mask in edits.kind_masks(edges, [0.2, 0.8]).items():
        if not (mask & finite).any():
            assert kind not in out.index
            continue
        row = out.loc[kind]
        assert row["edges"] == row["visits"] == int((mask & finite).sum())
        truth = np.mean([EFFECT * (PROMPTS[c].count("0") - PROMPTS[p].count("0"))
                         for p, c in zip(edges.parent[mask & finite],
                                         edges.child[mask & finite])])
        assert row["all_kl"] == pytest.approx(truth)
