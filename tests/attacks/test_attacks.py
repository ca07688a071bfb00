"""PGD and FGSM-RS: invariants (hypothesis), closed forms on a linear model, agreement
with torchattacks, mode/gradient hygiene and input validation."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import LinearNet, TinyNet
from xcf.attacks import FGSMRS, PGD, attack_mode, default_step_size, fgsm_rs, pgd

torchattacks = pytest.importorskip("torchattacks")


def _net():
    torch.manual_seed(0)
    return TinyNet().eval()


@settings(max_examples=25, deadline=None)
@given(eps=st.floats(0.0, 0.6), steps=st.integers(0, 4), norm=st.sampled_from(["linf", "l2"]),
       random_start=st.booleans(), seed=st.integers(0, 2**16))
def test_perturbation_stays_in_ball_and_box(eps, steps, norm, random_start, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(6, 1, 8, 8, generator=g)
    x[0] = 0.0  # corners of the box, where clipping matters
    x[1] = 1.0
    y = torch.randint(0, 3, (6,), generator=g)
    x_adv = pgd(_net(), x, y, eps=eps, steps=steps, norm=norm, random_start=random_start, generator=g)
    delta = (x_adv - x).flatten(1)
    size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert (size <= eps + 1e-6).all()
    assert x_adv.min() >= 0 and x_adv.max() <= 1


@settings(max_examples=15, deadline=None)
@given(eps=st.floats(0.0, 0.3), seed=st.integers(0, 2**16))
def test_fgsm_rs_stays_in_ball_and_box(eps, seed):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.rand(5, 1, 8, 8, generator=g), torch.randint(0, 3, (5,), generator=g)
    x_adv = fgsm_rs(_net(), x, y, eps=eps, generator=g)
    assert ((x_adv - x).abs() <= eps + 1e-6).all() and x_adv.min() >= 0 and x_adv.max() <= 1


def _linear_case():
    # Two classes, f(x) = W x.  Cross-entropy of class 0 grows along d = W[1] - W[0] only,
    # so the worst-case perturbation in the ball is known in closed form.
    torch.manual_seed(4)
    W = torch.randn(2, 12)
    x = torch.full((1, 1, 3, 4), 0.5)
    d = (W[1] - W[0]).view(1, 1, 3, 4)
    return LinearNet(W), x, torch.tensor([0]), d


def test_linf_pgd_reaches_closed_form_optimum():
    model, x, y, d = _linear_case()
    x_adv = pgd(model, x, y, eps=0.1, alpha=0.05, steps=5, norm="linf", random_start=False)
    assert torch.allclose(x_adv - x, 0.1 * d.sign(), atol=1e-6)


def test_l2_pgd_reaches_closed_form_optimum():
    model, x, y, d = _linear_case()
    x_adv = pgd(model, x, y, eps=0.2, alpha=0.1, steps=3, norm="l2", random_start=False)
    assert torch.allclose(x_adv - x, 0.2 * d / d.norm(), atol=1e-6)
    # From a random start the component off d shrinks by about 2/3 per step (step 0.1,
    # radius 0.2), so 40 steps bring it below 1e-6.
    x_adv = pgd(model, x, y, eps=0.2, alpha=0.1, steps=40, norm="l2", random_start=True,
                generator=torch.Generator().manual_seed(0))
    assert torch.allclose(x_adv - x, 0.2 * d / d.norm(), atol=1e-5)


@pytest.mark.parametrize("norm,eps,alpha", [("linf", 8 / 255, 2 / 255), ("l2", 0.5, 0.1)])
def test_matches_torchattacks_without_random_start(norm, eps, alpha):
    model = _net()
    torch.manual_seed(5)
    x, y = torch.rand(8, 1, 8, 8), torch.randint(0, 3, (8,))
    cls = torchattacks.PGD if norm == "linf" else torchattacks.PGDL2
    ref = cls(model, eps=eps, alpha=alpha, steps=7, random_start=False)(x, y)
    ours = pgd(model, x, y, eps=eps, alpha=alpha, steps=7, norm=norm, random_start=False)
    assert torch.allclose(ours, ref, atol=1e-5)


def test_eps_zero_leaves_input_unchanged():
    model = _net()
    x, y = torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 0])
    for norm in ("linf", "l2"):
        assert torch.equal(pgd(model, x, y, eps=0.0, steps=3, norm=norm), x)


def test_attack_increases_loss():
    model = _net()
    torch.manual_seed(6)
    x, y = torch.rand(32, 1, 8, 8), torch.randint(0, 3, (32,))
    ce = torch.nn.functional.cross_entropy
    with torch.no_grad():
        clean = ce(model(x), y)
        adv = ce(model(pgd(model, x, y, eps=0.2, steps=10)), y)
    assert adv > clean


def test_mode_and_requires_grad_restored_and_no_weight_grads():
    model = _net()
    model.train()
    model.body[1].eval()          # a mixed-mode model: one BN frozen inside a training model
    model.head.weight.requires_grad_(False)
    x, y = torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 0])
    pgd(model, x, y, eps=0.1, steps=2, model_mode="eval")
    assert model.training and not model.body[1].training
    assert not model.head.weight.requires_grad and model.body[0].weight.requires_grad
    assert all(p.grad is None for p in model.parameters())


def test_attack_runs_in_requested_mode():
    seen = []

    class Spy(TinyNet):
        def forward(self, x):
            seen.append(self.training)
            return super().forward(x)

    model = Spy().eval()
    x, y = torch.rand(2, 1, 8, 8), torch.tensor([0, 1])
    pgd(model, x, y, eps=0.1, steps=2, model_mode="train")
    assert seen == [True, True] and not model.training


def test_mode_restored_after_exception():
    class Boom(TinyNet):
        calls = 0

        def forward(self, x):
            Boom.calls += 1
            if Boom.calls == 2:
                raise RuntimeError("boom")
            return super().forward(x)

    model = Boom().train()
    with pytest.raises(RuntimeError, match="boom"):
        pgd(model, torch.rand(2, 1, 8, 8), torch.tensor([0, 1]), eps=0.1, steps=3)
    assert model.training and all(p.requires_grad for p in model.parameters())


def test_default_step_sizes_follow_table2():
    assert default_step_size(8 / 255, "linf") == pytest.approx(2 / 255)
    assert default_step_size(128 / 255, "l2") == pytest.approx(16 / 255)


def test_seeded_random_start_is_reproducible():
    model = _net()
    x, y = torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 0])
    a = PGD(eps=0.1, steps=2)(model, x, y, generator=torch.Generator().manual_seed(1))
    b = PGD(eps=0.1, steps=2)(model, x, y, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


def test_fgsm_rs_steps_of_two_eps_or_more_all_land_on_the_face_of_the_ball():
    """From a start inside the l-inf ball, a step of alpha >= 2 eps overshoots the ball
    in every coordinate whose gradient is non-zero, so the projection puts the pixel at
    x + eps * sign(grad at the start) (clipped to [0, 1]) whatever alpha is.  Fast-AT
    steps of 2 eps and 2.5 eps therefore train identically (so the cpu study's C4 does
    not try 2.5 eps); 1.25 eps does not reach the face everywhere."""
    model = _net()
    g = torch.Generator().manual_seed(3)
    x, y = torch.rand(6, 1, 8, 8, generator=g), torch.randint(0, 3, (6,), generator=g)
    eps = 0.2
    start = (x + torch.empty_like(x).uniform_(
        -eps, eps, generator=torch.Generator().manual_seed(9))).clamp(0, 1)
    start.requires_grad_(True)
    torch.nn.functional.cross_entropy(model(start), y, reduction="sum").backward()
    face = (x + eps * start.grad.sign()).clamp(0, 1)
    runs = {a: fgsm_rs(model, x, y, eps=eps, alpha=a,
                       generator=torch.Generator().manual_seed(9))
            for a in (2 * eps, 2.5 * eps, 10 * eps, 1.25 * eps)}
    moved = start.grad != 0
    for a in (2 * eps, 2.5 * eps, 10 * eps):
        assert torch.allclose(runs[a], face, atol=1e-6), a
        assert torch.equal(runs[a], runs[2 * eps]), a
    assert moved.float().mean() > 0.9
    inside = ((runs[1.25 * eps] - x).abs() < eps - 1e-4) & (x > eps) & (x < 1 - eps)
    assert inside.any()  # a shorter step leaves some pixels inside the ball


@pytest.mark.parametrize("kwargs,match", [
    (dict(eps=-0.1), "eps must be"),
    (dict(eps=float("nan")), "eps must be"),
    (dict(eps=0.1, norm="l1"), "unknown norm 'l1'"),
    (dict(eps=0.1, alpha=0.0), "alpha"),
    (dict(eps=0.1, steps=-1), "steps"),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        pgd(_net(), torch.rand(2, 1, 8, 8), torch.tensor([0, 1]), **kwargs)
    with pytest.raises(ValueError, match=match):
        PGD(**kwargs)


def test_inputs_outside_unit_box_rejected():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        pgd(_net(), torch.rand(2, 1, 8, 8) * 2 - 0.5, torch.tensor([0, 1]), eps=0.1)
    with pytest.raises(ValueError, match="model_mode"):
        with attack_mode(_net(), "test"):
            pass
    with pytest.raises(ValueError, match="eps must be"):
        FGSMRS(eps=-1)
