"""Tests of xcf.theory (Section 4 / Appendix E) against independent truth.

Independent truth here = closed forms typed in by hand (from the paper, corrected where the
derivation shows a printing slip), scipy quadrature, brute force over the 2^6 vertices of
the eps-box, and sample means.  The library derives its closed forms with sympy instead.
"""
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

import xcf.theory as T
from xcf.theory import gaussian, model, montecarlo as MC, symbolic as S

SQPI = math.sqrt(math.pi)
REPO = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------- parameters
def params(draw_mu, r, f, lam, beta):
    """(mu, sigma, eps, lam, beta) inside the paper's conditions: sigma = r sqrt(pi) mu,
    eps = f mu/2, with r, f in (0, 1)."""
    return draw_mu, r * SQPI * draw_mu, f * draw_mu / 2, lam, beta


unit = st.floats(0.02, 0.98)
model_params = st.builds(params, st.floats(0.1, 10.0), unit, unit,
                         st.floats(0.01, 100.0), st.floats(0.0, 0.33))
FAST = settings(max_examples=60, deadline=None, derandomize=True)  # same examples every run


# ---------------------------------------------------------------- Lemma 1
def test_lemma1_symbolic_equals_quadrature_and_one_over_sqrt_pi():
    val = float(gaussian.lemma1())
    quad, _ = integrate.quad(lambda z: 2 * z * stats.norm.pdf(z) * stats.norm.cdf(z), -np.inf, np.inf)
    assert val == pytest.approx(quad, abs=1e-10)
    assert val == pytest.approx(1 / SQPI, abs=1e-15)


def test_lemma1_monte_carlo_interval_covers_value():
    mean, half = MC.lemma1_mc(200_000, seed=3, z=4.0)
    assert abs(mean - 1 / SQPI) < half


# ---------------------------------------------------------------- closed forms (Thm 1, 3, Cor 1)
@FAST
@given(model_params)
def test_theorem1_closed_forms(p):
    mu, sigma, eps, lam, _ = p
    assert T.eps0(mu, sigma) == pytest.approx((mu - sigma / SQPI) / 2, rel=1e-12)
    w1, w2 = T.optimal_w(mu, sigma, eps, lam)
    assert w1 == pytest.approx((mu - 2 * eps) / lam, rel=1e-10)                  # Eq. 33
    assert w2 == pytest.approx(max(0.0, (mu - 2 * eps - sigma / SQPI) / lam),    # Eq. 31
                               rel=1e-10, abs=1e-12 * mu / lam)
    if abs(eps - T.eps0(mu, sigma)) > 1e-9 * mu:      # away from the kink, up to rounding
        assert (w2 > 0) == (eps < T.eps0(mu, sigma))


@FAST
@given(model_params, st.floats(-3, 3), st.floats(-3, 3))
def test_eq29_expected_robust_loss(p, a, b):
    mu, sigma, eps, lam, _ = p
    w1, w2 = math.exp(a), math.exp(b)
    eq29 = (-mu + 2 * eps) * w1 + (-mu + 2 * eps + sigma / SQPI) * w2 + lam / 2 * (w1**2 + w2**2)
    assert T.expected_loss(w1, w2, mu, sigma, eps, lam) == pytest.approx(eq29, rel=1e-9, abs=1e-9)


@FAST
@given(model_params)
def test_theorem3_and_corollary1_closed_forms(p):
    mu, sigma, eps, lam, beta = p
    e1 = (mu / (1 - beta) - sigma / SQPI) / 2
    assert T.eps1(mu, sigma, beta) == pytest.approx(e1, rel=1e-10)
    w1, w2 = T.optimal_w(mu, sigma, eps, lam, beta)
    # Eq. 39 derived: the w1 coefficient is -(1-beta) mu + (2 - 3 beta) eps (printed: +(1-beta) mu)
    assert w1 == pytest.approx(((1 - beta) * mu - (2 - 3 * beta) * eps) / lam, rel=1e-9)
    assert w2 == pytest.approx(max(0.0, (mu - (1 - beta) * (2 * eps + sigma / SQPI)) / lam),
                               rel=1e-9, abs=1e-12 * mu / lam)               # Eq. 41
    _, w2_star = T.optimal_w(mu, sigma, eps, lam)
    if eps < T.eps0(mu, sigma):                                               # Eq. 43
        assert w2 - w2_star == pytest.approx(beta * (2 * eps + sigma / SQPI) / lam,
                                             rel=1e-7, abs=1e-9 * mu / lam)
    assert w2 >= w2_star - 1e-12 * mu / lam


