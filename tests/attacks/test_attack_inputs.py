"""The attack API validates like the rest of the library (issue 29, item 2): each bad
input raises an xcf.inputs error that names the bad value, before any gradient step."""
import numpy as np
import pytest
import torch

from conftest import TinyNet
from xcf import inputs
from xcf.attacks import FGSMRS, PGD, pgd

X = torch.rand(2, 1, 8, 8)
Y = torch.tensor([0, 1])


@pytest.mark.parametrize("kwargs,error,text", [
    (dict(eps=8), inputs.ArgumentError, r"at most 1 for l-inf.*8/255"),
    (dict(eps=300), inputs.ArgumentError, r"got 300.*300/255"),
    (dict(eps=True), inputs.ArgumentTypeError, r"eps must be a finite number >= 0, got True"),
    (dict(eps=float("inf")), inputs.ArgumentError, r"got inf"),
    (dict(eps=0.1, alpha=float("inf")), inputs.ArgumentError, r"alpha .* got inf"),
    (dict(eps=0.1, alpha=True), inputs.ArgumentTypeError, r"alpha .* got True"),
    (dict(eps=0.1, alpha=float("nan")), inputs.ArgumentError, r"alpha .* got nan"),
    (dict(eps=0.1, steps=True), inputs.ArgumentTypeError, r"steps .* got True"),
    (dict(eps=0.1, steps=2.5), inputs.ArgumentTypeError, r"steps .* got 2.5"),
    (dict(eps=0.1, model_mode="test"), inputs.ArgumentError, r"model_mode .* got 'test'"),
    (dict(eps=0.1, norm="l1"), inputs.ArgumentError, r"unknown norm 'l1'"),
    (dict(eps=0.1, random_start="yes"), inputs.ArgumentTypeError, r"random_start .* got 'yes'"),
])
def test_bad_attack_settings_are_refused_when_the_attack_is_made(kwargs, error, text):
    with pytest.raises(error, match=text):
        PGD(**kwargs)


@pytest.mark.parametrize("kwargs,text", [
    (dict(eps=300), r"got 300"),
    (dict(eps=0.1, alpha=float("inf")), r"alpha"),
    (dict(eps=0.1, model_mode="test"), r"model_mode"),
])
def test_fgsm_rs_refuses_them_too(kwargs, text):
    with pytest.raises(inputs.ArgumentError, match=text):
        FGSMRS(**kwargs)


@pytest.mark.parametrize("x,y,error,text", [
    (X.numpy(), Y, inputs.ImageError, r"x must be a torch.Tensor .* got ndarray"),
    ((X * 255).to(torch.uint8), Y, inputs.ImageError, r"dtype torch.uint8.*x.float\(\) / 255"),
    (X.to(torch.int32), Y, inputs.ImageError, r"dtype torch.int32.*x.float\(\)"),
    (torch.full((2, 1, 8, 8), float("nan")), Y, inputs.ImageError, r"x holds nan"),
    (X.masked_fill(X > 0.5, float("inf")), Y, inputs.ImageError, r"x holds inf"),
    (X * 2 - 0.5, Y, inputs.ImageError, r"\[0, 1\]"),
    (X[:0], Y[:0], inputs.ImageError, r"shape \(0, 1, 8, 8\).*at least one image"),
    (X, Y.float(), inputs.LabelError, r"dtype torch.float32.*y.long\(\)"),
    (X, Y.bool(), inputs.LabelError, r"dtype torch.bool"),
    (X, np.array([0, 1]), inputs.LabelError, r"y must be a torch.Tensor .* got ndarray"),
    (X, torch.tensor([0, -1]), inputs.LabelError, r"label -1 is negative"),
    (X, torch.tensor([0, 7]), inputs.LabelError, r"label 7 is outside \[0, 2\] for the model's 3"),
    (X, torch.tensor([0, 1, 2]), inputs.LengthError, r"\(2, 1, 8, 8\) and \(3,\)"),
])
def test_bad_images_and_labels_are_named(x, y, error, text):
    net = TinyNet(num_classes=3)
    with pytest.raises(error, match=text):
        PGD(eps=0.1, steps=2)(net, x, y)


def test_int32_labels_work_as_int64_and_l2_radius_is_bounded_by_the_box():
    net = TinyNet(num_classes=3)
    g = torch.Generator().manual_seed(0)
    a = pgd(net, X, Y.to(torch.int32), eps=0.1, steps=2, generator=g)
    b = pgd(net, X, Y, eps=0.1, steps=2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    with pytest.raises(inputs.ArgumentError, match=r"eps 9.0 is larger than the l2 diameter .*sqrt\(64\)"):
        pgd(net, X, Y, eps=9.0, norm="l2", steps=1)
    assert pgd(net, X, Y, eps=7.9, norm="l2", steps=1).shape == X.shape


def test_every_error_is_a_value_error_so_old_callers_still_catch_it():
    with pytest.raises(ValueError):
        PGD(eps=8)
