"""Sympy derivations of Section 4 and Appendix E, built from the model, not transcribed.

Pipeline (each step one function):

1. :func:`sample_sym` / :func:`logits_sym`: a class-i sample (Eq. 8) and f_w (Eq. 16) from
   the incidence tables of :mod:`xcf.theory.model`, with K copies (Appendix E.5).
2. :func:`worst_case`: the inner maximum of a loss that is a max of branches linear in delta
   (convex in delta, so a vertex of the box is optimal): each branch is maximised at
   delta_k = eps * sign(coefficient); :func:`common_vertex` recovers Lemma 2's delta*.
3. :func:`expected_loss`: the expectation over D_i (averaged over the three classes, Eq. 9)
   with :func:`xcf.theory.gaussian.expectation` (which uses Lemma 1): Eq. 29 and Eq. 39.
4. :func:`orthant_minimiser`: the minimiser over w >= 0 (KKT); thresholds by solving for eps.

Everything is cached; ``xcf.theory._solutions`` lambdifies the results (public as ``xcf.theory.eps0`` etc.).
"""
from __future__ import annotations

import functools

import sympy as sp

from xcf.theory.gaussian import Phi, expectation, linear_gaussian, phi
from xcf.theory.structure import EXCLUSIVE, SHARED, SMOOTHING

__all__ = ["lam", "beta", "weights_sym", "sample_sym", "logits_sym", "sign_on_range",
           "resolve_abs", "worst_case", "common_vertex", "class_loss", "expected_loss",
           "orthant_minimiser", "threshold", "robust_solution", "smoothed_solution",
           "copies_solution", "lemma3", "theorem2_probability"]

mu, sigma, eps = sp.symbols("mu sigma epsilon", positive=True)
lam = sp.Symbol("lambda", positive=True)
beta = sp.Symbol("beta", nonnegative=True)
w1, w2 = sp.symbols("w1 w2", positive=True)
t, sigma1 = sp.symbols("t sigma_1", positive=True)
_s = sp.Symbol("s", positive=True)  # beta = s / (3 (1 + s)) sweeps (0, 1/3) as s sweeps (0, oo)


def weights_sym(K: int = 1):
    """Per-copy weight symbols (w1_k, w2_k); K = 1 gives (w1,), (w2,)."""
    if K == 1:
        return (w1,), (w2,)
    return (sp.symbols(f"w1_0:{K}", positive=True), sp.symbols(f"w2_0:{K}", positive=True))


def sample_sym(i: int, K: int = 1, shared_noise: bool = False):
    """A class-i sample (Eq. 8) as sympy: x_k = mask_k (mu + sigma Z_k). Returns (x (6K,), zs)."""
    mask = list(EXCLUSIVE[i]) + list(SHARED[i])
    n_noise = 1 if shared_noise else K
    zs = sp.symbols(f"Z_0:{6 * n_noise}", real=True)
    x = []
    for k in range(K):
        base = 0 if shared_noise else 6 * k
        x += [m * (mu + sigma * zs[base + c]) for c, m in enumerate(mask)]
    used = [zk for zk in zs if any(xk.has(zk) for xk in x)]
    return x, used


def logits_sym(x, w1s, w2s):
    """f_w(x)_i = sum_k w1_k x^k_E,i + w2_k sum_{j != i} x^k_C,j (Eq. 16, Appendix E.5)."""
    K = len(w1s)
    return [sum(w1s[k] * EXCLUSIVE[i][j] * x[6 * k + j] + w2s[k] * SHARED[i][j] * x[6 * k + 3 + j]
                for k in range(K) for j in range(3)) for i in range(3)]


def sign_on_range(expr) -> int:
    """Sign of ``expr`` for w > 0, sigma, mu, eps > 0 and 0 < beta < 1/3; raises if undecided."""
    e = expr.subs(beta, _s / (3 * (1 + _s))) if expr.has(beta) else expr
    e = sp.factor(sp.together(e))
    if e == 0:
        return 0
    if e.is_positive:
        return 1
    if e.is_negative:
        return -1
    raise ValueError(f"cannot decide the sign of {expr} on the allowed range")


def resolve_abs(expr):
    """Replace each Abs(a) by +a or -a, by the sign of a on the allowed range."""
    return expr.replace(lambda e: isinstance(e, sp.Abs), lambda e: sign_on_range(e.args[0]) * e.args[0])


def worst_case(branches, delta):
    """max over the eps-box of max_j branches[j](delta); each branch affine in delta.

    Returns (value, vertices): value = Max_j of branch j at its own maximising vertex;
    vertices[j][k] in {+1, -1, 0} (0: the branch does not depend on delta_k).
    """
    vertices, values = {}, []
    for j, b in branches.items():
        signs = [sign_on_range(sp.diff(b, d)) for d in delta]
        vertices[j] = signs
        values.append(b.subs({d: eps * s for d, s in zip(delta, signs)}))
    return sp.Max(*values), vertices