@FAST
@given(model_params)
def test_eps1_below_half_mu_iff_beta_below_limit(p):
    mu, sigma, _, _, beta = p
    limit = sigma / (sigma + SQPI * mu)
    assert T.beta_limit(mu, sigma) == pytest.approx(limit, rel=1e-12)
    if abs(beta - limit) > 1e-9:
        assert (T.eps1(mu, sigma, beta) < mu / 2) == (beta < limit)
    if beta > 1e-6:
        assert T.eps1(mu, sigma, beta) > T.eps0(mu, sigma)


def test_eps1_reaches_half_mu_for_some_allowed_beta():
    mu, sigma, beta = 1.0, 0.5, 0.3            # limit = 0.5 / (0.5 + sqrt(pi)) < 0.3 < 1/3
    assert T.eps1(mu, sigma, beta) > mu / 2
    w1, w2 = T.optimal_w(mu, sigma, 0.499, 1.0, beta)
    assert w2 > 0 and w1 > 0


@FAST
@given(model_params)
def test_variants_full_adversary_and_eq13(p):
    mu, sigma, eps, lam, beta = p
    w1, w2 = T.optimal_w(mu, sigma, eps, lam, beta, adversary="full")
    _, w2_paper = T.optimal_w(mu, sigma, eps, lam, beta)
    assert w1 == pytest.approx((1 - beta) * (mu - 2 * eps) / lam, rel=1e-9)
    assert w2 == pytest.approx(w2_paper, rel=1e-9, abs=1e-12 * mu / lam)
    e13 = ((1 + beta) * mu / (1 - beta) - sigma / SQPI) / 2
    assert T.eps1(mu, sigma, beta, smoothing="eq13") == pytest.approx(e13, rel=1e-10)
    assert T.beta_limit(mu, sigma, smoothing="eq13") == pytest.approx(
        sigma / (sigma + 2 * SQPI * mu), rel=1e-12)


def test_printed_eq39_second_line_differs_from_first_line():
    """The printed second line of Eq. 39 has +(1-beta) mu in the w1 coefficient."""
    L = S.smoothed_solution()["loss"]
    coef_w1 = L.diff(S.w1).subs(S.w1, 0)
    printed = (1 - S.beta) * S.mu + (2 - 3 * S.beta) * S.eps
    derived_by_hand = -(1 - S.beta) * S.mu + (2 - 3 * S.beta) * S.eps
    assert (coef_w1 - derived_by_hand).simplify() == 0
    assert (coef_w1 - printed).simplify() != 0


# ---------------------------------------------------------------- Lemma 3 / Theorem 2
@pytest.mark.parametrize("s1", [0.3, 1.0, 2.5])
def test_lemma3_derivative_sign(s1):
    u = lambda t: stats.norm.cdf((1 + t) / (math.sqrt(1 + t * t) * s1))  # noqa: E731
    lem = S.lemma3()
    du = lambda t: float(lem["du"].subs({S.t: t, S.sigma1: s1}))  # noqa: E731
    for t in (0.2, 0.7, 1.5):
        fd = (u(t + 1e-6) - u(t - 1e-6)) / 2e-6
        assert du(t) == pytest.approx(fd, rel=1e-5)
        assert math.copysign(1, du(t)) == math.copysign(1, 1 - t)
    assert lem["roots"] == [1]


@FAST
@given(model_params, st.floats(0.05, 1.0))
def test_theorem2_probability_and_sigma1(p, t):
    mu, sigma, eps, _, _ = p
    w1, w2 = 1.0, t
    m, s = (mu - 2 * eps) * (w1 + w2), sigma * math.sqrt(w1**2 + w2**2)   # Var sigma^2, not 2 sigma^2
    assert T.theorem2_probability(mu, sigma, eps, w1, w2) == pytest.approx(
        stats.norm.cdf(m / s), rel=1e-9, abs=1e-300)
    assert T.theorem2_sigma1(mu, sigma, eps) == pytest.approx(sigma / (mu - 2 * eps), rel=1e-12)


