"""xcf.companion.figures: each figure function draws, from tiny hand-made run folders found by a
locator, the paper's number of panels, titled with the locator's profile and labelled
from the runs' own configs."""
import json

import matplotlib

matplotlib.use("agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402

from xcf.companion import figures, gallery, paper  # noqa: E402
from xcf.runs.folder import Run  # noqa: E402

K = 10  # classes: the figures must draw 10 x 10 matrices with every class index


def make_run(folder, name, config, epochs=6, best=4):
    """A finished run folder: CAS rises to ``best`` then falls, a matrix every epoch."""
    d = folder / name
    (d / "matrices").mkdir(parents=True)
    rows = []
    for e in range(1, epochs + 1):
        ra = 0.5 - 0.05 * abs(e - best)
        rows.append({"epoch": e, "test_robust_acc": ra, "test_clean_acc": ra + 0.2,
                     "train_robust_acc": 0.3 + 0.05 * e, "cas": 10.0 - abs(e - best),
                     "cas_clean": 2.0, "cas_ci95": [8.0, 11.0], "holdout_cas": 9.0 - e % 3})
        C = np.full((K, K), 0.05 * e)
        np.fill_diagonal(C, 1.0)
        np.save(d / "matrices" / f"epoch_{e:04d}.npy", C.astype(np.float32))
        np.save(d / "matrices" / f"clean_epoch_{e:04d}.npy", (C / 2).astype(np.float32))
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (d / "final.json").write_text(json.dumps({"best_epoch": best, "epochs": epochs}))
    (d / "config.yaml").write_text(yaml.safe_dump(config))
    return Run(d)


class FakeLocator:
    """Finds a hand-made run by the overrides it is asked for; ``missing``: overrides
    (as sorted items) for which it finds nothing."""

    profile = "tiny"

    def __init__(self, folder, dataset="fashion-mnist", missing=()):
        self.folder, self.dataset, self.missing = folder, dataset, set(missing)
        self.made = {}

    def __call__(self, config, **overrides):
        key = json.dumps(overrides, sort_keys=True, default=str)
        if key in self.missing:
            return None
        if key not in self.made:
            cfg = {"dataset": self.dataset, "eps": 0.1, "objective": "pgd_at",
                   "model": "small_cnn", **config, **overrides}
            cfg.pop("kd", None)
            self.made[key] = make_run(self.folder, f"run{len(self.made)}", cfg)
        return self.made[key]


def panels(fig):
    """The drawn matrices: visible axes holding an image (colour bars hold none)."""
    return [ax for ax in fig.axes if ax.get_visible() and ax.images]


def check(fig, n_panels, *words):
    assert len(panels(fig)) == n_panels
    title = fig._suptitle.get_text() if fig._suptitle else " ".join(a.get_title() for a in fig.axes)
    assert "[tiny profile]" in title
    for w in words:
        assert w in title, (w, title)
    for ax in panels(fig):  # every class index is on both axes
        assert len(ax.get_xticks()) == K and len(ax.get_yticks()) == K
    plt.close(fig)


@pytest.fixture
def locate(tmp_path):
    return FakeLocator(tmp_path)


def test_matrix_figures_draw_the_papers_panels(locate):
    check(figures.fig2_three_stages(locate, {}), 3, "Fig. 2", "fashion-mnist", "ε=0.1")
    check(figures.fig3ab_kd(locate, {}, 0.5, 2.0), 4, "Fig. 3a/b")
    check(figures.fig4_differences(locate, {}, [0.05, 0.1, 0.15, 0.2]), 4, "Fig. 4")
    check(figures.fig5_datasets(locate, {}, {"a": {"n_train": 9}, "b": {"n_train": 8}}), 4,
          "Fig. 5")
    check(figures.fig6_norm_and_vit(locate, {}, 1.0, {"model": "deit_tiny"}), 4, "Fig. 6")
    check(figures.fig7_fast_at(locate, {}, 0.2, 0.4, 6), 3, "Fig. 7", "step 0.4")
    check(figures.fig9_standard(locate, {}, 4), 4, "Fig. 9")
    check(figures.fig10_epochs(locate, {}, 5), 5, "Fig. 10")


def test_panel_titles_carry_the_runs_own_numbers(locate):
    fig = figures.fig2_three_stages(locate, {})
    titles = [ax.get_title() for ax in panels(fig)]
    # best epoch 4 (final.json), CAS 10 there; last epoch 6, CAS 10 - 2
    assert titles[1].startswith("best (epoch 4)") and "CAS 10.00" in titles[1]
    assert titles[2].startswith("last (epoch 6)") and "CAS 8.00" in titles[2]
    # Fig. 4 shows C_best - C_last: 0.05 * (4 - 6) off the diagonal
    fig4 = figures.fig4_differences(locate, {}, [0.1])
    diff = panels(fig4)[0].images[0].get_array()
    assert diff[0, 1] == pytest.approx(-0.1, abs=1e-6) and diff[0, 0] == pytest.approx(0.0)
    plt.close("all")


def test_eps_labels_come_from_the_runs_config(tmp_path):
    cifar = FakeLocator(tmp_path, dataset="cifar10")
    fig = figures.fig1_accuracy_curves(cifar, {}, [8 / 255, 16 / 255])
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "ε=8/255 test" in legend and "ε=16/255 train" in legend
    assert "[tiny profile]" in fig.axes[0].get_title() and "cifar10" in fig.axes[0].get_title()
    plt.close(fig)


def test_table1_prints_ours_beside_the_papers(locate, capsys):
    rows = figures.table1(locate, {}, [0.1, 0.2], early_epoch=2)
    assert [r["eps"] for r in rows] == ["0.1", "0.2"]
    assert rows[0]["cas_early"] == 8.0 and rows[0]["cas_best"] == 10.0   # 10 - |2 - 4|
    out = capsys.readouterr().out
    assert "[tiny profile]" in out and f"{paper.TABLE1['8/255'][2]:7.1f}" in out


def test_a_missing_run_is_said_and_draws_nothing(tmp_path, capsys):
    locate = FakeLocator(tmp_path, missing=[json.dumps({"eps": 0.2})])
    assert figures.fig4_differences(locate, {}, [0.1, 0.2]) is None
    assert figures.table1(locate, {}, [0.2], 1) is None
    out = capsys.readouterr().out
    assert "Fig. 4: no finished tiny-profile run found" in out and "Table 1" in out
    nothing = FakeLocator(tmp_path / "none", missing=[json.dumps({})])
    assert figures.fig3ab_kd(nothing, {}, 0.5, 2.0) is None    # no teacher, no student
    assert nothing.made == {}


def test_checkpoint_figures_say_when_results_have_no_checkpoints(locate, capsys):
    assert figures.fig8_instance_wise(locate, {}, 1.0) is None
    assert figures.fig11_saliency(locate, {}, 3) is None
    assert "needs model checkpoints" in capsys.readouterr().out


def test_claims_page_figures(locate):
    runs = {f"seed {s}": locate({}, seed=s) for s in range(3)}
    fig = figures.cas_intervals(runs, "tiny")
    assert sum(ax.get_visible() and bool(ax.get_title()) for ax in fig.axes) == 3
    assert "[tiny profile]" in fig._suptitle.get_text()
    plt.close(fig)
    share = np.zeros((K, K), dtype=bool)
    share[0, 1] = share[1, 0] = True
    fig = figures.planted_drop(locate({}), share, "tiny")
    assert len(panels(fig)) == 4 and "[tiny profile]" in fig._suptitle.get_text()
    plt.close(fig)
    fig = figures.cas_curve(locate, {}, objective="fast_at")
    assert "fast_at" in fig.axes[0].get_title() and "[tiny profile]" in fig.axes[0].get_title()
    plt.close(fig)


def test_every_figure_of_the_gallery_reads_its_pages_knobs(tmp_path, monkeypatch, capsys):
    """gallery.FIGURES: the paper's figures in its order, each drawn from a profile's
    section of its page; the figures page (Gallery) draws them by name alone."""
    from pathlib import Path

    from xcf.companion.profiles import profile_knobs

    params = Path(__file__).resolve().parents[2] / "notebooks" / "params"
    assert list(gallery.FIGURES) == ["Fig. 1", "Fig. 2", "Fig. 3a/b", "Fig. 3c", "Fig. 4",
                                     "Table 1", "Fig. 5", "Fig. 6", "Fig. 7", "Fig. 8",
                                     "Fig. 9", "Fig. 10", "Fig. 11"]
    for name, (notebook, draw) in gallery.FIGURES.items():
        out = draw(FakeLocator(tmp_path / name.replace("/", "")),
                   profile_knobs(notebook, "smoke", params))
        if name in ("Fig. 3c", "Fig. 8", "Fig. 11"):  # hand-made runs hold no checkpoints
            assert out is None, name
        else:
            assert out is not None, name
        plt.close("all")
    asked = []

    class Two(gallery.Gallery):
        def __init__(self):  # one profile with runs, one without
            self.profiles, self.drawn = ["tiny", "none"], {}
            self.found = {"tiny": (FakeLocator(tmp_path / "g"), {
                nb: profile_knobs(nb, "smoke", params) for nb in self.SECTIONS})}

    page = Two()
    monkeypatch.setitem(gallery.FIGURES, "Fig. 2", (
        "03_at_dynamics", lambda loc, k: asked.append(k["n_matrices"]) or "fig"))
    page.draw("Fig. 2")
    assert asked == [profile_knobs("03_at_dynamics", "smoke", params)["n_matrices"]]
    assert page.drawn == {"Fig. 2": ["tiny"]}
    assert page.summary() == {"Fig. 2": ["tiny"]}
    out = capsys.readouterr().out
    assert "Fig. 2 [none profile]: not run" in out and "'Fig. 1', 'Fig. 3a/b'" in out
