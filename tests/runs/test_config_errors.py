"""Issue 14, the CLI and TrainConfig entry points: every bad input gets exit status 2 (or a
ConfigError) with one line that names the bad value, and never a Python traceback."""
import json
import shutil

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xcf.cli import main as cli
from xcf.runs.config import TrainConfig, make_config
from xcf.runs.config_file import ConfigError, ConfigFileError

TINY = dict(dataset="planted", data_kwargs={"image_size": 16}, n_train=48, n_test=30, eval_n=30,
            model="small_cnn", model_kwargs={"width": 4}, objective="pgd_at", eps=4 / 255,
            attack_steps=1, eval_steps=1, epochs=1, batch_size=16, device="cpu")


# ---------------------------------------------------------------- TrainConfig, in-process
BAD_CONFIGS = [
    (dict(eps=0), "eps", "got 0"),
    (dict(eps=2.0), "eps", "got 2.0"),
    (dict(eps=-0.1), "eps", "got -0.1"),
    (dict(eps=100.0, norm="l2"), "eps", "got 100.0"),
    (dict(eval_eps=5.0), "eval_eps", "got 5.0"),
    (dict(alpha=0), "alpha", "got 0"),
    (dict(lr="fast"), "lr", "'fast'"),
    (dict(lr=-1.0), "lr", "got -1.0"),
    (dict(momentum=1.5), "momentum", "got 1.5"),
    (dict(epochs=0), "epochs", "got 0"),
    (dict(epochs="ten"), "epochs", "'ten'"),
    (dict(batch_size=2.5), "batch_size", "got 2.5"),
    (dict(milestones=[1.5]), "milestones", "1.5"),
    (dict(milestones="half"), "milestones", "'half'"),
    (dict(model_kwargs={"width": -1}), "model_kwargs.width", "got -1"),
    (dict(model_kwargs={"width": "wide"}), "model_kwargs.width", "'wide'"),
    (dict(model_kwargs=[1]), "model_kwargs", "[1]"),
    (dict(kd=5), "kd", "got 5"),
    (dict(objective="pgd"), "objective", "'pgd'"),
    (dict(norm="l3"), "norm", "'l3'"),
    (dict(device="gpu"), "device", "'gpu'"),
    (dict(augment="yes"), "augment", "'yes'"),
    (dict(epoch=3), "epoch", "did you mean 'epochs'"),
    (dict(trades={"beta": -1.0}, objective="trades"), "trades.beta", "got -1.0"),
    (dict(kd={"lambda": 2.0, "teacher": "t.pt"}, objective="kd_at"), "kd.lambda", "got 2.0"),
    (dict(save_checkpoints_at=[0]), "save_checkpoints_at", "epoch 0"),
]


@pytest.mark.parametrize("overrides,key,value", BAD_CONFIGS, ids=lambda v: str(v)[:40])
def test_bad_config_value_is_a_config_error_naming_key_and_value(overrides, key, value):
    with pytest.raises(ConfigError) as err:
        make_config(**overrides)
    assert err.value.key == key and f"'{key}'" in str(err.value)
    assert value in str(err.value)


def test_eps_message_gives_the_range_and_the_papers_value():
    with pytest.raises(ConfigError, match=r"0 < eps <= 1 for linf; the paper uses 8/255"):
        make_config(eps=2.0)


@pytest.mark.parametrize("text,field,want", [("1e-3", "lr", 1e-3), ("5E-4", "weight_decay", 5e-4),
                                             ("2e-2", "eps", 2e-2)])
def test_numbers_yaml_reads_as_strings_are_floats(text, field, want):
    assert getattr(make_config(**{field: text}), field) == pytest.approx(want)
    assert make_config(**{field: text}).key() == make_config(**{field: want}).key()


def test_section_numbers_as_strings_and_milestones():
    c = make_config(objective="trades", trades={"beta": "6e0"}, milestones=["5e-1", "7.5e-1"])
    assert c.trades.beta == 6.0 and c.milestones == [0.5, 0.75]
    assert c.key() == make_config(objective="trades").key()


@pytest.mark.parametrize("text,want", [
    ("", "is empty"), ("# only a comment\n", "is empty"), ("epochs: [1,\n", "line"),
    ("- 1\n- 2\n", "must hold a mapping"), ("just text", "must hold a mapping"),
])
def test_bad_config_files_name_the_file(tmp_path, text, want):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigFileError) as err:
        TrainConfig.from_yaml(path)
    assert str(path) in str(err.value) and want in str(err.value)


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("epochs: 3\nlr: 0.1\nmodel: [small_cnn\n")
    with pytest.raises(ConfigFileError, match=r"bad.yaml: is not valid YAML at line \d"):
        TrainConfig.from_yaml(path)


# ---------------------------------------------------------------- CLI
def run_cli(argv, capsys):
    code = cli.main([str(a) for a in argv])
    err = capsys.readouterr().err
    return code, err


