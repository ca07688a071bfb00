"""Issue 29, items 3 and 4: no command ends in a traceback (each user error is exit status 2
and one line ``xcf COMMAND: error: ...`` naming the value and the fix, outputs checked
before any measurement), configs say what they repeat (a YAML key given twice) or ignore
(a section the objective does not use), and a KD teacher must be a finished run of the
student's data shape."""
import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from conftest import tiny_config
from xcf.cli import main as cli
from xcf.runs.config import TrainConfig, check_sections_used, make_config
from xcf.runs.config_file import ConfigError, ConfigFileError
from xcf.train.runner import train

ROOT = Path(__file__).resolve().parents[2]
QUIET = dict(progress=False, log=lambda line: None)

NETS = '''
import torch
import torch.nn as nn


class Net(nn.Module):
    """conv -> pool -> Linear; with frozen=True its features are computed under no_grad."""

    def __init__(self, num_classes=6, frozen=False):
        super().__init__()
        self.frozen = frozen
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, num_classes)

    def forward(self, x):
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            g = self.pool(self.conv(x)).flatten(1)
        return self.fc(g)
'''


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    """A module ``xcf_test_cli_nets`` with a tiny classifier, importable by spec."""
    folder = tmp_path_factory.mktemp("nets")
    (folder / "xcf_test_cli_nets.py").write_text(NETS)
    sys.path.insert(0, str(folder))
    yield "xcf_test_cli_nets:Net"
    sys.path.remove(str(folder))
    sys.modules.pop("xcf_test_cli_nets", None)


def run(argv, capsys):
    """``(exit status, stdout, stderr)`` of ``xcf ARGV``; argparse's errors exit through
    SystemExit."""
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as stop:
        code = stop.code
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def one_error_line(err, command):
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"xcf {command}: error: "), err
    return lines[0]


def measure_model(spec, out, *extra):
    return ["measure-model", spec, "--dataset", "planted", "--data-arg", "image_size=16",
            "--n-test", "12", "--steps", "1", "--eps", "4/255", "--batch-size", "12",
            "--device", "cpu", "--out", out, "--no-progress", *extra]


# ---------------------------------------------------------------- xcf measure-model
@pytest.mark.parametrize("extra, named", [
    (["--data-arg", "foo=1"], "--data-arg foo=1: dataset 'planted' has no parameter 'foo'"),
    (["--data-arg", "num_clases=6"], "did you mean 'num_classes'"),
    (["--data-arg", "num_classes=six"], "num_classes='six'"),
    (["--data-arg", "noise=true"], "noise=True"),
    (["--data-arg", "image_size=-3"], "image_size=-3"),
    (["--data-arg", "erase=foo"], "erase='foo'"),
    (["--arg", "frozen=true"], "no gradient with respect to its input"),
], ids=["unknown", "typo", "bad-int", "bad-float", "refused", "refused-choice", "no-grad"])
def test_measure_model_bad_data_and_models_exit_2_naming_the_value(nets, tmp_path, capsys, extra,
                                                                 named):
    code, _, err = run(measure_model(nets, tmp_path / "out", *extra), capsys)
    assert code == 2
    assert named in one_error_line(err, "measure-model")
    assert not (tmp_path / "out").exists(), "nothing measured or written"


def test_measure_model_parameters_listed_and_values_typed(nets, tmp_path, capsys):
    _, _, err = run(measure_model(nets, tmp_path / "out", "--data-arg", "foo=1"), capsys)
    assert "num_classes=6, image_size=32, channels=3" in err
    _, _, err = run(measure_model(nets, tmp_path / "out", "--data-arg", "num_classes=six"), capsys)
    assert "takes an integer for num_classes (default 6), not str 'six'" in err


def test_a_no_grad_model_is_measured_clean_with_steps_0(nets, tmp_path, capsys):
    code, out, err = run(measure_model(nets, tmp_path / "out", "--arg", "frozen=true",
                                       "--steps", "0"), capsys)
    assert code == 0, err
    assert (tmp_path / "out" / "summary.json").is_file()


