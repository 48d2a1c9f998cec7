"""One folder per algorithm: config.py (typed config), module.py (networks), learner.py (losses)."""
