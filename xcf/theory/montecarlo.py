"""Monte Carlo checks of Section 4: sample means with confidence intervals, brute force over
the vertices of the eps-box, and training w by projected gradient descent (Theorems 1-3).

Confidence intervals are normal approximations, mean +- z * sd / sqrt(n).
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import torch

from xcf.theory import model
from xcf.theory._checks import check_choice, check_copies, check_model
from xcf.theory.structure import SMOOTHING


def mean_ci(values, z: float = 2.576):
    """(mean, half-width) of the z-level normal confidence interval of a sample mean."""
    v = torch.as_tensor(values, dtype=torch.float64).reshape(-1)
    return float(v.mean()), float(z * v.std(unbiased=True) / math.sqrt(v.numel()))


def lemma1_mc(n: int, seed: int = 0, z: float = 2.576):
    """Sample mean of max(X, Y), X, Y iid N(0, 1) (Lemma 1) -> (mean, half-width)."""
    g = torch.Generator().manual_seed(seed)
    return mean_ci(torch.randn(n, 2, dtype=torch.float64, generator=g).max(dim=1).values, z)


def box_vertices(d: int, eps: float) -> torch.Tensor:
    """All 2^d vertices of the box ||delta||_inf <= eps: (2^d, d)."""
    return eps * torch.tensor(list(itertools.product((-1.0, 1.0), repeat=d)), dtype=torch.float64)


@model.single_thread()
def brute_force_max(objective, x: torch.Tensor, eps: float):
    """max over the 2^d vertices of ``objective(x + delta)`` per sample (exact for objectives
    convex in delta, as Eq. 10 is).  objective: (n, d) -> (n,).  Returns (value (n,), delta (n, d))."""
    V = box_vertices(x.shape[1], eps)
    with torch.no_grad():
        vals = torch.stack([objective(x + v) for v in V])     # (2^d, n)
    best = vals.argmax(dim=0)
    return vals.max(dim=0).values, V[best]


@model.single_thread()
def lemma2_check(mu, sigma, eps, weights, *, n=1000, beta=0.2, restarts=2, seed=0):
    """Lemma 2 by brute force over the 64 vertices, for each (w1, w2) in ``weights``.

    Per row, the largest shortfall max_samples(brute force - value) of: Lemma 2's delta*
    (``exact``) and PGD (``pgd``) on the margin of Eq. 10; the exact candidates
    (``full_exact``) and PGD (``full_pgd``) on the whole smoothed loss with ``beta``.
    All are ~0 (rounding) when the closed-form maximiser and PGD are optimal.
    """
    check_model(mu, sigma, eps, beta=beta)
    g = torch.Generator().manual_seed(seed)
    x, y = model.sample(n, mu, sigma, generator=g)
    rows = []
    for w1, w2 in weights:
        margin = lambda z: model.margin(model.logits(z, w1, w2), y)  # noqa: E731
        smooth = lambda z: model.smoothed_loss(model.logits(z, w1, w2), y, beta)  # noqa: E731
        brute, _ = brute_force_max(margin, x, eps)
        brute_s, _ = brute_force_max(smooth, x, eps)
        exact, _ = model.robust_loss(x, y, w1, w2, eps)
        _, pgd = model.pgd_maximise(margin, x, eps, restarts=restarts, generator=g)
        fexact, _ = model.robust_loss(x, y, w1, w2, eps, beta=beta, adversary="full")
        _, fpgd = model.pgd_maximise(smooth, x, eps, restarts=restarts, generator=g)
        gap = lambda ref, v: float((ref - v.detach()).max())  # noqa: E731
        rows.append({"w1": w1, "w2": w2, "exact": gap(brute, exact), "pgd": gap(brute, pgd),
                     "full_exact": gap(brute_s, fexact), "full_pgd": gap(brute_s, fpgd)})
    return rows


@model.single_thread()
def smoothing_over_margin_maximisers(x, y, w1, w2, eps, beta, *, smoothing="eq38", atol=1e-12):
    """How much the smoothed loss (Eq. 38) depends on *which* maximiser of the margin is used.

    Over the vertices of the eps-box that maximise the margin of Eq. 10 (to ``atol``), returns
    per sample (lowest smoothed loss, the value at Lemma 2's delta*, highest): three (n,) tensors.
    """
    V = box_vertices(x.shape[1], eps)
    with torch.no_grad():
        fs = [model.logits(x + v, w1, w2) for v in V]
        m = torch.stack([model.margin(f, y) for f in fs])
        s = torch.stack([model.smoothed_loss(f, y, beta, smoothing) for f in fs])
        top = m >= m.max(dim=0).values - atol
        lo = torch.where(top, s, float("inf")).min(dim=0).values
        hi = torch.where(top, s, float("-inf")).max(dim=0).values
        at, _ = model.robust_loss(x, y, w1, w2, eps, beta=beta, smoothing=smoothing)
    return lo, at, hi


@model.single_thread()
def expected_loss_mc(w1, w2, mu, sigma, eps, lam, *, beta=0.0, n=100_000, seed=0, z=2.576,
                     adversary="lemma2", smoothing="eq38"):
    """Sample mean of the per-sample loss at the exact inner max, plus (lam/2)||w||^2
    (compare with Eq. 29 / Eq. 39).  Returns (mean, half-width)."""
    check_model(mu, sigma, eps, lam, beta)
    g = torch.Generator().manual_seed(seed)
    x, y = model.sample(n, mu, sigma, generator=g)
    loss, _ = model.robust_loss(x, y, w1, w2, eps, beta=beta, adversary=adversary,
                                smoothing=smoothing)
    m, h = mean_ci(loss, z)
    return m + lam / 2 * (w1**2 + w2**2), h


def train_w(mu, sigma, eps, lam, *, beta=0.0, n=4000, steps=40, lr=None, method="exact",
            adversary="lemma2", smoothing="eq38", K=1, shared_noise=False, pgd_steps=10,
            pgd_restarts=2, seed=0):
    """Adversarial training of f_w (Eq. 9; Eq. 12 with beta > 0) by projected gradient descent.

    Draws n samples (seed fixes them, so "exact" and "pgd" see the same data), then repeats:
    inner maximum (Lemma 2's delta* for method="exact", :func:`xcf.theory.model.pgd_maximise`
    for "pgd"), full-batch (sub)gradient step on w, projection onto w >= 0, and returns the
    average of the iterates of the second half.  The default step 1/(lam (t+1)) is the
    projected subgradient method for a lam-strongly convex loss.  For K = 1 the per-sample loss
    is linear in w at the exact inner max (plus the regulariser), so the first step already
    lands on the empirical optimum max(0, -g/lam), g the mean loss gradient, and stays there.
    For K > 1 the loss has kinks in w (which wrong class wins depends on w); a constant step
    would cycle around them, the decreasing step converges.
    Returns (w1, w2) as numpy arrays of shape (K,).
    """
    check_model(mu, sigma, eps, lam, beta)
    check_copies(K)
    check_choice("method", method, model.METHODS)
    check_choice("adversary", adversary, model.ADVERSARIES)
    check_choice("smoothing", smoothing, SMOOTHING)
    if method == "pgd" and adversary == "lemma2" and beta != 0:
        raise ValueError(f"beta={beta!r}: PGD on the margin does not single out Lemma 2's delta*;"
                         " use method='exact' or adversary='full'")
    with model.single_thread():
        return _train(mu, sigma, eps, lam, beta, n, steps, lr, method, adversary, smoothing, K,
                      shared_noise, pgd_steps, pgd_restarts, seed)


def _train(mu, sigma, eps, lam, beta, n, steps, lr, method, adversary, smoothing, K,
           shared_noise, pgd_steps, pgd_restarts, seed):
    g = torch.Generator().manual_seed(seed)
    x, y = model.sample(n, mu, sigma, K=K, shared_noise=shared_noise, generator=g)
    w = torch.full((2, K), 0.5 * mu / lam, dtype=torch.float64)
    avg, count = torch.zeros_like(w), 0
    for t in range(steps):
        w.requires_grad_(True)
        loss, _ = model.robust_loss(x, y, w[0], w[1], eps, beta=beta, smoothing=smoothing,
                                    adversary=adversary, method=method, pgd_steps=pgd_steps,
                                    pgd_restarts=pgd_restarts, generator=g)
        total = loss.mean() + lam / 2 * (w**2).sum()
        (grad,) = torch.autograd.grad(total, w)
        step = 1.0 / (lam * (t + 1)) if lr is None else lr
        w = (w.detach() - step * grad).clamp_min(0.0)
        if t >= steps // 2:
            avg, count = avg + w, count + 1
    w = avg / count
    return w[0].numpy(), w[1].numpy()


def sweep(mu, sigma, lam, eps_grid, **kw):
    """:func:`train_w` over an eps grid; returns (w1, w2) arrays (len(eps_grid),), mean over copies."""
    check_model(mu, sigma, np.asarray(eps_grid), lam, kw.get("beta", 0.0))
    out = np.array([[a.mean() for a in train_w(mu, sigma, float(e), lam, **kw)] for e in eps_grid])
    return out[:, 0], out[:, 1]


@model.single_thread()
def theorem2_mc(mu, sigma, eps, w1, w2_grid, *, n=20_000, seed=0, z=1.96):
    """Robust-classification probabilities against w2 on a grid, on one shared sample.

    pair: Pr[f_y > f_y' for all delta], for one other class y' (Eq. 11, Theorem 2);
    estimated per sample as the mean of the two pairwise indicators.
    all: Pr[f_y > f_j for all j != y and all delta] (robust accuracy).
    Returns dict of arrays: pair, pair_half, all, all_half (half-widths at level z).
    """
    check_model(mu, sigma, eps)
    g = torch.Generator().manual_seed(seed)
    x, y = model.sample(n, mu, sigma, generator=g)
    res = {k: [] for k in ("pair", "pair_half", "all", "all_half")}
    for w2 in w2_grid:
        m = model.worst_case_pairwise(x, y, w1, float(w2), eps)
        ok = (m > 0).to(torch.float64)                     # column y is +inf -> 1
        for key, v in (("pair", (ok.sum(1) - 1) / 2), ("all", ok.prod(1))):
            mean, half = mean_ci(v, z)
            res[key].append(mean)
            res[key + "_half"].append(half)
    return {k: np.array(v) for k, v in res.items()}


__all__ = ["mean_ci", "lemma1_mc", "box_vertices", "brute_force_max", "lemma2_check",
           "smoothing_over_margin_maximisers", "expected_loss_mc",
           "train_w", "sweep", "theorem2_mc"]
