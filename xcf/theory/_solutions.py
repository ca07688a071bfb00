"""Numeric closed forms, lambdified from the sympy derivations of :mod:`xcf.theory.symbolic`.

Nothing here is typed in: each function compiles (once, cached) an expression that
:mod:`xcf.theory.symbolic` derived from the model, and validates its arguments first.
Scalars in give floats out; numpy arrays broadcast.
"""
from __future__ import annotations

import functools

import numpy as np
import sympy as sp
from scipy import integrate, stats

from xcf.theory import symbolic as S
from xcf.theory._checks import check_beta, check_choice, check_copies, check_model, check_mu_sigma
from xcf.theory.structure import SMOOTHING

_ARGS = (S.mu, S.sigma, S.eps, S.lam, S.beta)
ADVERSARIES = ("lemma2", "full")


@functools.lru_cache(maxsize=None)
def _compiled(kind: str, smoothing: str = "eq38", adversary: str = "lemma2", K: int = 1,
              shared_noise: bool = False):
    if kind == "robust":
        sol = S.robust_solution()
    elif kind == "smoothed":
        sol = S.smoothed_solution(smoothing, adversary)
    else:
        sol = S.copies_solution(K, shared_noise)
    out = {k: sp.lambdify(_ARGS, v, ["scipy", "numpy"]) for k, v in sol.items() if k != "loss"}
    out["loss"] = sp.lambdify((S.w1, S.w2, *_ARGS), sol["loss"], ["scipy", "numpy"]) if K == 1 else None
    return out


def _out(*vals):
    res = tuple(float(v) if np.ndim(v) == 0 else np.asarray(v, dtype=float) for v in vals)
    return res if len(res) > 1 else res[0]


def _b(x):
    return np.broadcast_arrays(*[np.asarray(v, dtype=float) for v in x])


def eps0(mu, sigma):
    """Theorem 1's threshold: w2 = 0 for eps > eps0 (from Eq. 30-31).  Derived: (mu - sigma/sqrt(pi))/2."""
    check_mu_sigma(mu, sigma)
    mu, sigma = _b((mu, sigma))
    return _out(_compiled("robust")["eps0"](mu, sigma, 0.0, 1.0, 0.0))


def eps1(mu, sigma, beta, *, smoothing: str = "eq38"):
    """Theorem 3's threshold under label smoothing (from Eq. 40 with the derived Eq. 39).

    May lie at or above mu/2 (then w2 > 0 on all of (0, mu/2)): see :func:`beta_limit`.
    """
    check_mu_sigma(mu, sigma)
    check_beta(beta)
    check_choice("smoothing", smoothing, SMOOTHING)
    mu, sigma, beta = _b((mu, sigma, beta))
    return _out(_compiled("smoothed", smoothing)["eps1"](mu, sigma, 0.0, 1.0, beta))


def beta_limit(mu, sigma, *, smoothing: str = "eq38"):
    """The beta at which eps1 reaches mu/2: Theorem 3's eps1 < mu/2 holds iff beta < beta_limit."""
    check_mu_sigma(mu, sigma)
    check_choice("smoothing", smoothing, SMOOTHING)
    mu, sigma = _b((mu, sigma))
    return _out(_compiled("smoothed", smoothing)["beta_limit"](mu, sigma, 0.0, 1.0, 0.0))


def optimal_w(mu, sigma, eps, lam, beta=0.0, *, adversary: str = "lemma2",
              smoothing: str = "eq38"):
    """argmin over w >= 0 of the expected loss: Eq. 29 (beta = 0, Theorem 1, Eq. 31/33) or
    Eq. 38/39 (beta > 0, Theorem 3, Eq. 41).  Returns (w1, w2).

    adversary="lemma2" follows the paper's proof (the smoothing term read at Lemma 2's delta*);
    "full" is the extension where delta maximises the whole smoothed loss.
    """
    check_model(mu, sigma, eps, lam, beta)
    check_choice("adversary", adversary, ADVERSARIES)
    check_choice("smoothing", smoothing, SMOOTHING)
    args = _b((mu, sigma, eps, lam, beta))
    if np.all(args[4] == 0):
        fns = _compiled("robust")
    else:
        fns = _compiled("smoothed", smoothing, adversary)
    return _out(fns["w1"](*args), fns["w2"](*args))


