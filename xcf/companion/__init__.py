"""The book's own layer: profiles, the runs each page and claim reads, figures, the rule
book of the paper's claims and of the hypothesis test, the paper's numbers, and run costs."""

__all__ = []  # a folder of modules; import them by name
