"""Training: losses, metrics, callbacks and the per-fold training driver (paper §3.4)."""
