"""Run folders: a training run's config and identity (its key, its folder's name), its lock,
checkpoints, provenance and the resumable folder that holds them."""

__all__ = []  # a folder of modules; import them by name
