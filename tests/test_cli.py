"""``xcf train`` / ``xcf measure``: a run folder that measure reads back, one summary line
per epoch, config overrides, and clear errors with exit status 2 (bad input) or 1 (NaN)."""
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from xcf import checkpoints, cli, runs
from xcf.config import TrainConfig


def tiny(**overrides):
    base = dict(dataset="planted", data_kwargs={"image_size": 16}, n_train=96, n_test=60,
                eval_n=60, model="small_cnn", model_kwargs={"width": 8}, objective="pgd_at",
                eps=4 / 255, attack_steps=2, eval_steps=2, epochs=3, batch_size=32, lr=0.05,
                device="cpu", save_checkpoints_at=[1])
    return {**base, **overrides}


def write(tmp_path, cfg, name="cfg.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One CLI training run shared by the measure tests."""
    tmp = tmp_path_factory.mktemp("cli")
    code = cli.main(["train", str(write(tmp, tiny())), "--runs-dir", str(tmp / "runs"), "--no-progress"])
    assert code == 0
    (folder,) = (tmp / "runs").iterdir()
    return runs.Run(folder)


def test_train_prints_one_line_per_epoch_and_the_run_folder(tmp_path, capsys):
    code = cli.main(["train", str(write(tmp_path, tiny(epochs=2))), "--runs-dir", str(tmp_path / "r")])
    out, err = capsys.readouterr()
    assert code == 0
    assert [line.split()[1] for line in out.splitlines() if line.startswith("epoch ")] == ["1/2", "2/2"]
    (folder,) = (tmp_path / "r").iterdir()
    assert f"run folder: {folder}" in out
    assert "epoch 1/2" in err, "progress bars go to stderr"


@pytest.mark.parametrize("which", ["1", "last", "best"])
def test_measure_reproduces_the_recorded_epoch(trained, tmp_path, capsys, which):
    out_json = tmp_path / "m.json"
    assert cli.main(["measure", str(trained.path), "--epoch", which, "--json", str(out_json),
                     "--no-progress"]) == 0
    got = json.loads(out_json.read_text())
    row = trained.metrics()[trained.resolve_epoch(int(which) if which.isdigit() else which) - 1]
    assert got["epoch"] == row["epoch"]
    for key in ("test_clean_acc", "test_robust_acc", "cas", "cas_clean"):
        assert got[key] == pytest.approx(row[key], abs=1e-6), key
    assert np.allclose(got["C"], trained.matrix(row["epoch"]), atol=1e-6)
    assert f"epoch {row['epoch']}: test clean" in capsys.readouterr().out


def test_measure_with_other_settings_and_instance_metric(trained, tmp_path, capsys):
    assert cli.main(["measure", str(trained.path), "--epoch", "last", "--eval-n", "30", "--steps", "0",
                     "--instance", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "n=30" in out and "I-CAS" in out


def test_measure_missing_epoch_and_non_run_folder_are_errors(trained, tmp_path, capsys):
    assert cli.main(["measure", str(trained.path), "--epoch", "7"]) == 2
    assert "no checkpoint of epoch 7" in capsys.readouterr().err
    assert cli.main(["measure", str(tmp_path), "--epoch", "1"]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_measure_refuses_a_checkpoint_of_another_architecture(trained, tmp_path, capsys):
    import shutil

    copy = tmp_path / trained.path.name
    shutil.copytree(trained.path, copy)
    other = {"model": "small_cnn", "num_classes": 6, "in_channels": 3, "model_kwargs": {"width": 16}}
    checkpoints.save_model(checkpoints.build_from_meta(other), other, copy / "checkpoints" / "epoch_0001.pt", epoch=1)
    assert cli.main(["measure", str(copy), "--epoch", "1"]) == 2
    assert "different architecture" in capsys.readouterr().err


def test_bad_config_exits_2_naming_key_and_allowed_values(tmp_path, capsys):
    code = cli.main(["train", str(write(tmp_path, tiny(objective="pgd"))), "--runs-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2
    assert "config key 'objective'" in err and "standard, pgd_at, kd_at, fast_at, trades" in err
    assert not (tmp_path / "r").exists()
    code = cli.main(["train", str(write(tmp_path, tiny(objective="kd_at"))), "--runs-dir", str(tmp_path / "r")])
    assert code == 2 and "kd.teacher" in capsys.readouterr().err
    assert cli.main(["train", str(tmp_path / "missing.yaml")]) == 2
    assert cli.main(["train", str(write(tmp_path, tiny())), "--set", "epochs"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


def test_set_overrides_config_keys(tmp_path):
    code = cli.main(["train", str(write(tmp_path, tiny())), "--runs-dir", str(tmp_path / "r"),
                     "--no-progress", "--set", "epochs=1", "--set", "model_kwargs.width=4",
                     "--set", "save_checkpoints_at=[]"])
    assert code == 0
    (folder,) = (tmp_path / "r").iterdir()
    cfg = runs.Run(folder).config
    assert cfg["epochs"] == 1 and cfg["model_kwargs"] == {"width": 4}
    assert cli._parse_set(["kd.lambda=0.3", "eps=null", "milestones=[0.4]"]) == {
        "kd": {"lambda": 0.3}, "eps": None, "milestones": [0.4]}


def test_nan_loss_exits_1_naming_epoch_and_batch(tmp_path, capsys):
    cfg = tiny(objective="standard", lr=1e30, epochs=2, save_checkpoints_at=[])
    code = cli.main(["train", str(write(tmp_path, cfg)), "--runs-dir", str(tmp_path / "r"), "--no-progress"])
    assert code == 1
    assert "loss is nan at epoch 1, batch" in capsys.readouterr().err


CONFIGS = sorted((Path(__file__).resolve().parent.parent / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_example_configs_are_valid(path):
    TrainConfig.from_yaml(path)  # raises ConfigError naming the key otherwise


def test_cifar10_pgd_at_config_is_table2():
    c = TrainConfig.from_yaml(CONFIGS[0].parent / "cifar10_pgd_at.yaml").resolved()
    assert (c.dataset, c.model, c.objective, c.norm) == ("cifar10", "preact_resnet18", "pgd_at", "linf")
    assert (c.epochs, c.batch_size, c.lr, c.momentum, c.weight_decay) == (200, 128, 0.1, 0.9, 5e-4)
    assert [m * c.epochs for m in c.milestones] == [100, 150] and c.lr_gamma == 0.1
    assert c.attack_steps == 10 and c.eps == pytest.approx(8 / 255) and c.alpha == pytest.approx(c.eps / 4)
    assert c.eval_steps == 20 and c.best_metric == "test_robust_acc"
    l2 = TrainConfig.from_yaml(CONFIGS[0].parent / "cifar10_pgd_at_l2.yaml").resolved()
    assert l2.eps == pytest.approx(128 / 255) and l2.alpha == pytest.approx(l2.eps / 8)
