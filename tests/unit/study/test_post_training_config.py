"""`models.<name>.post_training`: parsing, the errors that name the key, identities (the base
reused, the post-training settings its own), and the plan's jobs for it."""

from __future__ import annotations

import copy
import re

import pytest

from promptscape.study import config as config_lib
from promptscape.study import layout
from promptscape.pipeline import plan
from promptscape.validation import ConfigError

CONFIG = {
    "sources": {
        "bernmix": {"kind": "coin_mixture", "thetas": [0.2, 0.7]},
        "coin_0.7": {"kind": "coin", "theta": 0.7},
        "coin_0.5": {"kind": "coin", "theta": 0.5},
        "narrow": {"kind": "coin_mixture", "thetas": [0.2, 0.7], "weights": [0.1, 0.9]},
        "cat": {"kind": "categorical", "probs": [0.2, 0.3, 0.5]},
    },
    "experiments": {
        "bernmix": {"pretraining": "bernmix", "predictors": ["bayes", "lstm", "ft"],
                    "tasks": [{"source": "coin_0.7", "in_meta_distribution": True}],
                    "max_prompt_length": 2, "task_length": 4, "dataset_sizes": [5],
                    "num_seeds": 2, "evaluation_size": 100},
    },
    "models": {"ft": {"post_training": {"base": "lstm", "source": "coin_0.7"}}},
}


def load(**models):
    config = copy.deepcopy(CONFIG)
    config["models"] = {**config["models"], **models}
    return config_lib.load(config)


def post(**settings):
    return {"post_training": {"base": "lstm", "source": "coin_0.7", **settings}}


def test_a_post_trained_model_is_its_bases_network_with_the_defaults_filled_in():
    study = load()
    model = study.models["ft"]
    assert (model.family, model.replicates, model.settings) == ("lstm", 1, {})
    assert model.post_training.to_dict() == {
        "base": "lstm", "source": "coin_0.7", "tuner": "full", "steps": 100,
        "learning_rate": 0.001, "batch": 256}
    assert study.network("ft", "bernmix") == study.network("lstm", "bernmix")
    assert study.is_neural("ft") and study.lineage("ft") == ["ft", "lstm"]
    assert study.post_training("bayes") is None and study.post_training("lstm") is None
    assert study.networks() == [("bernmix", "ft", 0), ("bernmix", "lstm", 0)]


def test_lora_rank_defaults_to_the_tuner_registrys_and_stays_out_of_other_tuners():
    assert load(ft=post(tuner="lora")).models["ft"].post_training.lora_rank == 4
    assert load(ft=post(tuner="head")).models["ft"].post_training.lora_rank is None


ERRORS = [
    (post(base="nope"), r"models\.ft\.post_training\.base == 'nope', not a model"),
    (post(base="bayes"), r"models\.ft\.post_training\.base == 'bayes': the exact Bayes"),
    ({"post_training": {"source": "coin_0.7"}}, r"models\.ft\.post_training\.base is required"),
    ({"post_training": {"base": "lstm"}}, r"models\.ft\.post_training\.source is required"),
    (post(source="nope"), r"models\.ft\.post_training\.source == 'nope', not a defined source"),
    (post(source="cat"), r"models\.ft\.post_training\.source == 'cat': a source over 3 "
                         r"symbols .* experiment 'bernmix' uses the model"),
    (post(tuner="adam"), r"models\.ft\.post_training\.tuner == 'adam', not a weight tuner; "
                         r"one of embedding, head, lora, full"),
    (post(tuner="soft_prompt"), r"tuner == 'soft_prompt', not a weight tuner \(soft_prompt "
                                r"tunes a prompt"),
    (post(steps=0), r"models\.ft\.post_training\.steps == 0"),
    (post(steps=1.5), r"models\.ft\.post_training\.steps"),
    (post(batch=0), r"models\.ft\.post_training\.batch == 0"),
    (post(learning_rate=0), r"models\.ft\.post_training\.learning_rate == 0"),
    (post(learning_rate=float("inf")), r"models\.ft\.post_training\.learning_rate == inf"),
    (post(lora_rank=2), r"models\.ft\.post_training\.lora_rank is set, but "
                        r"models\.ft\.post_training\.tuner is 'full'"),
    (post(tuner="lora", lora_rank=0), r"models\.ft\.post_training\.lora_rank == 0"),
    # The default LSTM adapts its 16 x 64 input weights: rank 16 at most.
    (post(tuner="lora", lora_rank=17), r"models\.ft\.post_training\.lora_rank == 17, must be "
                                       r"<= 16"),
    (post(epochs=3), r"models\.ft\.post_training: unknown key\(s\) \['epochs'\]"),
    ({**post(), "hidden_size": 8}, r"models\.ft: hidden_size set beside post_training"),
    ({**post(), "replicates": 2}, r"models\.ft: replicates set beside post_training"),
    ({**post(), "family": "transformer"}, r"models\.ft\.family == 'transformer', but its base "
                                          r"'lstm' is a lstm network"),
    ({"post_training": "lstm"}, r"models\.ft\.post_training: 'lstm' is not of type 'object'"),
]


