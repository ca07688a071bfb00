"""Issue 29, the rest: the loaders check their arguments before any work, a diverged
training run says so, and the model adapters and the bootstrap refuse what would give a
silently wrong metric.  Each case is a mistake a user makes; the test asserts the error
type (an :mod:`xcf.inputs` error: a ValueError, and a TypeError for a wrong type) and
that the message names the bad value, written out by hand."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from xcf import data, inputs

NAN, INF = float("nan"), float("inf")
TYPE, RANGE = inputs.ArgumentTypeError, inputs.ArgumentError


# ------------------------------------------------------------------ xcf.data.load

# (dataset, keyword arguments, error type, text naming the bad value)
LOAD_CASES = {
    "name an int": (123, {}, TYPE, r"dataset name 123 is not a string.*planted"),
    "name None": (None, {}, TYPE, r"dataset name None is not a string"),
    "unknown name": ("cifar-10", {}, RANGE, r"unknown dataset 'cifar-10'.*'cifar10'"),
    "n_train -5": ("planted", dict(n_train=-5), RANGE, r"n_train -5 is not an integer >= 0"),
    "n_test 0": ("planted", dict(n_test=0), RANGE, r"n_test 0 is not an integer >= 1"),
    "n_test -1 of cifar": ("cifar10", dict(n_test=-1), RANGE, r"n_test -1 "),
    "n_train 2.5": ("planted", dict(n_train=2.5), TYPE, r"n_train 2\.5 .*it is a float"),
    "n_train True": ("planted", dict(n_train=True), TYPE, r"n_train True .*it is a bool"),
    "n_train '100'": ("planted", dict(n_train="100"), TYPE, r"n_train '100' .*it is a str"),
    "seed -1": ("planted", dict(seed=-1), RANGE, r"seed -1 "),
    "download 'no'": ("cifar10", dict(download="no"), TYPE, r"download 'no' is not True or False"),
    "root an int": ("cifar10", dict(root=5), TYPE, r"root 5 is not a folder path"),
    "keyword of another loader": ("cifar10", dict(image_size=16), RANGE,
                                  r"dataset 'cifar10' has no parameter 'image_size'.*none"),
    "misspelt planted keyword": ("planted", dict(chanels=1), RANGE,
                                 r"no parameter 'chanels'.*channels"),
    "noise NaN": ("planted", dict(noise=NAN), RANGE, r"noise nan is not a finite number >= 0"),
    "noise inf": ("planted", dict(noise=INF), RANGE, r"noise inf "),
    "noise -0.1": ("planted", dict(noise=-0.1), RANGE, r"noise -0\.1 "),
    "noise '0.1'": ("planted", dict(noise="0.1"), TYPE, r"noise '0\.1' is not a number"),
    "p_exclusive 1.5": ("planted", dict(p_exclusive=1.5), RANGE, r"p_exclusive 1\.5 .*\[0, 1\]"),
    "p_exclusive -0.2": ("planted", dict(p_exclusive=-0.2), RANGE, r"p_exclusive -0\.2 "),
    "p_exclusive NaN": ("planted", dict(p_exclusive=NAN), RANGE, r"p_exclusive nan "),
    "shared_contrast 2": ("planted", dict(shared_contrast=2), RANGE,
                          r"shared_contrast 2 .*\[0, 0\.5\]"),
    "shared_contrast -0.4": ("planted", dict(shared_contrast=-0.4), RANGE,
                             r"shared_contrast -0\.4 "),
    "exclusive_contrast 255": ("planted", dict(exclusive_contrast=255), RANGE,
                               r"exclusive_contrast 255 "),
    "contrast True": ("planted", dict(shared_contrast=True), TYPE, r"shared_contrast True .*bool"),
    "channels 0": ("planted", dict(channels=0), RANGE, r"channels 0 is not an integer >= 1"),
    "channels -3": ("planted", dict(channels=-3), RANGE, r"channels -3 "),
    "image_size 8": ("planted", dict(image_size=8), RANGE, r"image_size 8 is not an integer >= 16"),
    "image_size '16'": ("planted", dict(image_size="16"), TYPE, r"image_size '16' .*it is a str"),
    "image_size 16.0": ("planted", dict(image_size=16.0), TYPE, r"image_size 16\.0 "),
    "num_classes 1": ("planted", dict(num_classes=1, sharing=[]), RANGE,
                      r"num_classes 1 is not an integer >= 2"),
    "num_classes 6.0": ("planted", dict(num_classes=6.0), TYPE, r"num_classes 6\.0 "),
    "num_classes True": ("planted", dict(num_classes=True), TYPE, r"num_classes True "),
    "distractors -1": ("planted", dict(distractors=-1), RANGE, r"distractors -1 "),
    "pair beyond the classes": ("planted", dict(sharing=[(0, 6)]), RANGE,
                                r"sharing pair \(0, 6\) names class 6, outside \[0, 5\]"),
    "negative class in a pair": ("planted", dict(sharing=[(-1, 2)]), RANGE,
                                 r"sharing pair \(-1, 2\) names class -1"),
    "a class paired with itself": ("planted", dict(sharing=[(2, 2)]), RANGE,
                                   r"sharing pair \(2, 2\) pairs a class with itself"),
    "float class in a pair": ("planted", dict(sharing=[(0, 1.5)]), TYPE,
                              r"sharing pair \(0, 1\.5\) is not two class indices"),
    "a triple": ("planted", dict(sharing=[(0, 1, 2)]), TYPE, r"sharing pair \(0, 1, 2\) "),
    "sharing a string": ("planted", dict(sharing="0,1"), TYPE, r"sharing '0,1' is not a list"),
    "pair given twice": ("planted", dict(sharing=[(0, 1), (1, 0)]), RANGE,
                         r"sharing pair \(1, 0\) given twice"),
    "erase 'both'": ("planted", dict(erase="both"), RANGE, r"erase='both'"),
    "pad_to below image_size": ("fashion-mnist", dict(pad_to=20), RANGE,
                                r"pad_to=20 is smaller than the image \(28 px\)"),
    "fashion image_size 0": ("fashion-mnist", dict(image_size=0), RANGE, r"image_size 0 "),
    "tiny-imagenet cache 'yes'": ("tiny-imagenet", dict(cache="yes"), TYPE,
                                  r"cache 'yes' is not True or False"),
}


@pytest.mark.parametrize("case", list(LOAD_CASES))
def test_load_names_the_bad_argument_before_any_work(case, tmp_path, monkeypatch):
    name, kwargs, error, text = LOAD_CASES[case]
    drawn = []  # no planted image may be drawn before the check
    monkeypatch.setattr(data.planted, "_render", lambda *a, **k: drawn.append(1))
    kwargs = {"root": tmp_path, "download": False, **kwargs}
    with pytest.raises(error, match=text):
        data.load(name, **kwargs)
    assert not drawn


def test_every_load_error_is_a_value_error_and_type_mistakes_are_type_errors():
    assert issubclass(RANGE, ValueError) and issubclass(TYPE, ValueError)
    assert issubclass(TYPE, TypeError) and issubclass(TYPE, RANGE)
    with pytest.raises(TypeError):
        data.load(123)


def test_planted_called_directly_checks_its_parameters_too():
    with pytest.raises(RANGE, match=r"p_exclusive 2 "):
        data.planted.planted(12, 12, image_size=16, p_exclusive=2)


@pytest.mark.parametrize("kwargs", [dict(noise=0, p_exclusive=0, shared_contrast=0.5,
                                         exclusive_contrast=0),
                                    dict(num_classes=2, sharing=[(0, 1)], channels=1),
                                    dict(n_train=0), dict(sharing=[])])
def test_planted_accepts_the_edges_of_each_range(kwargs):
    ds = data.load("planted", **{"image_size": 16, "n_train": 12, "n_test": 12, **kwargs})
    assert torch.isfinite(ds.x_test).all() and len(ds.y_test) == 12


# ------------------------------------------------------------------ a diverged run

def diverge_run(tmp_path, **overrides):
    """Train the tiny config with ``overrides``; return (the error, the run folder)."""
    from conftest import tiny_config

    from xcf.train.runner import train
    from xcf.train.loop import TrainingDiverged

    with pytest.raises(TrainingDiverged) as caught:
        train(tiny_config(**overrides), runs_dir=tmp_path, progress=False, log=lambda s: None)
    (folder,) = tmp_path.iterdir()
    return caught.value, folder


def assert_recorded_as_diverged(folder, text, epochs_kept):
    from xcf.runs import folder as runs
    from xcf.cli.launch import run_state

    run = runs.Run(folder)
    rows = run.metrics()
    assert [r["epoch"] for r in rows] == epochs_kept
    assert all(json.dumps(r, allow_nan=False) for r in rows)  # every kept number finite
    assert not run.finished and not (folder / "final.json").exists()
    state = run.load_state()
    assert (state["epoch"] if state else 0) == (epochs_kept[-1] if epochs_kept else 0)
    session = run.provenance()["sessions"][-1]
    assert session["status"] == "diverged" and session["end"] is not None
    assert text in session["error"] and run.status == "diverged"
    assert run_state(run)[0] == "diverged"


@pytest.mark.parametrize("lr, named", [
    # What overflows first is this CPU build's (loss nan, running_var inf, A[0, 0] -inf);
    # the text asserted is the part any build gives at that step.
    (1e12, "at epoch 1, batch"),       # the loss itself
    (1e6, "after epoch 1"),            # a finite loss, overflowing BatchNorm statistics
    (4000.0, "evaluating epoch 1, "),  # finite weights, features or attributions overflowing
], ids=["loss", "weights", "evaluation"])
def test_a_huge_learning_rate_stops_the_run_as_diverged(tmp_path, lr, named):
    err, folder = diverge_run(tmp_path, lr=lr)
    assert str(err).startswith("training diverged: ") and named in str(err)
    assert f"now {lr:g}" in str(err)  # the fix names the learning rate to lower
    assert isinstance(err, FloatingPointError)  # as a non-finite loss always raised
    assert_recorded_as_diverged(folder, named, [])


def test_a_run_diverging_later_keeps_its_finite_epochs(tmp_path):
    """lr 2000 without decay: epoch 1 finite, its weights overflow in epoch 2 (on this
    CPU build; the assertions hold wherever it diverges)."""
    from xcf.runs import folder as runs

    err, folder = diverge_run(tmp_path, lr=2000.0, epochs=3, milestones=[])
    kept = [r["epoch"] for r in runs.Run(folder).metrics()]
    assert kept == list(range(1, len(kept) + 1)) and len(kept) < 3
    assert f"epoch {len(kept) + 1}" in str(err)
    assert_recorded_as_diverged(folder, "training diverged", kept)


@pytest.mark.parametrize("field, value", [("cas", NAN), ("test_robust_acc", INF),
                                          ("cas_clean", -INF), ("cas_ci95", [0.1, NAN])])
def test_a_non_finite_evaluation_number_is_not_recorded(tmp_path, monkeypatch, field, value):
    from xcf.train import runner

    real = runner.evaluate

    def broken(model, x, y, config, epoch, **kw):  # epoch 2's number comes out non-finite
        numbers, adv, clean = real(model, x, y, config, epoch, **kw)
        return ({**numbers, field: value} if epoch == 2 else numbers), adv, clean

    monkeypatch.setattr(runner, "evaluate", broken)
    err, folder = diverge_run(tmp_path, epochs=3)
    assert f"{field} of epoch 2 is " in str(err)
    assert_recorded_as_diverged(folder, f"{field} of epoch 2", [1])


def test_a_non_finite_epoch_loss_is_not_recorded(tmp_path, monkeypatch):
    """Each batch's loss finite, their mean not (the epoch's sum overflows)."""
    import dataclasses

    from xcf.train import runner

    real = runner.train_epoch

    def overflowing(*a, epoch, **kw):
        stats = real(*a, epoch=epoch, **kw)
        return dataclasses.replace(stats, loss=INF) if epoch == 2 else stats

    monkeypatch.setattr(runner, "train_epoch", overflowing)
    err, folder = diverge_run(tmp_path, epochs=2)
    assert "train_loss of epoch 2 is inf" in str(err)
    assert_recorded_as_diverged(folder, "train_loss of epoch 2 is inf", [1])


def test_a_finite_but_absurd_epoch_loss_is_diverged_too(tmp_path, monkeypatch):
    """A cross-entropy above divergence.DIVERGED_LOSS (1e6) is a diverged model whose finite
    accuracies and CAS mean nothing: not recorded."""
    import dataclasses

    from xcf.train import runner

    real = runner.train_epoch

    def absurd(*a, epoch, **kw):
        stats = real(*a, epoch=epoch, **kw)
        return dataclasses.replace(stats, loss=3e9) if epoch == 2 else stats

    monkeypatch.setattr(runner, "train_epoch", absurd)
    err, folder = diverge_run(tmp_path, epochs=2)
    assert "the training loss of epoch 2 is 3e+09 (above 1e+06" in str(err)
    assert_recorded_as_diverged(folder, "training loss of epoch 2", [1])


def test_the_issues_learning_rate_1000_is_diverged_not_recorded(tmp_path):
    """The issue's case: lr 1000 on the tiny planted config recorded chance-level rows
    (CAS 0.00, later a loss of about 1e14); now the run stops as diverged, whichever
    check trips first on this CPU build, and no row with such a loss is kept."""
    from xcf.runs import folder as runs

    err, folder = diverge_run(tmp_path, lr=1000.0, epochs=3, milestones=[])
    rows = runs.Run(folder).metrics()
    assert all(r["train_loss"] <= 1e6 for r in rows)
    assert_recorded_as_diverged(folder, "training diverged", [r["epoch"] for r in rows])


def test_weights_poisoned_after_an_epoch_stop_the_next_one(tmp_path):
    from conftest import tiny_config

    from xcf.train.runner import train
    from xcf.train.loop import TrainingDiverged

    def poison(row, model, run):  # after epoch 1 is saved, break the weights in memory
        with torch.no_grad():
            next(model.parameters()).fill_(NAN)

    with pytest.raises(TrainingDiverged, match=r"loss is nan at epoch 2, batch 0"):
        train(tiny_config(epochs=3), runs_dir=tmp_path, progress=False, callbacks=[poison],
              log=lambda s: None)
    (folder,) = tmp_path.iterdir()
    assert_recorded_as_diverged(folder, "epoch 2, batch 0", [1])


def test_xcf_train_says_diverged_in_one_line(tmp_path, capsys):
    import yaml
    from conftest import tiny_config

    from xcf.cli import main as cli

    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config()))
    code = cli.main(["train", str(config), "--set", "lr=1e6", "--runs-dir",
                     str(tmp_path / "runs"), "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 1 and "Traceback" not in out + err
    (line,) = err.strip().splitlines()
    assert line.startswith("xcf train: training stopped: training diverged: ")
    assert "after epoch 1" in line and "lower the learning rate (now 1e+06)" in line
    (folder,) = (tmp_path / "runs").iterdir()
    assert_recorded_as_diverged(folder, "training diverged", [])


# ------------------------------------------------------------------ measure: image channels

def grey(n=6, size=16):
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(0))


def colour_cnn(**kwargs):
    from xcf.models import small_cnn

    torch.manual_seed(0)
    return small_cnn(num_classes=3, in_channels=3, width=4, **kwargs).eval()


def tv_like(channels=3):
    """Another library's colour classifier: conv, pool, Linear."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(channels, 4, 3, padding=1),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                               torch.nn.Linear(4, 3)).eval()


