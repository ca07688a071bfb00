"""Defects of the official implementation (PKU-ML/Cross-Class-Features-AT) that xcf
avoids, one named test each (issue 15).  Each checks xcf against a value computed here by
hand, not against the official code's behaviour."""
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from xcf.attacks import default_step_size, pgd
from xcf.attribution import measure
from xcf.runs.config import make_config
from xcf.train.objectives import Objective, Trades, trades_loss
from xcf.train.setup import model_meta
from xcf.train.loop import sgd, train_epoch


class FlatNet(nn.Module):
    """g(x) = x flattened (non-negative for x in [0, 1]); f = W g (Eq. 4)."""

    def __init__(self, d: int, k: int) -> None:
        super().__init__()
        self.head = nn.Linear(d, k)

    def features(self, x):
        return x.flatten(1)

    def forward(self, x):
        return self.head(self.features(x))


def _one_step_by_hand(model, loss_of, lr=0.1, wd=5e-4):
    """Parameters after one SGD step (momentum buffer empty: step = lr (grad + wd w))."""
    loss = loss_of(model)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    return [(p - lr * (g + wd * p)).detach() for p, g in zip(model.parameters(), grads)]


@pytest.mark.parametrize("objective", ["trades", "standard"])
def test_trades_and_standard_training_call_opt_step(objective):
    """Official train.py calls opt.step() only when mode is neither 'TRADES' nor 'none',
    so TRADES and standard training never update the weights there.  xcf takes exactly
    one SGD step per batch for both."""
    torch.manual_seed(0)
    x, y = torch.rand(8, 1, 4, 4), torch.randint(0, 3, (8,))
    model = FlatNet(16, 3)
    if objective == "trades":
        trades = Trades(eps=0.1, alpha=0.025, steps=2, norm="linf", beta=6.0)
        x_adv = trades.perturb(model, x, y, torch.Generator().manual_seed(1))
        adv_of = {tuple(a.flatten().tolist()): b for a, b in zip(x, x_adv)}

        class FixedTrades(Trades):  # the same adversarial rows, whatever the shuffle
            def perturb(self, model, xb, yb, generator=None):
                return torch.stack([adv_of[tuple(r.flatten().tolist())] for r in xb])

        obj = FixedTrades(eps=0.1, alpha=0.025, steps=2, norm="linf", beta=6.0)
        want = _one_step_by_hand(model, lambda m: trades_loss(m(x), m(x_adv), y, 6.0))
    else:
        obj = Objective()
        want = _one_step_by_hand(model, lambda m: F.cross_entropy(m(x), y))
    start = [p.detach().clone() for p in model.parameters()]
    # one batch of 8: the batch-mean loss does not depend on the shuffled order
    train_epoch(model, sgd(model, 0.1), x, y, epoch=1, lr=0.1, batch_size=8, objective=obj,
                augment=False, generator=torch.Generator().manual_seed(0))
    for p, w, w0 in zip(model.parameters(), want, start):
        assert (w - w0).abs().max() > 1e-4  # the step by hand moves every tensor
        assert torch.allclose(p, w, atol=1e-6)


def test_each_cifar_dataset_is_normalised_with_its_own_statistics():
    """CIFAR-100 gets CIFAR-100's published mean and std, not CIFAR-10's."""
    c100 = model_meta(make_config(dataset="cifar100"), 100, (3, 32, 32))["model_kwargs"]
    c10 = model_meta(make_config(dataset="cifar10"), 10, (3, 32, 32))["model_kwargs"]
    assert c100["mean"] == pytest.approx([0.5071, 0.4865, 0.4409])
    assert c100["std"] == pytest.approx([0.2673, 0.2564, 0.2762])
    assert c10["mean"] == pytest.approx([0.4914, 0.4822, 0.4465])
    assert c10["std"] == pytest.approx([0.2471, 0.2435, 0.2616])


def _cosine_of_class_means(g: np.ndarray, y: np.ndarray, W: np.ndarray, K: int) -> np.ndarray:
    """Algorithm 1 by hand: A_k = mean_{y_i = k} g_i * W[k], C = cosine(A_i, A_j)."""
    A = np.stack([g[y == k].mean(0) * W[k] for k in range(K)])
    A = A / np.linalg.norm(A, axis=1, keepdims=True)
    return A @ A.T


def test_algorithm_1_runs_over_all_k_classes_for_k_100():
    K, n, d = 100, 3, 64
    torch.manual_seed(0)
    x = torch.rand(K * n, 1, 8, 8)
    y = torch.arange(K).repeat_interleave(n)
    model = FlatNet(d, K)
    m = measure(model, x, y, attack=None)
    assert m.C.shape == (K, K)
    want = _cosine_of_class_means(x.flatten(1).numpy().astype(np.float64), y.numpy(),
                                  model.head.weight.detach().numpy().astype(np.float64), K)
    np.testing.assert_allclose(m.C.numpy(), want, atol=1e-5)


def test_the_l2_step_is_eps_over_8_in_unit_pixel_units():
    """Table 2: l2 step eps/8 with eps = 128/255, i.e. 16/255 ~ 0.063 in [0, 1] units (not
    16, the number the official command line takes in 1/255 units)."""
    assert default_step_size(128 / 255, "l2") == pytest.approx(16 / 255)
    model = FlatNet(16, 3)
    x, y = torch.full((2, 1, 4, 4), 0.5), torch.tensor([0, 1])
    x_adv = pgd(model, x, y, eps=128 / 255, steps=1, norm="l2", random_start=False)
    # one normalised step from x, inside the box and the ball: its length is the step
    assert (x_adv - x).flatten(1).norm(dim=1).numpy() == pytest.approx([16 / 255] * 2, rel=1e-5)


def test_no_class_remainder_is_dropped():
    """The official evaluate_matrix.py takes each class in batches of 100 and drops the
    remainder; xcf's class means use every sample.  Class 0 has 150 samples whose last 50
    differ, so the two ways give different matrices."""
    torch.manual_seed(0)
    g0 = torch.cat([torch.full((100, 4), 0.1), torch.tensor([[1.0, 0, 0, 0]]).repeat(50, 1)])
    g1 = torch.rand(120, 4)
    x = torch.cat([g0, g1]).view(-1, 1, 2, 2)
    y = torch.cat([torch.zeros(150, dtype=torch.long), torch.ones(120, dtype=torch.long)])
    model = FlatNet(4, 2)
    W = model.head.weight.detach().double().numpy()
    g = x.flatten(1).double().numpy()
    all_samples = _cosine_of_class_means(g, y.numpy(), W, 2)
    keep = np.r_[0:100, 150:250]  # 100 of class 0, 100 of class 1: remainders dropped
    dropped = _cosine_of_class_means(g[keep], y.numpy()[keep], W, 2)
    assert abs(all_samples[0, 1] - dropped[0, 1]) > 1e-3  # the test can tell them apart
    C = measure(model, x, y, attack=None).C.numpy()
    np.testing.assert_allclose(C, all_samples, atol=1e-5)
