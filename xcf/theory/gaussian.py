"""Gaussian expectations in sympy: Lemma 1 by integration, and an expectation operator.

The expected losses of Appendix E (Eq. 27-29, Eq. 39) are expectations of expressions that
are linear in independent standard normals ``Z`` plus terms ``Max(a, b)`` of two such
linear forms with equal means.  :func:`expectation` evaluates exactly those, and it gets the
only non-linear ingredient, E[max(a, b)], from Lemma 1 (derived here, not typed in):

    max(a, b) = b + max(a - b, 0),  a - b ~ N(0, s^2),
    E[max(D, 0)] = s E[max(Z, 0)] = s E[max(X, Y)] / sqrt(2)   (X, Y iid N(0, 1)).
"""
from __future__ import annotations

import functools

import sympy as sp

__all__ = ["z", "phi", "Phi", "lemma1", "linear_gaussian", "expected_max", "expectation"]

z = sp.Symbol("z", real=True)


def phi(a):
    """Standard normal density phi(a) (Appendix E.1, Notations)."""
    return sp.exp(-a**2 / 2) / sp.sqrt(2 * sp.pi)


def Phi(a):
    """Standard normal distribution function Phi(a) = (1 + erf(a / sqrt 2)) / 2."""
    return (1 + sp.erf(a / sp.sqrt(2))) / 2


@functools.lru_cache(maxsize=None)
def lemma1() -> sp.Expr:
    """Lemma 1: E[max(X, Y)] for X, Y iid N(0, 1), by integrating z p(z), p = 2 phi Phi (Eq. 19-20).

    Returns the sympy value (it simplifies to 1/sqrt(pi)).
    """
    return sp.simplify(sp.integrate(2 * z * phi(z) * Phi(z), (z, -sp.oo, sp.oo)))


def linear_gaussian(expr, zs):
    """(mean, sd) of ``expr``, an affine form in the independent N(0, 1) symbols ``zs``."""
    expr = sp.expand(expr)
    coeffs = [expr.coeff(zk) for zk in zs]
    rest = sp.expand(expr - sum(c * zk for c, zk in zip(coeffs, zs)))
    if rest.free_symbols & set(zs):
        raise ValueError(f"{expr} is not affine in the normal variables")
    return rest, sp.sqrt(sp.factor(sum(c**2 for c in coeffs)))


def expected_max(a, b, zs):
    """E[max(a, b)] for affine forms a, b in ``zs`` with E[a] = E[b], via Lemma 1."""
    mean_d, sd_d = linear_gaussian(a - b, zs)
    if sp.simplify(mean_d) != 0:
        raise NotImplementedError(f"E[max(a, b)] needs E[a] = E[b]; here E[a - b] = {mean_d}")
    mean_b, _ = linear_gaussian(b, zs)
    return mean_b + sd_d * lemma1() / sp.sqrt(2)


def expectation(expr, zs):
    """E[expr] over iid N(0, 1) ``zs``; ``expr`` is affine in zs and in ``Max(a, b)`` terms."""
    maxes = sorted(expr.atoms(sp.Max), key=sp.default_sort_key)
    dummies = [sp.Dummy(f"m{k}") for k in range(len(maxes))]
    flat = expr.xreplace(dict(zip(maxes, dummies)))
    if maxes or zs:
        poly = sp.Poly(sp.expand(flat), *zs, *dummies)
        if poly.total_degree() > 1:
            raise NotImplementedError("expectation: expression is not affine in Z and Max terms")
    values = {}
    for m, d in zip(maxes, dummies):
        if len(m.args) != 2:
            raise NotImplementedError(f"Max with {len(m.args)} arguments")
        values[d] = expected_max(*m.args, zs)
    values.update({zk: 0 for zk in zs})
    return sp.expand(flat.xreplace(values))
