"""Running experiments: the training loop, run directories, checkpoints, metrics."""
