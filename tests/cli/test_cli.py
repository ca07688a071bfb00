"""``xcf train`` / ``xcf measure``: a run folder that measure reads back, one summary line
per epoch, config overrides, and clear errors with exit status 2 (bad input) or 1 (NaN)."""
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from xcf.runs import checkpoints, folder as runs
from xcf.cli import arguments, main as cli
from xcf.runs.config import TrainConfig


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
    assert arguments.parse_set(["kd.lambda=0.3", "eps=null", "milestones=[0.4]"]) == {
        "kd": {"lambda": 0.3}, "eps": None, "milestones": [0.4]}


def test_nan_loss_exits_1_naming_epoch_and_batch(tmp_path, capsys):
    cfg = tiny(objective="standard", lr=1e30, epochs=2, save_checkpoints_at=[])
    code = cli.main(["train", str(write(tmp_path, cfg)), "--runs-dir", str(tmp_path / "r"), "--no-progress"])
    assert code == 1
    assert "loss is nan at epoch 1, batch" in capsys.readouterr().err


CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


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


# --- xcf measure-model: anyone's classifier (issue 18) -------------------------------------

def measure_model(tmp_path, *extra, spec="torchvision.models:resnet18", k=6):
    """``xcf measure-model`` on planted 16 px images (no files needed), at smoke size;
    returns the exit status (argparse's errors exit through SystemExit)."""
    try:
        return cli.main(["measure-model", spec, "--arg", f"num_classes={k}", "--dataset",
                         "planted", "--data-arg", "image_size=16", "--n-test", "24",
                         "--steps", "2", "--eps", "4/255", "--batch-size", "10",
                         "--device", "cpu", "--out", str(tmp_path / "out"), "--no-progress",
                         *extra])
    except SystemExit as stop:
        return stop.code


def test_measure_model_runs_a_torchvision_resnet18_and_writes_its_files(tmp_path, capsys):
    import hashlib

    import torch
    import torchvision

    from xcf import attacks, attribution, data
    from xcf.models import as_feature_classifier

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=6)
    torch.save(model.state_dict(), tmp_path / "r18.pt")
    assert measure_model(tmp_path, "--weights", str(tmp_path / "r18.pt")) == 0
    out = capsys.readouterr().out
    folder = tmp_path / "out"
    assert {p.name for p in folder.iterdir()} == {"C.npy", "C_instance.npy", "C.png", "summary.json"}
    C = np.load(folder / "C.npy")
    summary = json.loads((folder / "summary.json").read_text())
    off = ~np.eye(6, dtype=bool)
    assert C.shape == (6, 6) and np.allclose(C, C.T) and np.allclose(np.diag(C), 1, atol=1e-5)
    assert summary["results"]["cas"] == pytest.approx(np.clip(C[off], 0, None).sum(), abs=1e-4)
    assert summary["results"]["i_cas"] == pytest.approx(
        np.clip(np.load(folder / "C_instance.npy")[off], 0, None).sum(), abs=1e-4)
    assert summary["weights"]["sha256"] == hashlib.sha256((tmp_path / "r18.pt").read_bytes()).hexdigest()
    assert summary["model"]["head"] == "fc" and summary["dataset"]["n_test"] == 24
    assert summary["attack"] == {"name": "pgd", "norm": "linf", "eps": 4 / 255, "steps": 2,
                                 "alpha": 1 / 255, "random_start": True, "seed": 0}
    assert summary["xcf_version"] and summary["environment"]["versions"]["torch"]
    assert f"CAS {summary['results']['cas']:.3f}  I-CAS {summary['results']['i_cas']:.3f}" in out
    # The command measures what the library measures for the same model, data and seed.
    ds = data.load("planted", n_train=0, n_test=24, image_size=16)
    lib = attribution.measure(as_feature_classifier(model), ds.x_test, ds.y_test,
                              attacks.PGD(eps=4 / 255, steps=2), batch_size=10,
                              generator=torch.Generator().manual_seed(0))
    assert np.allclose(C, lib.C.numpy(), atol=1e-6)
    assert summary["results"]["robust_accuracy"] == lib.accuracy