def expected_loss(w1, w2, mu, sigma, eps, lam, beta=0.0, *, adversary: str = "lemma2",
                  smoothing: str = "eq38"):
    """The derived expected loss at (w1, w2): Eq. 29 (beta = 0) or Eq. 39, regulariser included."""
    check_model(mu, sigma, eps, lam, beta)
    check_choice("adversary", adversary, ADVERSARIES)
    check_choice("smoothing", smoothing, SMOOTHING)
    fn = _compiled("smoothed", smoothing, adversary)["loss"]
    return _out(fn(*_b((w1, w2, mu, sigma, eps, lam, beta))))


def eps0_copies(mu, sigma, K: int, *, shared_noise: bool = False):
    """Theorem 1's threshold with K copies of every feature (Appendix E.5).

    Independent copies: (mu - sigma/sqrt(pi K))/2 (derived), which moves towards mu/2 as K
    grows; copies that repeat one draw (shared_noise) keep eps0.
    """
    check_mu_sigma(mu, sigma)
    check_copies(K)
    mu, sigma = _b((mu, sigma))
    return _out(_compiled("copies", K=int(K), shared_noise=bool(shared_noise))["eps0"](
        mu, sigma, 0.0, 1.0, 0.0))


def optimal_w_copies(mu, sigma, eps, lam, K: int, *, shared_noise: bool = False):
    """Per-copy optimum (w1_k, w2_k) with K copies (Appendix E.5; the same for every k)."""
    check_model(mu, sigma, eps, lam)
    check_copies(K)
    fns = _compiled("copies", K=int(K), shared_noise=bool(shared_noise))
    args = _b((mu, sigma, eps, lam, 0.0))
    return _out(fns["w1"](*args), fns["w2"](*args))


@functools.lru_cache(maxsize=None)
def _theorem2_fn():
    return sp.lambdify((S.mu, S.sigma, S.eps, S.w1, S.w2), S.theorem2_probability()["prob"], ["scipy", "numpy"])


def theorem2_probability(mu, sigma, eps, w1, w2):
    """Eq. 11 for one other class y': Pr[f_y(x+delta) > f_y'(x+delta) for all delta] (Theorem 2)."""
    check_model(mu, sigma, eps)
    if np.any(np.asarray(w1) <= 0) or np.any(np.asarray(w2) < 0):
        raise ValueError(f"w1={w1!r}, w2={w2!r}: need w1 > 0 and w2 >= 0")
    return _out(_theorem2_fn()(*_b((mu, sigma, eps, w1, w2))))


def all_classes_probability(mu, sigma, eps, w1, w2):
    """Pr[f_y(x+delta) > f_j(x+delta) for every j != y and every delta] (robust accuracy).

    Not a derived closed form: one-dimensional quadrature of the worst-case margin
    w1 A + w2 min(B2, B3), A, B2, B3 iid N(mu - 2 eps, sigma^2) (see :func:`worst_case_pairwise`
    in :mod:`xcf.theory.model`).  Scalars only.
    """
    check_model(mu, sigma, eps)
    if w1 <= 0 or w2 < 0:
        raise ValueError(f"w1={w1!r}, w2={w2!r}: need w1 > 0 and w2 >= 0")
    m = mu - 2 * eps
    if w2 == 0:
        return float(stats.norm.sf(0, m, sigma))
    # density of min(B2, B3) is 2 p(b) (1 - F(b)); then Pr[A > -w2 b / w1]
    f = lambda b: 2 * stats.norm.pdf(b, m, sigma) * stats.norm.sf(b, m, sigma) \
        * stats.norm.sf(-w2 * b / w1, m, sigma)  # noqa: E731
    return float(integrate.quad(f, m - 12 * sigma, m + 12 * sigma, epsabs=1e-12)[0])


def theorem2_sigma1(mu, sigma, eps):
    """Lemma 3's sigma_1 implied by Eq. 36 as derived: sigma / (mu - 2 eps)."""
    check_model(mu, sigma, eps)
    return _out(_sigma1_fn()(*_b((mu, sigma, eps))))


@functools.lru_cache(maxsize=None)
def _sigma1_fn():
    return sp.lambdify((S.mu, S.sigma, S.eps), S.theorem2_probability()["sigma1"], ["scipy", "numpy"])


__all__ = ["eps0", "eps1", "beta_limit", "optimal_w", "expected_loss", "eps0_copies",
           "optimal_w_copies", "theorem2_probability", "all_classes_probability",
           "theorem2_sigma1"]
