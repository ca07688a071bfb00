"""Training a config into a run folder: the objectives, the loop, setup, per-epoch
evaluation, a finished run's final evaluations, mixed precision, several processes (DDP),
and measuring saved checkpoints.  The modules are the API (``xcf.train.runner.train``);
the package itself names nothing."""

__all__ = []
