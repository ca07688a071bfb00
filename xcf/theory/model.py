"""The synthetic three-class model of Section 4: data (Eq. 8), hypothesis (Eq. 16), losses.

Layout of one sample with K copies (Appendix E.5): a vector of length ``6K``, read as
``x.view(n, K, 6)`` with the six coordinates of copy k ordered
``(x_E1, x_E2, x_E3, x_C1, x_C2, x_C3)`` as in Eq. 14.  K = 1 is the model of Section 4.
Classes are indexed 0, 1, 2 (the paper's 1, 2, 3).  Tensors are float64.

Eq. 8 and Eq. 16 are built from the incidence tables of :mod:`xcf.theory.structure`, which
:mod:`xcf.theory.symbolic` shares.
"""
from __future__ import annotations

import contextlib

import torch

from xcf.theory._checks import check_choice, check_copies, check_mu_sigma
from xcf.theory.structure import EXCLUSIVE, SHARED, SMOOTHING

__all__ = ["class_mask", "sample", "weight_matrix", "logits", "margin", "best_other",
           "others_sum", "smoothed_loss", "lemma2_delta", "full_adversary_deltas",
           "single_thread", "pgd_maximise", "worst_case_pairwise", "ADVERSARIES",
           "METHODS", "robust_loss"]

_DT = torch.float64


def _tables():
    return torch.tensor(EXCLUSIVE, dtype=_DT), torch.tensor(SHARED, dtype=_DT)


def _per_copy(w, K):
    w = torch.as_tensor(w, dtype=_DT).reshape(-1)
    if w.numel() not in (1, K):
        raise ValueError(f"weight has {w.numel()} entries; expected 1 or K={K}")
    return w.expand(K)


def class_mask(y: torch.Tensor, K: int = 1) -> torch.Tensor:
    """0/1 mask of the coordinates that class ``y`` draws from N(mu, sigma^2) (Eq. 8).

    y: (n,) long -> (n, 6K).
    """
    E, C = _tables()
    one = torch.cat([E, C], dim=1)[y]           # (n, 6)
    return one.repeat(1, K)


def sample(n: int, mu: float, sigma: float, *, K: int = 1, shared_noise: bool = False,
           y: torch.Tensor | None = None, generator: torch.Generator | None = None):
    """Draw n samples from D_i (Eq. 8), i uniform on the three classes (Eq. 9).

    With K copies (Appendix E.5) every coordinate is repeated K times; the copies are
    independent draws, or the same draw when ``shared_noise`` is true.
    Returns x: (n, 6K) float64 and y: (n,) long in {0, 1, 2}.
    """
    check_mu_sigma(mu, sigma)
    check_copies(K)
    if y is None:
        y = torch.randint(0, 3, (n,), generator=generator)
    z = torch.randn(n, 1 if shared_noise else K, 6, dtype=_DT, generator=generator)
    x = (mu + sigma * z).expand(n, K, 6).reshape(n, 6 * K)
    return x * class_mask(y, K), y


def weight_matrix(w1, w2, K: int = 1) -> torch.Tensor:
    """The 3 x 6K matrix W of f_w(x) = W x (Eq. 16); w1, w2 scalars or (K,) per copy."""
    E, C = _tables()
    w1, w2 = _per_copy(w1, K), _per_copy(w2, K)
    blocks = [torch.cat([w1[k] * E, w2[k] * C], dim=1) for k in range(K)]
    return torch.cat(blocks, dim=1)


def logits(x: torch.Tensor, w1, w2) -> torch.Tensor:
    """f_w(x)_i = w1 x_E,i + w2 (x_C,j1 + x_C,j2), {j1, j2} = {1,2,3} minus {i} (Eq. 16).

    x: (n, 6K) -> (n, 3).  With K copies the logit sums over copies with weights w1[k], w2[k].
    """
    K = x.shape[-1] // 6
    return x @ weight_matrix(w1, w2, K).to(x.dtype).T


def margin(f: torch.Tensor, y: torch.Tensor, branch: torch.Tensor | None = None) -> torch.Tensor:
    """max_{j != y} f_j - f_y, the loss inside Eq. 10.  f: (n, 3), y: (n,) -> (n,).

    ``branch`` (n,), if given, names the maximising j (see :func:`robust_loss`).
    """
    own = f.gather(1, y[:, None])[:, 0]
    if branch is None:
        branch = best_other(f, y)
    return f.gather(1, branch[:, None])[:, 0] - own


