"""Post-training a trained network on another source (promptscape.neural.post_trainer) and its
stage: the excess loss against the post-training source's exact Bayes predictor falls, only
the tuner's weights move, the base is never changed, and the result is a checkpoint every
stage loads like any other network (the landscape stage here)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from network_helpers import TINY_NETWORKS
from promptscape import predictors, seeding
from promptscape.neural import checkpoints, families, post_trainer, post_training, trainer
from promptscape.neural.base import build_model
from promptscape.study import tables
from promptscape.pipeline.stages import datasets_stage
from promptscape.pipeline.stages import landscape_stage
from promptscape.pipeline.stages import training_stage
from promptscape.sources import build_source, symbol_losses

BERNMIX = {"kind": "coin_mixture", "thetas": [0.2, 0.7]}
COIN = {"kind": "coin", "theta": 0.7}
T = 6


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A tiny LSTM trained briefly on bernmix, saved as a checkpoint: (path, network, config)."""
    torch.set_num_threads(1)
    config = families.PredictorConfig(family="lstm", steps=40, batch_size=32,
                                      sequence_length=T, learning_rate=0.01,
                                      **{k: v for k, v in TINY_NETWORKS["lstm"].items()
                                         if k != "num_layers"})
    source = build_source(BERNMIX)
    net, curve = trainer.train(config, source, device="cpu")
    path = tmp_path_factory.mktemp("base") / "model.pt"
    checkpoints.save_checkpoint(path, model=net, config=config, source=source,
                                step=config.steps, curve=curve)
    return str(path), net, config


def _excess(net, source, n=2000) -> float:
    """Mean per-symbol loss of `net` minus the exact Bayes predictor of `source` on n fresh
    sequences of it (the same sequences for both)."""
    seqs = source.sample(n, T, seeding.numpy_generator("test_excess", source.to_dict()))
    with torch.no_grad():
        tokens = torch.as_tensor(seqs.astype(np.int64))
        neural = -net(tokens).gather(-1, tokens[..., None])[..., 0].double().mean().item()
    bayes = symbol_losses(predictors.BayesPredictor(source).log_predictive(seqs), seqs).mean()
    return neural - float(bayes)


def _post(tuner="full", **settings):
    spec = {"base": "lstm", "source": "coin_0.7", "tuner": tuner, "steps": 40,
            "learning_rate": 0.03, "batch": 32, **settings}
    return post_training.parse(spec, where="models.ft.post_training", models=["lstm"],
                               sources=["coin_0.7"])


def test_post_training_approaches_the_bayes_predictor_of_its_source(base):
    _, net, config = base
    coin, bernmix = build_source(COIN), build_source(BERNMIX)
    tuned, curve = post_trainer.post_train(net, _post(), coin, bernmix, sequence_length=T,
                                           identity="t", device="cpu")
    before, after = _excess(net, coin), _excess(tuned, coin)
    # Bernmix's predictor is not coin(0.7)'s: the excess loss is far above noise before, and
    # fine-tuning takes most of it away.
    assert before > 0.01 and after < before / 3
    # The curve: losses before each step's update, the Bayes loss that of coin(0.7) (the
    # entropy H(0.7) per symbol, within 5 standard errors of a batch of 32 x 6 symbols).
    assert list(curve["step"]) == list(range(40))
    h = -(0.7 * math.log(0.7) + 0.3 * math.log(0.3))
    sd = math.sqrt(0.7 * 0.3) * abs(math.log(0.7 / 0.3))
    assert np.all(np.abs(curve["bayes_loss"] - h) < 5 * sd / math.sqrt(32 * T))
    excess = curve["loss"] - curve["bayes_loss"]
    assert excess.iloc[-5:].mean() < excess.iloc[:5].mean() / 3
    # Forgetting: the loss on bernmix against bernmix's Bayes predictor grows.
    forgetting = curve["pretraining_loss"] - curve["pretraining_bayes_loss"]
    assert forgetting.iloc[-5:].mean() > forgetting.iloc[:5].mean()
    assert _excess(tuned, bernmix) > _excess(net, bernmix)