def test_theorem2_monte_carlo_rises_with_w2():
    mu, sigma, eps, w1 = 1.0, 1.0, 0.2, 1.0
    grid = np.array([0.0, 0.5, 1.0])
    mc = MC.theorem2_mc(mu, sigma, eps, w1, grid, n=40_000, seed=5, z=4.0)
    exact = T.theorem2_probability(mu, sigma, eps, w1, grid)
    assert np.all(np.abs(mc["pair"] - exact) < mc["pair_half"])
    # common random numbers: the rise from w2 = 0 to w2 = w1 is far outside the noise
    assert mc["pair"][2] - mc["pair"][0] > 2 * mc["pair_half"][0]
    quad = [T.all_classes_probability(mu, sigma, eps, w1, w) for w in grid]
    assert np.all(np.abs(mc["all"] - quad) < mc["all_half"])


def test_worst_case_pairwise_equals_vertex_brute_force():
    g = torch.Generator().manual_seed(0)
    x, y = model.sample(300, 1.0, 0.8, generator=g)
    w1, w2, eps = 0.7, 0.4, 0.2
    m = model.worst_case_pairwise(x, y, w1, w2, eps)
    for j in range(3):
        keep = y != j
        def pair(z, j=j, keep=keep):
            f = model.logits(z, w1, w2)
            return -(f.gather(1, y[keep][:, None])[:, 0] - f[:, j])
        val, _ = MC.brute_force_max(pair, x[keep], eps)
        assert torch.allclose(-val, m[keep, j], atol=1e-12)


# ---------------------------------------------------------------- Lemma 2 and the inner maximum
@pytest.mark.parametrize("w", [(1.0, 0.5), (0.2, 1.5), (1.0, 0.0)])
def test_lemma2_delta_is_optimal_and_pgd_reaches_it(w):
    g = torch.Generator().manual_seed(1)
    x, y = model.sample(1000, 1.0, 1.0, generator=g)
    eps = 0.3
    obj = lambda z: model.margin(model.logits(z, *w), y)  # noqa: E731
    brute, _ = MC.brute_force_max(obj, x, eps)
    exact, delta = model.robust_loss(x, y, *w, eps)
    _, pgd = model.pgd_maximise(obj, x, eps, restarts=2, generator=g)
    assert torch.allclose(exact.detach(), brute, atol=1e-12)
    assert torch.allclose(pgd, brute, atol=1e-12)
    assert torch.equal(delta[y == 0][0], torch.tensor([-eps, eps, eps, eps, -eps, -eps], dtype=torch.float64))


def test_symbolic_lemma2_vertex_matches_model():
    _, _, vertices, signs = S.class_loss(0)
    assert vertices[1] == [-1, 1, 0, 1, -1, 0]        # branch j = 2 leaves x_E3, x_C3 free
    assert signs == model.lemma2_delta(torch.tensor([0]), 1.0)[0].tolist()


def test_full_adversary_exact_and_pgd_match_brute_force():
    g = torch.Generator().manual_seed(2)
    x, y = model.sample(1000, 1.0, 1.0, generator=g)
    eps, beta, w = 0.3, 0.25, (0.8, 0.6)
    obj = lambda z: model.smoothed_loss(model.logits(z, *w), y, beta)  # noqa: E731
    brute, _ = MC.brute_force_max(obj, x, eps)
    exact, _ = model.robust_loss(x, y, *w, eps, beta=beta, adversary="full")
    pgd, _ = model.robust_loss(x, y, *w, eps, beta=beta, adversary="full", method="pgd", generator=g)
    assert torch.allclose(exact.detach(), brute, atol=1e-12)
    assert torch.allclose(pgd.detach(), brute, atol=1e-12)


def test_eq29_against_sample_mean():
    mu, sigma, eps, lam, w1, w2 = 1.0, 1.2, 0.15, 0.5, 0.9, 0.4
    mean, half = MC.expected_loss_mc(w1, w2, mu, sigma, eps, lam, n=100_000, seed=4, z=4.0)
    assert abs(mean - T.expected_loss(w1, w2, mu, sigma, eps, lam)) < half


