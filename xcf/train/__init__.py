"""Training a config into a run folder: the objectives, the loop, setup, per-epoch
evaluation, mixed precision, several processes (DDP), and measuring saved checkpoints."""

__all__ = []  # a folder of modules; import them by name
