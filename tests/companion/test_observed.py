"""xcf.companion.observed: each page's "What we observed" is computed from its runs' numbers, so
it changes when they do, and no two pages say the same thing."""
import numpy as np

from run_folders import make_run
from xcf.companion import observed


def curve(tmp_path, name, best=10, epochs=40, fall=0.06, cas=None):
    ra = [0.2 + 0.3 * e / best if e <= best else 0.5 - fall * (e - best) / (epochs - best)
          for e in range(1, epochs + 1)]
    cas = cas or [8.0 if e < 7 else 10.0 if e <= best else 7.0 for e in range(1, epochs + 1)]
    return make_run(tmp_path, ra, cas, name=name, train_ra=[0.01 * e for e in range(1, epochs + 1)])


class Locator:
    """Hands out planted runs by the overrides a page asks for."""

    profile = "cpu"

    def __init__(self, runs):
        self.runs = runs

    def __call__(self, config, **overrides):
        key = overrides.get("objective") or overrides.get("eps") or overrides.get("kd", {}).get(
            "form") or config.get("label", "at")
        return self.runs.get(key)


def test_each_page_says_something_of_its_own_from_the_numbers(tmp_path, monkeypatch):
    at = curve(tmp_path, "at")
    kd = curve(tmp_path, "kd", fall=0.01, cas=[10.0] * 39 + [9.8])
    runs = {"at": at, 0.1: at, 0.2: curve(tmp_path, "e2", best=5), "fast_at": curve(
        tmp_path, "fast", fall=0.45), "standard": make_run(tmp_path, [0.0] * 6, [2, 4, 6, 6, 6, 6],
                                                         name="std"), "hinton": kd}
    loc = Locator(runs)
    monkeypatch.setattr(observed, "kd_pair", lambda locate, *a: (at, kd))
    pages = {
        "03": observed.dynamics(loc, {}),
        "04": observed.soft_labels(loc, {}, 0.5, 2.0, "hinton"),
        "05": observed.perturbation_bound(loc, {}, [0.1, 0.2]),
        "06": observed.across(loc, {"ℓ2": {"label": "at"}}),
        "07": observed.fast_at(loc, {}, 0.2, 0.4, 40),
        "08": observed.standard(loc, {}),
    }
    assert all(pages.values())
    texts = [" ".join(v) for v in pages.values()]
    assert len(set(texts)) == len(texts)
    # by hand: CAS 8 until epoch 6, 10 to the best (10), 7 after; RA peaks at epoch 10
    assert "CAS peaks at epoch 7 (10.00), test RA at epoch 10 (50.0%)" in pages["03"][0]
    assert "rises to the best checkpoint and falls after it" in pages["03"][1]
    assert "a fall of " in pages["03"][2] and "robust overfitting by this book's rule" in pages["03"][2]
    assert "KD-AT (hinton) loses 0.20 CAS" in pages["04"][0] and "PGD-AT 3.00" in pages["04"][0]
    assert "never collapses" not in pages["07"][0] and "collapses at epoch" in pages["07"][0]
    assert "3.3x lower" in pages["08"][0]                        # 10 / (6 / 2)


def test_the_sentences_follow_the_runs_numbers(tmp_path):
    """The Fig. 2 order the paper shows, and its opposite, read from the numbers."""
    rising = curve(tmp_path, "r")
    early_high = curve(tmp_path, "h", cas=[14.0 if e < 8 else 10.0 if e <= 10 else 7.0
                                           for e in range(1, 41)])
    a = observed.dynamics(Locator({"at": rising}), {})
    b = observed.dynamics(Locator({"at": early_high}), {})
    assert a != b and "opposite of the paper's Fig. 2" in b[1] and "opposite" not in a[1]
    calm = curve(tmp_path, "calm", fall=0.01)
    assert "not robust overfitting by its rule" in observed.dynamics(Locator({"at": calm}), {})[2]
    assert observed.dynamics(Locator({}), {}) == []
    assert np.isfinite(len(a))