# ---------------------------------------------------------------- training w (Theorems 1, 3)
# Tolerance.  At the exact inner maximum the per-sample loss is linear in w, so projected
# (sub)gradient descent with step 1/(lam (t+1)) lands on the empirical optimum
# w_hat_k = max(0, -g_hat_k / lam) at its first step and stays there; g_hat_k is the sample
# mean (n draws) of the per-sample derivative d loss / d w_k, and the population optimum is the
# same map of E g.  max(0, .) is 1-Lipschitz, so |w_hat_k - w_k| <= |g_hat_k - E g_k| / lam.
# The derivatives are (1-b)(2 eps - x_E,y) + const for w1 (sd (1-b) sigma) and
# (1-b)(2 eps - min(x_C,a, x_C,b)) - (b/2)(x_C,a + x_C,b) + const for w2
# (sd <= (1-b) sigma sqrt(1 - 1/pi) + (b/2) sqrt(2) sigma <= sigma); so sd(g_hat_k) <= sigma/sqrt(n)
# and 5 standard deviations (two-sided normal tail 6e-7) give TOL = 5 sigma / (lam sqrt(n)).
N_TRAIN = 4000


def tol(sigma, lam, n=N_TRAIN):
    return 5 * sigma / (lam * math.sqrt(n))


@pytest.mark.parametrize("method", ["exact", "pgd"])
@pytest.mark.parametrize("frac", [0.5, 1.5])             # eps = frac * eps0: below / above
def test_training_matches_theorem1(method, frac):
    mu, sigma, lam = 1.0, 1.0, 0.8
    eps = frac * T.eps0(mu, sigma)
    w1, w2 = MC.train_w(mu, sigma, eps, lam, n=N_TRAIN, method=method, seed=11)
    c1, c2 = T.optimal_w(mu, sigma, eps, lam)
    assert abs(w1[0] - c1) < tol(sigma, lam) and abs(w2[0] - c2) < tol(sigma, lam)
    assert w1[0] > 0
    if frac > 1:
        assert w2[0] == 0.0


def test_pgd_training_equals_exact_training_on_the_same_sample():
    kw = dict(n=2000, seed=12)
    a = MC.train_w(1.0, 1.0, 0.1, 1.0, method="exact", **kw)
    b = MC.train_w(1.0, 1.0, 0.1, 1.0, method="pgd", **kw)
    assert np.allclose(a, b, atol=1e-9)


@pytest.mark.parametrize("eps", [0.15, 0.3, 0.4])         # eps0 = 0.218 < 0.3 < eps1 = 0.343 < 0.4
def test_training_matches_theorem3(eps):
    mu, sigma, lam, beta = 1.0, 1.0, 1.0, 0.2
    w1, w2 = MC.train_w(mu, sigma, eps, lam, beta=beta, n=N_TRAIN, seed=13)
    c1, c2 = T.optimal_w(mu, sigma, eps, lam, beta)
    assert abs(w1[0] - c1) < tol(sigma, lam) and abs(w2[0] - c2) < tol(sigma, lam)
    w1f, w2f = MC.train_w(mu, sigma, eps, lam, beta=beta, n=N_TRAIN, seed=13, method="pgd",
                          adversary="full")
    f1, f2 = T.optimal_w(mu, sigma, eps, lam, beta, adversary="full")
    assert abs(w1f[0] - f1) < tol(sigma, lam) and abs(w2f[0] - f2) < tol(sigma, lam)


# K copies (Appendix E.5).  The loss is no longer linear in w (which wrong class wins depends on
# w), but it is lam-strongly convex.  First-order optimality of both problems then gives
# ||w_hat - w||_2 <= ||grad L_hat(w) - E grad L_hat(w)||_2 / lam at the population optimum w
# (at w2 = 0 our gradient is the right-hand one, whose mean is a subgradient satisfying the
# optimality condition there).  Per sample, the w1_k component has sd sigma and the w2_k one
# sd <= sqrt(2) sigma (a selected x_C coordinate has second moment about mu at most 2 sigma^2),
# so the noise norm has rms <= sigma sqrt(3K / n); the mean over copies moves by at most
# ||.||_2 / sqrt(K), rms sqrt(3) sigma / (lam sqrt(n)).  The noise is a mean of n iid vectors,
# close to Gaussian, and 5 rms (plus a small optimisation error) gives 10 sigma / (lam sqrt(n)).
@pytest.mark.parametrize("shared", [False, True])
def test_training_with_copies(shared):
    mu, sigma, lam, K, n, eps = 1.0, 1.5, 1.0, 3, 20_000, 0.15
    indep = (mu - sigma / math.sqrt(math.pi * K)) / 2
    assert T.eps0_copies(mu, sigma, K, shared_noise=shared) == pytest.approx(
        T.eps0(mu, sigma) if shared else indep, rel=1e-12)
    w1, w2 = MC.train_w(mu, sigma, eps, lam, K=K, shared_noise=shared, n=n, seed=14)
    c1, c2 = T.optimal_w_copies(mu, sigma, eps, lam, K, shared_noise=shared)
    bound = 10 * sigma / (lam * math.sqrt(n))
    assert abs(w2.mean() - c2) < bound and abs(w1.mean() - c1) < bound
    if shared:
        assert c2 == 0.0            # eps > eps0: the one-copy threshold still applies
    else:
        assert c2 > bound           # independent copies keep w2 > 0 beyond eps0


