"""Tuners (promptscape.neural.tuning) against the hard-prompt scoring, finite differences and
each other: a one-hot simplex prompt is that hard prompt, `none` is the empty prompt, a zero
LoRA is the base network, batched seeds equal one-at-a-time runs."""

import numpy as np
import pytest
import torch

from network_helpers import TINY_NETWORKS, scramble

from promptscape import prompts, seeding
from promptscape.neural import base, families, scoring, tuners, tuning

FAMILIES = families.NEURAL_FAMILIES
TINY = TINY_NETWORKS
V, T, K = 2, 5, 3
RTOL = 1e-5  # float32


def scrambled(family, vocab_size=V):
    """An untrained tiny model with large random weights (so that prompts matter)."""
    config = families.PredictorConfig(family=family, **TINY[family], steps=12, batch_size=8,
                                      sequence_length=16, warmup_steps=2)
    model = base.build_model(config, vocab_size)
    scramble(model)
    return model.eval()


def hard_losses(model, prompt: str, seqs: np.ndarray) -> np.ndarray:
    """The trie scoring's loss of each sequence after the hard prompt `prompt`."""
    predictor = scoring.NeuralPredictor(model, model.config, device="cpu")
    return predictor.prompt_losses([prompt], seqs)[0]


def build(name, model, prompt_rows, **settings):
    generator = torch.Generator().manual_seed(seeding.stable_seed("test", name) % 2**63)
    prompts_t = torch.as_tensor(np.asarray(prompt_rows)).long()
    return tuning.build(name, model, prompts_t, {**tuners.TUNERS[name].defaults, **settings},
                        generator)


SEQS = prompts.enumerate_sequences(T, V)


@pytest.mark.parametrize("family", FAMILIES)
def test_none_is_the_empty_prompt(family):
    model = scrambled(family)
    tuned = build("none", model, np.zeros((1, 0), dtype=np.int64))
    with torch.no_grad():
        got = tuning.sequence_losses(tuned, torch.as_tensor(SEQS)).double().numpy()[0]
    np.testing.assert_allclose(got, hard_losses(model, "", SEQS), rtol=RTOL)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("name", ["soft_prompt", "simplex_prompt"])
def test_prompt_tuners_start_at_their_hard_prompt(family, name):
    """A soft prompt at a prompt's embeddings, and a simplex prompt one-hot at it (logit far
    above the rest), read exactly as that hard prompt does."""
    model = scrambled(family)
    rows = np.array([[1, 0, 1], [0, 0, 1]])
    tuned = build(name, model, rows, init_logit=60.0)
    with torch.no_grad():
        got = tuning.sequence_losses(tuned, torch.as_tensor(SEQS)).double().numpy()
    for s, row in enumerate(rows):
        prompt = prompts.to_strings(row[None].astype(np.uint8), V)[0]
        np.testing.assert_allclose(got[s], hard_losses(model, prompt, SEQS), rtol=RTOL)


@pytest.mark.parametrize("family", FAMILIES)
def test_projected_prompt_is_the_argmax_and_scores_as_that_hard_prompt(family):
    model = scrambled(family)
    tuned = build("simplex_prompt", model, np.array([[1, 1, 0]]))
    with torch.no_grad():
        tuned.logits.add_(torch.randn(tuned.logits.shape, generator=torch.Generator().manual_seed(3)))
    projected = tuned.projected().numpy()
    np.testing.assert_array_equal(projected, tuned.logits.detach().argmax(-1).numpy())
    hard = build("simplex_prompt", model, projected, init_logit=60.0)
    prompt = prompts.to_strings(projected.astype(np.uint8), V)[0]
    with torch.no_grad():
        got = tuning.sequence_losses(hard, torch.as_tensor(SEQS)).double().numpy()[0]
    np.testing.assert_allclose(got, hard_losses(model, prompt, SEQS), rtol=RTOL)


@pytest.mark.parametrize("family", FAMILIES)
def test_zero_lora_and_untouched_weights_are_the_base_network(family):
    model = scrambled(family)
    reference = hard_losses(model, "", SEQS)
    for name in ("lora", "embedding", "head", "full"):
        tuned = build(name, model, np.zeros((1, 0), dtype=np.int64))
        with torch.no_grad():
            got = tuning.sequence_losses(tuned, torch.as_tensor(SEQS)).double().numpy()[0]
        np.testing.assert_allclose(got, reference, rtol=RTOL, err_msg=name)
    # The registry's torch-free width is the narrowest adapted matrix.
    assert tuners.lora_width(model.config) == tuning.lora_width(model)


