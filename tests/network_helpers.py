"""Tiny networks for the tests: every test that builds one trains or runs it in well under a
second on one core. One definition, so the network tests agree on what "tiny" is."""

TINY_NETWORKS = {
    "lstm": dict(embedding_dim=4, hidden_size=8, num_layers=2),
    "transformer": dict(hidden_size=8, num_layers=2, num_heads=2),
}
