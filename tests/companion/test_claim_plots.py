"""The Claims page's small figures: one pair per seed, with the intervals given, read from
the runs as the rule book reads them."""
import dataclasses

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib.container import ErrorbarContainer  # noqa: E402

from run_folders import make_run  # noqa: E402
from xcf.companion import claim_plots, evidence  # noqa: E402
from xcf.companion.claim_plots import SeedPairs  # noqa: E402

MADE_UP = SeedPairs(
    claim="C1 fall", ends=("best", "last"), quantity="CAS",
    labels=("seed 0", "seed 1", "seed 2"),
    values=((12.0, 8.0), (11.0, 9.5), (13.0, 7.0)),
    intervals=(((11.5, 12.4), (7.6, 8.3)), ((10.0, 12.0), None), (None, None)),
    tested=(True, False, True))


def _pairs(ax):
    return [line for line in ax.lines if len(line.get_xdata()) == 2]


def _bars(ax):
    """(x, low, high) of every error bar drawn."""
    out = []
    for c in ax.containers:
        if isinstance(c, ErrorbarContainer):
            (segments,) = [s.get_segments() for s in c.lines[2]]
            (seg,) = segments
            out.append((float(seg[0][0]), float(seg[0][1]), float(seg[1][1])))
    return sorted(out)


def test_one_pair_per_seed_through_its_two_values():
    fig = claim_plots.seed_pairs(MADE_UP, "inconclusive", "cpu")
    ax = fig.axes[0]
    lines = _pairs(ax)
    assert [tuple(line.get_ydata()) for line in lines] == list(MADE_UP.values)
    assert [line.get_label() for line in lines] == list(MADE_UP.labels)
    for line in lines:  # from the first reading (x near 0) to the second (x near 1)
        x0, x1 = line.get_xdata()
        assert abs(x0) < 0.2 and abs(x1 - 1) < 0.2
    assert [t.get_text() for t in ax.get_xticklabels()] == ["best", "last"]
    assert ax.get_title() == "C1 fall: inconclusive [cpu]"
    plt.close(fig)


def test_a_long_title_wraps_and_keeps_every_word():
    named = dataclasses.replace(MADE_UP, claim="C1 PreActResNet-18 width 16")
    fig = claim_plots.seed_pairs(named, "inconclusive", "cpu")
    title = fig.axes[0].get_title()
    assert "\n" in title
    assert title.replace("\n", " ") == "C1 PreActResNet-18 width 16: inconclusive [cpu]"
    plt.close(fig)


def test_the_intervals_given_and_only_those_are_drawn():
    fig = claim_plots.seed_pairs(MADE_UP)
    bars = _bars(fig.axes[0])
    want = sorted([(11.5, 12.4), (7.6, 8.3), (10.0, 12.0)])
    got = sorted((lo, hi) for _, lo, hi in bars)
    assert [v for pair in got for v in pair] == pytest.approx([v for pair in want for v in pair])
    plt.close(fig)


def test_a_seed_outside_the_premise_is_hollow():
    fig = claim_plots.seed_pairs(MADE_UP)
    faces = [line.get_markerfacecolor() for line in _pairs(fig.axes[0])]
    assert faces[1] == "white" and "white" not in (faces[0], faces[2])
    plt.close(fig)


def test_seeds_sit_apart_so_their_intervals_do_not_overlap():
    fig = claim_plots.seed_pairs(MADE_UP)
    starts = [line.get_xdata()[0] for line in _pairs(fig.axes[0])]
    assert len(set(starts)) == 3
    plt.close(fig)


def test_pairs_of_unequal_length_are_refused():
    with pytest.raises(ValueError, match="one of each per seed"):
        SeedPairs("C1 fall", ("best", "last"), "CAS", ("seed 0",), ((1.0, 2.0),), (), (True,))


# --- read from run folders, as the rule book reads them ---------------------------------

def _c1_run(folder, name, shift=0.0):
    ra = [0.2, 0.4, 0.5, 0.45, 0.40, 0.38, 0.36, 0.35, 0.34, 0.33]
    cas = [4 + shift, 8 + shift, 12 + shift, 11, 10, 9, 8.5, 8, 7.5, 7]
    holdout = {e: {"holdout_robust_acc": a, "cas_ci95": [c - 0.5, c + 0.5]}
               for e, (a, c) in enumerate(zip(ra, cas), start=1)}
    return make_run(folder, ra, cas, extra=holdout, name=name)


def test_claim_pairs_reads_c1_as_the_rule_book(tmp_path):
    P = {"seeds": [0, 1, 2], "kd_forms": ["eq3"]}
    found = {f"C1 seed {s}": _c1_run(tmp_path, f"c1-{s}", shift=s) for s in P["seeds"]}
    (c1,) = claim_plots.claim_pairs(found, P)  # no KD, fast or standard runs: C1 only
    assert c1.claim == "C1 fall" and c1.labels == ("seed 0", "seed 1", "seed 2")
    for s, (best, last), (ci_best, ci_last) in zip(P["seeds"], c1.values, c1.intervals):
        r = evidence.reading(found[f"C1 seed {s}"])
        assert (best, last) == (r.best["cas"], r.last["cas"])
        assert ci_best == tuple(r.best["cas_ci95"]) and ci_last == tuple(r.last["cas_ci95"])
    assert c1.tested == tuple(evidence.reading(found[f"C1 seed {s}"]).overfits
                              for s in P["seeds"])


def test_a_claim_with_a_run_missing_has_no_figure(tmp_path):
    P = {"seeds": [0, 1]}
    found = {"C1 seed 0": _c1_run(tmp_path, "c1-0")}
    assert claim_plots.claim_pairs(found, P) == []


def test_c2_pairs_the_teachers_gap_with_the_students(tmp_path):
    P = {"seeds": [0, 1, 2], "kd_forms": ["eq3", "hinton"], "kd_seeds_by_form": {"hinton": [0]}}
    found = {f"C1 seed {s}": _c1_run(tmp_path, f"c1-{s}") for s in P["seeds"]}
    found.update({f"C2 KD-AT eq3 seed {s}": _c1_run(tmp_path, f"kd-{s}", shift=-3)
                  for s in P["seeds"]})
    found["C2 KD-AT hinton seed 0"] = _c1_run(tmp_path, "kd-h0", shift=-2)
    claims = {p.claim: p for p in claim_plots.claim_pairs(found, P)}
    assert list(claims) == ["C1 fall", "C2 (eq3)", "C2 (hinton)"]
    eq3 = claims["C2 (eq3)"]
    assert eq3.ends == ("PGD-AT", "KD-AT") and eq3.intervals == ((None, None),) * 3
    at, kd = evidence.reading(found["C1 seed 1"]), evidence.reading(found["C2 KD-AT eq3 seed 1"])
    assert eq3.values[1] == (at.cas_gap, kd.cas_gap)
    assert claims["C2 (hinton)"].labels == ("seed 0",)
