"""Transfer regret (`promptscape.transfer`): zero onto itself, over the source's whole
optimal class against the target's optimum, and a missing prompt named."""

from __future__ import annotations

import numpy as np
import pytest

from promptscape import landscape, transfer
from promptscape import prompts as prompts_lib

from landscape_helpers import count_landscape


def test_transfer_of_a_landscape_to_itself_is_zero():
    prompts = prompts_lib.all_prompts(4, 2)
    kl = count_landscape(4, 2, np.random.default_rng(8), levels=5)
    optimal = landscape.classify(kl)[1]
    assert optimal.sum() > 1
    regret = transfer.transfer_regret(prompts, optimal, prompts, kl)
    assert (regret.mean, regret.min, regret.max) == (0, 0, 0)
    shuffled = np.random.default_rng(9).permutation(len(prompts))
    again = transfer.transfer_regret(prompts, optimal, [prompts[i] for i in shuffled], kl[shuffled])
    assert (again.mean, again.min, again.max) == (0, 0, 0)


def test_transfer_regret_is_over_the_source_class_against_the_target_optimum():
    prompts = prompts_lib.all_prompts(2, 2)  # '', 0, 1, 00, 01, 10, 11
    target = np.array([3.0, 2.0, 1.0, 6.0, 0.5, 4.0, 5.0])
    source_optimal = np.isin(prompts, ["00", "11"])
    regret = transfer.transfer_regret(prompts, source_optimal, prompts, target)
    assert (regret.mean, regret.min, regret.max) == (5.0, 4.5, 5.5)
    assert {k: r.mean for k, r in transfer.baseline_regrets(prompts, target).items()} == {
        "empty": 2.5, "median": 2.5}


def test_a_prompt_missing_from_the_target_names_both_landscapes():
    source = prompts_lib.all_prompts(3, 2)
    target = prompts_lib.all_prompts(2, 2)
    optimal = np.isin(source, ["011"])
    with pytest.raises(ValueError,
                       match=r"optimal prompts of bernmix .* landscape of betacoin: '011'"):
        transfer.transfer_regret(source, optimal, target, np.zeros(len(target)),
                              source="bernmix", target="betacoin")