@pytest.mark.parametrize("model, message", ERRORS)
def test_invalid_post_training_error_names_the_key(model, message):
    with pytest.raises(ConfigError, match=message):
        load(ft=model)


def test_a_cycle_of_bases_is_refused_by_name_and_a_chain_is_allowed():
    with pytest.raises(ConfigError, match=re.escape("models.a.post_training.base: the models' "
                                                    "bases form a cycle (a -> b -> a)")):
        load(a=post(base="b"), b=post(base="a"))
    study = load(ft=post(base="first"), first=post(source="narrow"))
    assert study.lineage("ft") == ["ft", "first", "lstm"] and study.family("ft") == "lstm"
    # The chain's networks are all built, the middle one too though no experiment lists it.
    assert [m for _, m, _ in study.networks()] == ["first", "ft", "lstm"]


def test_a_family_default_model_cannot_be_post_trained():
    with pytest.raises(ConfigError, match="models.transformer.post_training: 'transformer' "
                                          "names the transformer family's default model"):
        load(transformer=post())


def test_identity_is_the_bases_plus_the_post_training_settings():
    study = load()
    base, ft = study.model_identity("lstm", "bernmix"), study.model_identity("ft", "bernmix")
    assert base != ft
    # Post-training settings change the post-trained identity only, never the base's.
    for change in ({"steps": 5}, {"learning_rate": 0.01}, {"tuner": "head"}, {"batch": 8},
                   {"source": "coin_0.5"}):
        other = load(ft=post(**change))
        assert other.model_identity("lstm", "bernmix") == base
        assert other.model_identity("ft", "bernmix") != ft
    # Stating a default changes nothing; the source's parameters count, not its name.
    assert load(ft=post(tuner="full", steps=100)).model_identity("ft", "bernmix") == ft
    renamed = copy.deepcopy(CONFIG)
    renamed["sources"]["seven"] = renamed["sources"].pop("coin_0.7")
    renamed["experiments"]["bernmix"]["tasks"][0]["source"] = "seven"
    renamed["models"]["ft"]["post_training"]["source"] = "seven"
    assert config_lib.load(renamed).model_identity("ft", "bernmix") == ft
    # A change of the base retrains the base and retunes the post-trained network.
    wider = load(lstm={"family": "lstm", "hidden_size": 32})
    assert wider.model_identity("lstm", "bernmix") != base
    assert wider.model_identity("ft", "bernmix") != ft


def test_replicates_are_the_bases_each_tuned_from_the_same_replicate():
    study = load(lstm={"family": "lstm", "replicates": 2})
    assert study.replicates("ft") == 2
    assert study.predictor_replicates(study.experiments["bernmix"])[-2:] == [("ft", 0), ("ft", 1)]
    ids = {study.model_identity("ft", "bernmix", r) for r in (0, 1)}
    assert len(ids) == 2
    # Replicate 0 of a base with replicates is the base without: so is its post-training.
    assert study.model_identity("ft", "bernmix", 0) == load().model_identity("ft", "bernmix")
    assert layout.model_dir(study, study.experiments["bernmix"], "ft", 1).endswith(
        f"models/bernmix/ft-{study.model_identity('ft', 'bernmix', 1)}")


def test_an_unlisted_base_is_trained_long_enough_for_its_post_trained_models():
    config = copy.deepcopy(CONFIG)
    config["experiments"]["bernmix"]["predictors"] = ["bayes", "ft"]
    study = config_lib.load(config)
    # L_max + T of the experiment that lists only the post-trained model.
    assert study.network("lstm", "bernmix").sequence_length == 6
    assert ("bernmix", "lstm", 0) in study.networks()
    jobs = plan.jobs(study)
    rules = {(j.rule, j.wildcards.get("predictor")) for j in jobs if "source" in j.wildcards}
    assert rules == {("train_predictor", "lstm"), ("evaluate_predictor", "lstm"),
                     ("post_train_predictor", "ft"), ("evaluate_predictor", "ft")}
    (job,) = [j for j in jobs if j.rule == "post_train_predictor"]
    # 100 steps of 256 sequences of 6 symbols, a tuning step and a forward pass each.
    tokens = 100 * 256 * 6
    assert job.seconds == pytest.approx(
        plan.JOB_START_SECONDS + 0.2 + tokens * (plan.TUNING_SECONDS_PER_TOKEN["lstm"]
                                                 + plan.SCORING_SECONDS_PER_TOKEN["lstm"]))
    assert job.peak_bytes > plan.TORCH_BASELINE_BYTES