# ---------------------------------------------------------------- input validation
@pytest.mark.parametrize("call, match", [
    (lambda: T.eps0(1.0, 2.0), "sigma=2.0 .*sqrt\\(pi\\)"),
    (lambda: T.eps0(-1.0, 0.5), "mu=-1.0"),
    (lambda: T.optimal_w(1.0, 1.0, 0.5, 1.0), "eps=0.5 .*0 < eps < mu/2"),
    (lambda: T.optimal_w(1.0, 1.0, 0.0, 1.0), "eps=0.0"),
    (lambda: T.optimal_w(1.0, 1.0, 0.1, 0.0), "lam=0.0 .*lam > 0"),
    (lambda: T.optimal_w(1.0, 1.0, 0.1, 1.0, beta=1 / 3), "beta=0.333.*0 <= beta < 1/3"),
    (lambda: T.eps1(1.0, 1.0, -0.1), "beta=-0.1"),
    (lambda: T.eps0_copies(1.0, 1.0, 0), "K=0"),
])
def test_bad_inputs_raise_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_validation_happens_before_long_work(monkeypatch):
    """The bad value is refused before any sample is drawn (no timing: a sampler that
    fails the test if it is reached)."""
    def no_sampling(*args, **kwargs):
        raise AssertionError("sampled before the parameters were checked")

    monkeypatch.setattr(model, "sample", no_sampling)
    with pytest.raises(ValueError, match="eps=0.6"):
        MC.train_w(1.0, 1.0, 0.6, 1.0, n=10**12)       # would not fit in memory
    with pytest.raises(ValueError, match="sigma=1.8"):
        MC.theorem2_mc(1.0, 1.8, 0.1, 1.0, [0.5], n=10**12)


# ---------------------------------------------------------------- the notebook
@pytest.mark.notebook
def test_notebook_smoke(tmp_path):
    """What the notebook recorded at smoke with xcf.companion.profiles.record_metrics: the book
    build's record when it is current (CI builds the book just before), else the notebook
    executed here (the notebook tier's rule, test_notebooks.notebook_metrics)."""
    from test_notebooks import notebook_metrics

    m = notebook_metrics("01_theory_synthetic_model", tmp_path)
    assert m["profile"] == "smoke"
    mu, sigma, lam, beta = m["mu"], m["sigma"], m["lam"], m["beta"]
    assert m["eps0"] == pytest.approx((mu - sigma / SQPI) / 2, rel=1e-12)
    assert m["eps1"] == pytest.approx((mu / (1 - beta) - sigma / SQPI) / 2, rel=1e-12)
    assert abs(m["lemma1_mc"] - 1 / SQPI) < m["lemma1_half"]
    t = tol(sigma, lam, m["n_samples"])
    for eps, w1, w2 in zip(m["eps_train"], m["w1_onehot"], m["w2_onehot"]):
        assert abs(w1 - (mu - 2 * eps) / lam) < t
        assert abs(w2 - max(0.0, (mu - 2 * eps - sigma / SQPI) / lam)) < t
    for eps, w1, w2 in zip(m["eps_train"], m["w1_smoothed"], m["w2_smoothed"]):
        assert abs(w1 - ((1 - beta) * mu - (2 - 3 * beta) * eps) / lam) < t
        assert abs(w2 - max(0.0, (mu - (1 - beta) * (2 * eps + sigma / SQPI)) / lam)) < t
