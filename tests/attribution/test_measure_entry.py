"""The metric's one entry point, ``xcf.measure``, and measuring a model with its files
written (``xcf.runs.measurement.measure_model``), against independent paths: the explicit
wrapper and attack, a model that is its own head(features), and hand-made mismatches."""
import json

import pytest
import torch
import torch.nn as nn
import torchvision

import xcf
from xcf.attacks import PGD
from xcf.attribution import measure
from xcf.inputs import ArgumentError
from xcf.models import as_feature_classifier
from xcf.runs.checkpoints import CheckpointError
from xcf.runs.measurement import FILES, load_weights, measure_model


@pytest.fixture(scope="module")
def resnet_data():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=4).eval()
    x = torch.rand(8, 3, 16, 16)
    y = torch.arange(8) % 4
    return model, x, y


def test_the_issue_example_runs_on_a_torchvision_resnet(resnet_data):
    model, x, y = resnet_data
    m = xcf.measure(model, x, y, eps=8 / 255, steps=2)
    assert m.C.shape == (4, 4) and 0 <= m.cas <= 12 and 0 <= m.accuracy <= 1


def test_keywords_equal_the_explicit_wrapper_and_attack(resnet_data):
    """eps/steps build the PGD of Table 2, and a model without features/head is wrapped as
    as_feature_classifier would: the same numbers as spelling both out."""
    model, x, y = resnet_data
    short = xcf.measure(model, x, y, eps=0.03, steps=3, generator=torch.Generator().manual_seed(1))
    long = measure(as_feature_classifier(model, input_channels=3), x, y, PGD(eps=0.03, steps=3),
                   generator=torch.Generator().manual_seed(1))
    assert torch.equal(short.C, long.C) and short.accuracy == long.accuracy


def test_clean_when_neither_attack_nor_eps(resnet_data):
    model, x, y = resnet_data
    net = as_feature_classifier(model, input_channels=3)
    with torch.no_grad():
        acc = float((net(x).argmax(1) == y).float().mean())
    assert xcf.measure(model, x, y).accuracy == pytest.approx(acc)


def test_attack_and_eps_together_are_refused(resnet_data):
    model, x, y = resnet_data
    with pytest.raises(ArgumentError, match="both attack=.*and eps=0.1"):
        xcf.measure(model, x, y, PGD(eps=0.1), eps=0.1)


class Scaled(nn.Module):
    """features/head, but forward multiplies the logits: the attack and the attribution
    would see different models."""

    def __init__(self, factor):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 6), nn.ReLU())
        self.head = nn.Linear(6, 4)
        self.factor = factor

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.factor * self.head(self.features(x))


def test_a_forward_that_is_not_head_of_features_is_refused(resnet_data):
    _, x, y = resnet_data
    torch.manual_seed(0)
    with pytest.raises(ArgumentError, match="differs from head\\(features\\(x\\)\\)"):
        xcf.measure(Scaled(3.0), x, y, eps=0.03, steps=1)
    assert xcf.measure(Scaled(1.0), x, y, eps=0.03, steps=1).C.shape == (4, 4)


def test_measure_model_writes_its_files_and_compares_to_itself(resnet_data, tmp_path):
    model, x, y = resnet_data
    report = measure_model(model, x, y, tmp_path / "out", eps=0.03, steps=2, seed=3,
                           name="resnet18", describe={"dataset": {"name": "noise"}})
    assert sorted(p.name for p in report.paths) == sorted([*FILES, "summary.json"])
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["results"]["cas"] == pytest.approx(report.adversarial.cas)
    assert summary["dataset"]["name"] == "noise" and summary["model"]["name"] == "resnet18"
    assert summary["attack"]["alpha"] == pytest.approx(0.03 / 4)  # Table 2: eps/4 for l-inf
    again = xcf.measure(model, x, y, eps=0.03, steps=2, instance=True,
                        generator=torch.Generator().manual_seed(3))
    assert report.compare(again) == {"max_abs_diff_c": 0.0, "cas_diff": 0.0,
                                     "accuracy_diff": 0.0}


def test_measure_model_refuses_a_file_as_out_before_measuring(resnet_data, tmp_path):
    model, x, y = resnet_data
    (tmp_path / "f").write_text("x")
    with pytest.raises(ArgumentError, match="is a file"):
        measure_model(model, x, y, tmp_path / "f", eps=0.03)
    with pytest.raises(ArgumentError, match="mean and std together"):
        measure_model(model, x, y, eps=0.03, mean=[0.5, 0.5, 0.5])


def test_load_weights_names_the_mismatch(tmp_path):
    torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), tmp_path / "w.pt")
    target = torchvision.models.resnet18(num_classes=6)
    with pytest.raises(CheckpointError, match="do not fit r18: 2 shape mismatch.*fc.weight"):
        load_weights(target, tmp_path / "w.pt", "r18")
    same = torchvision.models.resnet18(num_classes=10)
    digest = load_weights(same, tmp_path / "w.pt")
    assert len(digest) == 64


def test_measure_model_never_replaces_an_earlier_measurement_by_accident(resnet_data, tmp_path):
    model, x, y = resnet_data
    out = tmp_path / "out"
    measure_model(model, x, y, out, eps=0.03, steps=1, seed=0)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(ArgumentError, match="already holds a measurement.*overwrite=True"):
        measure_model(model, x, y, out, eps=0.05, steps=1, seed=1)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    again = measure_model(model, x, y, out, eps=0.05, steps=1, seed=1, overwrite=True)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["attack"]["eps"] == 0.05 and summary["results"]["cas"] == pytest.approx(
        again.adversarial.cas)