def _fd_check(tuned, param, seqs, weights, indices, eps=1e-5):
    """Autograd against central differences of the float64 copy of `tuned`."""
    tuned = tuned.double()
    x = torch.as_tensor(seqs)
    w = torch.as_tensor(weights)

    def loss():
        return (tuning.sequence_losses(tuned, x) * w).sum()

    (grad,) = torch.autograd.grad(loss(), [param])
    for index in indices:
        with torch.no_grad():
            old = param[index].item()
            param[index] = old + eps
            up = loss().item()
            param[index] = old - eps
            down = loss().item()
            param[index] = old
        assert (up - down) / (2 * eps) == pytest.approx(grad[index].item(), rel=1e-5, abs=1e-8)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("name", ["soft_prompt", "prefix"])
def test_gradients_match_finite_differences(family, name):
    model = scrambled(family)
    rows = np.array([[1, 0, 1], [0, 1, 1]])
    tuned = build(name, model, rows)
    rng = np.random.default_rng(0)
    seqs = SEQS[rng.choice(len(SEQS), 6, replace=False)]
    weights = rng.random((2, 6))
    weights /= weights.sum(1, keepdims=True)
    params = [p for p in tuned.parameters() if p.requires_grad]
    for param in params[:2]:
        flat = [tuple(int(i) for i in np.unravel_index(j, param.shape))
                for j in rng.choice(param.numel(), 4, replace=False)]
        _fd_check(tuned, param, seqs, weights, flat)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("name", ["soft_prompt", "simplex_prompt", "prefix"])
def test_batched_seeds_equal_sequential_runs(family, name):
    model = scrambled(family)
    rows = np.array([[1, 0, 1], [0, 0, 0], [1, 1, 0]])
    rng = np.random.default_rng(1)
    seqs = SEQS[:12]
    weights = np.zeros((3, 12))
    for s in range(3):  # each seed its own D_N, 4 draws of 12 sequences
        np.add.at(weights[s], rng.integers(0, 12, 4), 0.25)
    batched = tuning.tune(build(name, model, rows), seqs, weights, steps=5,
                          learning_rate=0.05, record_at=[0, 2, 5])
    for s in range(3):
        keep = weights[s] > 0
        alone = tuning.tune(build(name, model, rows[s:s + 1]), seqs[keep], weights[s:s + 1, keep],
                            steps=5, learning_rate=0.05, record_at=[0, 2, 5])
        for b, a in zip(batched, alone):
            assert b.steps == a.steps
            np.testing.assert_allclose(b.train_loss[s], a.train_loss[0], rtol=RTOL)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("name", ["soft_prompt", "simplex_prompt", "prefix"])
def test_training_on_the_trie_walk_takes_the_steps_the_forward_takes(family, name, monkeypatch):
    """Prompt-space tuners train on one walk of the data sets' prefix trie
    (`TrieObjective`); with the walk's budget at 0 they train on the forward over every
    position: the same losses after every step, to float32 rounding."""
    model = scrambled(family)
    rows = np.array([[1, 0, 1], [0, 0, 0]])
    rng = np.random.default_rng(4)
    weights = np.zeros((2, len(SEQS)))
    for s in range(2):
        np.add.at(weights[s], rng.integers(0, len(SEQS), 10), 0.1)
    used = weights.sum(0) > 0
    seqs, weights = SEQS[used], weights[:, used]
    assert tuning.TrieObjective.build(build(name, model, rows), seqs, weights) is not None
    walked = tuning.tune(build(name, model, rows), seqs, weights, steps=6, learning_rate=0.05,
                         record_at=[0, 3, 6])
    monkeypatch.setattr(tuning, "TRIE_NODE_BUDGET", 0)
    assert tuning.TrieObjective.build(build(name, model, rows), seqs, weights) is None
    forward = tuning.tune(build(name, model, rows), seqs, weights, steps=6, learning_rate=0.05,
                          record_at=[0, 3, 6])
    for a, b in zip(walked, forward):
        np.testing.assert_allclose(a.train_loss, b.train_loss, rtol=1e-4)
    assert (walked[-1].train_loss < walked[0].train_loss).all()


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("name", ["soft_prompt", "simplex_prompt", "prefix", "embedding", "head",
                                  "lora", "full"])
