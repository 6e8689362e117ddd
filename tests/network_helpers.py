"""Tiny networks for the tests: every test that builds one trains or runs it in well under a
second on one core. One definition, so the network tests agree on what "tiny" is."""

TINY_NETWORKS = {
    "lstm": dict(embedding_dim=4, hidden_size=8, num_layers=2),
    "transformer": dict(hidden_size=8, num_layers=2, num_heads=2),
}


def scramble(model, seed: int = 7, scale: float = 0.7):
    """Add large random noise to every weight of `model` (in place; returned): a freshly
    initialised network predicts about 1/2 everywhere, which would make comparisons of
    prompts pass trivially."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * scale)
    return model


def tiny_config(family: str, **overrides):
    """A tiny network's config (`TINY_NETWORKS`; 12 steps of batch 8 on sequences of 8),
    any field overridden."""
    from promptscape.neural import families

    fields = dict(TINY_NETWORKS[family], steps=12, batch_size=8, sequence_length=8,
                  warmup_steps=2)
    return families.PredictorConfig(family=family, **{**fields, **overrides})


def scrambled_predictor(family: str, V: int = 2, *, device: str = "auto", **overrides):
    """An untrained tiny network (`tiny_config`, fields overridden) on an alphabet of V
    symbols with large random weights (`scramble`), so that its predictions vary with the
    context and prompts matter."""
    from promptscape.neural import base, scoring

    config = tiny_config(family, **overrides)
    return scoring.NeuralPredictor(scramble(base.build_model(config, V)), config, device=device)
