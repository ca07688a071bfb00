"""``xcf.models.as_feature_classifier``: anyone's classifier as f = W g (Eq. 4).

Truth comes from outside the wrapper: the original model's own logits, a forward hook
written here that captures the head's input, and Algorithm 1, Eq. 6-7 and the
instance-wise matrix of Section 5.3 computed by hand in numpy."""
import numpy as np
import pytest
import torch
import torch.nn as nn

from xcf import attacks, attribution, models
from xcf.models import LinearHeadError, as_feature_classifier

torchvision = pytest.importorskip("torchvision")
timm = pytest.importorskip("timm")


def resnet18(k=10):
    return torchvision.models.resnet18(weights=None, num_classes=k)


def wide_resnet50_2(k=10):
    return torchvision.models.wide_resnet50_2(weights=None, num_classes=k)


def deit_tiny(k=10):
    return timm.create_model("deit_tiny_patch16_224", pretrained=False, img_size=32,
                             patch_size=4, num_classes=k)


def vit_tiny(k=10):
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32,
                             patch_size=8, num_classes=k)


def images(n, channels=3, size=32, seed=0):
    return torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("build, head", [(resnet18, "fc"), (wide_resnet50_2, "fc"),
                                         (deit_tiny, "head"), (vit_tiny, "head")],
                         ids=["resnet18", "wide_resnet50_2", "deit_tiny", "vit_tiny"])
def test_wrapped_logits_equal_the_original(build, head):
    torch.manual_seed(0)
    model = build().eval()
    x = images(3)
    with torch.no_grad():
        want = model(x)
        net = as_feature_classifier(model, num_classes=10)
        got, g = net(x), net.features(x)
    assert net.head_name == head and net.head is model.get_submodule(head)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-6)
    assert g.shape == (3, model.get_submodule(head).in_features)
    models.check_feature_model(net, x)  # head(features(x)) == net(x), the contract of measure


def test_the_users_model_is_left_as_it_was():
    model = resnet18().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fc = model.fc
    net = as_feature_classifier(model)
    attribution.measure(net, images(20), torch.arange(10).repeat(2),
                        attacks.PGD(eps=0.03, steps=1))
    assert model.fc is fc and not fc._forward_hooks, "no layer replaced, no hook left"
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert all(p.requires_grad for p in model.parameters())


def test_normalisation_and_grey_images_as_the_model_would_see_them():
    model = resnet18().eval()
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    grey = images(2, channels=1)
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    net = as_feature_classifier(model, mean, std, input_channels=1)
    with torch.no_grad():
        want = model((grey.repeat(1, 3, 1, 1) - m) / s)
        assert torch.allclose(net(grey), want, rtol=1e-5, atol=1e-5)
    assert net.repeats_channels


def by_hand(g, W, y, K):
    """Algorithm 1 (class means of g * W[y]), Eq. 6 (cosines), Eq. 7 (CAS) and the
    Section 5.3 instance-wise matrix, in float64 numpy loops."""
    A = np.stack([(g[y == k] * W[k]).mean(0) for k in range(K)])
    C = np.array([[A[i] @ A[j] / np.linalg.norm(A[i]) / np.linalg.norm(A[j])
                   for j in range(K)] for i in range(K)])
    cas = sum(max(C[i, j], 0.0) for i in range(K) for j in range(K) if i != j)
    vec = g * W[y]
    unit = vec / np.linalg.norm(vec, axis=1, keepdims=True)
    Ci = np.array([[np.mean([max(unit[a] @ unit[b] for b in np.flatnonzero(y == j))
                             for a in np.flatnonzero(y == i)]) for j in range(K)]
                   for i in range(K)])
    i_cas = sum(max(Ci[i, j], 0.0) for i in range(K) for j in range(K) if i != j)
    return C, cas, Ci, i_cas


def shift(model, x, y):
    """A fixed, model-independent perturbation standing in for the attack, so that the
    hand computation sees the very inputs Algorithm 1 saw."""
    return (x + 0.05 * torch.sin(37 * x)).clamp(0, 1)


@pytest.mark.parametrize("build, head", [(resnet18, "fc"), (deit_tiny, "head")],
                         ids=["resnet18", "deit_tiny"])
