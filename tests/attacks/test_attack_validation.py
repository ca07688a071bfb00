"""The attack API validates like the rest of the library (issue 27, item 4).

Complements tests/attacks/test_attack_inputs.py (the first round of these checks): each bad setting
or call argument below raises one exact xcf.inputs error class whose message names the bad
value; a value of the wrong type raises ArgumentTypeError, which is also a TypeError.
Settings are refused when PGD / FGSMRS is made and by pgd / fgsm_rs before the model runs;
the batch before the first forward; the label range and the logits' shape at the first
forward.  Valid edge cases (eps 0, steps 0, eps at its bound, a hand-computed step) still
work.
"""
import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from conftest import LinearNet, TinyNet
from xcf import inputs
from xcf.runs import config
from xcf.runs.config_file import ConfigError
from xcf.attacks import (FGSMRS, L2_EPS_MAX, LINF_EPS_MAX, PGD, ascent_direction, attack_mode,
                         default_step_size, fgsm_rs, pgd, project)

X = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
Y = torch.tensor([0, 1])
ArgErr, TypeErr = inputs.ArgumentError, inputs.ArgumentTypeError


class Spy(TinyNet):
    """Counts forward passes, to show a refusal came before any work."""

    def __init__(self):
        super().__init__(num_classes=3)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return super().forward(x)


def _raises(error, text, fn, *args, **kwargs):
    """``fn`` raises exactly ``error`` (not a subclass or a parent) matching ``text``."""
    with pytest.raises(inputs.InputError, match=text) as info:
        fn(*args, **kwargs)
    assert type(info.value) is error, f"{type(info.value).__name__}: {info.value}"
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, TypeError) == (error is TypeErr)
    return info.value


# --------------------------------------------------------------------------- settings
# (PGD keyword arguments, error class, text naming the value)
PGD_SETTINGS = {
    "l-inf eps 5 (0-255 units)": (dict(eps=5), ArgErr, r"at most 1 for l-inf.*got 5.*5/255"),
    "eps just above LINF_EPS_MAX": (dict(eps=1.0001), ArgErr, r"got 1\.0001"),
    "l2 eps above L2_EPS_MAX": (dict(eps=100, norm="l2"), ArgErr,
                                r"at most 64 for l2.*L2_EPS_MAX.*got 100"),
    "negative eps": (dict(eps=-0.1), ArgErr, r"eps must be .* >= 0, got -0\.1;.*8/255"),
    "eps nan": (dict(eps=float("nan")), ArgErr, r"got nan"),
    "eps -inf": (dict(eps=-math.inf), ArgErr, r"got -inf"),
    "eps a string": (dict(eps="8/255"), TypeErr, r"got '8/255' \(type str\)"),
    "eps None": (dict(eps=None), TypeErr, r"got None \(type NoneType\)"),
    "eps a tensor": (dict(eps=torch.tensor(0.1)), TypeErr, r"got tensor\(0\.1000\)"),
    "negative alpha": (dict(eps=0.1, alpha=-0.01), ArgErr, r"alpha .* got -0\.01;.*None"),
    "alpha 0 with eps > 0": (dict(eps=0.1, alpha=0), ArgErr, r"alpha .* > 0, got 0;"),
    "alpha -inf": (dict(eps=0.1, alpha=-math.inf), ArgErr, r"alpha .* got -inf"),
    "alpha a string": (dict(eps=0.1, alpha="2/255"), TypeErr, r"got '2/255' \(type str\)"),
    "steps True": (dict(eps=0.1, steps=True), TypeErr, r"steps .* got True \(type bool\)"),
    "steps 2.5": (dict(eps=0.1, steps=2.5), TypeErr, r"steps .* got 2\.5 \(type float\)"),
    "steps 10.0": (dict(eps=0.1, steps=10.0), TypeErr, r"steps .* got 10\.0"),
    "steps a string": (dict(eps=0.1, steps="10"), TypeErr, r"steps .* got '10'"),
    "steps None": (dict(eps=0.1, steps=None), TypeErr, r"steps .* got None"),
    "negative steps": (dict(eps=0.1, steps=-1), ArgErr, r"steps .* got -1;.*steps=10"),
    "norm l1": (dict(eps=0.1, norm="l1"), ArgErr, r"unknown norm 'l1'.*'linf', 'l2'"),
    "norm Linf (case)": (dict(eps=0.1, norm="Linf"), ArgErr, r"unknown norm 'Linf'"),
    "norm None": (dict(eps=0.1, norm=None), TypeErr, r"unknown norm None \(type NoneType\)"),
    "norm a number": (dict(eps=0.1, norm=2), TypeErr, r"unknown norm 2 \(type int\)"),
    "model_mode test": (dict(eps=0.1, model_mode="test"), ArgErr, r"model_mode .* got 'test'"),
    "model_mode None": (dict(eps=0.1, model_mode=None), TypeErr, r"model_mode .* got None"),
    "model_mode a bool": (dict(eps=0.1, model_mode=False), TypeErr, r"model_mode .* got False"),
    "random_start 1": (dict(eps=0.1, random_start=1), TypeErr,
                       r"random_start .* got 1 \(type int\)"),
    "random_start 'False'": (dict(eps=0.1, random_start="False"), TypeErr,
                             r"random_start .* got 'False'"),
}


