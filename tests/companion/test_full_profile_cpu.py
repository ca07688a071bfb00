"""The full profile without a GPU: every training config of every notebook at the ``full``
profile (notebooks/params/full.yaml, read through :func:`xcf.companion.costs.notebook_runs`) is
validated as it is, then trained end to end for one step, with evaluation and
checkpoints, on CPU, on tiny fake archives in each dataset's real on-disk format
(tests/fake_archives.py) that the real loaders parse, found through ``$XCF_DATA_DIR``.

Only sizes shrink, through overrides that leave the code path alone: the subset sizes
(one batch of at most 20 images, one test image per class), one epoch, fewer attack
steps, the ResNet's width.
The model, dataset, objective, norm, radius, KD teacher link and precision are the full
profile's.  Covers CIFAR-10/100, Tiny-ImageNet, DeiT-Ti, l2, KD, fast AT and standard.
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from fake_archives import skip_cifar_md5, write_cifar10, write_cifar100, write_tiny_imagenet
from xcf.runs.config import make_config
from xcf.companion.costs import PlannedRun, dataset_size, notebook_runs
from xcf.train.setup import prepare
from xcf.companion.profiles import profile_knobs
from xcf.train.runner import train

pytestmark = pytest.mark.fullcpu

ROOT = Path(__file__).resolve().parents[2]
PARAMS = ROOT / "notebooks" / "params"
NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CLASSES = {"cifar10": 10, "cifar100": 100, "tiny-imagenet": 200}


def _full_runs() -> list[tuple[str, str, dict]]:
    out = []
    for nb in NOTEBOOKS:
        try:
            knobs = profile_knobs(nb, "full", PARAMS)
        except Exception:  # noqa: BLE001  a notebook without a full section trains nothing
            continue
        out += [(nb, label, config) for label, config in notebook_runs(nb, knobs)]
    return out


FULL_RUNS = _full_runs()


def _shrunk(config: dict) -> dict:
    """``config`` at test size: sizes only, the code path unchanged."""
    c = make_config(dict(config))
    k = CLASSES.get(c.dataset, 10)
    kwargs = dict(c.model_kwargs)
    if c.model == "preact_resnet18":
        # 16, not smaller: torch 2.9's CPU backward of a channels-last PreActResNet at
        # 64 px crashes (SIGSEGV) for widths 4 and 8.
        kwargs["width"] = 16
    n = min(k, 20)  # one batch; the evaluation needs every class (Algorithm 1: class means)
    return {**config, "n_train": n, "n_test": k, "eval_n": k, "batch_size": n, "epochs": 1,
            "attack_steps": min(c.attack_steps, 2), "eval_steps": 1, "eval_batch_size": 256,
            "model_kwargs": kwargs, "device": "cpu"}


@pytest.fixture(scope="module")
def fake_data(tmp_path_factory):
    """The fake archives under one folder, named by ``$XCF_DATA_DIR``."""
    root = tmp_path_factory.mktemp("data")
    write_cifar10(root)
    write_cifar100(root)
    write_tiny_imagenet(root)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XCF_DATA_DIR", str(root))
        skip_cifar_md5(mp)
        yield root


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("runs")  # shared: a run asked for twice is trained once


def test_the_tier_covers_what_the_full_profile_trains():
    configs = [make_config(dict(c)) for _, _, c in FULL_RUNS]
    assert {c.dataset for c in configs} >= {"cifar10", "cifar100", "tiny-imagenet"}
    assert {c.objective for c in configs} >= {"pgd_at", "kd_at", "fast_at", "standard"}
    assert {c.model for c in configs} >= {"preact_resnet18", "deit_tiny"}
    assert {c.norm for c in configs} == {"linf", "l2"}
    notebooks = {nb for nb, _, _ in FULL_RUNS}
    assert {"03_at_dynamics", "04_soft_labels", "06_norms_datasets_architectures",
            "07_fast_at", "08_instance_wise_and_standard"} <= notebooks


@pytest.mark.parametrize("notebook, label, config", FULL_RUNS,
                         ids=[f"{nb[:2]}-{label}" for nb, label, _ in FULL_RUNS])
def test_full_config_validates_and_trains_one_step_on_cpu(notebook, label, config, fake_data,
                                                          runs_dir):
    full = make_config(dict(config))  # the full profile's config itself is valid
    if full.dataset != "planted":
        assert full.epochs == 200 and full.n_train is None  # the paper's whole dataset
    small = _shrunk(config)
    if full.objective == "kd_at":  # the teacher: the same link, to a 1-step teacher run
        teacher_full = Path(full.kd.teacher).name
        teacher = next(c for nb, _, c in FULL_RUNS if nb == notebook
                       and PlannedRun("", make_config(dict(c)), 0.0).name == teacher_full)
        teacher_run = train(_shrunk(teacher), runs_dir=runs_dir, progress=False,
                            log=lambda line: None)
        small["kd"] = {**small["kd"], "teacher": str(teacher_run.path)}
    run = train(small, runs_dir=runs_dir, progress=False, log=lambda line: None)
    rows = run.metrics()
    assert run.finished and [r["epoch"] for r in rows] == [1]
    assert math.isfinite(rows[0]["train_loss"]) and 0 <= rows[0]["test_robust_acc"] <= 1
    assert run.checkpoint_path("best").is_file()
    assert run.config["dataset"] == full.dataset and run.config["objective"] == full.objective


@pytest.mark.parametrize("dataset", sorted(CLASSES))
def test_the_real_loaders_read_the_fake_archives_into_uint8_training_images(dataset,
                                                                            fake_data):
    k = CLASSES[dataset]
    s = prepare(make_config(dataset=dataset, model="preact_resnet18",
                            model_kwargs={"width": 16}, n_train=k, n_test=k, device="cpu"))
    shape = dataset_size(make_config(dataset=dataset))[3]
    assert s.x_train.dtype == torch.uint8 and tuple(s.x_train.shape) == (k, *shape)
    assert s.x_eval.dtype == torch.float32 and len(s.classes) == k
    assert torch.bincount(s.y_train, minlength=k).tolist() == [1] * k
