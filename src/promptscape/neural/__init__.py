"""The neural predictors: one module per network family, the trie scoring, training,
checkpoints, and the torch-free family registry (`families`)."""
