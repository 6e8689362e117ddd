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
