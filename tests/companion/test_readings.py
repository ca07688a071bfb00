"""xcf.companion.readings on a hand-made run folder whose best/last epochs and matrices are known."""
import json

import numpy as np
import pytest

from xcf.runs.folder import Run
from xcf.companion import paper
from xcf.companion.readings import (best_last_gap, cas_of, checkpoint, eps_label, format_table1,
                         saved_matrix_epochs, even_epochs, nearest_epochs, table1_rows, underfitted_epoch)

RA = [0.20, 0.35, 0.42, 0.40, 0.37]          # best test RA at epoch 3
CAS = [5.0, 7.0, 9.0, 6.0, 4.0]


@pytest.fixture
def run(tmp_path):
    d = tmp_path / "run"
    (d / "matrices").mkdir(parents=True)
    rows = [{"epoch": e + 1, "test_robust_acc": RA[e], "test_clean_acc": RA[e] + 0.2,
             "cas": CAS[e], "cas_clean": CAS[e] / 2, "train_robust_acc": 0.3 + 0.1 * e} for e in range(5)]
    (d / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    for e in (1, 2, 3, 5):                    # epoch 4's matrix was not saved
        np.save(d / "matrices" / f"epoch_{e:04d}.npy", np.full((3, 3), e / 10, dtype=np.float32))
        np.save(d / "matrices" / f"clean_epoch_{e:04d}.npy", np.full((3, 3), e / 20, dtype=np.float32))
    (d / "final.json").write_text(json.dumps({"best_epoch": 3}))
    return Run(d)


def test_best_and_last_checkpoints(run):
    best, last = checkpoint(run, "best"), checkpoint(run, "last")
    assert (best.epoch, best.cas, best.robust_acc) == (3, 9.0, 0.42)
    assert (last.epoch, last.cas) == (5, 4.0) and np.allclose(last.C, 0.5)
    assert np.allclose(checkpoint(run, 2, clean=True).C, 0.1) and checkpoint(run, 2, clean=True).cas == 3.5
    gap = best_last_gap(run)
    assert gap["cas_gap"] == pytest.approx(5.0) and gap["ra_gap"] == pytest.approx(0.05)


def test_epoch_selection(run):
    assert saved_matrix_epochs(run) == [1, 2, 3, 5]
    assert underfitted_epoch(run) == 2              # 0.65 * 3 ~ 2, before the best epoch
    # saved: every epoch to 50, then every 10, plus early "new best" epochs
    saved = list(range(1, 51)) + [60, 70, 80, 90, 100]
    assert even_epochs(saved, 100, 4) == [25, 50, 70, 100]   # 75 -> 70 (tie 70/80: earlier)
    # 25 -> 12 (tie 12/38: earlier), 50 -> 38, 75 and 100 -> 100
    assert even_epochs([1, 2, 3, 12, 38, 100], 100, 4) == [12, 38, 100]
    assert nearest_epochs([10, 20], [14, 16, 30]) == [10, 20]
    with pytest.raises(ValueError, match="n must be >= 1"):
        even_epochs(saved, 100, 0)
    with pytest.raises(FileNotFoundError):
        checkpoint(run, 4)


def test_table1_rows_and_text(run):
    rows = table1_rows({"0.1": run}, early_epoch=2)
    assert rows[0]["cas_early"] == 7.0 and rows[0]["ra_early"] == 0.35 and rows[0]["cas_best"] == 9.0
    text = format_table1(rows, {"8/255": (16.7, 36.9, 25.6, 47.8, 9.0, 42.5)})
    assert "9.00" in text and "25.6" in text
    assert f"epoch {paper.TABLE1_EARLY_EPOCH} / best / last" in text


def test_eps_label_is_read_from_the_runs_config(tmp_path):
    import yaml

    for name, cfg, label in (("c", {"dataset": "cifar10", "eps": 8 / 255}, "8/255"),
                             ("f", {"dataset": "fashion-mnist", "eps": 0.1}, "0.1")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.yaml").write_text(yaml.safe_dump(cfg))
        assert eps_label(Run(tmp_path / name)) == label


def test_paper_table1_gaps_are_best_minus_last():
    # Table 1 of the paper, 8/255: CAS 25.6 at the best checkpoint, 9.0 at the last.
    assert paper.table1_cas_gaps()["8/255"] == pytest.approx(16.6)
    for cas10, ra10, cas_b, ra_b, cas_l, ra_l in paper.TABLE1.values():
        assert cas_b > cas_l and ra_b > ra_l   # the paper's robust overfitting


def test_cas_of_numpy_matrix():
    C = np.array([[1.0, 0.5, -0.2], [0.5, 1.0, 0.1], [-0.2, 0.1, 1.0]])
    assert cas_of(C) == pytest.approx(1.2)


def test_the_html_table_escapes_every_cell_and_keeps_the_column_order():
    from xcf.companion.readings import html_table

    out = html_table([{"b": "x < y", "a": 1}], ["a", "b"], caption="R&D")
    assert out == ("<p>R&amp;D</p>\n<table>\n<thead><tr><th>a</th><th>b</th></tr></thead>\n"
                   "<tbody><tr><td>1</td><td>x &lt; y</td></tr></tbody>\n</table>")
