"""The final whole-test-set evaluation (issue 16, item 5): when a run finishes, its best and
last checkpoints are measured on all ``n_test`` test images, as an epoch is (PGD at
``eval_eps``, clean and robust accuracy, CAS of Algorithm 1 with its bootstrap interval),
and recorded in final.json's ``test``; a per-epoch evaluation that already covered the test
set is copied, not measured again."""
import json

import pytest
import torch

from xcf import data
from xcf.train import final_test, runner
from xcf.runs.checkpoints import CheckpointError, load_model
from xcf.runs.config import make_config
from xcf.train.evaluation import evaluate
from xcf.train.final_test import FINAL_TEST_NUMBERS, add_final_test, whole_test_set
from xcf.train.runner import train
from xcf.runs.folder import Run

QUIET = dict(progress=False, log=lambda line: None)
N_TEST = 60


def tiny(**overrides):
    from conftest import tiny_config

    return tiny_config(**{"epochs": 3, "n_test": N_TEST, **overrides})


def whole_test_images(config):
    """The run's test set loaded here, straight from the data loader (not the runner's)."""
    c = make_config(config)
    ds = data.load(c.dataset, n_train=c.n_train, n_test=c.n_test, seed=c.data_seed,
                   **c.data_kwargs)
    return ds.x_test, ds.y_test


def measured(run, which, epoch, config):
    """``which`` checkpoint of ``run`` evaluated again on the whole test set."""
    model = load_model(run.checkpoint_path(which)).to(memory_format=torch.channels_last)
    x, y = whole_test_images(config)
    numbers, _, _ = evaluate(model, x, y, make_config(config).resolved(), epoch)
    with torch.no_grad():  # clean accuracy by hand: one forward pass, no xcf measurement
        clean = (model(x).argmax(1) == y).double().mean().item()
    return numbers, clean


@pytest.fixture(scope="module")
def subset_run(tmp_path_factory):
    """A run evaluated on 30 of its 60 test images every epoch."""
    lines = []
    run = train(tiny(eval_n=30), runs_dir=tmp_path_factory.mktemp("subset"), progress=False,
                log=lines.append)
    return run, lines


def test_the_block_measures_the_whole_test_set_as_an_independent_recomputation(subset_run):
    run, _ = subset_run
    block = run.final()["test"]
    assert block["source"] == "recomputed"
    assert {r["eval_n"] for r in run.metrics()} == {30}  # the epochs saw half of it
    epochs = {"best": run.best_epoch, "last": run.metrics()[-1]["epoch"]}
    for which, epoch in epochs.items():
        got = block[which]
        assert got["epoch"] == epoch and got["n"] == N_TEST
        numbers, clean = measured(run, which, epoch, tiny(eval_n=30))
        # same weights, data and attack seed: the same numbers, exactly
        assert {k: got[k] for k in FINAL_TEST_NUMBERS} == {
            k: numbers[k] for k in FINAL_TEST_NUMBERS}
        assert got["test_clean_acc"] == pytest.approx(clean, abs=1e-12)
        lo, hi = got["cas_ci95"]
        assert lo <= hi


def test_the_finish_line_prints_the_whole_test_numbers(subset_run):
    run, lines = subset_run
    line = next(s for s in lines if s.startswith("finished"))
    best = run.final()["test"]["best"]
    assert f"whole test set (n {N_TEST}," in line
    assert f"{100 * best['test_clean_acc']:.1f}/{100 * best['test_robust_acc']:.1f}%" in line


def test_with_the_whole_test_set_every_epoch_the_block_is_the_epoch_rows(tmp_path):
    run = train(tiny(eval_n=N_TEST), runs_dir=tmp_path, **QUIET)
    block = run.final()["test"]
    assert block["source"] == "epoch rows"
    rows = {r["epoch"]: r for r in run.metrics()}
    for which, epoch in (("best", run.best_epoch), ("last", max(rows))):
        got, row = block[which], rows[epoch]
        assert got["n"] == N_TEST == row["eval_n"]
        assert {k: got[k] for k in FINAL_TEST_NUMBERS} == {k: row[k] for k in FINAL_TEST_NUMBERS}
        # and the rows are what the checkpoint gives on the whole test set, measured again
        numbers, clean = measured(run, which, epoch, tiny(eval_n=N_TEST))
        assert numbers["test_robust_acc"] == row["test_robust_acc"]
        assert numbers["test_clean_acc"] == row["test_clean_acc"] == pytest.approx(clean)
        assert numbers["cas"] == pytest.approx(row["cas"], rel=1e-5)


def test_the_eval_set_covers_the_test_set_when_eval_n_is_unset_or_at_least_n_test():
    assert whole_test_set(make_config(eval_n=None))
    assert whole_test_set(make_config(n_test=100, eval_n=100))
    assert whole_test_set(make_config(n_test=100, eval_n=500))
    assert not whole_test_set(make_config(n_test=100, eval_n=50))
    assert not whole_test_set(make_config(eval_n=1000))  # CIFAR's 10k: known after loading


def test_switching_it_off_keeps_the_run_key_and_adding_it_later_gives_the_same_block(
        tmp_path, subset_run):
    assert make_config(final_test=False).key() == make_config().key()
    off = train(tiny(eval_n=30, final_test=False), runs_dir=tmp_path, **QUIET)
    assert off.path.name == subset_run[0].path.name  # the same run, trained elsewhere
    assert "test" not in off.final()
    block = add_final_test(off, device="cpu")
    assert off.final()["test"] == block == subset_run[0].final()["test"]
    assert off.repair() == []


def test_a_finished_run_without_the_block_is_reused_as_it_is(tmp_path, monkeypatch):
    """Runs finished before the block existed (the committed results) are neither retrained
    nor measured again on reuse, and their final.json passes the run's own checks."""
    run = train(tiny(eval_n=30), runs_dir=tmp_path, **QUIET)
    final = run.final()
    del final["test"]
    (run.path / "final.json").write_text(json.dumps(final))
    before = (run.path / "final.json").read_bytes()
    monkeypatch.setattr(runner, "train_epoch", lambda *a, **k: pytest.fail("retrained"))
    monkeypatch.setattr(final_test, "final_test", lambda *a, **k: pytest.fail("measured"))
    again = train(tiny(eval_n=30), runs_dir=tmp_path, **QUIET)
    assert again.path == run.path and (run.path / "final.json").read_bytes() == before
    assert Run(run.path).repair() == []


def test_a_folder_without_checkpoints_says_it_needs_them(subset_run, tmp_path):
    import shutil

    copy = tmp_path / subset_run[0].path.name
    shutil.copytree(subset_run[0].path, copy, ignore=shutil.ignore_patterns("checkpoints"))
    final = json.loads((copy / "final.json").read_text())
    del final["test"]
    (copy / "final.json").write_text(json.dumps(final))
    with pytest.raises(CheckpointError, match="needs the run's checkpoints"):
        add_final_test(Run(copy), device="cpu")