def wrapped(model, **kwargs):
    from xcf.models import as_feature_classifier

    return as_feature_classifier(model, **kwargs)


@pytest.mark.parametrize("make, x, text", [
    # An xcf colour model used to broadcast grey images against its 3-channel
    # normalisation and measure them without a word.
    (lambda: colour_cnn(), grey(), r"x has 1-channel images but SmallCNN takes 3-channel "
                                   r"images; pass 3-channel images \(x\.expand"),
    (lambda: colour_cnn(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)), grey(),
     r"1-channel images but SmallCNN takes 3-channel"),
    (lambda: wrapped(tv_like()), grey(), r"1-channel images but WrappedClassifier takes "
                                         r"3-channel.*input_channels=1"),
    (lambda: colour_cnn(), torch.rand(6, 4, 16, 16), r"x has 4-channel images .* takes 3-channel"),
], ids=["xcf model", "xcf model, normalised", "wrapped model", "4 channels"])
def test_measure_refuses_images_of_other_channels_than_the_model_takes(make, x, text):
    from xcf.attribution import measure

    model = make()
    forwards = []
    hook = model.head.register_forward_hook(lambda *a: forwards.append(1))
    with pytest.raises(inputs.ShapeError, match=text):
        measure(model, x, torch.arange(6) % 3, None, batch_size=6)
    hook.remove()
    assert not forwards


