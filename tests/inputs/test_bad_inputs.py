"""Bad input to the library API and to run folders gets a clear error before any work
starts, of one type per kind of mistake (:mod:`xcf.inputs`), whose message names the bad
value.  Each case below is a mistake a user makes (issue 14); the expected text is the
bad value itself, written out by hand."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from xcf import inputs
from xcf.attacks import PGD
from xcf.attribution import (attribution_vectors, bootstrap_cas, cas, class_attribution_vectors,
                             correlation_matrix, i_cas, instance_correlation_matrix, measure)
from xcf.runs.config import make_config
from xcf.runs.config_file import ConfigError
from xcf.data.batching import batches
from xcf.train.evaluation import eval_seed, evaluate, evaluate_holdout
from xcf.runs.files import RunFileError
from xcf.runs.folder import Run

NAN, INF = float("nan"), float("inf")


def images(n=6):
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(0))


def labels(n=6):
    return torch.arange(n) % 3


def with_value(x, value, index=(2, 0, 3, 4)):
    x = x.clone()
    x[index] = value
    return x


# --------------------------------------------------------------------------- measure

# (what the user passes, the error type, text naming the bad value)
MEASURE_CASES = {
    "NaN pixel": (dict(x=with_value(images(), NAN)), inputs.ImageError, r"holds nan.*sample 2"),
    "inf pixel": (dict(x=with_value(images(), INF)), inputs.ImageError, r"holds inf.*sample 2"),
    "-inf pixel": (dict(x=with_value(images(), -INF)), inputs.ImageError, r"holds -inf"),
    "0-255 scale": (dict(x=with_value(images() * 255, 255.0, (0, 0, 0, 0))), inputs.ImageError,
                    r"holds 255 \(first in sample 0.*outside \[0, 1\]"),
    "pixel 1.5": (dict(x=with_value(images(), 1.5)), inputs.ImageError, r"holds 1\.5 .*sample 2"),
    "normalised pixel -0.5": (dict(x=with_value(images(), -0.5)), inputs.ImageError,
                              r"holds -0\.5 .*sample 2"),
    "uint8 images": (dict(x=(images() * 255).to(torch.uint8)), inputs.ImageError,
                     r"dtype torch\.uint8.*x\.float\(\) / 255"),
    "one image without batch dim": (dict(x=images()[0]), inputs.ImageError,
                                    r"shape \(1, 8, 8\)"),
    "numpy images": (dict(x=images().numpy()), inputs.ImageError, r"got ndarray"),
    "no images": (dict(x=images()[:0], y=labels()[:0]), inputs.ImageError, r"0 samples"),
    "label K": (dict(y=torch.tensor([0, 1, 2, 3, 0, 1])), inputs.LabelError, r"label 3 \(sample 3"),
    "label 10 of 3 classes": (dict(y=torch.tensor([0, 1, 2, 0, 10, 1])), inputs.LabelError,
                              r"label 10 \(sample 4.*\[0, 2\]"),
    "negative label": (dict(y=torch.tensor([0, -1, 2, 0, 1, 2])), inputs.LabelError,
                       r"label -1 \(sample 1"),
    "float labels": (dict(y=labels().float()), inputs.LabelError, r"dtype torch\.float32"),
    "bool labels": (dict(y=labels() > 0), inputs.LabelError, r"dtype torch\.bool"),
    "one-hot labels": (dict(y=torch.eye(3)[labels()].long()), inputs.LabelError,
                       r"shape \(6, 3\).*argmax"),
    "list labels": (dict(y=[0, 1, 2, 0, 1, 2]), inputs.LabelError, r"got list"),
    "fewer labels than images": (dict(y=labels(5)), inputs.LengthError,
                                 r"x has 6 samples but y has 5"),
    "more labels than images": (dict(y=labels(9)), inputs.LengthError,
                                r"x has 6 samples but y has 9"),
    "batch_size 0": (dict(batch_size=0), inputs.ArgumentError, r"batch_size 0 "),
    "batch_size -4": (dict(batch_size=-4), inputs.ArgumentError, r"batch_size -4 "),
    "batch_size 2.5": (dict(batch_size=2.5), inputs.ArgumentError, r"batch_size 2\.5 "),
    "num_classes below the head": (dict(num_classes=2), inputs.NumClassesError,
                                   r"num_classes 2 .* 3 outputs"),
    "num_classes above the head": (dict(num_classes=10), inputs.NumClassesError,
                                   r"num_classes 10 .* 3 outputs"),
}


@pytest.mark.parametrize("attacked", [False, True], ids=["clean", "attacked"])
@pytest.mark.parametrize("case", list(MEASURE_CASES))
def test_measure_names_the_bad_input_before_any_forward_pass(tiny_net, case, attacked):
    change, error, text = MEASURE_CASES[case]
    calls = []

    def attack(model, x, y):
        calls.append(1)
        return x

    forwards = []
    hook = tiny_net.head.register_forward_hook(lambda *a: forwards.append(1))
    args = {**dict(x=images(), y=labels(), batch_size=4, num_classes=None), **change}
    with pytest.raises(error, match=text):
        measure(tiny_net, args.pop("x"), args.pop("y"), attack if attacked else None, **args)
    hook.remove()
    assert not calls and not forwards, "work started before the input was checked"


def test_every_input_error_is_a_value_error_of_its_own_kind():
    kinds = [inputs.ImageError, inputs.LabelError, inputs.LengthError, inputs.ShapeError,
             inputs.NumClassesError, inputs.MatrixError, inputs.ArgumentError]
    assert len(set(kinds)) == 7
    for kind in kinds:
        assert issubclass(kind, inputs.InputError) and issubclass(kind, ValueError)
        assert not any(issubclass(kind, other) for other in kinds if other is not kind)


def test_good_input_at_the_edges_of_the_range_is_accepted(tiny_net):
    x = images()
    x[0], x[1] = 0.0, 1.0  # [0, 1] is closed
    m = measure(tiny_net, x, labels(), PGD(eps=0.1, steps=1), batch_size=4, num_classes=3)
    assert m.C.shape == (3, 3) and torch.isfinite(m.C).all()


# --------------------------------------------------------------------------- matrices

def square(value=None, at=(0, 1), K=3):
    C = torch.eye(K) * 0.5 + 0.5
    if value is not None:
        C[at] = value
    return C


MATRIX_CASES = [
    (correlation_matrix, square(NAN), r"A\[0, 1\] is nan"),
    (correlation_matrix, square(INF, (2, 0)), r"A\[2, 0\] is inf"),
    (correlation_matrix, square(-INF, (1, 1)), r"A\[1, 1\] is -inf"),
    (correlation_matrix, torch.empty(0, 0), r"shape \(0, 0\)"),
    (correlation_matrix, torch.empty(3, 0), r"shape \(3, 0\)"),
    (correlation_matrix, torch.ones(4), r"shape \(4,\)"),
    (correlation_matrix, [[1.0, 0.0], [0.0, 1.0]], r"got list"),
    (cas, square(NAN), r"C\[0, 1\] is nan"),
    (cas, square(INF, (1, 2)), r"C\[1, 2\] is inf"),
    (cas, torch.empty(0, 0), r"shape \(0, 0\)"),
    (cas, torch.ones(2, 3), r"shape \(2, 3\).*square"),
    (cas, torch.ones(2, 2, 2), r"shape \(2, 2, 2\)"),
    (cas, np.eye(3), r"got ndarray"),
    (i_cas, square(NAN, (2, 1)), r"C\[2, 1\] is nan"),
    (i_cas, torch.ones(3, 1), r"shape \(3, 1\)"),
]


@pytest.mark.parametrize("fn, M, text", MATRIX_CASES,
                         ids=[f"{fn.__name__}-{i}" for i, (fn, _, _) in enumerate(MATRIX_CASES)])
def test_matrix_functions_refuse_nan_inf_and_empty_or_non_square_input(fn, M, text):
    with pytest.raises(inputs.MatrixError, match=text):
        fn(M)


def test_cas_of_a_one_class_matrix_is_zero_not_an_error():
    assert cas(torch.ones(1, 1)) == 0.0  # no off-diagonal entry: Eq. 7 sums nothing


# --------------------------------------------------------------------------- features, W, labels

def fwl(N=4, n=5, K=3):
    gen = torch.Generator().manual_seed(1)
    return torch.rand(N, n, generator=gen), torch.randn(K, n, generator=gen), torch.arange(N) % K


FEATURE_CASES = {
    "label 3 of 3 classes": (lambda g, W, y: (g, torch.tensor([0, 1, 3, 2]), W),
                             inputs.LabelError, r"label 3 \(sample 2 of labels"),
    "negative label": (lambda g, W, y: (g, torch.tensor([0, -2, 1, 2]), W),
                       inputs.LabelError, r"label -2"),
    "float labels": (lambda g, W, y: (g, y.double(), W), inputs.LabelError, r"torch\.float64"),
    "features and W of other widths": (lambda g, W, y: (g, y, W[:, :4]), inputs.ShapeError,
                                       r"features have 5 dimensions but weight has 4"),
    "fewer labels than features": (lambda g, W, y: (g, y[:3], W), inputs.LengthError,
                                   r"features has 4 samples but labels has 3"),
    "NaN feature": (lambda g, W, y: (with_value(g, NAN, (1, 2)), y, W), inputs.MatrixError,
                    r"features holds nan"),
    "inf in W": (lambda g, W, y: (g, y, with_value(W, INF, (0, 0))), inputs.MatrixError,
                 r"weight holds inf"),
    "1-D features": (lambda g, W, y: (g[0], y, W), inputs.ShapeError,
                     r"shapes \(5,\) and \(3, 5\)"),
}


@pytest.mark.parametrize("fn", [class_attribution_vectors, instance_correlation_matrix,
                                bootstrap_cas], ids=lambda f: f.__name__)
@pytest.mark.parametrize("case", list(FEATURE_CASES))
def test_feature_functions_name_the_bad_labels_shapes_and_values(fn, case):
    make, error, text = FEATURE_CASES[case]
    g, W, y = fwl()
    features, labels_, weight = make(g, W, y)
    with pytest.raises(error, match=text):
        fn(features, labels_, weight)


def test_attribution_vectors_name_a_label_beyond_the_head():
    g, W, _ = fwl()
    with pytest.raises(inputs.LabelError, match=r"label 5 \(sample 0"):
        attribution_vectors(g, W, torch.tensor([5, 0, 1, 2]))


@pytest.mark.parametrize("kwargs, text", [({"n_boot": 0}, r"n_boot 0 "),
                                          ({"n_boot": 1.5}, r"n_boot 1\.5 "),
                                          ({"n_boot": -3}, r"n_boot -3 ")])
def test_bootstrap_names_a_bad_number_of_resamples(kwargs, text):
    g, W, y = fwl()
    with pytest.raises(inputs.ArgumentError, match=text):
        bootstrap_cas(g, y, W, **kwargs)


@pytest.mark.parametrize("chunk", [0, -1, 3.0])
def test_instance_matrix_names_a_bad_chunk(chunk):
    g, W, y = fwl()
    with pytest.raises(inputs.ArgumentError, match=rf"chunk {chunk!r} "):
        instance_correlation_matrix(g, y, W, chunk=chunk)


# --------------------------------------------------------------------------- batching

@pytest.mark.parametrize("batch_size, text", [(0, r"batch_size 0 "), (-1, r"batch_size -1 "),
                                              ("32", r"batch_size '32' ")])
def test_batches_name_a_bad_batch_size(batch_size, text):
    with pytest.raises(inputs.ArgumentError, match=text):
        next(batches(images(), labels(), batch_size, shuffle=False))


def test_batches_name_mismatched_lengths():
    with pytest.raises(inputs.LengthError, match=r"x has 6 samples but y has 4"):
        next(batches(images(), labels(4), 2, shuffle=True))


# --------------------------------------------------------------------------- evaluation

@pytest.fixture
def eval_config():
    from conftest import tiny_config
    return make_config(tiny_config())


@pytest.mark.parametrize("seed, epoch, text", [(-1, 1, r"seed -1 "), (0, -3, r"epoch -3 "),
                                               (0, 1.5, r"epoch 1\.5 "), ("0", 1, r"seed '0' ")])
def test_eval_seed_names_a_bad_seed_or_epoch(seed, epoch, text):
    with pytest.raises(inputs.ArgumentError, match=text):
        eval_seed(seed, epoch)


EVAL_CASES = {
    "amp fp32": (dict(amp="fp32"), inputs.ArgumentError, r"amp 'fp32' is not one of none"),
    "epoch -1": (dict(epoch=-1), inputs.ArgumentError, r"epoch -1 "),
    "NaN pixel": (dict(x=with_value(images(), NAN)), inputs.ImageError, r"holds nan"),
    "pixel 255": (dict(x=with_value(images(), 255.0)), inputs.ImageError, r"holds 255 "),
    "label 7": (dict(y=torch.tensor([0, 1, 2, 7, 0, 1])), inputs.LabelError, r"label 7 "),
    "fewer labels": (dict(y=labels(4)), inputs.LengthError, r"x has 6 samples but y has 4"),
}


@pytest.mark.parametrize("fn", [evaluate, evaluate_holdout], ids=lambda f: f.__name__)
@pytest.mark.parametrize("case", list(EVAL_CASES))
def test_evaluation_names_the_bad_input_before_attacking(tiny_net, eval_config, fn, case):
    change, error, text = EVAL_CASES[case]
    args = {**dict(x=images(), y=labels(), epoch=1, amp="none"), **change}
    forwards = []
    hook = tiny_net.head.register_forward_hook(lambda *a: forwards.append(1))
    with pytest.raises(error, match=text):
        fn(tiny_net, args["x"], args["y"], eval_config, args["epoch"], amp=args["amp"])
    hook.remove()
    assert not forwards


# --------------------------------------------------------------------------- run files

def test_a_torn_metrics_line_is_named_by_file_and_line(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1}\n{"epoch": 2}\n{"epoch": 3, "ca')
    with pytest.raises(RunFileError, match=r"metrics\.jsonl line 3 is not JSON"):
        Run(tmp_path).metrics()


def test_a_garbled_provenance_is_named(tmp_path):
    (tmp_path / "provenance.json").write_text('{"sessions": [')
    with pytest.raises(RunFileError, match=r"provenance\.json is unreadable"):
        Run(tmp_path).provenance()


def test_a_provenance_that_is_not_an_object_is_named(tmp_path):
    (tmp_path / "provenance.json").write_text('[1, 2]')
    with pytest.raises(RunFileError, match=r"provenance\.json must hold a JSON object, got \[1, "):
        Run(tmp_path).provenance()


def test_a_garbled_final_json_of_a_teacher_is_named(tmp_path):
    teacher = tmp_path / "t-pgd_at-0123456789ab"
    teacher.mkdir()
    (teacher / "final.json").write_text('{"best_epoch": ')
    with pytest.raises(ConfigError, match=r"kd\.teacher.*final\.json is unreadable"):
        make_config(objective="kd_at", kd={"teacher": str(teacher)}).key()


def test_the_tiny_imagenet_cache_runs_no_code_while_loading(tmp_path):
    """A cache holding a pickled object (as a tampered file would) is not unpickled: it is
    refused by ``weights_only=True`` and the images are decoded again."""
    from test_data import _tiny_tree

    from xcf.data import load

    base = _tiny_tree(tmp_path)
    marker = tmp_path / "code-ran"
    torch.save({"x_train": Planted(str(marker))}, base / "xcf-cache.pt")
    ds = load("tiny-imagenet", root=tmp_path, download=False)
    assert not marker.exists(), "torch.load ran code from the cache"
    assert len(ds.x_train) > 0 and ds.x_train.max() <= 1
    again = torch.load(base / "xcf-cache.pt", weights_only=True)  # rewritten, safe to load
    assert torch.equal(again["y_train"], ds.y_train)


class Planted:
    """Unpickling this object would create ``path``."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_final_json_edited_by_hand_is_still_named(tmp_path):
    (tmp_path / "final.json").write_text(json.dumps([7]))
    with pytest.raises(RunFileError, match=r"final\.json must hold a JSON object, got \[7\]"):
        Run(tmp_path).final()
