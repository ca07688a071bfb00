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