def test_tuning_lowers_the_training_loss(family, name):
    model = scrambled(family)
    seqs = np.array([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]], dtype=np.uint8)
    weights = np.array([[0.5, 0.5]])
    records = tuning.tune(build(name, model, np.array([[0, 0, 0]])), seqs, weights, steps=20,
                          learning_rate=0.05, record_at=[0, 20])
    assert records[1].train_loss[0] < records[0].train_loss[0]
    # The base network is never changed by tuning.
    np.testing.assert_allclose(hard_losses(model, "", seqs), hard_losses(scrambled(family), "", seqs))


# ------------------------------------------------------------------ config
def _plan(**spec):
    lstm = families.PredictorConfig(family="lstm", hidden_size=8, embedding_dim=4)
    return tuners.parse(spec, where="experiments.e.tuning", predictors=["bayes", "lstm"],
                        networks={"lstm": lstm}, tasks=["a", "b"], dataset_sizes=[10, 100],
                        num_seeds=20, max_prompt_length=4)


def test_the_tuning_plan_fills_defaults_and_takes_per_tuner_settings():
    plan = _plan(tuners={"lora": {"lora_rank": 2}, "simplex_prompt": None}, tuning_steps=[50, 0])
    assert plan.tuners == (("lora", {"lora_rank": 2, "learning_rate": 0.01}),
                           ("simplex_prompt", {"init_logit": 4.0, "learning_rate": 0.01}))
    assert (plan.prompt_length, plan.steps, plan.tuning_steps, plan.init) == (4, 200, (0, 50),
                                                                              "search")
    assert (plan.networks, plan.tasks, plan.dataset_sizes, plan.num_seeds) == (
        ("lstm",), ("a", "b"), (10, 100), 20)
    assert _plan(tuners=["lora"], lora_rank=3).tuners == (
        ("lora", {"lora_rank": 3, "learning_rate": 0.01}),)
    # A tuner's own learning rate over tuning.learning_rate; none trains nothing.
    own = _plan(tuners={"none": None, "full": {"learning_rate": 1e-3}}, learning_rate=0.05)
    assert own.tuners == (("none", {}), ("full", {"learning_rate": 1e-3}))
    assert _plan(tuners=["head"], learning_rate=0.05).tuners == (
        ("head", {"learning_rate": 0.05}),)
    assert _plan(selection={"holdout": 0.25, "learning_rates": [0.1, 0.01]}).selection == {
        "holdout": 0.25, "learning_rates": [0.01, 0.1]}
    # How each tuner's optimum is found: the defaults, or the given keys over them.
    assert plan.optimum == tuners.OPTIMUM
    own = _plan(optimum={"learning_rates": [0.01, 0.005], "restarts": 0}).optimum
    assert own == {**tuners.OPTIMUM, "learning_rates": [0.005, 0.01], "restarts": 0}


@pytest.mark.parametrize("spec, message", [
    ({"tuners": ["gcg"]}, "tuning.tuners.gcg: unknown tuner"),
    ({"tuners": {"head": {"lora_rank": 2}}}, "tuning.tuners.head: unknown setting(s) ['lora_rank']"),
    ({"tuners": {"lora": {"lora_rank": 5}}}, "lora_rank == 5, must be <= 4, the narrowest layer"),
    ({"prompt_length": 5}, "tuning.prompt_length == 5, must be <= 4."),
    ({"prompt_length": 0}, "tuning.prompt_length == 0, must be >= 1."),
    ({"steps": 0}, "tuning.steps == 0, must be >= 1."),
    ({"learning_rate": 0}, "tuning.learning_rate == 0, must be > 0."),
    ({"tuning_steps": [0, 0]}, "listed twice"),
    ({"networks": ["bayes"]}, "tuning.networks[0] == 'bayes': the exact Bayes predictor"),
    ({"networks": ["gru"]}, "tuning.networks[0] == 'gru', not a network"),
    ({"tasks": ["c"]}, "tuning.tasks[0] == 'c', not a task"),
    ({"lora_rank": 2}, "lora_rank is set, but lora is not among"),
    ({"seeds": 3}, "unknown key(s) ['seeds']"),
    ({"optimum": {"rates": [0.1]}}, "tuning.optimum: unknown key(s) ['rates']"),
    ({"optimum": {"learning_rates": []}}, "tuning.optimum.learning_rates == [], must be"),
    ({"optimum": {"learning_rates": [0.1, -1]}}, "tuning.optimum.learning_rates[1] == -1"),
    ({"optimum": {"max_steps": 0}}, "tuning.optimum.max_steps == 0, must be >= 1."),
    ({"optimum": 3}, "tuning.optimum == 3, must be a mapping"),
    ({"tuners": {"none": {"learning_rate": 0.1}}}, "tuning.tuners.none: unknown setting(s)"),
    ({"selection": {"holdout": 0.25}}, "tuning.selection == {'holdout': 0.25}, must be"),
    ({"selection": {"holdout": 1, "learning_rates": [0.1]}}, "tuning.selection.holdout == 1"),
    ({"selection": {"holdout": 0.2, "learning_rates": []}}, "selection.learning_rates == []"),
])
def test_a_mistaken_tuning_section_is_a_named_error(spec, message):
    with pytest.raises(tuners.ConfigError) as error:
        _plan(**spec)
    assert message in str(error.value)