def test_measure_takes_grey_images_where_the_model_says_it_does():
    from xcf.attribution import measure
    from xcf.models import as_feature_classifier

    repeated = as_feature_classifier(tv_like(), input_channels=1)  # repeats grey inside
    assert measure(repeated, grey(), torch.arange(6) % 3, None, batch_size=6).C.shape == (3, 3)
    flat = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(256, 3))  # no channels named
    m = measure(as_feature_classifier(flat), grey(), torch.arange(6) % 3, None, batch_size=6)
    assert torch.isfinite(m.C).all()


# ------------------------------------------------------------------ as_feature_classifier

NORM = inputs.ArgumentError  # NormalizationError: also a LinearHeadError


@pytest.mark.parametrize("kwargs, error, text", [
    (dict(mean=(125.3, 123.0, 113.9)), NORM, r"mean \[125\.3, 123\.0, 113\.9\] holds 125\.3.*"
                                             r"0-255 units\? divide by 255"),
    (dict(std=(63.0, 62.1, 66.7)), NORM, r"std \[63\.0, 62\.1, 66\.7\] holds 63\.0.*divide by 255"),
    (dict(mean=(0.5, -0.1, 0.5)), NORM, r"holds -0\.1: mean must lie in \[0, 1\]"),
    (dict(mean=(0.5, NAN, 0.5)), NORM, r"mean \[0\.5, nan, 0\.5\] holds nan"),
    (dict(std=(0.2, INF, 0.2)), NORM, r"std \[0\.2, inf, 0\.2\] holds inf"),
    (dict(std=(0.2, 0.0, 0.2)), NORM, r"holds 0\.0: std must be > 0"),
    (dict(std=(0.2, -0.2, 0.2)), NORM, r"holds -0\.2: std must be > 0"),
    (dict(mean=(0.5, 0.5)), NORM, r"mean has 2 entries but the model takes 3 channels"),
    (dict(std=(0.2, 0.2, 0.2, 0.2)), NORM, r"std has 4 entries but the model takes 3"),
    (dict(mean="0.5"), TYPE, r"mean '0\.5' is not a list of numbers"),
    (dict(mean=0.5), TYPE, r"mean 0\.5 is not a list of numbers"),
    (dict(std=("0.2", "0.2", "0.2")), TYPE, r"std \('0\.2', '0\.2', '0\.2'\) is not a list"),
    (dict(mean=(True, False, True)), TYPE, r"mean \(True, False, True\) is not a list"),
    (dict(input_channels=1.0), TYPE, r"input_channels 1\.0 is not an integer"),
], ids=["mean 0-255", "std 0-255", "negative mean", "NaN mean", "inf std", "zero std",
        "negative std", "2 means for 3 channels", "4 stds for 3 channels", "mean a string",
        "mean a scalar", "std strings", "mean bools", "input_channels float"])