@pytest.mark.parametrize("flag, value", [("--device", "gpu"), ("--device", "cuda:x"),
                                         ("--seed", "-1")])
def test_measure_model_bad_flag_value_exits_2(nets, tmp_path, capsys, flag, value):
    code, _, err = run(measure_model(nets, tmp_path / "out", flag, value), capsys)
    assert code == 2
    line = one_error_line(err, "measure-model")
    assert f"argument {flag}: {value!r}" in line
    assert "auto, cpu, cuda" in line if flag == "--device" else ">= 0" in line


def test_an_unknown_device_name_is_a_config_error():
    from xcf.train.setup import resolve_device

    with pytest.raises(ConfigError, match=r"'device': got 'gpu'; allowed values: auto, cpu"):
        resolve_device("gpu")


@pytest.mark.parametrize("target, named", [
    ("afile", "--out {tmp}/afile is a file, not a folder"),
    ("afile/sub", "--out {tmp}/afile/sub cannot be created: {tmp}/afile is a file"),
])
def test_measure_model_out_is_checked_before_the_model_is_built(nets, tmp_path, capsys,
                                                                monkeypatch, target, named):
    (tmp_path / "afile").write_text("x")
    monkeypatch.setattr("xcf.cli.measure_model._build_from_spec",
                        lambda *a: pytest.fail("model built"))
    code, _, err = run(measure_model(nets, tmp_path / target), capsys)
    assert code == 2
    assert named.format(tmp=tmp_path) in one_error_line(err, "measure-model")


def test_an_unwritable_out_folder_is_refused(nets, tmp_path, capsys, monkeypatch):
    """As root every folder is writable, so os.access stands for a read-only folder."""
    monkeypatch.setattr(cli.os, "access", lambda path, mode: Path(path) != tmp_path)
    code, _, err = run(measure_model(nets, tmp_path / "new" / "out"), capsys)
    assert code == 2
    assert f"the folder {tmp_path} is not writable" in one_error_line(err, "measure-model")
    assert not (tmp_path / "new").exists()


# ---------------------------------------------------------------- xcf measure --json
@pytest.mark.parametrize("target, named", [
    (".", "--json {tmp} is a folder; give a file path"),
    ("nope/m.json", "its folder {tmp}/nope does not exist"),
    ("afile/m.json", "{tmp}/afile is a file, not a folder"),
])
def test_measure_json_is_checked_before_the_measurement(tmp_path, capsys, monkeypatch, target,
                                                        named):
    (tmp_path / "afile").write_text("x")
    monkeypatch.setattr("xcf.train.posthoc.measure_run", lambda *a, **k: pytest.fail("measured"))
    code, _, err = run(["measure", tmp_path, "--json", tmp_path / target], capsys)
    assert code == 2
    assert named.format(tmp=tmp_path) in one_error_line(err, "measure")


# ---------------------------------------------------------------- xcf train: the config file
def write(tmp_path, text, name="cfg.yaml"):
    path = tmp_path / name
    path.write_text(text if isinstance(text, str) else yaml.safe_dump(text, sort_keys=False))
    return path


@pytest.mark.parametrize("text, named", [
    ("epochs: 2\nlr: 0.1\nepochs: 50\n",
     "key 'epochs' is given twice, at line 1 (epochs: 2) and line 3 (epochs: 50)"),
    ("objective: kd_at\nkd:\n  teacher: t.pt\n  lambda: 0.3\n  lambda: 0.7\n",
     "key 'kd.lambda' is given twice, at line 4 (lambda: 0.3) and line 5 (lambda: 0.7)"),
    ("model_kwargs: {width: 8}\nmodel_kwargs: {width: 16}\n",
     "key 'model_kwargs' is given twice, at line 1 and line 2"),
], ids=["top", "nested", "mapping"])
def test_a_key_given_twice_is_an_error_naming_it_and_both_lines(tmp_path, capsys, text, named):
    rest = {k: v for k, v in tiny_config().items() if k not in yaml.safe_load(text)}
    path = write(tmp_path, text + yaml.safe_dump(rest))  # the planted lines come first
    with pytest.raises(ConfigFileError) as err:
        TrainConfig.from_yaml(path)
    assert str(path) in str(err.value) and named in str(err.value)
    code, _, stderr = run(["train", path, "--dry-run", "--runs-dir", tmp_path / "r"], capsys)
    assert code == 2 and named in one_error_line(stderr, "train")
    with pytest.raises(ConfigFileError, match="given twice"):
        make_config(path)