@pytest.mark.parametrize("tuner, moved", [
    ("head", lambda n: n.startswith("unembed.")),
    ("embedding", lambda n: n == "embed.weight"),
    ("lora", lambda n: n.startswith("lstm.weight_")),
])
def test_each_tuner_moves_its_own_weights_only_and_leaves_the_base_unchanged(base, tuner,
                                                                              moved):
    _, net, _ = base
    before = {k: v.clone() for k, v in net.state_dict().items()}
    post = _post(tuner, steps=3, **({"lora_rank": 2} if tuner == "lora" else {}))
    tuned, _ = post_trainer.post_train(net, post, build_source(COIN), build_source(BERNMIX),
                                       sequence_length=T, identity="t", device="cpu")
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    changed = {k for k, v in tuned.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(moved(k) for k in changed)


def test_post_training_is_deterministic_and_seeded_by_identity(base):
    _, net, _ = base
    runs = [post_trainer.post_train(net, _post(steps=3), build_source(COIN),
                                    build_source(BERNMIX), sequence_length=T, identity=i,
                                    device="cpu") for i in ("a", "a", "b")]
    (a, curve_a), (b, curve_b), (c, curve_c) = runs
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    assert curve_a.equals(curve_b) and not curve_a.equals(curve_c)


def test_the_stage_writes_a_checkpoint_and_curve_rows_on_both_sources_that_the_landscape_reads(
        base, tmp_path):
    path, _, config = base
    model, curve = str(tmp_path / "ft" / "model.pt"), str(tmp_path / "ft" / "curve.parquet")
    training_stage.post_train_predictor(
        base_model=path, model=model, curve=curve, name="ft", identity="0123456789",
        source_name="bernmix", pretraining=BERNMIX,
        post_training=_post(steps=4).to_dict(), post_training_source=COIN, device="cpu")
    frame = tables.read(curve, "training_curve")
    assert sorted(set(frame["evaluated_on"])) == ["bernmix", "coin_0.7"]
    assert len(frame) == 8 and set(frame["source"]) == {"bernmix"}
    assert np.allclose(frame["regret"], frame["loss"] - frame["bayes_loss"])
    # A network like any other: its base's config and pretraining source, its own weights.
    loaded = checkpoints.load_predictor(model, device="cpu")
    assert loaded.config == config
    assert checkpoints.load_source(model).to_dict() == build_source(BERNMIX).to_dict()
    evaluation = str(tmp_path / "evaluation.parquet")
    datasets_stage.simulate_evaluation(output=evaluation, experiment="e", task_name="coin_0.7",
                                       task=COIN, task_length=4, size=100)
    landscape = str(tmp_path / "landscape.parquet")
    landscape_stage.compute_landscape(
        evaluation=evaluation, output=landscape, predictor="ft", family="lstm",
        pretraining=BERNMIX, experiment="e", task_name="coin_0.7", task=COIN, task_length=4,
        max_prompt_length=2, enumeration_budget=2**27, model=model, device="cpu")
    land = tables.read(landscape, "landscape")
    assert set(land["predictor"]) == {"ft"} and len(land) == 7
    assert land["kl"].min() >= -1e-9


def test_a_base_of_another_pretraining_source_is_refused(base, tmp_path):
    path, _, _ = base
    with pytest.raises(ValueError, match="was not trained on 'coins'"):
        training_stage.post_train_predictor(
            base_model=path, model=str(tmp_path / "m.pt"), curve=str(tmp_path / "c.parquet"),
            name="ft", identity="0123456789", source_name="coins", pretraining=COIN,
            post_training=_post(steps=1).to_dict(), post_training_source=COIN, device="cpu")


def test_an_untouched_network_is_rebuilt_exactly_from_its_checkpoint(base, tmp_path):
    """The merged checkpoint of zero-effect tuning (lora: B = 0 at the start) is its base."""
    _, net, config = base
    post = _post("lora", steps=1, learning_rate=1e-12, lora_rank=1)
    tuned, _ = post_trainer.post_train(net, post, build_source(COIN), build_source(BERNMIX),
                                       sequence_length=T, identity="t", device="cpu")
    fresh = build_model(config, 2)
    fresh.load_state_dict(tuned.state_dict())
    assert _excess(fresh, build_source(COIN)) == pytest.approx(_excess(net, build_source(COIN)),
                                                               abs=1e-6)