def test_an_untrained_network_keeps_its_initialisation_and_a_trained_one_its_identity():
    config = families.PredictorConfig(family="lstm", hidden_size=8, embedding_dim=4, steps=3,
                                      batch_size=4, sequence_length=6)
    assert "pretrained" not in config.to_dict()
    untrained = families.PredictorConfig.from_dict({**config.to_dict(), "pretrained": False})
    assert untrained.to_dict()["pretrained"] is False
    from promptscape.neural import trainer
    from promptscape.sources import build_source

    source = build_source({"kind": "coin_mixture", "thetas": [0.2, 0.7]})
    model, curve = trainer.train(untrained, source, device="cpu")
    assert len(curve) == 0
    initial = base.build_model(untrained, 2)
    for (name, a), (_, b) in zip(model.state_dict().items(), initial.state_dict().items()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("name", ["none", "soft_prompt", "simplex_prompt", "prefix", "lora"])
def test_paired_sequences_equal_the_shared_forward(family, name):
    """Training feeds each seed its own sequences (S, B, T); scoring shares (B, T): the two
    agree sequence for sequence."""
    model = scrambled(family)
    rows = np.array([[1, 0, 1], [0, 1, 1]]) if name != "lora" else np.zeros((1, 3), dtype=int)
    tuned = build(name, model, rows)
    with torch.no_grad():
        for p in tuned.parameters():
            if p.requires_grad:
                p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(5)))
        seqs = torch.as_tensor(SEQS[:12])
        shared = tuning.sequence_losses(tuned, seqs)
        own = torch.stack([seqs[s::2][:6] for s in range(tuned.seeds)])  # (S, 6, T)
        got = tuning.sequence_losses(tuned, own)
    for s in range(tuned.seeds):
        np.testing.assert_allclose(got[s].numpy(), shared[s, s::2][:6].numpy(), rtol=RTOL)


@pytest.mark.parametrize("family", FAMILIES)
def test_padded_start_positions_hold_the_mean_symbol_embedding(family):
    """A hard prompt shorter than K starts a prompt-space tuner padded on the left: a soft
    prompt holds the mean of the symbols' embeddings there, a simplex prompt the uniform
    mixture (the same vector), and an LSTM's prefix is the state after the prompt itself."""
    model = scrambled(family)
    pad = tuning.PAD
    soft = build("soft_prompt", model, [[pad, pad, 1]])
    simplex = build("simplex_prompt", model, [[pad, pad, 1]])
    mean = model.embed.weight[:V].mean(0)
    for tuned in (soft, simplex):
        inputs = tuned.inputs()[0].detach()
        torch.testing.assert_close(inputs[0], mean.detach())
        torch.testing.assert_close(inputs[1], mean.detach())
    torch.testing.assert_close(soft.inputs()[0, 2].detach(), model.embed.weight[1].detach())
    if family == "lstm":
        padded = build("prefix", model, [[pad, pad, 1]])
        short = build("prefix", model, [[1]])
        torch.testing.assert_close(padded.h0, short.h0)
        torch.testing.assert_close(padded.c0, short.c0)
