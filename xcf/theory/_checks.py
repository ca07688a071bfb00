"""Argument checks for the synthetic model of Section 4 (run before any long work).

Every check raises :class:`ValueError` naming the bad value and the allowed range.
"""
from __future__ import annotations

import math

import numpy as np

SQRT_PI = math.sqrt(math.pi)
BETA_MAX = 1.0 / 3.0  # Sec. 4.2: "beta < 1/3 is the interpolation ratio of label smoothing"


def _values(x, name):
    arr = np.asarray(x, dtype=float)
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}={x!r} must be finite")
    return arr


def check_mu_sigma(mu, sigma):
    """mu > 0 and 0 < sigma < sqrt(pi) * mu (Sec. 4.1, below Eq. 8)."""
    m = _values(mu, "mu")
    if np.any(m <= 0):
        raise ValueError(f"mu={mu!r} is outside the allowed range mu > 0")
    s = _values(sigma, "sigma")
    bound = SQRT_PI * m
    if np.any(s <= 0) or np.any(s >= bound):
        raise ValueError(
            f"sigma={sigma!r} is outside the allowed range 0 < sigma < sqrt(pi)*mu = "
            f"{np.array2string(np.asarray(bound), precision=6)} (the paper assumes sigma < sqrt(pi)*mu)")


def check_eps(eps, mu):
    """0 < eps < mu / 2 (the l-inf budget of Sec. 4.1)."""
    e = _values(eps, "eps")
    half = np.asarray(mu, dtype=float) / 2
    if np.any(e <= 0) or np.any(e >= half):
        bad = e[(e <= 0) | (e >= half)].ravel()[:3] if e.ndim else e
        raise ValueError(f"eps={bad.tolist() if e.ndim else eps!r} is outside the allowed range "
                         f"0 < eps < mu/2 = {float(np.max(half)):.6g}")


def check_beta(beta):
    """0 <= beta < 1/3 (Sec. 4.2, below Eq. 13)."""
    b = _values(beta, "beta")
    if np.any(b < 0) or np.any(b >= BETA_MAX):
        raise ValueError(f"beta={beta!r} is outside the allowed range 0 <= beta < 1/3")


def check_lam(lam):
    """lam > 0 (the weight of the (lam/2)||w||^2 regulariser of Eq. 9)."""
    v = _values(lam, "lam")
    if np.any(v <= 0):
        raise ValueError(f"lam={lam!r} is outside the allowed range lam > 0")


def check_copies(K):
    """K >= 1 copies of each feature (Appendix E.5)."""
    if isinstance(K, bool) or int(K) != K or K < 1:
        raise ValueError(f"K={K!r} is outside the allowed range: an integer K >= 1")


def check_choice(name, value, allowed):
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not allowed; use one of {list(allowed)}")


def check_model(mu, sigma, eps=None, lam=None, beta=None):
    """All checks at once, in the order of the paper's assumptions."""
    check_mu_sigma(mu, sigma)
    if eps is not None:
        check_eps(eps, mu)
    if lam is not None:
        check_lam(lam)
    if beta is not None:
        check_beta(beta)