def test_one_name_in_two_mappings_is_no_repeat(tmp_path):
    cfg = tiny_config(objective="fast_at", alpha=1 / 255, fast_at={"alpha": 5 / 255})
    loaded = TrainConfig.from_yaml(write(tmp_path, cfg))
    assert (loaded.alpha, loaded.fast_at.alpha) == (1 / 255, 5 / 255)


@pytest.mark.parametrize("overrides, section, objective", [
    (dict(kd={"lambda": 0.3}), "kd", "pgd_at"),
    (dict(kd={"teacher": "runs/t"}), "kd", "pgd_at"),
    (dict(objective="kd_at", kd={"teacher": "t.pt"}, trades={"beta": 1.0}), "trades", "kd_at"),
    (dict(objective="trades", fast_at={"alpha": 0.01}), "fast_at", "trades"),
    (dict(objective="standard", kd={"form": "hinton"}), "kd", "standard"),
], ids=["kd-lambda", "kd-teacher", "trades-under-kd", "fast-under-trades", "kd-form"])
def test_a_section_the_objective_does_not_use_is_an_error(tmp_path, capsys, overrides, section,
                                                          objective):
    path = write(tmp_path, tiny_config(**overrides))
    with pytest.raises(ConfigError) as err:
        TrainConfig.from_yaml(path)
    assert err.value.key == section
    assert f"section '{section}'" in str(err.value) and f"objective {objective!r}" in str(err.value)
    with pytest.raises(ConfigError):
        make_config(path)
    code, _, stderr = run(["train", path, "--dry-run", "--runs-dir", tmp_path / "r"], capsys)
    assert code == 2 and f"section '{section}'" in one_error_line(stderr, "train")
    assert not (tmp_path / "r").exists()
    make_config(tiny_config(**overrides))  # a mapping in code (a saved run's) is not checked


def test_set_overrides_are_checked_like_the_file(tmp_path, capsys):
    path = write(tmp_path, tiny_config())
    code, _, err = run(["train", path, "--dry-run", "--set", "kd.lambda=0.3"], capsys)
    assert code == 2 and "section 'kd' sets lambda: 0.3" in one_error_line(err, "train")
    code, _, err = run(["train", write(tmp_path, tiny_config(kd={"lambda": 0.3}), "kd.yaml"),
                        "--dry-run", "--runs-dir", tmp_path / "r", "--set", "kd=null"], capsys)
    assert code == 0, err


def test_sections_at_their_defaults_pass(tmp_path, capsys):
    cfg = tiny_config(kd={"teacher": None, "lambda": 0.5, "temperature": 2.0},
                      trades={"beta": 6.0}, fast_at={"alpha": 1.25 * 4 / 255})
    code, out, err = run(["train", write(tmp_path, cfg), "--dry-run", "--runs-dir",
                          tmp_path / "r"], capsys)
    assert code == 0, err
    assert "state: not started" in out


COMMITTED = sorted((ROOT / "notebooks" / "results" / "cpu").glob("*/config.yaml"))