def common_vertex(vertices):
    """A vertex optimal for every branch at once (Lemma 2's delta*), as signs; else ValueError."""
    out = []
    for k in range(len(next(iter(vertices.values())))):
        fixed = {v[k] for v in vertices.values()} - {0}
        if len(fixed) > 1:
            raise ValueError(f"branches disagree on coordinate {k}: no common worst-case vertex")
        out.append(fixed.pop() if fixed else 0)
    return out


def class_loss(i, K=1, shared_noise=False, b=0, smoothing="eq38", adversary="lemma2"):
    """The per-sample loss of class i under the inner maximum, and how it was found.

    b = 0: the robust margin of Eq. 10.  b = beta: Eq. 38 ("eq38", weight beta/2 on each other
    logit) or Eq. 13 ("eq13", weight beta).  adversary="lemma2": delta maximises the margin
    (the paper's proof) at the vertex common to both branches (Lemma 2); "full": delta
    maximises the whole smoothed loss, branch by branch.
    Returns (loss expr, zs, vertices {j: signs per branch}, common signs or None).
    """
    x, zs = sample_sym(i, K, shared_noise)
    w1s, w2s = weights_sym(K)
    delta = sp.symbols(f"d_0:{6 * K}", real=True)
    f = logits_sym([a + d for a, d in zip(x, delta)], w1s, w2s)
    c = sp.Rational(SMOOTHING[smoothing].numerator, SMOOTHING[smoothing].denominator) * b
    others = [j for j in range(3) if j != i]
    smooth = -c * sum(f[j] for j in others)
    margins = {j: f[j] - f[i] for j in others}
    if adversary == "lemma2":
        _, vertices = worst_case(margins, delta)
        signs = common_vertex(vertices)
        at = {d: eps * s for d, s in zip(delta, signs)}
        loss = (1 - b) * sp.Max(*[m.subs(at) for m in margins.values()]) + smooth.subs(at)
        return loss, zs, vertices, signs
    branches = {j: (1 - b) * margins[j] + smooth for j in others}
    loss, vertices = worst_case(branches, delta)
    return loss, zs, vertices, None


@functools.lru_cache(maxsize=None)
def expected_loss(K=1, shared_noise=False, smoothed=False, smoothing="eq38", adversary="lemma2"):
    """E_i E_{x ~ D_i} [inner max of the loss] + (lam/2)||w||^2 (Eq. 9 -> Eq. 29; Eq. 38 -> Eq. 39).

    Derived for each class i and averaged (the three agree, by symmetry: checked).
    Returns a sympy expression in w (or w1_k, w2_k), mu, sigma, eps, lam (and beta).
    """
    b = beta if smoothed else sp.Integer(0)
    per_class = []
    for i in range(3):
        loss, zs, _, _ = class_loss(i, K, shared_noise, b, smoothing, adversary)
        per_class.append(resolve_abs(expectation(loss, zs)))
    for other in per_class[1:]:
        if sp.simplify(other - per_class[0]) != 0:
            raise AssertionError("classes disagree: the model is not symmetric")
    w1s, w2s = weights_sym(K)
    reg = lam / 2 * sum(w**2 for w in (*w1s, *w2s))
    return sp.expand(sum(per_class) / 3) + reg


def orthant_minimiser(loss, ws):
    """argmin over w >= 0 of a separable strictly convex quadratic, by KKT.

    Checks the Hessian is lam*I (diagonal and positive); then each coordinate's minimiser is
    max(0, root of dL/dw_k): if the root is negative, dL/dw_k > 0 on w_k >= 0 and the
    constraint is active.  Returns ({w: Max(0, root)}, {w: root}).
    """
    hess = sp.hessian(loss, ws)
    if any(sp.simplify(hess[r, c]) != 0 for r in range(len(ws)) for c in range(len(ws)) if r != c):
        raise ValueError("loss is not separable in w")
    if any(sign_on_range(hess[r, r]) <= 0 for r in range(len(ws))):
        raise ValueError("loss is not strictly convex in w")
    roots = {w: sp.solve(sp.diff(loss, w), w)[0] for w in ws}
    return {w: sp.Max(0, r) for w, r in roots.items()}, roots


def threshold(root):
    """The eps at which an unconstrained optimum ``root`` crosses 0 (decreasing in eps)."""
    if sign_on_range(sp.diff(root, eps)) >= 0:
        raise ValueError(f"{root} does not decrease with eps")
    (sol,) = sp.solve(sp.Eq(root, 0), eps)
    return sp.simplify(sol)


