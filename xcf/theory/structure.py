"""Incidence tables of the three-class model: the single source of truth for Eq. 8 and Eq. 16.

Logit i weighs exclusive feature i and the two shared features j != i (Eq. 16), and class i
draws exactly those coordinates from N(mu, sigma^2), the others being 0 (Eq. 8).  Both
:mod:`xcf.theory.model` (torch) and :mod:`xcf.theory.symbolic` (sympy) build from these.
"""
from fractions import Fraction

__all__ = ["EXCLUSIVE", "SHARED", "SMOOTHING"]

EXCLUSIVE = ((1, 0, 0), (0, 1, 0), (0, 0, 1))  # x_E,j feeds logit i iff j == i
SHARED = ((0, 1, 1), (1, 0, 1), (1, 1, 0))     # x_C,j feeds logit i iff j != i
# Weight of each of the two other logits in the smoothing term, in units of beta:
# Eq. 38 (the objective of the paper's proof) has beta/2, Eq. 13 as printed has beta.
SMOOTHING = {"eq38": Fraction(1, 2), "eq13": Fraction(1, 1)}
