"""Neural predictors: alignment, prefix caching, reproducible training, config errors."""

import json
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from promptscape import predictors, prompts, seeding, validation
from promptscape.neural import base, checkpoints, families, scoring, trainer
from promptscape.sources import build_source

from network_helpers import scrambled_predictor, tiny_config

FAMILIES = families.NEURAL_FAMILIES
BERNMIX = build_source({"kind": "coin_mixture", "thetas": [0.2, 0.7]})


def task_sequences(n, length, seed=0):
    return BERNMIX.sample(n, length, seeding.numpy_generator("test_models", n, length, seed))


def picked_losses(log_predictive, seqs):
    """-log q(x_t | ...) at each position: (B, T)."""
    return -np.take_along_axis(log_predictive, seqs[..., None].astype(np.int64), axis=-1)[..., 0]


@pytest.mark.parametrize("family", FAMILIES)
def test_forward_matches_prefix_by_prefix_reference(family):
    predictor = scrambled_predictor(family)
    seqs = task_sequences(16, 8)
    full = predictor.log_predictive(seqs)
    assert full.shape == (16, 8, 2) and full.dtype == np.float64
    assert full[..., 1].std() > 0.05, "predictions must vary for this test to mean anything"
    np.testing.assert_allclose(np.exp(full).sum(-1), 1.0, rtol=1e-6)
    for t in range(8):
        # Predict x_t from BOS + x_<t alone: the model sees x_1..x_t, of which x_t is the
        # target and never an input.
        step = predictor.log_predictive(seqs[:, :t + 1])[:, t]
        np.testing.assert_allclose(full[:, t], step, atol=1e-5)
    # Position 0 reads BOS only, so it is the same for every sequence.
    np.testing.assert_allclose(full[:, 0], np.broadcast_to(full[:1, 0], (16, 2)), atol=1e-6)


