"""Models are f = W g (paper Eq. 4): logits equal head(features(x)); sizes match the
architectures the paper names (PreActResNet-18, DeiT-Ti)."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from xcf import models
from xcf.models import (MODELS, FeatureClassifier, build, check_feature_model, deit_tiny,
                        preact_resnet18, small_cnn)


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


CASES = {  # name -> (builder kwargs, input shape)
    "preact_resnet18": (dict(num_classes=10, in_channels=3, width=16), (3, 3, 32, 32)),
    "small_cnn": (dict(num_classes=7, in_channels=1, width=8), (3, 1, 28, 28)),
    "deit_tiny": (dict(num_classes=10, in_channels=3), (2, 3, 32, 32)),
}


@pytest.fixture(scope="module", params=MODELS)
def named_model(request):
    torch.manual_seed(0)
    kwargs, shape = CASES[request.param]
    kwargs = dict(kwargs)
    return request.param, build(request.param, kwargs.pop("num_classes"),
                                kwargs.pop("in_channels"), **kwargs), shape


def test_every_registered_model_has_a_case():
    assert set(CASES) == set(MODELS)


def test_logits_are_head_of_features(named_model):
    name, model, shape = named_model
    model.eval()
    x = torch.rand(shape)
    with torch.no_grad():
        logits = model(x)
        feats = model.features(x)
        # Eq. 4 written out by hand: f(x)_i = sum_j g(x)_j W[i, j] + b_i
        by_hand = feats @ model.head.weight.T + model.head.bias
    assert isinstance(model, FeatureClassifier) and isinstance(model.head, nn.Linear)
    assert feats.shape == (shape[0], model.head.in_features)
    assert logits.shape == (shape[0], model.head.out_features)
    torch.testing.assert_close(logits, model.head(feats))
    torch.testing.assert_close(logits, by_hand, rtol=1e-5, atol=1e-5)
    check_feature_model(model, x)


def test_gradients_reach_the_input(named_model):
    _, model, shape = named_model
    model.eval()
    x = torch.rand(shape, requires_grad=True)
    model(x).logsumexp(1).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    model.zero_grad(set_to_none=True)


def test_preact_resnet18_has_the_reference_size():
    m = preact_resnet18(10)
    # 11,172,170 = the reference PreActResNet18 of Rice et al. / Pang et al. / the paper's
    # code (counted with that code, and by the tally below). The often-quoted 11,173,962 is
    # the *post*-activation CIFAR ResNet-18, which has 1,792 more BatchNorm parameters.
    assert n_params(m) == 11_172_170
    conv = (3 * 64 * 9 + 64 * 64 * 9 * 4
            + 64 * 128 * 9 + 128 * 128 * 9 * 3 + 64 * 128
            + 128 * 256 * 9 + 256 * 256 * 9 * 3 + 128 * 256
            + 256 * 512 * 9 + 512 * 512 * 9 * 3 + 256 * 512)
    bn = 2 * (64 * 4 + (64 + 128 + 128 * 2) + (128 + 256 + 256 * 2)
              + (256 + 512 + 512 * 2) + 512)
    assert conv + bn + 512 * 10 + 10 == 11_172_170
    assert m.num_features == 512
    assert sum(isinstance(mod, models.PreActBlock) for mod in m.modules()) == 8


def test_preact_resnet18_takes_64px_and_other_widths():
    m = preact_resnet18(200, width=8).eval()
    with torch.no_grad():
        assert m(torch.rand(2, 3, 64, 64)).shape == (2, 200)
    assert m.features(torch.rand(1, 3, 64, 64)).shape == (1, 64)


def test_deit_tiny_for_cifar():
    m = deit_tiny(10)
    assert 5.3e6 < n_params(m) < 5.45e6  # DeiT-Ti at 32 px, 4 px patches: 5.36M
    assert m.backbone.patch_embed.num_patches == 64
    with torch.no_grad():
        assert m.eval()(torch.rand(3, 3, 32, 32)).shape == (3, 10)
    # the head is registered once (moved out of the timm backbone)
    assert sum(p.numel() for p in m.head.parameters()) == 192 * 10 + 10
    assert not any(k.startswith("backbone.head.") for k in m.state_dict())


@pytest.mark.parametrize("channels,size", [(1, 28), (1, 32), (3, 32)])
def test_small_cnn_sizes(channels, size):
    m = small_cnn(10, in_channels=channels, width=8).eval()
    with torch.no_grad():
        assert m(torch.rand(4, channels, size, size)).shape == (4, 10)
    assert m.features(torch.rand(1, channels, size, size)).min() >= 0  # after ReLU + pooling


def test_normalisation_is_applied_first():
    torch.manual_seed(0)
    mean, std = (0.2, 0.5, 0.7), (0.3, 0.2, 0.25)
    normed = small_cnn(5, in_channels=3, width=4, mean=mean, std=std).eval()
    plain = small_cnn(5, in_channels=3, width=4).eval()
    plain.load_state_dict({k: v for k, v in normed.state_dict().items()
                           if k not in ("mean", "std")}, strict=False)
    x = torch.rand(2, 3, 16, 16)
    m_, s_ = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(normed(x), plain((x - m_) / s_))
    assert {"mean", "std"} <= set(normed.state_dict())
    with pytest.raises(ValueError, match="3 entries"):
        small_cnn(5, in_channels=3, mean=(0.5,))


def test_build_passes_kwargs_and_rejects_unknown_names():
    m = build("small_cnn", 4, 3, width=4)
    assert m.num_classes == 4 and m.in_channels == 3 and m.num_features == 16
    assert build("preact-resnet18", 10, 3, width=4).num_features == 32
    with pytest.raises(ValueError) as err:
        build("resnet50", 10, 3)
    assert "resnet50" in str(err.value)
    assert all(name in str(err.value) for name in MODELS)


def test_check_feature_model_explains_what_is_missing():
    seq = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    with pytest.raises(TypeError) as err:
        check_feature_model(seq)
    msg = str(err.value)
    assert "features" in msg and "head" in msg and "FeatureClassifier" in msg

    class NoLinearHead(nn.Module):
        head = nn.Identity()

        def features(self, x):
            return x

    with pytest.raises(TypeError, match="head") as err:
        check_feature_model(NoLinearHead())
    assert "features(x) -> (B, n) method" not in str(err.value)  # it has features()


def test_check_feature_model_catches_a_forward_that_is_not_head_of_features():
    class Cheat(FeatureClassifier):
        def __init__(self):
            super().__init__(1)
            self.head = nn.Linear(4, 2)

        def embed(self, x):
            return x.flatten(1)

        def forward(self, x):  # adds something the head never sees
            return super().forward(x) + 1.0

    x = torch.rand(3, 1, 2, 2)
    check_feature_model(Cheat())  # structure alone is fine
    model = Cheat().train()
    with pytest.raises(ValueError, match="head"):
        check_feature_model(model, x)
    assert model.training  # mode restored
