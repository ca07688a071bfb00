"""xcf.companion.diagnostics: robust and catastrophic overfitting and the beyond-paper measures, on
run folders written by hand with known answers."""
import numpy as np
import pytest

from run_folders import make_run
from xcf.companion import diagnostics


def test_overfitting_needs_a_drop_of_three_points_and_rising_train_accuracy(tmp_path):
    run = make_run(tmp_path, [0.30, 0.50, 0.46, 0.44], [1, 2, 3, 4], train_ra=[0.3, 0.5, 0.7, 0.9])
    o = diagnostics.overfitting(run, window=1)
    assert (o["peak_epoch"], o["ra_peak"], o["ra_last"]) == (2, 0.50, 0.44)
    assert o["ra_drop"] == pytest.approx(0.06) and o["overfits"]
    flat = make_run(tmp_path, [0.30, 0.50, 0.49, 0.48], [1, 2, 3, 4], name="flat")
    assert not diagnostics.overfitting(flat, window=1)["overfits"]            # only 2 points
    stuck = make_run(tmp_path, [0.30, 0.50, 0.40, 0.40], [1, 2, 3, 4], train_ra=[0.3, 0.6, 0.5, 0.5],
                     name="stuck")
    assert not diagnostics.overfitting(stuck, window=1)["overfits"]           # train RA fell too


def test_overfitting_is_judged_on_trailing_means_so_one_lucky_epoch_does_not_count(tmp_path):
    spike = [0.50] * 5 + [0.58] + [0.50] * 6          # one evaluation 8 points high, then flat
    run = make_run(tmp_path, spike, [1] * len(spike), train_ra=[0.1 * e for e in range(1, 13)])
    o = diagnostics.overfitting(run, window=3)
    assert o["raw_ra_best"] == 0.58 and o["raw_best_epoch"] == 6          # the raw rule sees 8 points
    assert o["ra_drop"] == pytest.approx(0.08 / 3) and not o["overfits"]  # the smoothed one sees 2.7
    decline = [0.50, 0.56, 0.57, 0.56, 0.55, 0.53, 0.52, 0.51, 0.51, 0.50]
    o = diagnostics.overfitting(make_run(tmp_path, decline, [1] * 10, name="decline"), window=3)
    assert o["peak_epoch"] == 4 and o["ra_peak"] == pytest.approx((0.56 + 0.57 + 0.56) / 3)
    assert o["ra_last"] == pytest.approx((0.51 + 0.51 + 0.50) / 3) and o["overfits"]


def test_collapse_is_the_first_epoch_after_the_best_at_a_quarter_of_its_accuracy(tmp_path):
    assert diagnostics.collapse_epoch(make_run(tmp_path, [0.3, 0.4, 0.2, 0.09, 0.0], [5] * 5)) == 4
    assert diagnostics.collapse_epoch(make_run(tmp_path, [0.05, 0.4, 0.2, 0.2], [5] * 4, name="b")) is None


def test_label_free_selection_reports_the_test_accuracy_lost_by_each_selector(tmp_path):
    extra = {1: {"holdout_cas": 3.0, "holdout_robust_acc": 0.2}, 2: {"holdout_cas": 5.0, "holdout_robust_acc": 0.3},
             3: {"holdout_cas": 9.0, "holdout_robust_acc": 0.6}, 4: {"holdout_cas": 1.0, "holdout_robust_acc": 0.5}}
    run = make_run(tmp_path, [0.30, 0.50, 0.45, 0.40], [1, 2, 3, 4], extra=extra)
    s = diagnostics.label_free_selection(run)
    assert (s["test_best_epoch"], s["cas_epoch"], s["holdout_ra_epoch"]) == (2, 3, 3)
    assert s["cas_regret"] == pytest.approx(0.05) and s["last_regret"] == pytest.approx(0.10)
    with pytest.raises(ValueError, match="holdout_n"):
        diagnostics.label_free_selection(make_run(tmp_path, [0.3], [1], name="plain"))


def test_planted_concentration_finds_a_drop_that_lies_on_the_sharing_pair(tmp_path):
    share = np.zeros((3, 3), bool)
    share[0, 1] = share[1, 0] = True
    best = np.array([[1, .8, .1], [.8, 1, .1], [.1, .1, 1]])
    last = np.array([[1, .2, .1], [.2, 1, .1], [.1, .1, 1]])
    run = make_run(tmp_path, [0.5, 0.4], [1.8, 0.6], matrices={1: best, 2: last})
    p = diagnostics.planted_concentration(run, share)
    assert p["drop_share_of_cas_drop"] == pytest.approx(1.0)
    assert p["C_share_best"] == pytest.approx(0.8) and p["C_share_last"] == pytest.approx(0.2, abs=1e-6)
    assert p["C_other_best"] == pytest.approx(0.1) and p["share_fraction_of_pairs"] == pytest.approx(1 / 3)


def test_decay_drop_measures_the_fall_after_the_first_lr_decay(tmp_path):
    # lr 0.1 for epochs 1-4, 0.01 from epoch 5: RA rises to 0.60 at epoch 6, ends at 0.50
    ra = [0.30, 0.40, 0.45, 0.45, 0.55, 0.60, 0.56, 0.52, 0.50]
    lrs = {e: {"lr": 0.1 if e <= 4 else 0.01} for e in range(1, 10)}
    d = diagnostics.decay_drop(make_run(tmp_path, ra, [1] * 9, extra=lrs), window=1)
    assert (d["decay_epoch"], d["peak_epoch"]) == (5, 6)
    assert d["drop"] == pytest.approx(0.10) and d["after_decay"] and d["shape"]
    # the peak in the first lr phase: a fall after the decay, but not the paper's shape
    early = [0.30, 0.62, 0.50, 0.45, 0.55, 0.49, 0.48, 0.47, 0.46]
    d = diagnostics.decay_drop(make_run(tmp_path, early, [1] * 9, extra=lrs, name="e"), window=1)
    assert d["peak_epoch"] == 5 and d["drop"] == pytest.approx(0.09)
    assert not d["after_decay"] and not d["shape"]
    # no decay at all: nothing to measure
    flat_lr = {e: {"lr": 0.1} for e in range(1, 10)}
    d = diagnostics.decay_drop(make_run(tmp_path, ra, [1] * 9, extra=flat_lr, name="f"))
    assert d["decay_epoch"] is None and not d["shape"]


def test_wall_minutes_sums_train_and_eval_seconds_over_epochs(tmp_path):
    extra = {1: {"seconds": {"train": 30.0, "eval": 15.0}},
             2: {"seconds": {"train": 60.0, "eval": 15.0}}}
    run = make_run(tmp_path, [0.1, 0.2], [1, 2], extra=extra)
    assert diagnostics.wall_minutes(run) == pytest.approx(2.0)   # (45 + 75) s
