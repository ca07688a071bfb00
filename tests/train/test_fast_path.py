"""xcf's fast PGD-AT path trains the model the official implementation trains.

The fast path (input-gradient-only PGD with frozen weights, summed cross-entropy in the
attack, channels_last, normalisation inside the model) is checked against
``benchmarks/baseline.py``, our step-by-step rewrite of the official training step
(``loss.backward()`` in every attack step, mean cross-entropy, NCHW, normalisation outside).
Both with the attack in train mode, as in the official loop (``attack_mode: train``, xcf's
default; ``eval`` is a named deviation and not what this file checks).  The official loop
also runs a logging forward on the clean batch in train mode after the step, which moves
the batch-norm running statistics once more; xcf logs clean accuracy in eval mode.

1. One step, same batch and random start: the same adversarial batch, loss and updated
   weights.  In float64 the weights agree to 1e-5 of the size of their update (measured
   4e-7), so the two compute the same step.  In float32 (the fast path as it runs) the
   adversarial batch agrees to 1e-6 (measured 6e-8) and the loss to 1e-5 relative, but
   single weight tensors differ by up to 3.3e-3 of their update, batch-norm biases most:
   their gradients are sums over the batch with heavy cancellation, summed in another
   order by the channels_last kernels; the tolerance there is 1e-2.
2. A short training run each way (32 steps) from the same initial weights, on images that
   both ways learn completely: the same test robust accuracy within 0.05, both above 0.9
   (measured: 1.0 and 1.0, with 1 and 2 threads).  Runs cannot stay equal step by step: a
   rounding difference flips the sign of a near-zero input gradient, PGD moves that pixel
   by 2 alpha the other way, and trajectories drift apart (after 5 attack steps about 20%
   of pixels differ between channels_last and NCHW kernels).  On harder images, where 32
   steps leave robust accuracy at 0.45-0.75, single runs of the two ways differed by up to
   0.16 (and by as much between seeds), so a tighter statement there needs many seeds.
"""
import copy
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks import baseline  # noqa: E402

from xcf.attacks import PGD  # noqa: E402
from xcf.attribution import measure  # noqa: E402
from xcf.runs.config import TrainConfig  # noqa: E402
from xcf.data.batching import augment, batches  # noqa: E402
from xcf.models import preact_resnet18, small_cnn  # noqa: E402
from xcf.train.objectives import build_objective  # noqa: E402
from xcf.train.loop import sgd, train_epoch  # noqa: E402

EPS = 8 / 255


def _objective(steps: int, batch: int):
    cfg = TrainConfig(dataset="cifar10", eps=EPS, attack_steps=steps, batch_size=batch,
                      attack_mode="train").resolved()
    return build_objective(cfg)


@pytest.mark.parametrize("dtype, weight_tol", [(torch.float64, 1e-5), (torch.float32, 1e-2)])
def test_one_step_equals_the_official_step(dtype, weight_tol):
    torch.manual_seed(0)
    net = preact_resnet18(10, width=8, mean=baseline.CIFAR10_MEAN, std=baseline.CIFAR10_STD)
    with torch.no_grad():  # non-trivial batch-norm statistics
        net.train()
        for _ in range(3):
            net(torch.rand(16, 3, 16, 16))
    net = net.to(dtype)
    x, y = torch.rand(16, 3, 16, 16, dtype=dtype), torch.randint(0, 10, (16,))
    fast = copy.deepcopy(net).to(memory_format=torch.channels_last)
    ref = baseline.OfficialStyleNet(copy.deepcopy(net))
    start = {n: p.detach().clone() for n, p in net.named_parameters()}

    torch.manual_seed(123)  # the official start draws from the global generator
    ref.train()
    delta = baseline.pgd_delta(ref, x, y, eps=EPS, alpha=EPS / 4, steps=10)
    attacked_ref = ref
    ref = baseline.OfficialStyleNet(copy.deepcopy(net))
    opt_ref = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    torch.manual_seed(123)
    official = baseline.train_step(ref, opt_ref, x, y, eps=EPS, alpha=EPS / 4, steps=10)

    obj = _objective(10, 16)
    x_adv = obj.perturb(fast, x, y, torch.Generator().manual_seed(123))
    # The attack ran in train mode: batch statistics in every forward, and the running
    # statistics updated by each of the 10 forwards exactly as in the official attack.
    theirs = dict(attacked_ref.net.named_buffers())
    for name, buf in fast.named_buffers():
        if buf.is_floating_point():
            assert torch.allclose(buf, theirs[name], rtol=1e-5, atol=1e-6), name
        else:
            assert int(buf) == int(theirs[name]) == 3 + 10, name  # warm-up + attack steps
    fast.train()
    step = obj.loss(fast, x, y, x_adv)
    opt = sgd(fast, 0.1)
    opt.zero_grad(set_to_none=True)
    step.loss.backward()
    opt.step()

    assert (x_adv - (x + delta)).abs().max() <= 1e-6
    assert step.loss.item() == pytest.approx(official["loss"], rel=1e-5)
    mine = dict(fast.named_parameters())
    for name, p in ref.net.named_parameters():
        update = (p - start[name]).norm()
        assert (mine[name] - p).norm() <= weight_tol * update, name


