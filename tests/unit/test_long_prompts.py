"""Long prompts (L_max up to 16): count-class landscapes and searches against brute force,
every one of the 131,071 prompts with its exact KL, and the figures' thinning."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from promptscape import search
from promptscape.study import tables
from promptscape.report import figures
from promptscape.predictors import BayesPredictor, Predictor
from promptscape.prompts import all_prompts, to_arrays
from promptscape.sources import build_source
from promptscape.pipeline.stages import datasets_stage
from promptscape.pipeline.stages import landscape_stage
from promptscape.pipeline.stages import search_stage
from landscape_helpers import BERNMIX, BETA11, brute_force_landscape, coin
from search_helpers import assert_keeps_best_classes

T = 6


def _landscape(tmp_path, pre, task, L, evaluation_size=200):
    evaluation = tmp_path / "evaluation.parquet"
    datasets_stage.simulate_evaluation(output=str(evaluation), experiment="e", task_name="t",
                                       task=task, task_length=T, size=evaluation_size)
    out = tmp_path / "landscape.parquet"
    landscape_stage.compute_landscape(
        evaluation=str(evaluation), output=str(out), predictor="bayes", pretraining=pre,
        experiment="e", task_name="t", task=task, task_length=T, max_prompt_length=L,
        enumeration_budget=2**27)
    return tables.read(out, "landscape")


@pytest.mark.parametrize("pre, task", [(BERNMIX, coin(0.7)), (BETA11, coin(0.8)),
                                       (BERNMIX, {"kind": "coin_mixture",
                                                  "thetas": [0.2, 0.8]})])
def test_count_class_landscape_equals_brute_force_enumeration_up_to_length_10(
        tmp_path, pre, task):
    """The stage scores 66 count classes for the 2,047 prompts of length <= 10; every
    prompt's loss and KL equal the from-scratch Bayes computation over all 2^T sequences."""
    land = _landscape(tmp_path, pre, task, 10)
    prompts = all_prompts(10, 2)
    assert land["prompt"].tolist() == prompts
    assert (land["method"] == "exact_counts").all()
    loss, kl, entropy = brute_force_landscape(pre, task, prompts, T)
    np.testing.assert_allclose(land["loss"], loss, rtol=1e-9, atol=0)
    np.testing.assert_allclose(land["kl"], kl, rtol=1e-9, atol=1e-12)
    assert land["entropy"].iloc[0] == pytest.approx(entropy, rel=1e-12)
    # Ranks: dense over the distinct losses; rank 0 exactly the least.
    order = np.argsort(loss, kind="stable")
    assert (np.diff(land["rank"].to_numpy()[order]) >= 0).all()
    assert set(land.loc[land["optimal"], "prompt"]) == set(
        np.asarray(prompts)[np.isclose(loss, loss.min(), rtol=1e-9, atol=0)])


def test_every_prompt_of_length_16_has_its_exact_kl(tmp_path):
    """131,071 prompts from 153 classes: a sample of prompts of every length against brute
    force, and every prompt of a count class with its class's KL."""
    land = _landscape(tmp_path, BERNMIX, coin(0.7), 16)
    prompts = all_prompts(16, 2)
    assert land["prompt"].tolist() == prompts and len(prompts) == 131_071
    assert land["kl"].notna().all() and (land["kl_se"] == 0).all()
    rng = np.random.default_rng(0)
    sample = sorted(set(rng.integers(0, len(prompts), 300).tolist()) | {0, len(prompts) - 1})
    _, kl, _ = brute_force_landscape(BERNMIX, coin(0.7), [prompts[i] for i in sample], T)
    np.testing.assert_allclose(land["kl"].to_numpy()[sample], kl, rtol=1e-9, atol=1e-12)
    by_class = land.groupby(land["prompt_counts"].map(tuple))["kl"]
    assert by_class.ngroups == 153
    assert (by_class.max() - by_class.min()).max() == 0.0
    # The optimum of coin(0.7) under BernMix(0.2, 0.7): prompts that all but fix the 0.7
    # coin. Near it the landscape is flat: within the exact tie tolerance (relative 1e-9)
    # a whole band of count classes ties with 16 ones.
    best = land[land["optimal"]]
    assert "1" * 16 in set(best["prompt"])
    kl_min = best["kl"].min()
    assert (best["kl"] <= kl_min + 1e-9 * best["loss"].abs().max()).all()
    ones = best["prompt_counts"].map(lambda c: c[1] - c[0])
    assert (ones >= 8).all()  # at least 8 more ones than zeros


