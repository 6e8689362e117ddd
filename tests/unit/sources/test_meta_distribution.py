"""Issue 26, item 5: `in_meta_distribution` labels are decided for every prior kind, never
taken on trust. Under a switching prior, a fixed Markov chain and topic mixtures with
affinely dependent topics the old code said nothing (None), so a label such as
`coin_0.9 (IMD)` under switching reached every table unchecked."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from promptscape.study import config as config_lib
from promptscape.sources import build_source
from promptscape.sources.base import in_meta_distribution
from promptscape.validation import ConfigError
from landscape_helpers import coin
from workflow_helpers import REPO

# One source of every kind (binary and ternary), as priors and as tasks.
KINDS = {
    "coin": dict(kind="coin", theta=0.7),
    "coin_mixture": dict(kind="coin_mixture", thetas=[0.2, 0.7]),
    "beta_coin": dict(kind="beta_coin", alpha=1.0, beta=1.0),
    "switching": dict(kind="switching", thetas=[0.2, 0.7], switch_prob=0.1),
    "switching_rates": dict(kind="switching", thetas=[0.2, 0.7], switch_probs=[0.01, 0.2]),
    "categorical": dict(kind="categorical", probs=[0.3, 0.7]),
    "categorical_mixture": dict(kind="categorical_mixture", probs=[[0.8, 0.2], [0.3, 0.7]]),
    "dirichlet_categorical": dict(kind="dirichlet_categorical", alpha=[1.0, 1.0]),
    "topic_mixture": dict(kind="topic_mixture", topics=[[0.8, 0.2], [0.3, 0.7]],
                          alpha=[1.0, 1.0]),
    "topic_mixture_dependent": dict(kind="topic_mixture",
                                    topics=[[0.8, 0.2], [0.5, 0.5], [0.3, 0.7]],
                                    alpha=[1.0, 1.0, 1.0]),
    "markov": dict(kind="markov", transition=[0.1, 0.9]),
    "markov_beta": dict(kind="markov_beta", alpha=[1.0, 1.0], beta=[1.0, 1.0]),
}
SOURCES = {name: build_source(spec) for name, spec in KINDS.items()}


@pytest.mark.parametrize("prior,task", list(itertools.product(SOURCES, SOURCES)))
def test_every_prior_decides_every_task(prior, task):
    assert in_meta_distribution(SOURCES[prior], SOURCES[task]) in (True, False)


def coin_source(theta):
    return build_source(coin(theta))


def test_switching_holds_the_coins_that_never_switch_and_nothing_else():
    for prior in (SOURCES["switching"], SOURCES["switching_rates"]):
        assert in_meta_distribution(prior, coin_source(0.7)) is True
        assert in_meta_distribution(prior, coin_source(0.2)) is True
        assert in_meta_distribution(prior, coin_source(0.9)) is False  # coin_0.9 (IMD)
        assert in_meta_distribution(prior, coin_source(0.5)) is False
        assert in_meta_distribution(
            prior, build_source(dict(kind="categorical", probs=[0.3, 0.7]))) is True
        # Distributions over its coin paths, not one of them.
        for task in ("switching", "switching_rates", "coin_mixture", "markov"):
            assert in_meta_distribution(prior, SOURCES[task]) is False


def test_a_fixed_chain_holds_itself_and_the_coin_it_may_be():
    chain = SOURCES["markov"]
    assert in_meta_distribution(chain, build_source(KINDS["markov"])) is True
    assert in_meta_distribution(
        chain, build_source(dict(kind="markov", transition=[0.1, 0.8]))) is False
    assert in_meta_distribution(coin_source(0.5), build_source(KINDS["markov"])) is False
    flat = build_source(dict(kind="markov", transition=[0.3, 0.3], initial=0.3))
    assert in_meta_distribution(flat, coin_source(0.3)) is True
    assert in_meta_distribution(flat, coin_source(0.4)) is False


def hull_by_brute_force(topics, probs, steps=400):
    """Distance from `probs` to the hull of `topics` by a grid over the simplex of weights
    (three topics): the reference the linear programme is held to."""
    best = np.inf
    for i in range(steps + 1):
        for j in range(steps + 1 - i):
            w = np.array([i, j, steps - i - j]) / steps
            best = min(best, np.abs(w @ np.asarray(topics) - probs).sum())
    return best


def test_topic_hull_membership_holds_for_affinely_dependent_topics():
    # Three topics over two symbols (always affinely dependent: the old affine fit said
    # None) and three over three on one line.
    for topics in ([[0.8, 0.2], [0.5, 0.5], [0.3, 0.7]],
                   [[0.7, 0.2, 0.1], [0.5, 0.2, 0.3], [0.1, 0.2, 0.7]]):
        src = build_source(dict(kind="topic_mixture", topics=topics, alpha=[1.0] * 3))
        inside = np.array([0.2, 0.3, 0.5]) @ np.asarray(topics)
        assert src.supports(tuple(inside)) is True
        assert src.supports(tuple(np.asarray(topics[0]))) is True  # a vertex
        V = len(topics[0])
        outside = (np.array([0.9, 0.1]) if V == 2 else np.array([0.2, 0.6, 0.2]))
        assert src.supports(tuple(outside)) is False
        assert src.hull_distance(outside) == pytest.approx(
            hull_by_brute_force(topics, outside), abs=1e-9)
    # Four topics over three symbols, spanning a quadrilateral of the simplex.
    topics = [[0.7, 0.2, 0.1], [0.1, 0.2, 0.7], [0.2, 0.6, 0.2], [0.4, 0.3, 0.3]]
    many = build_source(dict(kind="topic_mixture", topics=topics, alpha=[1.0] * 4))
    rng = np.random.default_rng(0)
    for w in rng.dirichlet(np.ones(4), size=20):
        assert many.supports(tuple(w @ np.asarray(topics))) is True
    assert many.supports((0.8, 0.1, 0.1)) is False
    assert many.supports((0.1, 0.8, 0.1)) is False


def test_a_wrong_label_under_switching_is_a_config_error():
    config = {"sources": {"switching": KINDS["switching"],
                          "coin_0.9": dict(kind="coin", theta=0.9)},
              "experiments": {"e": {"pretraining": "switching", "predictors": ["bayes"],
                                    "tasks": [{"source": "coin_0.9",
                                               "in_meta_distribution": True}],
                                    "max_prompt_length": 2, "task_length": 4,
                                    "dataset_sizes": [1], "num_seeds": 2,
                                    "evaluation_size": 40}}}
    with pytest.raises(ConfigError, match=r"experiments\.e\.tasks\[0\]\.in_meta_distribution "
                                          r"== True, but task 'coin_0.9'.*lies outside"):
        config_lib.load(config)


@pytest.mark.parametrize("path", sorted((REPO / "config").glob("*.yaml"))
                         + sorted((REPO / "tests" / "data").glob("*/config.yaml")),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_shipped_config_is_labelled_consistently(path):
    # config/latents.yaml labelled its switching tasks `slow` and `fast` in the
    # meta-distribution of a switching prior; they are mixtures over its coin paths.
    config_lib.load_file(path)
