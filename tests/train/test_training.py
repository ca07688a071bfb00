"""Training engine: each objective's loss against a hand-written formula, weight updates,
the lr schedule of Table 2, best-checkpoint selection, and clear errors for bad inputs."""
import copy
import math

import numpy as np
import pytest
import torch

from conftest import LinearNet, TinyNet
from xcf.runs import checkpoints, folder as runs
from xcf.train import objectives, runner, loop as training
from xcf.attacks import PGD
from xcf.runs.config import OBJECTIVES, TrainConfig, make_config
from xcf.runs.config_file import ConfigError
from xcf.train.posthoc import measure_run
from xcf.train.precision import autocast
from xcf.train.setup import prepare, split_holdout
from xcf.train.runner import train
from xcf.train.selection import select_best
from xcf.train.loop import piecewise_lr, train_epoch


from conftest import tiny_config as tiny  # noqa: E402


# ----------------------------------------------------------------------------- hand formulas
# Logits of LinearNet are z = W x (no bias).  The formulas below are written out in float64
# numpy from the definitions, independently of torch.nn.functional.

def _logits(W, x):
    return x.reshape(len(x), -1).astype(np.float64) @ W.T.astype(np.float64)


def _log_softmax(z):
    z = z - z.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


def _ce(z, y):
    return float(np.mean(-_log_softmax(z)[np.arange(len(y)), y]))