def test_as_feature_classifier_refuses_bad_normalisation(kwargs, error, text):
    from xcf.models import LinearHeadError, as_feature_classifier

    with pytest.raises(error, match=text) as caught:
        as_feature_classifier(tv_like(), **kwargs)
    if error is NORM:
        assert isinstance(caught.value, LinearHeadError)  # as it was before


def test_as_feature_classifier_takes_statistics_in_pixel_units():
    import numpy as np

    from xcf.models import as_feature_classifier

    net = as_feature_classifier(tv_like(), mean=np.array([0.485, 0.456, 0.406]),
                                std=torch.tensor([0.229, 0.224, 0.225]))
    assert torch.allclose(net.std.flatten(), torch.tensor([0.229, 0.224, 0.225]))


# ------------------------------------------------------------------ bootstrap_cas

@pytest.mark.parametrize("change, error, text", [
    (dict(features=NAN), inputs.MatrixError, r"features holds nan"),
    (dict(features=INF), inputs.MatrixError, r"features holds inf"),
    (dict(weight=-INF), inputs.MatrixError, r"weight holds -inf"),
    (dict(n_boot=0), RANGE, r"n_boot 0 is not an integer >= 1"),
    (dict(n_boot=True), TYPE, r"n_boot True .*it is a bool"),
], ids=["NaN feature", "inf feature", "-inf weight", "n_boot 0", "n_boot True"])
def test_bootstrap_cas_refuses_non_finite_input_and_no_resamples(change, error, text):
    from xcf.attribution import bootstrap_cas

    gen = torch.Generator().manual_seed(0)
    features, weight = torch.rand(6, 4, generator=gen), torch.randn(3, 4, generator=gen)
    for name in ("features", "weight"):
        if name in change:
            (features if name == "features" else weight)[1, 2] = change[name]
    with pytest.raises(error, match=text):
        bootstrap_cas(features, torch.arange(6) % 3, weight, n_boot=change.get("n_boot", 10))


# ------------------------------------------------------------------ evaluate's config

@pytest.mark.parametrize("config", ["dict", "path"])
def test_evaluate_names_a_config_that_is_not_a_train_config(config, tiny_net):
    from conftest import tiny_config

    from xcf.train.evaluation import evaluate, evaluate_holdout

    given = tiny_config() if config == "dict" else "configs/smoke.yaml"
    for fn in (evaluate, evaluate_holdout):
        with pytest.raises(TYPE, match=r"config .* is a (dict|str), not a TrainConfig; pass "
                                       r"xcf\.runs\.config\.make_config\(config\)"):
            fn(tiny_net, torch.rand(6, 1, 8, 8), torch.arange(6) % 3, given, 1)