def test_every_committed_run_config_still_loads_and_keeps_its_key():
    """Saved configs hold every section, resolved (fast_at.alpha = 1.25 eps): they load
    as before, also as a user's file, and the non-KD ones still give their folder's key
    (a KD run's key needs its teacher's digest, not committed)."""
    assert len(COMMITTED) > 20
    for path in COMMITTED:
        raw = yaml.safe_load(path.read_text())
        saved = TrainConfig.from_dict(raw)
        check_sections_used(saved)
        assert TrainConfig.from_yaml(path).key() == saved.key(), path
        assert set(saved.to_dict()) >= set(raw), path
        if raw["objective"] != "kd_at":
            assert saved.key() == path.parent.name[-12:], path


# ---------------------------------------------------------------- xcf train: other inputs
@pytest.mark.parametrize("argv, named", [
    (["--set", "epochs=[1,"], "--set 'epochs=[1,': the value is not YAML"),
    (["--set", "kd=3", "--set", "kd.lambda=0.3"], "kd was set to 3 by an earlier --set"),
    (["--runs-dir", "{tmp}/afile/runs"], "--runs-dir {tmp}/afile/runs cannot be created"),
    (["--device", "gpu"], "argument --device: 'gpu' is not a device"),
], ids=["set-yaml", "set-nesting", "runs-dir", "device"])
def test_train_bad_arguments_exit_2_with_one_line(tmp_path, capsys, argv, named):
    (tmp_path / "afile").write_text("x")
    argv = [a.format(tmp=tmp_path) for a in argv]
    code, _, err = run(["train", write(tmp_path, tiny_config()), "--dry-run", *argv], capsys)
    assert code == 2
    assert named.format(tmp=tmp_path) in one_error_line(err, "train")


# ---------------------------------------------------------------- KD teacher
@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A finished 1-epoch teacher on planted 16 px, 3 channels, 6 classes."""
    return train(tiny_config(epochs=1), runs_dir=tmp_path_factory.mktemp("teacher"), **QUIET)


def student(teacher_path, **data_kwargs):
    return tiny_config(epochs=1, objective="kd_at", kd={"teacher": str(teacher_path)},
                       data_kwargs={"image_size": 16, **data_kwargs})


@pytest.mark.parametrize("data_kwargs, teacher_value, student_value", [
    ({"image_size": 24}, "(3, 16, 16)", "(3, 24, 24)"),
    ({"channels": 1}, "3 input channels", "has 1"),
    ({"num_classes": 4, "sharing": [[0, 1], [2, 3]]}, "6 classes", "has 4"),
], ids=["image-size", "channels", "classes"])
def test_a_teacher_of_other_data_is_refused_naming_both(teacher, tmp_path, capsys, data_kwargs,
                                                        teacher_value, student_value):
    cfg = student(teacher.path, **data_kwargs)
    with pytest.raises(ConfigError) as err:
        train(cfg, runs_dir=tmp_path / "s", **QUIET)
    assert err.value.key == "kd.teacher"
    assert teacher_value in str(err.value) and student_value in str(err.value)
    assert not (tmp_path / "s").exists() or not any((tmp_path / "s").iterdir())
    code, _, stderr = run(["train", write(tmp_path, cfg), "--runs-dir", tmp_path / "s2",
                           "--no-progress"], capsys)
    assert code == 2 and teacher_value in one_error_line(stderr, "train")


def test_an_unfinished_teacher_run_is_refused(teacher, tmp_path):
    copy = tmp_path / teacher.path.name
    shutil.copytree(teacher.path, copy)
    (copy / "final.json").unlink()
    with pytest.raises(ConfigError, match=r"kd\.teacher.*teacher run .* is not finished "
                                          r"\(no final\.json\)") as err:
        train(student(copy), runs_dir=tmp_path / "s", **QUIET)
    assert str(copy) in str(err.value)


def test_a_matching_finished_teacher_still_trains(teacher, tmp_path):
    run_ = train(student(teacher.path), runs_dir=tmp_path, **QUIET)
    assert run_.finished and json.loads((run_.path / "final.json").read_text())["best_epoch"] == 1
