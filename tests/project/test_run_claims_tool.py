"""tools/run_claims.py: exporting finished runs into the committed results."""
import importlib.util
import json
from pathlib import Path

import pytest
import yaml

from run_folders import make_run
from xcf.runs.folder import Run

# Running and exporting the studies knows the checkout's layout, so it lives in tools/.
_spec = importlib.util.spec_from_file_location(
    "run_claims", Path(__file__).resolve().parents[2] / "tools" / "run_claims.py")
run_claims = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(run_claims)


def test_export_leaves_checkpoints_behind_and_refuses_unfinished_runs(tmp_path):
    run = make_run(tmp_path, [0.3, 0.5], [1, 2])
    (run.path / "checkpoints").mkdir()
    (run.path / "checkpoints" / "last.pt").write_bytes(b"x" * 10)
    out = run_claims.export_run(run, tmp_path / "results")
    assert (out / "metrics.jsonl").read_text() == (run.path / "metrics.jsonl").read_text()
    assert not (out / "checkpoints").exists() and (out / "matrices" / "epoch_0002.npy").exists()
    (run.path / "final.json").unlink()
    with pytest.raises(ValueError, match="not finished"):
        run_claims.export_run(Run(run.path), tmp_path / "results2")


def test_export_writes_repository_paths_relative_and_leaves_the_source_run_alone(tmp_path):
    run = make_run(tmp_path, [0.3, 0.5], [1, 2])
    repo = tmp_path / "repo"
    teacher = f"{repo}/runs/cpu/teacher-run"
    (run.path / "config.yaml").write_text(yaml.safe_dump({"kd": {"teacher": teacher}}))
    (run.path / "provenance.json").write_text(json.dumps({"teacher": {"path": teacher + "/best.pt"},
                                                        "elsewhere": "/data/cifar"}))
    out = run_claims.export_run(run, tmp_path / "results", root=repo)
    assert yaml.safe_load((out / "config.yaml").read_text())["kd"]["teacher"] == "runs/cpu/teacher-run"
    prov = json.loads((out / "provenance.json").read_text())
    assert prov == {"teacher": {"path": "runs/cpu/teacher-run/best.pt"}, "elsewhere": "/data/cifar"}
    assert yaml.safe_load((run.path / "config.yaml").read_text())["kd"]["teacher"] == teacher


def trained(tmp_path, name, created, digest, commit="a" * 40):
    """A finished run folder as one training left it: its provenance and best weights."""
    run = make_run(tmp_path / name, [0.3, 0.5], [1, 2], name="fm-small_cnn-pgd_at-1234")
    (run.path / "provenance.json").write_text(json.dumps(
        {"created": created, "git": {"commit": commit, "dirty": False},
         "sessions": [{"start": created, "status": "finished"}]}))
    final = json.loads((run.path / "final.json").read_text())
    (run.path / "final.json").write_text(json.dumps({**final, "best_weights_sha256": digest}))
    return run


def test_a_key_trained_again_keeps_the_earlier_training_in_its_provenance(tmp_path, capsys):
    results = tmp_path / "results"
    first = run_claims.export_run(trained(tmp_path, "a", "day 1", "w1"), results)
    assert "earlier" not in json.loads((first / "provenance.json").read_text())
    # the same training copied again adds nothing
    run_claims.export_run(trained(tmp_path, "b", "day 1", "w1"), results)
    assert "earlier" not in json.loads((first / "provenance.json").read_text())
    # trained again at a later commit, to the same weights
    out = run_claims.export_run(trained(tmp_path, "c", "day 2", "w1", "b" * 40), results)
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["created"] == "day 2" and prov["git"]["commit"] == "b" * 40
    assert [e["provenance"]["created"] for e in prov["earlier"]] == ["day 1"]
    assert prov["earlier"][0]["provenance"]["git"]["commit"] == "a" * 40
    assert prov["earlier"][0]["final"]["best_weights_sha256"] == "w1"
    assert "differ" not in capsys.readouterr().out
    # a third training, to other weights: both earlier ones kept, in order, and said
    out = run_claims.export_run(trained(tmp_path, "d", "day 3", "w2"), results)
    prov = json.loads((out / "provenance.json").read_text())
    assert [e["provenance"]["created"] for e in prov["earlier"]] == ["day 1", "day 2"]
    assert "best weights differ (w1, now w2)" in capsys.readouterr().out
    # copying the day-2 training back keeps day 1 and day 3, not day 2 twice
    out = run_claims.export_run(trained(tmp_path, "e", "day 2", "w1"), results)
    prov = json.loads((out / "provenance.json").read_text())
    assert sorted(e["provenance"]["created"] for e in prov["earlier"]) == ["day 1", "day 3"]


def test_collect_copies_finished_exports_and_leaves_unfinished_ones(tmp_path, capsys):
    exported = tmp_path / "export"
    exported.mkdir()
    for name, created in (("a", "day 1"), ("b", "day 2")):
        trained(tmp_path, name, created, "w1").path.rename(exported / f"run-{name}")
    (exported / "run-b" / "final.json").unlink()
    copied = run_claims.collect(exported, tmp_path / "results")
    assert [p.name for p in copied] == ["run-a"]
    assert (tmp_path / "results" / "run-a" / "metrics.jsonl").is_file()
    assert not (tmp_path / "results" / "run-b").exists()
    assert "run-b: not finished" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="no such folder"):
        run_claims.collect(tmp_path / "nowhere", tmp_path / "results")


def test_an_h1_run_is_exported_with_its_erasure_record_and_without_its_checkpoints(
        tmp_path, monkeypatch):
    """H1's numbers are measured on the kept checkpoints before the export leaves them
    behind; the exported folder carries erasure.json (the numbers, not the weights)."""
    from conftest import tiny_config
    from xcf.companion.hypotheses import ERASURE_FILE, read_erasure

    monkeypatch.setenv("XCF_RUNS_DIR", str(tmp_path / "runs"))
    tiny = tiny_config(epochs=2, holdout_n=30)
    P = {"train": tiny, "seeds": [], "h1": {"dataset": "planted"}, "h1_seeds": [0]}
    runs = run_claims.run_studies(P, export_to=tmp_path / "results", profile="smoke")
    run = runs["H1 planted seed 0"]
    out = tmp_path / "results" / run.path.name
    assert (out / ERASURE_FILE).exists() and not (out / "checkpoints").exists()
    assert json.loads((out / ERASURE_FILE).read_text()) == read_erasure(run)
    assert sorted(p.name for p in (run.path / "checkpoints").iterdir()) == [
        "best.pt", "epoch_0001.pt", "epoch_0002.pt", "last.pt"]


@pytest.mark.parametrize("pattern,said", [
    ("zzz", "matches none of the"),
    ("C1 seed [0-", "is not a regular expression"),
])
def test_only_that_keeps_no_study_stops_before_training(pattern, said, capsys):
    with pytest.raises(SystemExit) as stop:
        run_claims.main(["--only", pattern])
    assert said in str(stop.value) and repr(pattern) in str(stop.value)


def test_list_prints_the_kept_names_and_trains_nothing(capsys, monkeypatch):
    monkeypatch.setattr(run_claims, "run_studies", lambda *a, **k: pytest.fail("trained"))
    run_claims.main(["--list", "--only", "^C1 seed [01]$"])
    assert capsys.readouterr().out.split("\n")[:2] == ["C1 seed 0", "C1 seed 1"]