@pytest.mark.parametrize("case", list(PGD_SETTINGS))
def test_pgd_refuses_a_bad_setting_when_made(case):
    kwargs, error, text = PGD_SETTINGS[case]
    _raises(error, text, PGD, **kwargs)


@pytest.mark.parametrize("case", list(PGD_SETTINGS))
def test_functional_pgd_refuses_it_before_the_model_runs(case):
    kwargs, error, text = PGD_SETTINGS[case]
    net = Spy()
    _raises(error, text, pgd, net, X, Y, **kwargs)
    assert net.calls == 0


# FGSM-RS has no steps / norm / random_start; alpha has no upper bound (a step of 10 eps is
# a valid fast-AT step, see tests/attacks/test_attacks.py).
FGSM_SETTINGS = {k: v for k, v in PGD_SETTINGS.items()
                 if not ({"steps", "norm", "random_start"} & set(v[0]))}


@pytest.mark.parametrize("case", list(FGSM_SETTINGS))
def test_fgsm_rs_refuses_a_bad_setting_when_made_and_before_the_model_runs(case):
    kwargs, error, text = FGSM_SETTINGS[case]
    _raises(error, text, FGSMRS, **kwargs)
    net = Spy()
    _raises(error, text, fgsm_rs, net, X, Y, **kwargs)  # not a raw error from 1.25 * eps
    assert net.calls == 0


def test_the_linf_bound_is_the_configs():
    assert "LINF_EPS_MAX" not in config.__all__  # one import path: xcf.attacks
    PGD(eps=LINF_EPS_MAX)
    PGD(eps=L2_EPS_MAX, norm="l2")
    with pytest.raises(ConfigError, match="eps"):
        config.TrainConfig(eps=LINF_EPS_MAX * 1.5)
    _raises(ArgErr, r"got 1\.5", PGD, eps=LINF_EPS_MAX * 1.5)


# --------------------------------------------------------------------------- call arguments
def _image_with(value, sample=1):
    x = X.clone()
    x[sample, 0, 3, 4] = value
    return x