def test_the_same_command_measures_the_same_untrained_model(tmp_path, capsys):
    """--seed also seeds the factory's random init, so a model built without --weights
    is the same on every call; a second call into the same --out is refused unless
    --overwrite, and the refusal leaves the first files as they were."""
    assert measure_model(tmp_path) == 0
    first = (tmp_path / "out" / "C.npy").read_bytes()
    assert measure_model(tmp_path) == 2
    assert "already holds a measurement" in capsys.readouterr().err
    assert (tmp_path / "out" / "C.npy").read_bytes() == first
    assert measure_model(tmp_path, "--overwrite") == 0
    assert (tmp_path / "out" / "C.npy").read_bytes() == first
    assert measure_model(tmp_path, "--overwrite", "--seed", "1") == 0
    assert (tmp_path / "out" / "C.npy").read_bytes() != first


def test_measure_model_repeats_grey_images_for_a_three_channel_model(tmp_path, capsys):
    assert measure_model(tmp_path, "--data-arg", "channels=1") == 0
    out = capsys.readouterr().out
    assert "takes 3 channels and planted has 1: each grey image is repeated" in out
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["model"]["repeats_channels"]


@pytest.mark.parametrize("args, message", [
    (["--spec", "torchvision.models.resnet18"], "is not PACKAGE.MODULE:FACTORY"),
    (["--spec", "no_such_package.models:net"], "cannot import 'no_such_package.models'"),
    (["--spec", "torchvision.models:resnet81"], "torchvision.models has no 'resnet81'"),
    (["--spec", "torchvision.models:squeezenet1_0"], "AdaptiveAvgPool2d at 'classifier.3'"),
    (["--weights", "missing.pt"], "missing.pt does not exist"),
    (["--weights", "ten_classes.pt"], "do not fit torchvision.models:resnet18: 2 shape "
                                      "mismatch(es) (fc.weight: (10, 512) in the file"),
    (["--k", "10"], "10 outputs but the data have num_classes=6"),
    (["--eps", "-1"], "eps must be a finite number >= 0"),
    (["--n-test", "0"], "'0' is not an integer >= 1"),
    (["--mean", "0.5,0.5", "--std", "0.2,0.2"], "mean has 2 entries but the model takes 3"),
], ids=["spec", "import", "factory", "not-linear", "missing-weights", "mismatched-weights",
        "classes", "eps", "n-test", "mean"])
def test_measure_model_user_errors_exit_2_with_one_line(tmp_path, capsys, args, message):
    import torch
    import torchvision

    torch.save(torchvision.models.resnet18(weights=None, num_classes=10).state_dict(),
               tmp_path / "ten_classes.pt")
    spec, k = "torchvision.models:resnet18", 6
    if args[0] == "--spec":
        spec, args = args[1], args[2:]
    if args and args[0] == "--k":
        k, args = int(args[1]), args[2:]
    if args and args[0] == "--weights":
        args = ["--weights", str(tmp_path / args[1])]
    assert measure_model(tmp_path, *args, spec=spec, k=k) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists(), "nothing is written before the inputs are checked"


def test_dry_run_names_the_folder_of_notebook_03s_full_run_and_trains_nothing(tmp_path, capsys):
    """configs/cifar10_pgd_at.yaml is the PGD-AT run of notebook 03 at the full profile
    (the key 3aac2997425c); --dry-run prints its folder under --runs-dir."""
    from xcf.runs.config import make_config
    from xcf.companion.profiles import profile_knobs
    from xcf.runs.identity import folder_name

    root = Path(__file__).resolve().parents[2]
    notebook = make_config(profile_knobs("03_at_dynamics", "full", root / "notebooks/params")
                           ["train"])
    assert notebook.key() == "3aac2997425c"
    folder = tmp_path / "runs" / folder_name(notebook)
    args = ["train", str(root / "configs/cifar10_pgd_at.yaml"), "--dry-run",
            "--runs-dir", str(tmp_path / "runs")]
    assert cli.main(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [f"run folder: {folder}", "state: not started (dry run: nothing trained)"]
    assert not (tmp_path / "runs").exists()


def test_dry_run_reports_a_finished_run_and_its_best_epoch(trained, capsys):
    cfg = write(trained.path.parent.parent, tiny(), "again.yaml")
    assert cli.main(["train", str(cfg), "--dry-run",
                     "--runs-dir", str(trained.path.parent)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"run folder: {trained.path}"
    assert out[1] == (f"state: finished, 3 of 3 epochs, best epoch "
                      f"{trained.final()['best_epoch']} (dry run: nothing trained)")