def _kl(p_logits, q_logits, T=1.0):
    """mean over the batch of sum_k p_k (log p_k - log q_k), p = softmax(p_logits / T)."""
    lp, lq = _log_softmax(p_logits / T), _log_softmax(q_logits / T)
    return float(np.mean((np.exp(lp) * (lp - lq)).sum(1)))


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(3)
    W = torch.randn(4, 12, generator=g)
    x = torch.rand(5, 1, 3, 4, generator=g)
    x_adv = (x + 0.05 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    y = torch.tensor([0, 1, 2, 3, 1])
    return LinearNet(W), W.numpy(), x, x_adv, y


def test_standard_loss_is_cross_entropy_on_clean_inputs(batch):
    model, W, x, x_adv, y = batch
    step = objectives.Objective().loss(model, x, y, None)
    assert step.loss.item() == pytest.approx(_ce(_logits(W, x.numpy()), y.numpy()), rel=1e-5)


def test_pgd_at_loss_is_cross_entropy_on_adversarial_inputs(batch):
    model, W, x, x_adv, y = batch
    obj = objectives.AdversarialCE(PGD(eps=0.1, steps=1))
    step = obj.loss(model, x, y, x_adv)
    assert step.loss.item() == pytest.approx(_ce(_logits(W, x_adv.numpy()), y.numpy()), rel=1e-5)


@pytest.mark.parametrize("form, scale", [("eq3", lambda T: 1.0), ("hinton", lambda T: T * T)])
@pytest.mark.parametrize("lam,T", [(0.3, 4.0), (1.0, 1.0), (0.5, 2.0)])
def test_kd_at_loss_matches_eq3_as_printed_and_in_hinton_form(batch, lam, T, form, scale):
    """Eq. 3 as printed: (1-lam) CE + lam KL(teacher || student) at temperature T; the
    Hinton form multiplies the KL term by T^2 (numpy, by hand)."""
    model, W, x, x_adv, y = batch
    Wt = np.random.default_rng(0).normal(size=W.shape).astype(np.float32)
    teacher = LinearNet(torch.from_numpy(Wt))
    obj = objectives.DistillationAT(PGD(eps=0.1, steps=1), teacher, lam=lam, temperature=T,
                                    form=form)
    zs, zt = _logits(W, x_adv.numpy()), _logits(Wt, x_adv.numpy())
    want = (1 - lam) * _ce(zs, y.numpy()) + lam * scale(T) * _kl(zt, zs, T)
    assert obj.loss(model, x, y, x_adv).loss.item() == pytest.approx(want, rel=1e-5)


def test_kd_form_defaults_to_eq3_as_printed_and_rejects_others():
    from xcf.runs.config import make_config
    from xcf.runs.config_file import ConfigError

    assert make_config().kd.form == "eq3"
    with pytest.raises(ConfigError, match=r"kd\.form.*'hinten'.*hinton"):
        make_config(objective="kd_at", kd={"teacher": "runs/t", "form": "hinten"})
    with pytest.raises(ValueError, match="'t2'"):
        objectives.distillation_loss(torch.zeros(2, 3), torch.zeros(2, 3),
                                     torch.tensor([0, 1]), 0.5, 2.0, form="t2")


def test_kd_at_with_lambda_zero_is_pgd_at(batch):
    model, W, x, x_adv, y = batch
    teacher = LinearNet(torch.randn(4, 12))
    kd = objectives.DistillationAT(PGD(eps=0.1, steps=1), teacher, lam=0.0, temperature=3.0)
    at = objectives.AdversarialCE(PGD(eps=0.1, steps=1))
    assert kd.loss(model, x, y, x_adv).loss.item() == at.loss(model, x, y, x_adv).loss.item()


def test_kd_teacher_gets_no_gradient(batch):
    model, W, x, x_adv, y = batch
    teacher = LinearNet(torch.randn(4, 12))
    kd = objectives.DistillationAT(PGD(eps=0.1, steps=1), teacher, lam=0.7, temperature=2.0)
    kd.loss(model, x, y, x_adv).loss.backward()
    assert teacher.head.weight.grad is None and model.head.weight.grad is not None


@pytest.mark.parametrize("beta", [0.0, 1.0, 6.0])
def test_trades_loss_matches_formula(batch, beta):
    model, W, x, x_adv, y = batch
    obj = objectives.Trades(eps=0.1, alpha=0.025, steps=1, norm="linf", beta=beta)
    zc, za = _logits(W, x.numpy()), _logits(W, x_adv.numpy())
    want = _ce(zc, y.numpy()) + beta * _kl(zc, za)  # KL(f(x) || f(x_adv))
    assert obj.loss(model, x, y, x_adv).loss.item() == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("norm,eps", [("linf", 0.05), ("l2", 0.5)])
def test_trades_perturbation_stays_in_ball_and_raises_the_kl(norm, eps):
    torch.manual_seed(0)
    model = TinyNet(num_classes=3).eval()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(8, 1, 8, 8, generator=g)
    before = [p.clone() for p in model.parameters()]
    x_adv = objectives.trades_perturb(model, x, eps=eps, alpha=eps / 4, steps=8, norm=norm, generator=g)
    delta = (x_adv - x).flatten(1)
    size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert (size <= eps + 1e-6).all() and x_adv.min() >= 0 and x_adv.max() <= 1
    with torch.no_grad():
        zc, za = model(x).double().numpy(), model(x_adv).double().numpy()
        zr = model((x + 0.001 * torch.randn(x.shape, generator=g)).clamp(0, 1)).double().numpy()
    assert _kl(zc, za) > 10 * max(_kl(zc, zr), 1e-9)  # ascent, not the random start
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert all(p.grad is None for p in model.parameters())


def test_fast_at_uses_fgsm_with_wong_step():
    c = TrainConfig(objective="fast_at", eps=8 / 255).resolved()
    assert c.fast_at.alpha == pytest.approx(1.25 * 8 / 255)
    obj = objectives.build_objective(c)
    assert obj.name == "fast_at" and obj.attack.alpha == pytest.approx(1.25 * 8 / 255)


# ----------------------------------------------------------------------------- weights move

class Recording:
    """Wraps an objective and remembers the adversarial inputs it trained on."""

    def __init__(self, inner):
        self.inner, self.seen = inner, []

    def __getattr__(self, name):  # name, adversarial, computes_clean
        return getattr(self.inner, name)

    def perturb(self, model, x, y, generator=None):
        x_adv = self.inner.perturb(model, x, y, generator)
        self.seen.append((x, y, x_adv))
        return x_adv

    def loss(self, model, x, y, x_adv):
        return self.inner.loss(model, x, y, x_adv)


@pytest.mark.parametrize("name", OBJECTIVES)
def test_every_objective_updates_the_weights_and_lowers_its_loss(name):
    # The official code's `none` and `TRADES` modes never call opt.step(); here every
    # objective must change the weights, in a direction that lowers its own loss on the
    # batch it was trained on.  A linear model has no BN, so train/eval mode agree.
    g = torch.Generator().manual_seed(0)
    model = LinearNet(0.1 * torch.randn(3, 48, generator=g))
    teacher = LinearNet(torch.randn(3, 48, generator=g))
    c = make_config(tiny(objective=name, eps=8 / 255, **({"kd": {"teacher": "t.pt"}} if name == "kd_at" else {})))
    obj = Recording(objectives.build_objective(c.resolved(), teacher))
    x, y = torch.rand(16, 3, 4, 4, generator=g), torch.randint(0, 3, (16,), generator=g)
    before = copy.deepcopy(model)
    stats = train_epoch(model, training.sgd(model, lr=0.05), x, y, epoch=1, lr=0.05,
                        batch_size=16, objective=obj, augment=False, generator=g)
    assert math.isfinite(stats.loss)
    assert not torch.equal(before.head.weight, model.head.weight)
    (xb, yb, x_adv), = obj.seen
    assert (x_adv is None) == (name == "standard")
    assert obj.loss(model, xb, yb, x_adv).loss.item() < obj.loss(before, xb, yb, x_adv).loss.item()


def test_epoch_stats_report_clean_and_robust_accuracy():
    torch.manual_seed(0)
    model = TinyNet(num_classes=3, channels=3)
    x, y = torch.rand(20, 3, 8, 8), torch.randint(0, 3, (20,))
    opt = training.sgd(model, 0.01)
    std = train_epoch(model, opt, x, y, epoch=1, lr=0.01, batch_size=8, augment=False)
    assert std.robust_accuracy is None and std.clean_accuracy == std.accuracy
    at = train_epoch(model, opt, x, y, epoch=2, lr=0.01, batch_size=8, augment=False,
                     attack=PGD(eps=0.1, steps=1))
    assert at.robust_accuracy == at.accuracy and at.clean_accuracy is None  # not asked for


def test_logging_clean_accuracy_measures_it_without_changing_training():
    """``log_clean`` adds an eval-mode forward on the clean batch: its accuracy equals a
    hand count on the same batches, and the weights end bit-identical to a run without."""
    x, y = torch.rand(20, 3, 8, 8), torch.randint(0, 3, (20,))
    ends, stats = [], []
    for log_clean in (False, True):
        torch.manual_seed(0)
        model = TinyNet(num_classes=3, channels=3)
        opt = training.sgd(model, 0.01)
        stats.append(train_epoch(model, opt, x, y, epoch=1, lr=0.01, batch_size=20, augment=False,
                                 attack=PGD(eps=0.1, steps=1), generator=torch.Generator().manual_seed(1),
                                 log_clean=log_clean))
        ends.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.equal(ends[0], ends[1]) and stats[0].loss == stats[1].loss
    torch.manual_seed(0)
    before = TinyNet(num_classes=3, channels=3).eval()  # one batch: clean acc is of the initial weights
    with torch.no_grad():
        expected = (before(x).argmax(1) == y).float().mean().item()
    assert stats[1].clean_accuracy == pytest.approx(expected)


# ----------------------------------------------------------------------------- schedule

def test_lr_schedule_of_table2():
    lrs = [piecewise_lr(e, 0.1, 200) for e in range(200)]
    assert lrs[:100] == [0.1] * 100                       # epochs 1-100
    assert all(v == pytest.approx(0.01) for v in lrs[100:150])   # decay at the 100th
    assert all(v == pytest.approx(0.001) for v in lrs[150:])     # and the 150th epoch


def test_lr_schedule_other_milestones_and_gamma():
    assert [piecewise_lr(e, 1.0, 10, (0.3,), 0.5) for e in range(10)] == [1.0] * 3 + [0.5] * 7
    assert [piecewise_lr(e, 0.2, 4, ()) for e in range(4)] == [0.2] * 4


def test_run_uses_the_schedule(tmp_path):
    run = train(tiny(epochs=4, lr=0.1), runs_dir=tmp_path, progress=False, log=lambda s: None)
    assert [r["lr"] for r in run.metrics()] == pytest.approx([0.1, 0.1, 0.01, 0.001])


# ----------------------------------------------------------------------------- best checkpoint

def test_select_best_takes_first_maximum_and_ignores_nan():
    rows = [{"epoch": 1, "m": 0.2}, {"epoch": 2, "m": float("nan")}, {"epoch": 3, "m": 0.5},
            {"epoch": 4, "m": 0.5}, {"epoch": 5, "m": 0.4}]
    assert select_best(rows, "m") == 3
    assert select_best([], "m") is None
    assert select_best([{"epoch": 1, "m": float("nan")}, {"epoch": 2, "m": 0.0}], "m") == 2
    # a run always has a best checkpoint: with no number at all, its first epoch
    assert select_best([{"epoch": 1, "m": None}, {"epoch": 2, "m": float("nan")}], "m") == 1


def test_the_trainer_keeps_the_epoch_select_best_picks(tmp_path):
    run = train(tiny(epochs=3), runs_dir=tmp_path, progress=False, log=lambda s: None)
    rows = run.metrics()
    best = max(rows, key=lambda r: (r["test_robust_acc"], -r["epoch"]))["epoch"]  # first maximum
    assert run.best_epoch == best == select_best(rows, "test_robust_acc")
    assert checkpoints.load_torch(run.checkpoint_path("best"))["epoch"] == best


def test_autocast_is_bf16_only_when_asked():
    a = torch.randn(4, 4)
    with autocast("bf16", torch.device("cpu")):
        assert (a @ a).dtype == torch.bfloat16
    with autocast("none", "cpu"):
        assert (a @ a).dtype == torch.float32


def test_best_checkpoint_is_the_epoch_with_best_test_robust_accuracy(tmp_path):
    run = train(tiny(epochs=4, lr=0.1, save_checkpoints_at=[1, 2, 3]), runs_dir=tmp_path,
                progress=False, log=lambda s: None)
    rows = run.metrics()
    best = run.best_epoch
    ra = [r["test_robust_acc"] for r in rows]
    assert best == rows[int(np.argmax(ra))]["epoch"]  # argmax: first of ties
    assert run.final()["best_epoch"] == best
    # best.pt holds that epoch's weights: identical to the kept checkpoint of that epoch.
    best_w = checkpoints.load_torch(run.checkpoint_path("best"))["model"]
    same = checkpoints.load_torch(run.find_checkpoint(best))["model"]
    assert all(torch.equal(best_w[k], same[k].contiguous()) for k in best_w)
    # ...and re-evaluating it reproduces that epoch's recorded numbers.
    epoch, numbers, _, _ = measure_run(run.path, "best")
    assert epoch == best
    assert numbers["test_robust_acc"] == rows[best - 1]["test_robust_acc"]
    assert numbers["cas"] == pytest.approx(rows[best - 1]["cas"], abs=1e-6)


def test_standard_training_picks_best_by_clean_accuracy():
    assert TrainConfig(objective="standard").resolved().best_metric == "test_clean_acc"
    assert TrainConfig(objective="pgd_at").resolved().best_metric == "test_robust_acc"


# ----------------------------------------------------------------------------- config

def test_table2_defaults():
    c = TrainConfig().resolved()
    assert (c.epochs, c.batch_size, c.lr, c.momentum, c.weight_decay) == (200, 128, 0.1, 0.9, 5e-4)
    assert c.milestones == [0.5, 0.75] and c.lr_gamma == 0.1
    assert (c.attack_steps, c.eval_steps, c.eps, c.alpha) == (10, 20, 8 / 255, 2 / 255)
    l2 = TrainConfig(norm="l2").resolved()
    assert (l2.eps, l2.alpha) == (128 / 255, 16 / 255)
    assert c.save_matrices_every == 10 and TrainConfig(epochs=20).resolved().save_matrices_every == 1


@pytest.mark.parametrize("change,key,allowed", [
    ({"objective": "pgd"}, "objective", "standard, pgd_at, kd_at, fast_at, trades"),
    ({"norm": "l1"}, "norm", "linf, l2"),
    ({"amp": "fp8"}, "amp", "none, bf16, fp16"),
    ({"epochs": -3}, "epochs", "integer >= 1"),
    ({"epochs": 2.5}, "epochs", "integer >= 1"),
    ({"lr": -0.1}, "lr", "> 0"),
    ({"lr": float("nan")}, "lr", "finite"),
    ({"eps": -1}, "eps", "0 < eps <= 1"),  # issue 14: eps 0 is refused too
    ({"batch_size": 0}, "batch_size", ">= 1"),
    ({"epoch": 3}, "epoch", "did you mean 'epochs'"),
    ({"objective": "kd_at"}, "kd.teacher", "needs a teacher"),
    ({"objective": "fast_at", "norm": "l2"}, "norm", "l-inf only"),
    ({"objective": "kd_at", "kd": {"teacher": "t.pt", "lambda": 2}}, "kd.lambda", "<= 1"),
    ({"kd": {"lamda": 0.1}}, "kd.lamda", "did you mean 'lambda'"),
    ({"save_checkpoints_at": [0]}, "save_checkpoints_at", "[1, 200]"),
    ({"device": "gpu"}, "device", "cuda:N"),
    ({"dataset": "cifar11"}, "dataset", "cifar10"),
])
def test_bad_config_names_key_and_allowed_values(change, key, allowed):
    with pytest.raises(ConfigError) as err:
        make_config(change)
    assert err.value.key == key
    assert f"'{key}'" in str(err.value) and allowed in str(err.value)


def test_bad_config_fails_before_any_training(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "train_epoch", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(ConfigError, match="eval_n"):
        train(tiny(eval_n=3), runs_dir=tmp_path, progress=False)  # 6 classes need >= 6
    with pytest.raises(ConfigError, match="data_kwargs"):
        train(tiny(data_kwargs={"image_sise": 16}), runs_dir=tmp_path, progress=False)
    with pytest.raises(ConfigError, match="model_kwargs"):
        train(tiny(model_kwargs={"depth": 3}), runs_dir=tmp_path, progress=False)
    assert not any(tmp_path.iterdir()), "no run folder for a bad config"


def test_kd_teacher_must_exist_and_match_the_classes(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "train_epoch", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(ConfigError, match="kd.teacher.*does not exist"):
        train(tiny(objective="kd_at", kd={"teacher": str(tmp_path / "nope.pt")}),
              runs_dir=tmp_path, progress=False)
    # A 10-class teacher for the 6-class planted task.
    meta = {"model": "small_cnn", "num_classes": 10, "in_channels": 3, "model_kwargs": {"width": 8}}
    path = checkpoints.save_model(checkpoints.build_from_meta(meta), meta, tmp_path / "teacher10.pt")
    with pytest.raises(ConfigError, match=r"kd.teacher.*10 classes.*has 6"):
        train(tiny(objective="kd_at", kd={"teacher": str(path)}), runs_dir=tmp_path, progress=False)
    # A raw state dict is not enough to rebuild the teacher.
    torch.save(checkpoints.build_from_meta(meta).state_dict(), tmp_path / "raw.pt")
    with pytest.raises(ConfigError, match="not an xcf checkpoint"):
        train(tiny(objective="kd_at", kd={"teacher": str(tmp_path / "raw.pt")}),
              runs_dir=tmp_path, progress=False)


def test_kd_at_trains_from_a_teacher_run(tmp_path):
    teacher = train(tiny(epochs=1), runs_dir=tmp_path, progress=False, log=lambda s: None)
    run = train(tiny(objective="kd_at", epochs=1, kd={"teacher": str(teacher.path), "lambda": 0.5}),
                runs_dir=tmp_path, progress=False, log=lambda s: None)
    assert run.finished and run.path != teacher.path
    prov = run.provenance()["sessions"][-1]
    assert prov["teacher"]["sha256"] == checkpoints.file_digest(teacher.checkpoint_path("best"))


def test_checkpoint_from_another_architecture_is_refused(tmp_path):
    small = {"model": "small_cnn", "num_classes": 6, "in_channels": 3, "model_kwargs": {"width": 8}}
    wide = dict(small, model_kwargs={"width": 16})
    path = checkpoints.save_model(checkpoints.build_from_meta(small), small, tmp_path / "small.pt")
    ckpt = checkpoints.load_torch(path)
    with pytest.raises(checkpoints.CheckpointError, match=r"model_kwargs.*width=8.*width=16"):
        checkpoints.load_weights(checkpoints.build_from_meta(wide), ckpt, path, meta=wide)
    prn = {"model": "preact_resnet18", "num_classes": 6, "in_channels": 3, "model_kwargs": {"width": 4}}
    with pytest.raises(checkpoints.CheckpointError, match="small_cnn.*does not fit PreActResNet"):
        checkpoints.load_weights(checkpoints.build_from_meta(prn), ckpt, path)  # no meta: shapes decide


# ----------------------------------------------------------------------------- NaN

def test_nan_loss_stops_with_epoch_and_batch_named_and_keeps_checkpoints(tmp_path):
    def poison(row, model, run):  # after epoch 1 is saved, break the weights in memory
        with torch.no_grad():
            next(model.parameters()).fill_(float("nan"))

    with pytest.raises(FloatingPointError, match=r"epoch 2, batch 0"):
        train(tiny(epochs=3), runs_dir=tmp_path, progress=False, callbacks=[poison], log=lambda s: None)
    (folder,) = tmp_path.iterdir()
    run = runs.Run(folder)
    assert [r["epoch"] for r in run.metrics()] == [1] and not run.finished
    state = run.load_state()
    assert state["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert checkpoints.load_torch(run.checkpoint_path("best"))["epoch"] == 1
    assert run.provenance()["sessions"][-1]["status"] == "diverged"  # issue 29: a status of its own
    assert "epoch 2, batch 0" in run.provenance()["sessions"][-1]["error"]


# --------------------------------------------------------------------------- held-out training samples

def test_split_holdout_is_disjoint_class_balanced_and_keeps_the_rest():
    y = torch.arange(5).repeat_interleave(20)           # 5 classes x 20
    x = torch.arange(100, dtype=torch.float32).view(100, 1, 1, 1)  # pixel = original index
    x_tr, y_tr, x_ho, y_ho = split_holdout(x, y, 25, seed=0)
    assert len(y_ho) == 25 and len(y_tr) == 75
    assert torch.bincount(y_ho, minlength=5).tolist() == [5] * 5
    ids_tr, ids_ho = set(x_tr.flatten().long().tolist()), set(x_ho.flatten().long().tolist())
    assert not ids_tr & ids_ho and ids_tr | ids_ho == set(range(100))
    assert torch.equal(y_ho, y[x_ho.flatten().long()])  # labels travel with their images
    assert split_holdout(x, y, None, seed=0)[2] is None


@pytest.mark.parametrize("n", [3, 100, 150])
def test_split_holdout_refuses_sizes_that_leave_a_class_or_the_training_set_empty(n):
    y = torch.arange(5).repeat_interleave(20)
    with pytest.raises(ConfigError, match="holdout_n"):
        split_holdout(torch.zeros(100, 1, 1, 1), y, n, seed=0)


def test_holdout_trains_on_n_train_and_reports_holdout_numbers_each_epoch(tmp_path):
    run = train(tiny(holdout_n=30), runs_dir=tmp_path, progress=False, log=lambda s: None)
    setup = prepare(make_config(tiny(holdout_n=30)))
    assert len(setup.y_train) == 96 and len(setup.y_holdout) == 30
    for row in run.metrics():
        assert row["holdout_n"] == 30
        assert 0 <= row["holdout_robust_acc"] <= 1 and math.isfinite(row["holdout_cas"])


def test_run_key_ignores_an_unset_holdout_and_where_the_teacher_lies():
    assert "holdout_n" not in make_config(tiny()).identity()
    assert make_config(tiny(holdout_n=30)).key() != make_config(tiny()).key()
    a = make_config(tiny(objective="kd_at", kd={"teacher": "/tmp/runs/planted-small_cnn-pgd_at-abc"}))
    b = make_config(tiny(objective="kd_at", kd={"teacher": "results/cpu/planted-small_cnn-pgd_at-abc"}))
    c = make_config(tiny(objective="kd_at", kd={"teacher": "results/cpu/planted-small_cnn-pgd_at-xyz"}))
    assert a.key() == b.key() != c.key()


def test_uint8_training_images_train_bit_identically_to_float32():
    """Storing the training set as uint8 (a quarter of the memory) and converting each
    batch changes no bit of training: same weights after PGD-AT with augmentation."""
    from xcf.attacks import PGD as _PGD
    from xcf.data.dataset import from_uint8
    from xcf.train.setup import device_images

    raw = torch.randint(0, 256, (48, 8, 8, 3), dtype=torch.uint8,
                        generator=torch.Generator().manual_seed(0))
    labels = [i % 4 for i in range(48)]
    x = from_uint8("bytes", raw, labels, raw[:4], labels[:4], list("abcd"), None, None, 0).x_train
    y = torch.tensor(labels)
    packed = device_images(x, torch.device("cpu"))
    assert packed.dtype == torch.uint8 and packed.nbytes * 4 == x.nbytes
    weights = []
    for images in (x, packed):
        torch.manual_seed(0)
        net = TinyNet(num_classes=4, channels=3)
        opt = training.sgd(net, 0.1)
        for epoch in (1, 2):
            train_epoch(net, opt, images, y, epoch=epoch, lr=0.1, batch_size=16,
                        attack=_PGD(eps=8 / 255, steps=2),
                        generator=torch.Generator().manual_seed(epoch))
        weights.append(copy.deepcopy(net.state_dict()))
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_prepare_keeps_float_images_that_are_not_bytes():
    s = prepare(make_config(tiny()))  # planted images: not k / 255
    assert s.x_train.dtype == torch.float32


@pytest.mark.parametrize("how", ["find_spec", "sys.modules"])
def test_autoattack_without_torchattacks_fails_before_training_naming_the_extra(
        how, tmp_path, monkeypatch):
    import importlib.util
    import sys

    from xcf.train import setup as preparation

    if how == "find_spec":
        real = importlib.util.find_spec
        monkeypatch.setattr(importlib.util, "find_spec",
                            lambda name, *a: None if name == "torchattacks" else real(name, *a))
    else:  # a module set to None in sys.modules cannot be imported
        monkeypatch.setitem(sys.modules, "torchattacks", None)
    loaded = []
    monkeypatch.setattr(preparation, "load", lambda *a, **k: loaded.append(1))
    with pytest.raises(ConfigError, match=r'autoattack.*pip install "xcf\[autoattack\]"'):
        train(tiny(autoattack=True), runs_dir=tmp_path, progress=False)
    assert not loaded and not any(tmp_path.iterdir())  # no data read, no run folder made


def test_autoattack_check_passes_when_torchattacks_is_there(monkeypatch):
    import importlib.machinery
    import importlib.util

    from xcf.train import setup as preparation

    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: importlib.machinery.ModuleSpec(name, None))
    preparation.check_optional_dependencies(make_config(tiny(autoattack=True)))
    preparation.check_optional_dependencies(make_config(tiny(autoattack=False)))