def _templates(num_classes: int, size: int, n: int, seed: int):
    """Images 0.5 + 0.25 * (class template of +-1 blocks) + 0.15 * noise, in [0, 1]."""
    g = torch.Generator().manual_seed(0)
    T = torch.randint(0, 2, (num_classes, 3, 4, 4), generator=g).float() * 2 - 1
    T = F.interpolate(T, size=size, mode="nearest")
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % num_classes
    x = (0.5 + 0.25 * T[y] + 0.15 * torch.randn(n, 3, size, size, generator=g)).clamp(0, 1)
    return x, y


def test_fast_path_reaches_the_official_robust_accuracy():
    K, B, steps, epochs, lr = 4, 64, 5, 2, 0.05
    x, y = _templates(K, 16, 1024, seed=1)
    x_test, y_test = _templates(K, 16, 400, seed=2)
    torch.manual_seed(0)
    net = small_cnn(K, in_channels=3, width=8)
    fast = copy.deepcopy(net).to(memory_format=torch.channels_last)
    ref = baseline.OfficialStyleNet(copy.deepcopy(net))

    obj, opt, gen = _objective(steps, B), sgd(fast, lr), torch.Generator().manual_seed(0)
    for epoch in range(1, epochs + 1):  # the fast path as xcf trains: train_epoch
        train_epoch(fast, opt, x, y, epoch=epoch, lr=lr, batch_size=B, objective=obj,
                    generator=gen, channels_last=True)

    opt_ref = torch.optim.SGD(ref.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    for _ in range(epochs):  # the official step on the same kind of augmented batches
        for xb, yb in batches(x, y, B, shuffle=True, generator=gen):
            baseline.train_step(ref, opt_ref, augment(xb, generator=gen), yb, eps=EPS,
                                alpha=EPS / 4, steps=steps, normalize=lambda t: t)

    def robust_accuracy(model):
        return measure(model, x_test, y_test, PGD(eps=EPS, steps=10),
                       generator=torch.Generator().manual_seed(1)).accuracy

    ra_fast, ra_ref = robust_accuracy(fast), robust_accuracy(ref.net)
    assert ra_fast > 0.9 and ra_ref > 0.9, (ra_fast, ra_ref)
    assert abs(ra_fast - ra_ref) <= 0.05, (ra_fast, ra_ref)


def test_compiled_model_trains_as_the_eager_one_and_keeps_its_checkpoint_keys():
    """``TrainConfig.compile`` (``model.compile()``, inductor) changes speed, not the step:
    one epoch of PGD-AT from the same weights and generator gives the loss, accuracy and
    weights of the eager model (float32 fusion reorders sums: measured 2e-7 apart), and the
    state_dict has the eager keys, so checkpoints load either way."""
    torch.manual_seed(0)
    net = small_cnn(4, in_channels=3, width=8)
    x, y = torch.rand(64, 3, 16, 16), torch.arange(64) % 4
    obj = _objective(3, 32)
    out = []
    for compiled in (False, True):
        m = copy.deepcopy(net).to(memory_format=torch.channels_last)
        if compiled:
            m.compile()
        stats = train_epoch(m, sgd(m, 0.05), x, y, epoch=1, lr=0.05, batch_size=32, objective=obj,
                            generator=torch.Generator().manual_seed(0), channels_last=True)
        out.append((stats, m.state_dict()))
    (eager, w_eager), (comp, w_comp) = out
    assert comp.loss == pytest.approx(eager.loss, rel=1e-5) and comp.accuracy == eager.accuracy
    assert list(w_comp) == list(w_eager)
    for k in w_eager:
        assert torch.allclose(w_comp[k].float(), w_eager[k].float(), atol=1e-5), k


def test_compile_and_clean_logging_are_runtime_choices_outside_the_run_key():
    base = TrainConfig(dataset="cifar10")
    assert TrainConfig(dataset="cifar10", compile=True, log_train_clean=True).key() == base.key()
    from xcf.runs.config_file import ConfigError
    with pytest.raises(ConfigError, match="compile"):
        TrainConfig(dataset="cifar10", compile="yes").resolved()