def write(tmp_path, data, name="cfg.yaml"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


CLI_BAD_FILES = [
    ("", "is empty"),
    ("# nothing\n", "is empty"),
    ("epochs: [1,\n", "line"),
    ("epochs: 3\n  lr: 0.1\n", "line 2"),
    (yaml.safe_dump({**TINY, "eps": 0}), "got 0"),
    (yaml.safe_dump({**TINY, "eps": 2.0}), "got 2.0"),
    (yaml.safe_dump({**TINY, "model_kwargs": {"width": -1}}), "got -1"),
    (yaml.safe_dump({**TINY, "epochs": "many"}), "'many'"),
    (yaml.safe_dump({**TINY, "objective": "pgd"}), "'pgd'"),
    (yaml.safe_dump({**TINY, "data_kwargs": {"image_size": -3}}), "image_size"),
    (yaml.safe_dump({**TINY, "dataset": "cifar100", "data_root": "/nonexistent/xcf-data"}), "cifar"),
]


@pytest.mark.parametrize("text,want", CLI_BAD_FILES, ids=lambda v: str(v)[:30])
def test_cli_train_bad_config_exits_2_with_one_line(tmp_path, capsys, monkeypatch, text, want):
    monkeypatch.setenv("XCF_NO_DOWNLOAD", "1")
    code, err = run_cli(["train", write(tmp_path, text), "--runs-dir", tmp_path / "r", "--no-progress"],
                        capsys)
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert want in err


def test_cli_runs_dir_that_is_a_file(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    code, err = run_cli(["train", write(tmp_path, TINY), "--runs-dir", tmp_path / "afile"], capsys)
    assert code == 2 and "afile" in err and "Traceback" not in err


def test_cli_config_that_is_a_folder_or_missing(tmp_path, capsys):
    code, err = run_cli(["train", tmp_path], capsys)
    assert code == 2 and str(tmp_path) in err and "directory" in err
    code, err = run_cli(["train", tmp_path / "missing.yaml"], capsys)
    assert code == 2 and "missing.yaml" in err


@pytest.mark.parametrize("epoch", ["foo", "0", "-3", "1.5"])
def test_cli_measure_bad_epoch_names_the_allowed_forms(tmp_path, capsys, epoch):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["measure", str(tmp_path), "--epoch", epoch])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and repr(epoch) in err and "best, last" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("errs")
    path = tmp / "cfg.yaml"
    path.write_text(yaml.safe_dump(TINY))
    assert cli.main(["train", str(path), "--runs-dir", str(tmp / "runs"), "--no-progress"]) == 0
    (folder,) = (tmp / "runs").iterdir()
    return folder


def copy_run(run_folder, tmp_path):
    dst = tmp_path / "runs" / run_folder.name
    shutil.copytree(run_folder, dst)
    return dst


@pytest.mark.parametrize("file,text,want", [
    ("config.yaml", "", "config.yaml"),
    ("config.yaml", "epochs: [1,\n", "config.yaml"),
    ("config.yaml", "- a\n", "config.yaml"),
    ("final.json", "{not json", "final.json"),
])
def test_cli_measure_garbled_run_file_names_it(run_folder, tmp_path, capsys, file, text, want):
    run = copy_run(run_folder, tmp_path)
    (run / file).write_text(text)
    if file == "final.json":  # measure does not read final.json; train's reuse does
        cfg = write(tmp_path, TINY)
        code, err = run_cli(["train", cfg, "--runs-dir", tmp_path / "runs", "--no-progress"], capsys)
    else:
        code, err = run_cli(["measure", run, "--epoch", "last"], capsys)
    assert code == 2, err
    assert want in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_cli_train_refuses_a_final_json_without_metrics(run_folder, tmp_path, capsys):
    run = copy_run(run_folder, tmp_path)
    (run / "final.json").write_text(json.dumps({"best_epoch": 7}))
    code, err = run_cli(["train", write(tmp_path, TINY), "--runs-dir", tmp_path / "runs"], capsys)
    assert code == 2 and "final.json" in err and "nan" not in err


def test_cli_measure_refuses_an_edited_config(run_folder, tmp_path, capsys):
    run = copy_run(run_folder, tmp_path)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["eps"] = 8 / 255
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    code, err = run_cli(["measure", run, "--epoch", "last"], capsys)
    assert code == 2 and "config.yaml" in err and "edited" in err and run.name[-12:] in err


def test_cli_measure_of_the_untouched_run_still_works(run_folder, capsys):
    code, err = run_cli(["measure", run_folder, "--epoch", "last", "--no-progress"], capsys)
    assert code == 0, err


# ---------------------------------------------------------------- property test
KNOWN_KEYS = list(TINY) + ["lr", "momentum", "milestones", "alpha", "eval_eps", "augment", "seed"]
junk = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                 st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
                 st.lists(st.integers(-5, 5), max_size=3),
                 st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))
bad_value = st.tuples(st.sampled_from(KNOWN_KEYS), junk)
unknown_key = st.tuples(st.text(min_size=1, max_size=10).filter(lambda k: k not in KNOWN_KEYS
                                                                 and k not in TrainConfig.__dataclass_fields__),
                        junk)
out_of_range = st.sampled_from([("eps", 3.0), ("eps", 0.0), ("epochs", -1), ("lr", 0.0),
                                ("momentum", 2.0), ("batch_size", 0), ("n_train", 0),
                                ("milestones", [0.0]), ("model_kwargs", {"width": 0})])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.lists(st.one_of(bad_value, unknown_key, out_of_range), min_size=1, max_size=3))
def test_random_malformed_configs_exit_2_with_one_line(tmp_path, capsys, changes):
    data = dict(TINY, epochs=0)  # epochs 0 is itself invalid: nothing ever trains
    data.update(dict(changes))
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(data))
    code = cli.main(["train", str(path), "--runs-dir", str(tmp_path / "r"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert err.startswith("xcf train: error: ")
