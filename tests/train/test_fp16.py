"""fp16 autocast with loss scaling (torch.amp.GradScaler): it trains, a step with infinite
gradients is skipped and halves the scale, a power-of-two scale changes no finite step,
and a non-finite loss still stops training."""
import copy

import pytest
import torch

from conftest import LinearNet
from xcf.runs.config import AMP_MODES, make_config
from xcf.runs.config_file import ConfigError
from xcf.train.objectives import Objective, Step, cross_entropy
from xcf.train.precision import AutocastModel, autocast, grad_scaler
from xcf.train.setup import prepare
from xcf.train.loop import fit, sgd, train_epoch


def test_fp16_is_an_amp_mode_with_a_scaler_and_others_have_none():
    assert "fp16" in AMP_MODES and make_config(amp="fp16").amp == "fp16"
    with pytest.raises(ConfigError, match="fp16"):  # the error lists it among the allowed
        make_config(amp="float16")
    assert isinstance(grad_scaler("fp16", "cpu"), torch.amp.GradScaler)
    assert grad_scaler("bf16", "cpu") is None and grad_scaler("none", "cpu") is None


def test_fp16_autocast_runs_matmuls_in_half_and_the_wrapper_returns_float32():
    a = torch.randn(4, 4)
    with autocast("fp16", "cpu"):
        assert (a @ a).dtype == torch.float16
    with pytest.raises(ValueError, match="none, bf16, fp16"):
        autocast("fp8", "cpu")
    net = AutocastModel(LinearNet(torch.randn(3, 4)), torch.device("cpu"), "fp16")
    assert net(torch.rand(2, 1, 2, 2)).dtype == torch.float32


def test_fp16_trains_the_smoke_config_on_cpu_and_its_loss_goes_down():
    c = make_config("configs/smoke.yaml", amp="fp16", device="cpu", n_train=320, n_test=120,
                    eval_n=120)
    s = prepare(c)
    scaler = grad_scaler(c.amp, s.device)
    opt = sgd(s.model, c.lr, c.momentum, c.weight_decay)
    g = torch.Generator().manual_seed(0)
    losses = []
    for epoch in range(1, 4):
        stats = train_epoch(s.model, opt, s.x_train, s.y_train, epoch=epoch, lr=c.lr,
                            batch_size=c.batch_size, objective=s.objective, generator=g,
                            amp=c.amp, scaler=scaler)
        losses.append(stats.loss)
    # ln 10 = 2.30 is the loss of a uniform guess over the 10 planted classes.
    assert losses[-1] < losses[0] - 0.1 and losses[-1] < 2.2, losses
    assert scaler.get_scale() >= 1.0  # no run-away backoff: most steps were taken


class _InfGrad(torch.autograd.Function):
    """Identity forward; backward sends +inf: a finite loss with infinite gradients."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return torch.full_like(grad, float("inf"))


class _InfGradObjective(Objective):
    def loss(self, model, x, y, x_adv):
        logits = _InfGrad.apply(model(x))
        return Step(cross_entropy(logits, y), logits, logits, None)


def _one_batch(net, objective, scaler):
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    x, y = torch.rand(4, 1, 2, 2), torch.tensor([0, 1, 2, 0])
    stats = train_epoch(net, opt, x, y, epoch=1, lr=0.1, batch_size=4, objective=objective,
                        augment=False, generator=torch.Generator().manual_seed(0),
                        scaler=scaler)
    return stats, opt


def test_grad_scaler_skips_a_step_whose_gradients_are_infinite():
    net = LinearNet(torch.randn(3, 4, generator=torch.Generator().manual_seed(1)))
    before = copy.deepcopy(net.state_dict())
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 16)
    stats, opt = _one_batch(net, _InfGradObjective(), scaler)
    assert stats.skipped_steps == 1
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert not opt.state  # SGD never ran: no momentum buffer
    assert scaler.get_scale() == 2.0 ** 15  # backoff_factor 0.5 (PyTorch's documented default)
    # Without the scaler the same batch writes the infinite step into the weights.
    stats, _ = _one_batch(net, _InfGradObjective(), None)
    assert stats.skipped_steps == 0 and not torch.isfinite(net.head.weight).all()


def test_a_power_of_two_scale_leaves_a_finite_step_bit_identical():
    g = torch.Generator().manual_seed(2)
    x, y = torch.rand(16, 1, 2, 2, generator=g), torch.randint(0, 3, (16,), generator=g)
    weights = []
    for scaler in (None, torch.amp.GradScaler("cpu", init_scale=2.0 ** 10)):
        net = LinearNet(torch.randn(3, 4, generator=torch.Generator().manual_seed(3)))
        opt = sgd(net, 0.1)
        stats = train_epoch(net, opt, x, y, epoch=1, lr=0.1, batch_size=8, augment=False,
                            generator=torch.Generator().manual_seed(0), scaler=scaler)
        assert stats.skipped_steps == 0
        weights.append(net.head.weight.detach().clone())
    assert torch.equal(weights[0], weights[1])


def test_a_non_finite_loss_still_stops_training_under_fp16():
    class NanLoss(Objective):
        def loss(self, model, x, y, x_adv):
            logits = model(x)
            return Step(cross_entropy(logits, y) * float("nan"), logits, logits, None)

    net = LinearNet(torch.randn(3, 4))
    with pytest.raises(FloatingPointError, match="epoch 1, batch 0"):
        _one_batch(net, NanLoss(), torch.amp.GradScaler("cpu"))


def test_fit_makes_its_own_scaler_for_fp16():
    torch.manual_seed(0)
    net = LinearNet(torch.zeros(3, 4))
    x, y = torch.rand(32, 1, 2, 2), torch.randint(0, 3, (32,))
    history = fit(net, x, y, epochs=3, lr=0.5, batch_size=8, augment=False, amp="fp16")
    assert history[-1].loss < history[0].loss
