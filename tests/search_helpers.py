"""Checking a search artifact against the full table of empirical losses it keeps the best
classes of."""

from __future__ import annotations

import numpy as np

from promptscape import search


def assert_keeps_best_classes(found, expected: np.ndarray, prompts: list[str], predictor,
                              seeds, exact: bool = True) -> None:
    """`found` (a search table) holds, per seed, exactly the `search.KEPT_CLASSES` best
    prompt classes of `expected` ``(S, P)`` (the library's empirical losses of every
    prompt), by their canonical first prompt, in order, with their losses bit for bit, the
    class sizes, and s_hat chosen (`exact` false: losses to a relative 1e-12, for an
    `expected` summed in another order)."""
    first, inverse = predictor.prompt_classes(prompts)
    chosen = search.choose(expected)
    kept, _ = search.best_classes(expected, inverse, chosen)
    sizes = np.bincount(inverse)
    for s, seed in enumerate(seeds):
        rows = found[found["seed"] == seed].sort_values("empirical_rank")
        assert rows["prompt"].tolist() == [prompts[i] for i in kept[s]], seed
        got = rows["empirical_loss"].to_numpy()
        if exact:
            np.testing.assert_array_equal(got, expected[s, kept[s]])
        else:
            np.testing.assert_allclose(got, expected[s, kept[s]], rtol=1e-12, atol=0)
        assert rows["class_size"].tolist() == sizes[inverse[kept[s]]].tolist()
        assert rows.loc[rows["chosen"], "prompt"].tolist() == [prompts[chosen[s]]]
        assert rows["empirical_rank"].tolist() == list(range(len(kept[s])))