def test_the_search_at_length_16_keeps_the_best_classes_of_brute_force(tmp_path):
    """s_hat and the kept classes of the count-class search equal those of the generic
    path, which scores each of the 131,071 prompts on each sequence by the Bayes predictive
    of prompt + sequence."""
    data = tmp_path / "data.parquet"
    datasets_stage.simulate_tasks(output=str(data), experiment="e", tasks={"t": coin(0.7)},
                                  task_length=T, dataset_sizes=[2], first=0, last=1)
    out = tmp_path / "search.parquet"
    search_stage.search_prompts(datasets=str(data), output=str(out),
                                predictors=[{"predictor": "bayes", "replicate": 0,
                                             "family": "bayes"}],
                                pretraining=BERNMIX, experiment="e", tasks=["t"],
                                task_length=T, dataset_sizes=[2], first=0, last=1,
                                max_prompt_length=16, enumeration_budget=2**27)
    found = tables.read(out, "search")
    prompts = all_prompts(16, 2)
    seqs = to_arrays(tables.read(data, "task_data")["sequence"].tolist(), T)
    bayes = BayesPredictor(build_source(BERNMIX))
    # Two seeds of two sequences: the generic path's cost is prompts x sequences (about
    # 1 s of CPU per sequence here), each distinct sequence scored once.
    distinct, inverse = np.unique(seqs, axis=0, return_inverse=True)
    losses = Predictor.prompt_losses(bayes, prompts, distinct)[:, inverse.ravel()]
    brute = losses.reshape(len(prompts), 2, 2).mean(axis=2).T
    assert_keeps_best_classes(found, brute, prompts, bayes, range(2), exact=False)
    assert (found.groupby("seed").size() == search.KEPT_CLASSES).all()
    assert found["class_size"].max() > 1  # a kept class stands for many prompts


def test_landscape_points_merge_classes_and_thin_long_landscapes():
    rng = np.random.default_rng(1)
    P = 8191
    kl = np.sort(rng.exponential(size=P))
    land = pd.DataFrame({"predictor": "lstm", "replicate": 0, "task": "t",
                         "prompt": all_prompts(12, 2), "rank": np.arange(P), "kl": kl})
    shown, note = figures.landscape_points(land, limit=500, top=100)
    assert len(shown) == 500 and (shown["members"] == 1).all()
    assert shown["rank"].tolist()[:100] == list(range(100))  # the best, all of them
    assert shown["rank"].iloc[-1] == P - 1  # and the far end of the curve
    assert "8,191 prompts: the 100 best and 400 evenly spaced by rank shown" in note
    # Equal (rank, KL): one point per class, with its size.
    classes = pd.DataFrame({"predictor": "bayes", "replicate": 0, "task": "t",
                            "prompt": ["", "0", "1", "01", "10"], "rank": [1, 2, 0, 1, 1],
                            "kl": [0.5, 0.7, 0.1, 0.5, 0.5]})
    shown, note = figures.landscape_points(classes)
    assert shown["prompt"].tolist() == ["", "0", "1"]
    assert shown["members"].tolist() == [3, 1, 1]
    assert "5 prompts as 3 points" in note
    small = classes.drop_duplicates("rank")
    assert figures.landscape_points(small)[1] == ""