def test_C_CAS_and_I_CAS_equal_a_hand_written_hook(build, head):
    torch.manual_seed(1)
    K = 4
    model = build(K).eval()
    x, y = images(24, seed=2), torch.arange(K).repeat(6)
    got = attribution.measure(as_feature_classifier(model, num_classes=K), x, y, shift,
                              batch_size=7, instance=True)

    captured = []
    hook = model.get_submodule(head).register_forward_hook(
        lambda _m, args, _out: captured.append(args[0].detach()))
    with torch.no_grad():
        logits = model(shift(model, x, y))
    hook.remove()
    g = captured[0].double().numpy()
    W = model.get_submodule(head).weight.detach().double().numpy()
    C, cas, Ci, i_cas = by_hand(g, W, y.numpy(), K)
    assert np.allclose(got.C.numpy(), C, atol=1e-5)
    assert got.cas == pytest.approx(cas, abs=1e-4)
    assert np.allclose(got.C_instance.numpy(), Ci, atol=1e-5)
    assert got.i_cas == pytest.approx(i_cas, abs=1e-4)
    assert got.accuracy == pytest.approx(float((logits.argmax(1) == y).float().mean()))


def test_a_wrapped_xcf_model_measures_as_the_model_itself():
    """The generic path (hook) and xcf's own (features/head methods) agree under PGD,
    which also needs gradients to flow through the captured features."""
    torch.manual_seed(3)
    model = models.small_cnn(5, in_channels=3, width=8).eval()
    x, y = images(30, size=16, seed=4), torch.arange(5).repeat(6)
    attack = attacks.PGD(eps=0.05, steps=3)
    own = attribution.measure(model, x, y, attack, batch_size=8,
                              generator=torch.Generator().manual_seed(0))
    wrapped = attribution.measure(as_feature_classifier(model), x, y, attack, batch_size=8,
                                  generator=torch.Generator().manual_seed(0))
    assert torch.allclose(wrapped.C, own.C, atol=1e-6) and wrapped.accuracy == own.accuracy
    assert wrapped.cas == pytest.approx(own.cas, abs=1e-5)


@pytest.mark.parametrize("model, kind, name", [
    (nn.Sequential(nn.Flatten(), nn.Linear(12, 4), nn.ReLU()), "ReLU", "'2'"),
    (nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 1)), "Conv2d", "'2'"),
    (torchvision.models.squeezenet1_0(weights=None, num_classes=4), "AdaptiveAvgPool2d",
     "'classifier.3'"),
], ids=["linear-relu", "conv-head", "squeezenet"])
def test_a_last_layer_that_is_not_linear_is_named(model, kind, name):
    with pytest.raises(LinearHeadError, match=f"last layer of .* is {kind} at {name}, not an "
                                              "nn.Linear"):
        as_feature_classifier(model)


def test_a_sequential_ending_in_linear_is_wrapped():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 6), nn.ReLU(), nn.Linear(6, 4)).eval()
    x = images(5, channels=3, size=2)
    net = as_feature_classifier(model, num_classes=4)
    with torch.no_grad():
        want_g = torch.relu(model[1](x.flatten(1)))  # what the last Linear is fed
        assert torch.allclose(net.features(x), want_g) and torch.allclose(net(x), model(x))
    assert net.head_name == "3"


def test_a_model_whose_output_is_not_its_heads_output_is_refused():
    distilled = timm.create_model("deit_tiny_distilled_patch16_224", pretrained=False,
                                  img_size=32, patch_size=4, num_classes=4).eval()
    net = as_feature_classifier(distilled)
    with pytest.raises(LinearHeadError, match="not the output of its head 'head_dist'"):
        net(images(2))


def test_a_linear_applied_per_position_is_refused():
    per_pixel = nn.Sequential(nn.Flatten(2), nn.Linear(4, 3)).eval()  # (B, C, 4) -> (B, C, 3)
    with pytest.raises(LinearHeadError, match=r"input \(2, 3, 4\), not \(B, n\)"):
        as_feature_classifier(per_pixel)(images(2, size=2))


def test_bad_inputs_get_clear_errors():
    with pytest.raises(LinearHeadError, match="1000 outputs but the data have num_classes=10"):
        as_feature_classifier(torchvision.models.resnet18(weights=None), num_classes=10)
    with pytest.raises(LinearHeadError, match="mean has 1 entries but the model takes 3"):
        as_feature_classifier(resnet18(), mean=[0.5], std=[0.5])
    with pytest.raises(LinearHeadError, match="std must be > 0"):
        as_feature_classifier(resnet18(), mean=[0, 0, 0], std=[1, 0, 1])
    with pytest.raises(LinearHeadError, match="no layer 'classifier'"):
        as_feature_classifier(resnet18(), head="classifier")
    net = as_feature_classifier(resnet18().eval())
    with pytest.raises(LinearHeadError, match="takes 3-channel images, got 1 .*input_channels=1"):
        net(images(2, channels=1))
    with pytest.raises(LinearHeadError, match=r"pixels in \[0, 1\], got values in \[-1"):
        net(images(2) * 2 - 1)
    with pytest.raises(LinearHeadError, match=r"\(B, C, H, W\), got \(2, 3072\)"):
        net(images(2).flatten(1))
    with pytest.raises(TypeError, match="expected an nn.Module, got function"):
        as_feature_classifier(resnet18)
