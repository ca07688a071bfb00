"""The two soft-label controls of issue 28 beside KD-AT: the shuffled teacher and label
smoothing matched to the teacher, each checked by hand and by invariants."""
import math

import pytest
import torch
import torch.nn.functional as F

from conftest import LinearNet, tiny_config
from xcf.train import objectives as O
from xcf.attacks import PGD
from xcf.runs.config import make_config
from xcf.runs.config_file import ConfigError


def entropy(p):
    return -(p * p.clamp_min(1e-30).log()).sum(dim=1)


def test_shuffle_by_hand():
    # row: true class 1 keeps 0.4; the others (classes 0, 2, 3: 0.1, 0.2, 0.3) are
    # reordered by their keys (0.9, 0.1, 0.5 -> ranks 2, 0, 1): class 0 gets the value of
    # the class with the smallest key (class 2: 0.2), class 2 that of class 3 (0.3),
    # class 3 that of class 0 (0.1)
    p = torch.tensor([[0.1, 0.4, 0.2, 0.3]])
    keys = torch.tensor([[0.9, 0.0, 0.1, 0.5]])
    out = O.shuffle_off_true(p, torch.tensor([1]), keys)
    assert torch.allclose(out, torch.tensor([[0.2, 0.4, 0.3, 0.1]]))


def test_shuffle_keeps_confidence_and_entropy_and_changes_the_order():
    g = torch.Generator().manual_seed(0)
    p = F.softmax(torch.randn(64, 10, generator=g) * 2, dim=1)
    y = torch.randint(0, 10, (64,), generator=g)
    out = O.shuffle_off_true(p, y, torch.rand(64, 10, generator=g))
    assert torch.equal(out.gather(1, y[:, None]), p.gather(1, y[:, None]))
    assert torch.allclose(entropy(out), entropy(p), atol=1e-6)
    assert torch.allclose(out.sum(dim=1), torch.ones(64), atol=1e-6)
    assert torch.equal(out.sort(dim=1).values, p.sort(dim=1).values)  # same values
    moved = (out != p).any(dim=1).float().mean()
    assert moved > 0.9  # 9! orders: a row keeps its order with probability 1/362880


def test_soft_target_loss_by_hand_and_against_kd_with_the_teachers_own_distribution():
    student = torch.tensor([[1.0, 0.0, -1.0]])
    target = torch.tensor([[0.5, 0.3, 0.2]])
    y = torch.tensor([0])
    T, lam = 2.0, 0.25
    log_q = F.log_softmax(student / T, dim=1)[0]
    kl = sum(t * (math.log(t) - float(lq)) for t, lq in zip(target[0].tolist(), log_q))
    ce = float(F.cross_entropy(student, y))
    assert float(O.soft_target_loss(student, target, y, lam, T, "eq3")) == pytest.approx(
        (1 - lam) * ce + lam * kl, rel=1e-6)
    assert float(O.soft_target_loss(student, target, y, lam, T, "hinton")) == pytest.approx(
        (1 - lam) * ce + lam * T * T * kl, rel=1e-6)
    teacher = torch.tensor([[0.3, 2.0, -0.5]])
    p = F.softmax(teacher / T, dim=1)
    for form in ("eq3", "hinton"):
        assert float(O.soft_target_loss(student, p, y, lam, T, form)) == pytest.approx(
            float(O.distillation_loss(student, teacher, y, lam, T, form)), rel=1e-6)


def teacher_with_logits(logits):
    """A teacher whose logits are ``logits`` for every input (bias only)."""
    net = LinearNet(torch.zeros(len(logits), 4))
    net.head.bias = torch.nn.Parameter(torch.tensor(logits))
    return net


def test_matched_smoothing_takes_the_teachers_mean_true_class_probability():
    teacher = teacher_with_logits([2.0, 0.0, 0.0])
    obj = O.MatchedSmoothingAT(PGD(eps=0.1, steps=1), teacher, 0.5, 2.0, "hinton")
    x = torch.zeros(6, 1, 2, 2)
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    p = [math.exp(1) / (math.exp(1) + 2), 1 / (math.exp(1) + 2)]   # T = 2: logits 1, 0, 0
    want = (2 * p[0] + 4 * p[1]) / 6
    assert obj.match(x, y) == pytest.approx(want, rel=1e-6)
    assert obj.record["true_class_probability"] == pytest.approx(want, rel=1e-6)
    step = obj.loss(LinearNet(torch.eye(3, 4)), x[:2], y[:2], x[:2])
    target = torch.full((2, 3), (1 - want) / 2)
    target[:, 0] = want
    assert float(step.loss.detach()) == pytest.approx(float(O.soft_target_loss(
        step.logits.detach(), target, y[:2], 0.5, 2.0, "hinton")), rel=1e-6)


def test_the_shuffled_teacher_draws_its_permutation_from_the_epochs_generator():
    teacher = teacher_with_logits([3.0, 1.0, 0.0, -1.0])
    x, y = torch.rand(8, 1, 2, 2), torch.zeros(8, dtype=torch.long)
    model = LinearNet(torch.randn(4, 4, generator=torch.Generator().manual_seed(1)))
    losses = []
    for _ in range(2):
        obj = O.ShuffledDistillationAT(PGD(eps=0.1, steps=1), teacher, 0.5, 2.0, "hinton")
        g = torch.Generator().manual_seed(5)
        x_adv = obj.perturb(model, x, y, g)
        losses.append(float(obj.loss(model, x, y, x_adv).loss.detach()))
    assert losses[0] == losses[1]
    fresh = O.ShuffledDistillationAT(PGD(eps=0.1, steps=1), teacher, 0.5, 2.0, "hinton")
    with pytest.raises(RuntimeError, match="perturb"):
        fresh.loss(model, x, y, x)


def test_the_config_names_the_control_and_old_kd_runs_keep_their_keys(tmp_path):
    teacher = str(tmp_path / "t.pt")
    base = tiny_config(objective="kd_at", kd={"teacher": teacher, "form": "hinton"})
    plain = make_config(base)
    assert plain.kd.soft_labels == "teacher"
    same = make_config({**base, "kd": {**base["kd"], "soft_labels": "teacher"}})
    shuffled = make_config({**base, "kd": {**base["kd"], "soft_labels": "shuffled"}})
    assert plain.key() == same.key() != shuffled.key()
    with pytest.raises(ConfigError, match="kd.soft_labels.*teacher, shuffled, smoothing"):
        make_config({**base, "kd": {**base["kd"], "soft_labels": "random"}})
    assert isinstance(O.build_objective(shuffled.resolved(), teacher_with_logits([0.0, 1.0])),
                      O.ShuffledDistillationAT)


def test_a_matched_smoothing_student_trains_and_records_its_probability(tmp_path):
    """End to end: a tiny teacher, then its smoothing student; the run records q, a
    probability, and a shuffled student is a run of its own (another key)."""
    import json

    from xcf.train.runner import train

    quiet = dict(runs_dir=tmp_path, progress=False, log=lambda line: None)
    teacher = train(tiny_config(epochs=1), **quiet)
    kd = lambda labels: tiny_config(epochs=1, objective="kd_at", kd={  # noqa: E731
        "teacher": str(teacher.path), "form": "hinton", "soft_labels": labels})
    smooth = train(kd("smoothing"), **quiet)
    q = json.loads((smooth.path / "objective.json").read_text())["true_class_probability"]
    assert 0 < q < 1 and smooth.finished
    shuffled = train(kd("shuffled"), **quiet)
    assert shuffled.finished and shuffled.path != smooth.path
    assert not (shuffled.path / "objective.json").exists()
