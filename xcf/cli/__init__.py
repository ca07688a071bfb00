"""The command line: ``xcf train / measure / measure-model / plan / launch / status`` parse
their arguments into library calls; the launcher runs a page's planned runs."""

__all__ = []  # a folder of modules; import them by name
