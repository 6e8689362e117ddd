"""The observational estimate of edit effects (`promptscape.observational`) against planted
effects and a planted confounding, and its error decomposition by hand."""

from __future__ import annotations

import numpy as np
import pytest

from promptscape import observational


def test_observational_estimators_recover_a_planted_effect():
    rng = np.random.default_rng(10)
    n = 20000
    effect = {"a": -0.3, "b": 0.2, "c": 0.0}
    kind = rng.choice(list(effect), size=n)
    x = rng.integers(0, 5, size=(n, 2)).astype(float)
    delta = np.vectorize(effect.get)(kind) + 0.4 * (x[:, 0] - 2) + rng.normal(0, 0.1, n)
    for row in observational.observational_estimates(kind, delta, x):
        se = 0.1 / np.sqrt(row["visits"])
        assert row["naive"] == pytest.approx(effect[row["kind"]], abs=6 * se + 0.02)
        assert row["weighted"] == pytest.approx(effect[row["kind"]], abs=6 * se + 0.02)
        assert row["overlap"] == 1


def test_propensity_weighting_removes_a_confounding_that_biases_the_naive_fit():
    # Kind a is frequent at x = 0, rare at x = 1, and its effect flips with x (mean 0 over
    # x); kind b does nothing. A shared slope cannot follow a's effect across x.
    rng = np.random.default_rng(11)
    n = 40000
    x = rng.integers(0, 2, size=n)
    kind = np.where(rng.random(n) < np.where(x == 0, 0.8, 0.2), "a", "b")
    delta = np.where(kind == "a", np.where(x == 0, -1.0, 1.0), 0.0) + rng.normal(0, 0.1, n)
    rows = {r["kind"]: r for r in observational.observational_estimates(kind, delta, x[:, None])}
    assert rows["a"]["weighted"] == pytest.approx(0.0, abs=0.01)
    assert rows["b"]["weighted"] == pytest.approx(0.0, abs=0.01)
    assert abs(rows["a"]["naive"]) > 0.2  # about -0.3
    assert abs(rows["a"]["mean"]) > 0.5  # about -0.6


def test_error_decomposition_splits_noise_and_selection():
    rows = observational.error_decomposition(
        ["a", "a", "b"], [1.0, 3.0, -1.0], [0.5, 1.5, -2.0],
        ["a", "a", "a", "b", "b"], [0.5, 1.5, -2.0, -2.0, 0.0])
    a, b = rows
    assert (a["noise"], a["selection"], a["error"]) == (1.0, 1.0, 2.0)
    assert (b["noise"], b["selection"], b["error"]) == (1.0, -1.0, 0.0)
    with pytest.raises(ValueError, match="'c' was visited"):
        observational.error_decomposition(["c"], [0.0], [0.0], ["a"], [0.0])