def best_other(f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """argmax_{j != y} f_j: (n, 3), (n,) -> (n,) long."""
    return f.detach().scatter(1, y[:, None], float("-inf")).argmax(dim=1)


def others_sum(f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """sum_{j != y} f_j: the logits that label smoothing rewards (Eq. 13 / Eq. 38). -> (n,)"""
    return f.sum(dim=1) - f.gather(1, y[:, None])[:, 0]


def smoothed_loss(f: torch.Tensor, y: torch.Tensor, beta: float,
                  smoothing: str = "eq38", branch: torch.Tensor | None = None) -> torch.Tensor:
    """(1 - beta) [max_{j != y} f_j - f_y] - c * beta * sum_{j != y} f_j, per sample (n,).

    ``smoothing="eq38"``: c = 1/2, the objective of Eq. 38 that the paper's proof uses
    (the smoothed label puts beta/2 on each of the two other classes).
    ``smoothing="eq13"``: c = 1, Eq. 13 as printed.  beta = 0 gives the margin of Eq. 10.
    """
    check_choice("smoothing", smoothing, SMOOTHING)
    c = float(SMOOTHING[smoothing])
    return (1 - beta) * margin(f, y, branch) - c * beta * others_sum(f, y)


def lemma2_delta(y: torch.Tensor, eps: float, K: int = 1) -> torch.Tensor:
    """Lemma 2's worst-case perturbation, for each sample's class y (Eq. 26).

    For class 1: delta = (-eps, eps, eps, eps, -eps, -eps): lower the own exclusive feature,
    raise the other exclusive features and the absent shared feature, lower the two shared
    features the class owns.  y: (n,) -> (n, 6K).
    """
    own = torch.nn.functional.one_hot(y, 3).to(_DT)
    one = torch.cat([1 - 2 * own, 2 * own - 1], dim=1)
    return eps * one.repeat(1, K)


def full_adversary_deltas(y: torch.Tensor, eps: float, K: int = 1) -> torch.Tensor:
    """Candidate maximisers of the *whole* smoothed loss (the extension of Theorem 3).

    With beta > 0 the adversary that maximises Eq. 38 as a whole picks one target class
    j != y: delta_E = +eps on x_E,j and -eps on the other two exclusive features, and
    delta_C = +eps on x_C,y, -eps elsewhere (derived in :mod:`xcf.theory.symbolic`).
    Returns (2, n, 6K): one candidate per target (the two classes other than y, in order).
    """
    n = y.shape[0]
    own = torch.nn.functional.one_hot(y, 3).to(_DT)
    cands = []
    for r in (1, 2):
        tgt = torch.nn.functional.one_hot((y + r) % 3, 3).to(_DT)
        cands.append(eps * torch.cat([2 * tgt - 1, 2 * own - 1], dim=1).repeat(1, K))
    return torch.stack(cands).reshape(2, n, 6 * K)


@contextlib.contextmanager
def single_thread():
    """Run torch on one thread: these tensors are tiny and extra threads only contend."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def pgd_maximise(objective, x: torch.Tensor, eps: float, *, steps: int = 10,
                 step_size: float | None = None, restarts: int = 2,
                 generator: torch.Generator | None = None):
    """Generic l-inf PGD: maximise ``objective(x + delta)`` per sample over ||delta||_inf <= eps.

    objective: (n, d) -> (n,).  Sign-gradient ascent with projection onto the box; the first
    run starts at delta = 0, the others uniformly in the box; each sample keeps its best run.
    Knows nothing of Lemma 2.  Returns (delta (n, d), value (n,)).
    """
    step = eps / 4 if step_size is None else step_size
    best_val = torch.full(x.shape[:1], float("-inf"), dtype=x.dtype)
    best = torch.zeros_like(x)
    for r in range(restarts):
        if r == 0:
            delta = torch.zeros_like(x)
        else:
            delta = (2 * torch.rand(x.shape, dtype=x.dtype, generator=generator) - 1) * eps
        for _ in range(steps):
            delta.requires_grad_(True)
            (g,) = torch.autograd.grad(objective(x + delta).sum(), delta)
            delta = (delta.detach() + step * g.sign()).clamp(-eps, eps)
        with torch.no_grad():
            val = objective(x + delta)
            better = val > best_val
            best_val = torch.where(better, val, best_val)
            best = torch.where(better[:, None], delta, best)
    return best, best_val


def worst_case_pairwise(x: torch.Tensor, y: torch.Tensor, w1, w2, eps: float) -> torch.Tensor:
    """min over ||delta||_inf <= eps of f_w(x+delta)_y - f_w(x+delta)_j, for each j (Eq. 11).

    The pairwise margin is linear in delta, so its minimum is exact:
    (W_y - W_j) x - eps ||W_y - W_j||_1.  Returns (n, 3) with +inf in column y.
    """
    K = x.shape[-1] // 6
    W = weight_matrix(w1, w2, K)
    diff = W[y][:, None, :] - W[None, :, :]                 # (n, 3, 6K)
    m = (diff * x[:, None, :]).sum(-1) - eps * diff.abs().sum(-1)
    return m.masked_fill(torch.nn.functional.one_hot(y, 3).bool(), float("inf"))


ADVERSARIES = ("lemma2", "full")
METHODS = ("exact", "pgd")
_FLOOR = 1e-9


def robust_loss(x: torch.Tensor, y: torch.Tensor, w1, w2, eps: float, *, beta: float = 0.0,
                smoothing: str = "eq38", adversary: str = "lemma2", method: str = "exact",
                pgd_steps: int = 10, pgd_restarts: int = 2,
                generator: torch.Generator | None = None):
    """Per-sample robust loss (Eq. 10; Eq. 38 when beta > 0) and the perturbation used.

    - adversary="lemma2": delta maximises the margin of Eq. 10, as in the paper's proofs; the
      smoothing term of Eq. 38 is then read at that delta.  method="exact" uses Lemma 2's
      delta*, method="pgd" finds it by :func:`pgd_maximise` (beta = 0 only: with beta > 0
      the margin has several maximisers and the smoothing term depends on which one).
    - adversary="full": delta maximises the whole smoothed loss (extension); "exact" takes the
      better of the two candidates of :func:`full_adversary_deltas`, "pgd" runs PGD on it.

    The adversary, and the active j of max_{j != y}, are computed at w clamped below at 1e-9:
    at w2 = 0 every delta_C and both j tie, and the clamp picks the limit w2 -> 0+, whose
    gradient is the right-hand derivative (Danskin's theorem) that projected descent needs.
    x: (n, 6K), y: (n,) -> (loss (n,), delta (n, 6K)); gradients flow to w1, w2, not delta.
    """
    check_choice("adversary", adversary, ADVERSARIES)
    check_choice("method", method, METHODS)
    check_choice("smoothing", smoothing, SMOOTHING)
    K = x.shape[-1] // 6
    wa1 = torch.as_tensor(w1, dtype=_DT).detach().clamp_min(_FLOOR)
    wa2 = torch.as_tensor(w2, dtype=_DT).detach().clamp_min(_FLOOR)
    if adversary == "lemma2":
        if method == "exact":
            delta = lemma2_delta(y, eps, K)
        else:
            if beta != 0:
                raise ValueError(f"beta={beta!r}: PGD on the margin does not single out Lemma 2's "
                                 "delta*; use method='exact' or adversary='full'")
            delta, _ = pgd_maximise(lambda z: margin(logits(z, wa1, wa2), y), x, eps,
                                    steps=pgd_steps, restarts=pgd_restarts, generator=generator)
    else:
        obj = lambda z: smoothed_loss(logits(z, wa1, wa2), y, beta, smoothing)  # noqa: E731
        if method == "exact":
            cands = full_adversary_deltas(y, eps, K)
            with torch.no_grad():
                vals = torch.stack([obj(x + c) for c in cands])
            delta = torch.where((vals[0] >= vals[1])[:, None], cands[0], cands[1])
        else:
            delta, _ = pgd_maximise(obj, x, eps, steps=pgd_steps, restarts=pgd_restarts,
                                    generator=generator)
    delta = delta.detach()
    with torch.no_grad():  # the active j of the max, also decided at the floored weights
        branch = best_other(logits(x + delta, wa1, wa2), y)
    return smoothed_loss(logits(x + delta, w1, w2), y, beta, smoothing, branch), delta
