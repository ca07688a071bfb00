"""Training plans (xcf.companion.costs): FLOPs against a hand count of PreActResNet-18, run costs
against the protocol's pass counts, and the runs of each notebook in training order."""
import pytest

from xcf.companion import costs as plan
from xcf.runs.config import make_config


def _prn18_forward_flops(classes=10, side=32):
    """Convolutions and the linear head of PreActResNet-18 (He et al. 2016) at 32 px, 2
    FLOPs per multiply-add: stem 3->64, four stages of two blocks (two 3x3 convs each;
    stride 2 and a 1x1 shortcut at the first block of stages 2-4)."""
    def conv(cin, cout, k, hw):
        return 2 * cin * cout * k * k * hw * hw
    total = conv(3, 64, 3, side)
    cin, hw = 64, side
    for stage, cout in enumerate((64, 128, 256, 512)):
        if stage:
            hw //= 2
            total += conv(cin, cout, 1, hw)  # shortcut
        total += conv(cin, cout, 3, hw) + conv(cout, cout, 3, hw)  # first block
        total += 2 * conv(cout, cout, 3, hw)                      # second block
        cin = cout
    return total + 2 * 512 * classes


def test_forward_flops_of_preact_resnet18_match_the_hand_count():
    f = plan.image_flops(make_config({}))
    assert f["forward"] == _prn18_forward_flops()
    assert abs(f["forward"] - 1.11e9) < 0.01e9  # the usual 0.56 GMAC


def test_backward_costs_follow_from_the_forward():
    """An attack step: forward + input gradients (as much again); a weight update: forward
    + input and weight gradients, less the image's own gradient at the stem conv."""
    f = plan.image_flops(make_config({}))
    stem = 2 * 3 * 64 * 9 * 32 * 32
    assert f["attack"] == 2 * f["forward"]
    assert f["train"] == 3 * f["forward"] - stem


def test_run_flops_count_the_protocols_passes():
    per = {"forward": 1.0, "attack": 2.0, "train": 3.0}
    c = make_config(dict(dataset="cifar10", n_train=100, n_test=40, eval_n=20, epochs=3,
                         attack_steps=10, eval_steps=20))
    # per epoch: 100 x (10 x 2 + 3) training, 20 x (20 x 2 + 2 x 1) evaluation
    assert plan.run_flops(c, per) == 3 * (100 * 23 + 20 * 42)
    std = make_config(dict(dataset="cifar10", n_train=100, n_test=40, epochs=1,
                           objective="standard"))
    assert plan.run_flops(std, per) == 100 * 3 + 40 * 42
    fast = make_config(dict(dataset="cifar10", n_train=100, n_test=40, epochs=1,
                            objective="fast_at"))
    assert plan.run_flops(fast, per) == 100 * (2 + 3) + 40 * 42


def test_gpu_hours_are_flops_over_the_assumed_throughput():
    flops = 3600 * plan.GPUS["T4"] * plan.ASSUMED_UTILISATION["T4"]
    assert plan.gpu_hours(flops, "T4") == pytest.approx(1.0)
    with pytest.raises(ValueError, match="unknown GPU class 'K80'"):
        plan.gpu_hours(1.0, "K80")


def test_a_kd_teacher_comes_before_its_student_and_names_its_folder():
    knobs = {"teacher": dict(dataset="planted", epochs=2), "kd_lambda": 0.5,
             "kd_temperature": 2.0, "kd_form": "eq3"}
    (t_label, teacher), (s_label, student) = plan.notebook_runs("04_soft_labels", knobs)
    assert "teacher" in t_label and student["objective"] == "kd_at"
    c = make_config(teacher)
    assert student["kd"]["teacher"].endswith(f"-{c.key()}")


def test_a_run_asked_for_twice_is_planned_once():
    train = dict(dataset="planted", epochs=1, n_train=32, n_test=16, model="small_cnn",
                 eps=0.1)
    runs = plan.notebook_runs("03_at_dynamics", {"train": train, "curve_eps": [0.05, 0.1]})
    planned = plan.plan_runs(runs)
    assert len(runs) == 3 and [r.config.eps for r in planned] == [0.1, 0.05]
    text = plan.format_plan(planned, 1e-12)
    assert text.startswith("plan: 2 run(s)") and plan.ESTIMATE_LABEL in text