class FlatLogits(nn.Module):
    """Returns (B,) scores instead of (B, K) logits."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(64, 1)

    def forward(self, x):
        return self.lin(x.flatten(1)).squeeze(1)


class TupleOut(TinyNet):
    def forward(self, x):
        return super().forward(x), self.features(x)


# (call keyword arguments overriding model=Spy(), x=X, y=Y; error class; text)
CALLS = {
    "NaN pixel": (dict(x=_image_with(float("nan"))), inputs.ImageError,
                  r"x holds nan \(first in sample 1; not finite\)"),
    "inf pixel": (dict(x=_image_with(math.inf, 0)), inputs.ImageError,
                  r"x holds inf \(first in sample 0"),
    "-inf pixel": (dict(x=_image_with(-math.inf)), inputs.ImageError, r"x holds -inf"),
    "pixel above 1": (dict(x=_image_with(1.5)), inputs.ImageError,
                      r"x holds 1\.5 \(first in sample 1; values span .*outside \[0, 1\]"),
    "pixel below 0": (dict(x=_image_with(-0.25, 0)), inputs.ImageError,
                      r"x holds -0\.25 \(first in sample 0"),
    "normalised images": (dict(x=(X - 0.5) / 0.25), inputs.ImageError,
                          r"outside \[0, 1\].*normalise inside the model"),
    "0-255 images as float": (dict(x=X * 255), inputs.ImageError, r"outside \[0, 1\]"),
    "empty batch": (dict(x=X[:0], y=Y[:0]), inputs.ImageError,
                    r"shape \(0, 1, 8, 8\).*at least one image"),
    "no pixels": (dict(x=torch.rand(2, 0, 8, 8)), inputs.ImageError, r"shape \(2, 0, 8, 8\)"),
    "one image without a batch dim": (dict(x=X[0, 0, 0]), inputs.ImageError,
                                      r"shape \(8,\).*x\.unsqueeze\(0\)"),
    "images a list": (dict(x=X.tolist()), inputs.ImageError,
                      r"x must be a torch\.Tensor .* got list"),
    "images a float": (dict(x=0.5), inputs.ImageError, r"got float"),
    "images uint8": (dict(x=(X * 255).to(torch.uint8)), inputs.ImageError,
                     r"dtype torch\.uint8.*x\.float\(\) / 255"),
    "images bool": (dict(x=X > 0.5), inputs.ImageError, r"dtype torch\.bool"),
    "float labels": (dict(y=Y.float()), inputs.LabelError, r"dtype torch\.float32.*y\.long\(\)"),
    "float64 labels": (dict(y=Y.double()), inputs.LabelError, r"dtype torch\.float64"),
    "complex labels": (dict(y=Y.to(torch.complex64)), inputs.LabelError, r"complex64"),
    "labels a list": (dict(y=[0, 1]), inputs.LabelError, r"y must be a torch\.Tensor .* list"),
    "labels (B, 1)": (dict(y=Y[:, None]), inputs.LabelError,
                      r"y has shape \(2, 1\).*y\.view\(-1\)"),
    "one-hot labels": (dict(y=torch.eye(3)[Y].long()), inputs.LabelError,
                       r"shape \(2, 3\).*y\.argmax\(1\)"),
    "a scalar label": (dict(y=torch.tensor(1)), inputs.LabelError, r"y has shape \(\)"),
    "fewer labels": (dict(y=Y[:1]), inputs.LengthError, r"\(2, 1, 8, 8\) and \(1,\)"),
    "more labels": (dict(y=torch.tensor([0, 1, 2])), inputs.LengthError,
                    r"\(2, 1, 8, 8\) and \(3,\).*one label per image"),
    "negative label": (dict(y=torch.tensor([0, -3])), inputs.LabelError,
                       r"label -3 is negative \(sample 1 of y\)"),
    "model a function": (dict(model=lambda x: x), TypeErr,
                         r"model must be a torch\.nn\.Module.*got function"),
    "model None": (dict(model=None), TypeErr, r"got NoneType"),
    "generator a seed": (dict(generator=0), TypeErr, r"generator must be a torch\.Generator.*int"),
    "generator a string": (dict(generator="cpu"), TypeErr, r"got str"),
}


@pytest.mark.parametrize("case", list(CALLS))
@pytest.mark.parametrize("attack", [PGD(eps=0.1, steps=2), FGSMRS(eps=0.1)],
                         ids=["PGD", "FGSMRS"])
def test_a_bad_call_argument_is_refused_before_the_first_forward(case, attack):
    args, error, text = CALLS[case]
    call = dict(model=Spy(), x=X, y=Y) | args
    _raises(error, text, attack, call["model"], call["x"], call["y"],
            generator=call.get("generator"))
    if isinstance(call["model"], Spy):
        assert call["model"].calls == 0


def test_l2_radius_beyond_the_image_box_is_refused_at_the_call():
    _raises(ArgErr, r"eps 9\.0 is larger than the l2 diameter .*sqrt\(64\) = 8",
            PGD(eps=9.0, norm="l2"), Spy(), X, Y)


def test_loss_fn_must_be_callable():
    net = Spy()
    _raises(TypeErr, r"loss_fn must be callable .* got 'ce'", pgd, net, X, Y, eps=0.1,
            loss_fn="ce")
    assert net.calls == 0


@pytest.mark.parametrize("attack", [PGD(eps=0.1, steps=3), FGSMRS(eps=0.1)],
                         ids=["PGD", "FGSMRS"])
@pytest.mark.parametrize("y,text", [
    (torch.tensor([0, 3]), r"label 3 is outside \[0, 2\] for the model's 3 classes "
                           r"\(sample 1 of y\)"),
    (torch.tensor([7, 0]), r"label 7 is outside \[0, 2\].*\(sample 0 of y\)"),
])
def test_a_label_beyond_the_models_classes_is_caught_at_the_first_forward(attack, y, text):
    net = Spy()
    _raises(inputs.LabelError, text, attack, net, X, y)
    assert net.calls == 1


@pytest.mark.parametrize("model,text", [
    (FlatLogits(), r"returned shape \(2,\) for a batch of 2 images.*\(B, K\)"),
    (TupleOut(), r"returned a tuple"),
])
def test_a_model_that_does_not_return_logits_is_named(model, text):
    _raises(inputs.ShapeError, text, PGD(eps=0.1, steps=2), model, X, Y)


# --------------------------------------------------------------------------- building blocks
def test_the_public_building_blocks_refuse_an_unknown_norm():
    g = torch.randn(2, 1, 8, 8)
    _raises(ArgErr, r"unknown norm 'L2'", ascent_direction, g, "L2")  # not silently l2
    _raises(ArgErr, r"unknown norm 'l1'", project, X + 0.1, X, 0.1, "l1")
    _raises(TypeErr, r"unknown norm None", project, X, X, 0.1, None)
    _raises(ArgErr, r"unknown norm 'inf'", default_step_size, 8 / 255, "inf")
    _raises(TypeErr, r"eps must be .* got '8/255'", default_step_size, "8/255", "linf")


def test_attack_mode_refuses_a_bad_mode_or_a_non_module_and_leaves_the_model_alone():
    net = TinyNet().train()
    with pytest.raises(ArgErr, match=r"model_mode .* got 'inference'"):
        with attack_mode(net, "inference"):
            pass
    with pytest.raises(TypeErr, match=r"model must be a torch\.nn\.Module.*function"):
        with attack_mode(lambda x: x):
            pass
    assert net.training and all(p.requires_grad for p in net.parameters())


# --------------------------------------------------------------------------- valid edge cases
@pytest.mark.parametrize("attack", [
    PGD(eps=0, steps=3), PGD(eps=0.0, steps=3, norm="l2"), PGD(eps=0, alpha=0.1),
    PGD(eps=0.1, steps=0, random_start=False), FGSMRS(eps=0), FGSMRS(eps=0, alpha=0),
], ids=["linf eps 0", "l2 eps 0", "eps 0 explicit alpha", "steps 0 no start", "fgsm eps 0",
        "fgsm eps 0 alpha 0"])
def test_no_attack_returns_the_input_unchanged(attack):
    x = X.clone()
    x[0] = 0.0  # the corners of the box, where clipping could move a pixel
    x[1, 0, :4] = 1.0
    out = attack(TinyNet(), x, Y, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, x) and out.dtype == x.dtype and not out.requires_grad


@pytest.mark.parametrize("attack", [
    PGD(eps=1), PGD(eps=1.0, steps=1), PGD(eps=8 / 255, steps=0), PGD(eps=np.float32(0.1)),
    PGD(eps=0.5, alpha=np.float64(0.1)), PGD(eps=8.0, norm="l2", steps=1),
    FGSMRS(eps=8 / 255, alpha=10 * 8 / 255), PGD(eps=0.1, model_mode="train"),
], ids=["eps at LINF_EPS_MAX", "float eps 1", "steps 0", "numpy eps", "numpy alpha",
        "l2 eps at the box diameter", "fgsm alpha 10 eps", "train mode"])
def test_valid_edge_settings_attack(attack):
    out = attack(TinyNet(), X, Y.to(torch.int32))
    assert out.shape == X.shape and out.min() >= 0 and out.max() <= 1


def test_a_numpy_radius_attacks_as_the_same_python_float():
    net, g = TinyNet(), lambda: torch.Generator().manual_seed(4)  # noqa: E731
    a = pgd(net, X, Y, eps=np.float32(0.1), steps=2, generator=g())
    b = pgd(net, X, Y, eps=float(np.float32(0.1)), steps=2, generator=g())
    assert torch.equal(a, b)


def test_one_linf_step_by_hand():
    """f(x) = W x with two classes and y = 0: the gradient of the cross-entropy is
    p_1 (W[1] - W[0]), so one step of size eps from x moves each pixel by
    eps * sign(W[1] - W[0]) = 0.1 * (-1, +1, 0, +1): the third pixel, which no class
    weighs, has gradient exactly 0 and stays; the last (0.95) is clipped at 1 (Madry et
    al. 2018's signed step, then the box)."""
    W = torch.tensor([[1.0, -2.0, 0.0, 0.0], [-1.0, 1.0, 0.0, 3.0]])
    x = torch.tensor([0.5, 0.5, 0.5, 0.95]).view(1, 1, 2, 2)
    out = pgd(LinearNet(W), x, torch.tensor([0]), eps=0.1, alpha=0.1, steps=1,
              random_start=False)
    assert torch.allclose(out.flatten(), torch.tensor([0.4, 0.6, 0.5, 1.0]), atol=1e-7)
    # More steps stay on the face of the ball: the gradient's sign does not change.
    out = pgd(LinearNet(W), x, torch.tensor([0]), eps=0.1, steps=5, random_start=False)
    assert torch.allclose(out.flatten(), torch.tensor([0.4, 0.6, 0.5, 1.0]), atol=1e-7)


def test_one_l2_step_by_hand():
    """Same model: the l2 step moves x by eps * d / ||d||, d = W[1] - W[0] = (-2, 3, 0, 3),
    ||d|| = sqrt(22); with eps = sqrt(22) / 100 that is d / 100."""
    W = torch.tensor([[1.0, -2.0, 0.0, 0.0], [-1.0, 1.0, 0.0, 3.0]])
    x = torch.full((1, 1, 2, 2), 0.5)
    eps = math.sqrt(22) / 100
    out = pgd(LinearNet(W), x, torch.tensor([0]), eps=eps, alpha=eps, steps=1, norm="l2",
              random_start=False)
    assert torch.allclose(out.flatten(), torch.tensor([0.48, 0.53, 0.5, 0.53]), atol=1e-7)
