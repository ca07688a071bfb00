"""The synthetic three-class Gaussian model of Section 4 and Appendix E.

- :mod:`.structure`   incidence tables shared by the torch and sympy models (Eq. 8, 16)
- :mod:`.model`       sampler, f_w, margin / smoothed losses, Lemma 2's delta*, PGD on delta
- :mod:`.gaussian`    Lemma 1 by integration; a sympy expectation operator
- :mod:`.symbolic`    derivations: Eq. 29, Eq. 39, optima, eps0, eps1, Lemma 3, Appendix E.5
- this package itself: numeric functions lambdified from those derivations (validated
  inputs), implemented in the private ``_solutions`` and ``_checks``
- :mod:`.montecarlo`  sample means with CIs, brute force over the box, training w by PGD
- :mod:`.plots`       figures for the notebook

Public numeric API: :func:`eps0`, :func:`eps1`, :func:`optimal_w` (and friends), imported
as ``xcf.theory.eps0``: their one public path (the modules holding them are private).
"""
from ._checks import check_model
from ._solutions import (all_classes_probability, beta_limit, eps0, eps0_copies, eps1,
                        expected_loss, optimal_w, optimal_w_copies, theorem2_probability,
                        theorem2_sigma1)

__all__ = ["check_model", "eps0", "eps1", "optimal_w", "beta_limit", "expected_loss", "eps0_copies",
           "optimal_w_copies", "theorem2_probability", "theorem2_sigma1",
           "all_classes_probability"]