@functools.lru_cache(maxsize=None)
def robust_solution():
    """Theorem 1: Eq. 29, the optimum (Eq. 31, 33) and eps0; dict of sympy expressions."""
    L = expected_loss()
    opt, roots = orthant_minimiser(L, (w1, w2))
    return {"loss": L, "w1": opt[w1], "w2": opt[w2], "w1_root": roots[w1], "w2_root": roots[w2],
            "eps0": threshold(roots[w2]), "w1_threshold": sp.solve(roots[w1], eps)[0]}


@functools.lru_cache(maxsize=None)
def smoothed_solution(smoothing="eq38", adversary="lemma2"):
    """Theorem 3 / Corollary 1: Eq. 39, the optimum, eps1, beta limit and the w2 gain."""
    L = expected_loss(smoothed=True, smoothing=smoothing, adversary=adversary)
    opt, roots = orthant_minimiser(L, (w1, w2))
    e1 = threshold(roots[w2])
    base = robust_solution()
    return {"loss": L, "w1": opt[w1], "w2": opt[w2], "w1_root": roots[w1], "w2_root": roots[w2],
            "eps1": e1, "w1_threshold": sp.solve(roots[w1], eps)[0],
            # eps1 < mu/2 (Theorem 3's claim) holds iff beta < beta_limit
            "beta_limit": sp.solve(sp.Eq(e1, mu / 2), beta)[0],
            "eps1_minus_eps0": sp.simplify(e1 - base["eps0"]),
            "w2_gain": sp.simplify(roots[w2] - base["w2_root"])}


@functools.lru_cache(maxsize=None)
def copies_solution(K: int, shared_noise: bool = False):
    """Appendix E.5 with K copies: optimum and threshold, per copy.

    The expected loss is strictly convex and invariant under permuting copies, so its unique
    minimiser is symmetric: w1_k = u, w2_k = v.  We substitute, minimise over (u, v) >= 0, and
    check that the full gradient vanishes there (for the unconstrained roots).
    """
    L = expected_loss(K, shared_noise)
    w1s, w2s = weights_sym(K)
    u, v = sp.symbols("u v", positive=True)
    sym = {**{w: u for w in w1s}, **{w: v for w in w2s}}
    Ls = sp.simplify(L.xreplace(sym))
    opt, roots = orthant_minimiser(Ls, (u, v))
    point = {u: roots[u], v: roots[v]}
    for w in (*w1s, *w2s):
        g = sp.diff(L, w).xreplace(sym).subs(point)
        if sp.simplify(g) != 0:
            raise AssertionError("the symmetric point is not stationary")
    return {"loss": L, "w1": opt[u], "w2": opt[v], "eps0": threshold(roots[v])}


@functools.lru_cache(maxsize=None)
def lemma3():
    """Lemma 3: u(t) = Pr(X + tY > 0), X, Y iid N(1, sigma1^2), and the sign of u'(t) (Eq. 34).

    Returns u, du = u'(t), ratio = u'(t) / phi(argument) (phi > 0, so sign u' = sign ratio),
    and the root of the ratio in t.
    """
    z1, z2 = sp.symbols("Z_1 Z_2", real=True)
    m, s = linear_gaussian((1 + sigma1 * z1) + t * (1 + sigma1 * z2), (z1, z2))
    arg = sp.simplify(m / s)
    u = Phi(arg)
    du = sp.diff(u, t)
    ratio = sp.factor(sp.simplify(du / phi(arg)))
    return {"u": u, "du": du, "arg": arg, "ratio": ratio, "roots": sp.solve(ratio, t)}


@functools.lru_cache(maxsize=None)
def theorem2_probability():
    """Eq. 11 for class 1 against class 2: Pr[f_1(x+delta) > f_2(x+delta) for all delta].

    The pairwise margin is affine in delta, so the worst delta is the vertex against its
    gradient; the worst margin is Gaussian.  Returns Pr (in mu, sigma, eps, w1, w2), the worst
    margin's mean and sd, and sigma1 (the Lemma 3 parameter it implies with t = w2/w1).
    """
    x, zs = sample_sym(0)
    delta = sp.symbols("d_0:6", real=True)
    f = logits_sym([a + d for a, d in zip(x, delta)], (w1,), (w2,))
    pair = f[0] - f[1]
    worst = pair.subs({d: -eps * sign_on_range(sp.diff(pair, d)) for d in delta})
    m, s = linear_gaussian(worst, zs)
    return {"prob": Phi(m / s), "mean": sp.factor(m), "sd": s, "sigma1": sp.factor(s / m * (w1 + w2) / sp.sqrt(w1**2 + w2**2))}