@pytest.mark.parametrize("family", FAMILIES)
def test_prompt_symbols_are_never_scored(family):
    predictor = scrambled_predictor(family, sequence_length=16)
    seqs = task_sequences(5, 5)
    for prompt in ["", "1", "0110"]:
        L = len(prompt)
        joined = np.concatenate(
            [np.broadcast_to(prompts.to_array(prompt), (5, L)), seqs], axis=1)
        expected = picked_losses(predictor.log_predictive(joined), joined)[:, L:].sum(1)
        got = predictor.prompt_losses([prompt], seqs)[0]
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
        # Flipping the prompt's first symbol changes the context, not what is scored: the
        # loss must still equal the sum over the task positions of the flipped joint sequence.
        if L:
            flipped = joined.copy()
            flipped[:, 0] ^= 1
            alt = "".join("01"[b] for b in flipped[0, :L])
            expected = picked_losses(predictor.log_predictive(flipped), flipped)[:, L:].sum(1)
            np.testing.assert_allclose(predictor.prompt_losses([alt], seqs)[0], expected,
                                       rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("max_tokens, n_seqs", [(1 << 17, 24), (50, 8)])
@pytest.mark.parametrize("family", FAMILIES)
def test_prefix_caching_matches_full_concatenation(family, max_tokens, n_seqs):
    predictor = scrambled_predictor(family, sequence_length=16)
    # 50 tokens are 5 (prompt, sequence) pairs of 10 symbols: chunks over prompts and sequences.
    predictor.max_tokens = max_tokens
    all_prompts = prompts.all_prompts(5, 2)
    seqs = task_sequences(n_seqs, 10)
    cached = predictor.prompt_losses(all_prompts, seqs)
    full = predictors.Predictor.prompt_losses(predictor, all_prompts, seqs)
    assert cached.shape == (63, n_seqs) and cached.dtype == np.float64
    assert cached.std(axis=0).mean() > 0.05, "prompts must matter for this test to mean anything"
    np.testing.assert_allclose(cached, full, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(predictor.sequence_losses(seqs), full[0], rtol=1e-5, atol=1e-5)


def test_transformer_rejects_contexts_longer_than_its_position_table():
    predictor = scrambled_predictor("transformer")  # max_context_length 8
    with pytest.raises(ValueError, match=re.escape("must be <= max_context_length (8)")):
        predictor.prompt_losses(["000"], task_sequences(2, 6))


@pytest.mark.parametrize("family", FAMILIES)
def test_cpu_training_is_bit_reproducible(family):
    config = tiny_config(family)
    model_a, curve_a = trainer.train(config, BERNMIX, progress=lambda line: None)
    model_b, curve_b = trainer.train(config, BERNMIX, progress=lambda line: None)
    pd.testing.assert_frame_equal(curve_a, curve_b, check_exact=True)
    state_b = model_b.state_dict()
    for name, value in model_a.state_dict().items():
        assert torch.equal(value, state_b[name]), name
    assert list(curve_a.columns) == ["step", "loss", "bayes_loss", "regret"]
    assert curve_a.dtypes.tolist() == [np.int64, np.float64, np.float64, np.float64]
    np.testing.assert_allclose(curve_a.regret, curve_a.loss - curve_a.bayes_loss, atol=1e-15)


def test_training_leaves_the_global_rng_alone():
    before = torch.random.get_rng_state()
    trainer.train(tiny_config("transformer", steps=2), BERNMIX, progress=lambda line: None)
    assert torch.equal(before, torch.random.get_rng_state())


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("family", FAMILIES)
def test_resume_from_checkpoint_equals_an_uninterrupted_run(family, tmp_path):
    config = tiny_config(family)
    model_full, curve_full = trainer.train(config, BERNMIX, progress=lambda line: None)

    def crash(line):
        raise Interrupt(line)

    path = tmp_path / "model.pt"
    # The run dies right after its checkpoint at step 5 (progress reports after saving).
    with pytest.raises(Interrupt):
        trainer.train(config, BERNMIX, progress=crash, progress_every=5,
                     checkpoint_path=path, checkpoint_every=5)
    assert checkpoints.load_checkpoint(path)["step"] == 5
    lines = []
    model, curve = trainer.train(config, BERNMIX, progress=lines.append, resume_from=path,
                                checkpoint_path=path, checkpoint_every=5)
    assert lines[0].startswith(f"resumed from {path} at step 5")
    pd.testing.assert_frame_equal(curve, curve_full, check_exact=True)
    state_full = model_full.state_dict()
    for name, value in model.state_dict().items():
        assert torch.equal(value, state_full[name]), name
    # The final checkpoint holds the finished model, loadable as a predictor.
    assert checkpoints.load_checkpoint(path)["step"] == config.steps
    loaded = checkpoints.load_predictor(path)
    assert type(loaded) is scoring.NeuralPredictor and loaded.family == family
    seqs = task_sequences(4, 6)
    reference = scoring.NeuralPredictor(model_full, config)
    np.testing.assert_array_equal(loaded.log_predictive(seqs), reference.log_predictive(seqs))
    assert checkpoints.load_source(path) == BERNMIX


def test_a_checkpoint_written_twice_is_byte_identical(tmp_path):
    """The archive's record names do not come from the temporary file it is written to."""
    config = tiny_config("lstm")
    model, curve = trainer.train(config, BERNMIX, progress=lambda line: None)
    written = []
    for name in ("first.pt", "second.pt"):
        checkpoints.save_checkpoint(tmp_path / name, model=model, config=config,
                                    source=BERNMIX, step=config.steps, curve=curve)
        written.append((tmp_path / name).read_bytes())
    assert written[0] == written[1]


def test_resume_refuses_a_checkpoint_of_another_config(tmp_path):
    path = tmp_path / "model.pt"
    trainer.train(tiny_config("lstm", steps=2), BERNMIX, progress=lambda line: None,
                 checkpoint_path=path)
    with pytest.raises(ValueError, match="made for another config"):
        trainer.train(tiny_config("lstm", steps=3), BERNMIX, progress=lambda line: None,
                     resume_from=path)


def test_training_logs_progress_to_a_logger(caplog):
    with caplog.at_level(logging.INFO, logger="promptscape.neural.trainer"):
        trainer.train(tiny_config("lstm", steps=4), BERNMIX, progress_every=2)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and lines[-1].startswith("step 4/4  loss ")
    assert "regret" in lines[-1] and "steps/s" in lines[-1] and "s left" in lines[-1]


def test_auto_device_falls_back_to_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert base.resolve_device("auto") == torch.device("cpu")
    predictor = scrambled_predictor("lstm")
    assert predictor.device == torch.device("cpu")
    assert next(predictor.model.parameters()).device.type == "cpu"
    assert base.resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(validation.ConfigError,
                       match=re.escape("training.device == 'tpu', must be one of")):
        base.resolve_device("tpu")


def test_cuda_without_cuda_is_a_named_error_before_any_work(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(validation.ConfigError,
                       match=re.escape("training.device == 'cuda', but torch sees no CUDA")):
        base.resolve_device("cuda")


@pytest.mark.parametrize("family", FAMILIES)
def test_trained_model_beats_the_untrained_one_on_held_out_data(family):
    config = tiny_config(family, steps=60, batch_size=32, learning_rate=1e-2)
    model, curve = trainer.train(config, BERNMIX, progress=lambda line: None)
    trained = scoring.NeuralPredictor(model, config)
    untrained = scoring.NeuralPredictor(base.build_model(config, 2), config)
    held_out = task_sequences(2000, 8, seed=1)
    regret_trained = scoring.regret_by_position(trained, BERNMIX, held_out)
    regret_untrained = scoring.regret_by_position(untrained, BERNMIX, held_out)
    assert regret_trained.shape == (8,)
    # An untrained model predicts about 1/2: about 0.07 nats/symbol worse than Bayes here.
    assert regret_untrained.mean() > 0.05
    assert regret_trained.mean() < regret_untrained.mean() - 0.03
    assert (regret_trained > -0.01).all()  # nothing beats Bayes beyond sampling noise
    # The curve's Bayes column is the exact Bayes loss of each step's batch.
    batch = trainer.training_batch(config, BERNMIX, 3)
    bayes = picked_losses(BERNMIX.log_predictive(batch), batch).mean()
    assert curve.bayes_loss[3] == pytest.approx(bayes, rel=1e-12)


@pytest.mark.parametrize("family", FAMILIES)
def test_config_round_trips_through_dict(family):
    config = tiny_config(family)
    assert families.PredictorConfig.from_dict(config.to_dict()) == config
    default = families.PredictorConfig(family=family)
    assert all(default.to_dict()[k] == v for k, v in families.FAMILIES[family].defaults.items())
    assert base.model_class(family) is base.build_model(default, 2).__class__


@pytest.mark.parametrize(
    "fields, error, message",
    [
        (dict(family="gru"), ValueError,
         "family == 'gru', must be a network family: one of 'lstm', 'transformer'."),
        (dict(family="bayes"), ValueError,
         "family == 'bayes', must be a network family: one of 'lstm', 'transformer'."),
        (dict(family="lstm", hidden_size=0), ValueError, "lstm.hidden_size == 0, must be > 0."),
        (dict(family="transformer", num_layers=-1), ValueError,
         "transformer.num_layers == -1, must be > 0."),
        (dict(family="lstm", batch_size=2.5), TypeError,
         "lstm.batch_size must be Integral, not float (2.5)."),
        (dict(family="transformer", learning_rate=0.0), ValueError,
         "transformer.learning_rate == 0.0, must be > 0."),
        (dict(family="lstm", grad_clip=float("nan")), ValueError,
         "lstm.grad_clip == nan, must be finite."),
        (dict(family="lstm", warmup_steps=-1), ValueError,
         "lstm.warmup_steps == -1, must be >= 0."),
        (dict(family="lstm", lr_schedule="linear"), ValueError,
         "lstm.lr_schedule == 'linear', must be one of 'cosine', 'constant'."),
        (dict(family="transformer", hidden_size=30, num_heads=4), ValueError,
         "transformer.hidden_size == 30, must be divisible by transformer.num_heads (4)."),
        (dict(family="transformer", embedding_dim=16, hidden_size=32), ValueError,
         "transformer.embedding_dim == 16, must be unset or equal transformer.hidden_size (32)."),
        (dict(family="transformer", max_context_length=8), ValueError,
         "transformer.max_context_length == 8, must be >= transformer.sequence_length (16)."),
        (dict(family="lstm", num_heads=2), ValueError,
         "lstm.num_heads == 2, must be unset: the lstm family has no num_heads."),
    ],
)
def test_invalid_config_error_names_field(fields, error, message):
    with pytest.raises(error, match=re.escape(message)):
        families.PredictorConfig(**fields)
    # From a config mapping, the same message comes prefixed by where the config sits.
    with pytest.raises(validation.ConfigError, match=re.escape(f"model: {message}")):
        families.PredictorConfig.from_dict(fields, where="model")


def test_config_mapping_errors_name_the_key():
    with pytest.raises(validation.ConfigError,
                       match=re.escape("predictor: unknown key(s) ['hiden_size']")):
        families.PredictorConfig.from_dict({"family": "lstm", "hiden_size": 8})
    with pytest.raises(validation.ConfigError, match=re.escape("predictor.family is required")):
        families.PredictorConfig.from_dict({"hidden_size": 8})


def test_prompt_losses_log_progress_on_long_runs(monkeypatch, caplog):
    """Scoring many prompts with a network (score_prompts, searches past L_max) takes
    minutes: it logs its progress (here every chunk, with the interval set to 0)."""
    from promptscape import logs

    monkeypatch.setattr(logs.Progress.__init__, "__defaults__", (0.0,))
    caplog.set_level(logging.INFO, logger="promptscape")
    predictor = scrambled_predictor("lstm")
    predictor.max_tokens = 8 * 4  # 8 (prompt, sequence) pairs of T = 4 per chunk
    all_prompts = prompts.all_prompts(3, 2)
    predictor.prompt_losses(all_prompts, task_sequences(4, 4))
    messages = [r.getMessage() for r in caplog.records if r.name == "promptscape.neural.scoring"]
    assert messages and messages[-1].startswith(f"prompts scored on 4 sequences: "
                                                f"{len(all_prompts)}/{len(all_prompts)} (")


# ------------------------------------------------------------------ beyond binary
DIRICHLET3 = build_source({"kind": "dirichlet_categorical", "alpha": [1.0, 1.0, 1.0]})

# The initial parameters of the default binary networks, as the code before networks took
# the vocabulary size as an argument made them (tests/data/networks/binary_init.json): a binary
# network keeps its identity, its seed and its initialisation. Written on another machine:
# torch draws normal variates with a SIMD kernel chosen by CPU (ATEN_CPU_CAPABILITY), whose
# float32 results differ from the scalar kernel's by up to about 5e-7 of a tensor's largest
# value, so the values are compared to 1e-5 of it, and the shapes exactly.
BINARY_INIT = json.loads((Path(__file__).parents[2] / "data" / "networks"
                          / "binary_init.json").read_text())


@pytest.mark.stored_reference
@pytest.mark.parametrize("family", FAMILIES)
def test_binary_networks_keep_their_initialisation(family):
    config = families.PredictorConfig.from_dict({"family": family, "sequence_length": 15})
    state = base.build_model(config, 2).state_dict()
    expected = BINARY_INIT[family]
    assert list(state) == list(expected)
    for name, value in state.items():
        reference = expected[name]
        flat = value.numpy().astype(np.float64).reshape(-1)
        assert list(value.shape) == reference["shape"], name
        scale = max(np.abs(reference["values"]).max(), 1e-30)
        np.testing.assert_allclose(flat[reference["positions"]], reference["values"],
                                   rtol=0, atol=1e-5 * scale, err_msg=name)
        np.testing.assert_allclose(np.abs(flat).sum(), reference["abs_sum"], rtol=1e-5,
                                   err_msg=name)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_ternary_network_trains_scores_and_round_trips(family, tmp_path):
    config = tiny_config(family, steps=60, batch_size=32, sequence_length=8,
                         learning_rate=1e-2)
    path = tmp_path / "model.pt"
    model, curve = trainer.train(config, DIRICHLET3, progress=lambda line: None,
                                checkpoint_path=path)
    assert model.embed.num_embeddings == 4 and model.unembed.out_features == 3
    # It learns: the regret against the exact Bayes predictor falls.
    assert curve["regret"].iloc[-10:].mean() < curve["regret"].iloc[:10].mean()
    predictor = checkpoints.load_predictor(path)
    assert predictor.vocab_size == 3
    seqs = DIRICHLET3.sample(12, 6, seeding.numpy_generator("test_models", "ternary"))
    logp = predictor.log_predictive(seqs)
    assert logp.shape == (12, 6, 3)
    np.testing.assert_allclose(np.exp(logp).sum(-1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(logp, scoring.NeuralPredictor(model, config).log_predictive(seqs))
    # Prefix caching over three symbols equals scoring every concatenation.
    some = prompts.all_prompts(2, 3)
    np.testing.assert_allclose(predictor.prompt_losses(some, seqs),
                               predictors.Predictor.prompt_losses(predictor, some, seqs),
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=re.escape("sequences must hold symbols 0..2")):
        predictor.log_predictive(np.full((1, 3), 3, dtype=np.uint8))
    # A prompt symbol equal to V would be read as the start token: refused by name.
    with pytest.raises(ValueError, match=re.escape("prompts must hold symbols 0..2")):
        predictor.prompt_losses(["13"], seqs)
