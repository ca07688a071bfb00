"""xcf.companion.claims_page, the Claims page's tables: each on run folders written by
hand, whose rows are worked out here from the numbers planted in them."""
import json

import numpy as np
import pytest
import yaml

from run_folders import make_run
from xcf.companion import claims_page as page, diagnostics
from xcf.companion.claim_runs import StudyResults

TRAIN = {"dataset": "fashion-mnist", "n_train": 500, "augment": False, "model": "small_cnn",
         "model_kwargs": {"width": 32}, "eps": 0.1, "attack_steps": 5, "epochs": 15, "lr": 0.1,
         "amp": "bf16"}
SEARCH = {"train": TRAIN, "seeds": [],
          "search": [{"label": "500 images (chosen)", "overrides": {}},
                     {"label": "wide", "overrides": {"model_kwargs": {"width": 64}}}],
          "across": [{"label": "wide, w64", "overrides": {}, "whole": True, "seeds": []}]}


def search_run(tmp_path, name, ra, seconds, config):
    """15 epochs of test RA ``ra``, lr 0.1 for 5 epochs then 0.01 (the first decay at
    epoch 6), train RA 0.01 per epoch, ``seconds`` per epoch, and ``config``."""
    lr = [0.1] * 5 + [0.01] * 10
    run = make_run(tmp_path, ra, [5.0] * 15, name=name, train_ra=[0.01 * e for e in range(1, 16)],
                   extra={e: {"lr": lr[e - 1], "seconds": {"train": seconds}} for e in range(1, 16)})
    (run.path / "config.yaml").write_text(yaml.safe_dump({"epochs": 15, **config}))
    return run


@pytest.fixture
def searched(tmp_path):
    """The chosen setting flat at RA 0.5; the wide one at 0.25, 0.75, then 0.5 (five
    epochs each, so the 5-epoch means are exact): it peaks after the decay and falls 25
    points, the paper's shape."""
    flat = search_run(tmp_path, "flat", [0.5] * 15, 8, {"attack_mode": "train", "amp": "bf16"})
    wide = search_run(tmp_path, "wide", [0.25] * 5 + [0.75] * 5 + [0.5] * 5, 4,
                      {"attack_mode": "eval", "amp": "none"})
    return {"search: 500 images (chosen)": flat, "search: wide": wide}


def test_the_search_table_reads_each_setting_tried(searched):
    table = page.search_table(searched, SEARCH)
    assert table == [
        {"setting": "500 images (chosen)", "peak test RA (epoch)": "50.0% (5)",
         "last test RA": "50.0%", "drop": "0.0 pts", "train RA at peak → last": "3.0% → 13.0%",
         "raw best → last (epoch)": "50.0% (1) → 50.0%", "robust overfitting": "no",
         "drop after 1st decay": "0.0 pts", "paper's shape": "no", "attack mode": "train",
         "precision": "bf16 autocast", "minutes": "2"},                # 15 x 8 s
        {"setting": "wide", "peak test RA (epoch)": "75.0% (10)", "last test RA": "50.0%",
         "drop": "25.0 pts", "train RA at peak → last": "8.0% → 13.0%",
         "raw best → last (epoch)": "75.0% (6) → 50.0%", "robust overfitting": "yes",
         "drop after 1st decay": "25.0 pts", "paper's shape": "yes", "attack mode": "eval",
         "precision": "fp32", "minutes": "1"}]                         # 15 x 4 s
    assert table.columns == list(table[0])
    assert table.markdown().splitlines()[0].startswith("| setting | peak test RA (epoch) |")
    empty = page.search_table({}, SEARCH)
    assert empty == [] and empty.markdown() == "| setting |\n|---|"


def test_the_lines_under_the_search_name_the_shape_the_largest_fall_and_the_setting(searched):
    chosen = "chosen setting: " + str({k: TRAIN.get(k) for k in page.SHOWN_SETTING})
    assert "'attack_mode': None" in chosen and "'amp': 'bf16'" in chosen
    assert page.search_lines(searched, SEARCH) == [
        "1 of 2 settings show the paper's shape; the largest fall: wide (25.0 pts)",
        "The paper's shape occurred in: wide. C1's three parts are repeated on a second "
        "setting in the rows 'C1 … , wide, w64'.", chosen]
    no_row = {**SEARCH, "across": []}
    assert page.search_lines(searched, no_row)[1].endswith(
        "in the rows that follow once its seeds are trained (not yet committed).")
    only_chosen = {"search: 500 images (chosen)": searched["search: 500 images (chosen)"]}
    assert page.search_lines(only_chosen, SEARCH) == [
        "0 of 1 settings show the paper's shape; the largest fall: 500 images (chosen) (0.0 pts)",
        "The paper's shape (a fall of at least 5 points after the first decay) did not occur "
        "at this scale in any of the 1 settings tried, so C1 is tested on the chosen setting: "
        "its test RA peaks at epoch 5 and falls 0.0 points, with the first decay at epoch 6.",
        chosen]
    assert page.search_lines({}, SEARCH) == [chosen]


def c1_run(tmp_path, name, ra=(0.3, 0.5, 0.4), cas_last=7.0, ci_last=(6.5, 7.5), extra=None):
    """Test RA ``ra`` (best: epoch 2), CAS 4, 10, ``cas_last``; bootstrap intervals
    [9.5, 10.5] at the best and ``ci_last`` at the last epoch."""
    more = {2: {"cas_ci95": [9.5, 10.5]}, 3: {"cas_ci95": list(ci_last)}}
    for e, values in (extra or {}).items():
        more[e] = {**more.get(e, {}), **values}
    return make_run(tmp_path, list(ra), [4.0, 10.0, cas_last], name=name, extra=more)


def test_the_interval_lines_say_whether_best_and_last_intervals_overlap(tmp_path):
    runs = {"C1 seed 0": c1_run(tmp_path, "s0"),
            "C1 seed 1": c1_run(tmp_path, "s1", cas_last=9.4, ci_last=(9.0, 9.8))}
    assert page.interval_lines(runs, "cpu") == [
        "C1 seed 0 [cpu]: CAS at the test-selected best 10.00 [9.50, 10.50] vs last 7.00 "
        "[6.50, 7.50]: intervals do not overlap",
        "C1 seed 1 [cpu]: CAS at the test-selected best 10.00 [9.50, 10.50] vs last 9.40 "
        "[9.00, 9.80]: intervals overlap"]                 # 9.5 <= 9.8
    assert page.interval_lines({}, "cpu") == []


def held_out(cas, ra):
    return {e: {"holdout_cas": c, "holdout_robust_acc": a}
            for e, (c, a) in enumerate(zip(cas, ra), start=1)}


def selection_runs(tmp_path):
    """Seed 0: test RA best 0.5 at epoch 2; held-out CAS picks epoch 1 (RA 0.3), held-out
    RA epoch 3 (0.4).  Seed 1: test RA 0.25, 0.75, 0.5; held-out CAS picks the best, held-out
    RA epoch 1.  Seed 2 measured no held-out images."""
    return {"C1 seed 0": c1_run(tmp_path, "h0", extra=held_out([5, 1, 2], [0.1, 0.2, 0.3])),
            "C1 seed 1": c1_run(tmp_path, "h1", ra=(0.25, 0.75, 0.5),
                                extra=held_out([1, 5, 2], [0.3, 0.1, 0.2])),
            "C1 seed 2": c1_run(tmp_path, "h2")}


def test_the_selection_table_gives_each_choices_regret_against_the_test_selected_best(tmp_path):
    runs = selection_runs(tmp_path)
    assert page.selection_table(runs) == [
        {"run": "C1 seed 0", "test-selected": "50.0% (epoch 2)",
         "CAS-selected": "30.0% (epoch 1)", "CAS regret": "20.0 pts",
         "held-out-RA-selected": "40.0% (epoch 3)", "held-out-RA regret": "10.0 pts",
         "last-epoch regret": "10.0 pts"},
        {"run": "C1 seed 1", "test-selected": "75.0% (epoch 2)",
         "CAS-selected": "75.0% (epoch 2)", "CAS regret": "0.0 pts",
         "held-out-RA-selected": "25.0% (epoch 1)", "held-out-RA regret": "50.0 pts",
         "last-epoch regret": "25.0 pts"}]
    # means over the two seeds: (20 + 0) / 2, (10 + 50) / 2, (10 + 25) / 2
    assert page.regret_line(runs) == ("mean regret over 2 seeds: CAS 10.0 pts, held-out RA "
                                      "30.0 pts, last epoch 17.5 pts")
    assert page.selection_table({"C1 seed 2": runs["C1 seed 2"]}) == []


PLANTED = {"train": TRAIN, "seeds": [0],
           "planted": {"dataset": "planted", "data_kwargs": {"num_classes": 3,
                                                            "sharing": [[0, 1]]}}}


def planted_run(tmp_path):
    """Classes 0 and 1 share a part: C on that pair falls from 0.8 (best, epoch 2) to 0.2
    (last), C on the other pairs stays 0, 0, 0.1, 0.1."""
    def C(shared):
        return [[1, shared, 0], [shared, 1, 0.1], [0, 0.1, 1]]
    return make_run(tmp_path, [0.3, 0.5, 0.4], [4.0, 10.0, 7.0], name="planted",
                    matrices={1: np.eye(3), 2: C(0.8), 3: C(0.2)})


def test_the_planted_lines_say_where_the_drop_sits(tmp_path):
    assert page.planted_sharing(PLANTED).tolist() == [[False, True, False], [True, False, False],
                                                      [False, False, False]]
    assert page.planted_lines(planted_run(tmp_path), PLANTED, "cpu") == [
        "planted: RA 40.0% (epoch 3) -> 40.0%; CAS 10.00 -> 7.00",  # 3 epochs: one mean
        "mean C on sharing pairs 0.80 -> 0.20; on other pairs 0.05 -> 0.05",
        "sharing pairs are 33% of the pairs and carry 100% of the drop in CAS's positive parts"]
    assert page.planted_lines(None, PLANTED, "cpu") == ["no planted run in the cpu profile's results"]


def with_provenance(run, **session):
    (run.path / "provenance.json").write_text(json.dumps(
        {"git": {"commit": "0123456789abcdef"}, "sessions": [{"status": "finished", **session}]}
        if session else {"sessions": [{"status": "finished"}]}))
    return run


def test_the_provenance_table_names_each_runs_folder_commit_and_day(tmp_path):
    a = with_provenance(make_run(tmp_path, [0.3, 0.5], [4, 5], name="run-a"),
                        end="2026-12-03T10:11:12", device="cpu")
    b = with_provenance(make_run(tmp_path, [0.3, 0.5], [4, 5], name="run-b"))
    results = [StudyResults("cpu", PLANTED, {"C1 seed 0": a, "planted": b}, tmp_path, "x"),
               StudyResults("full", PLANTED, {}, tmp_path, "y")]
    table = page.provenance_table(results)
    assert table == [
        {"profile": "cpu", "study": "C1 seed 0", "run": "`run-a`", "commit": "0123456789",
         "finished": "2026-12-03"},
        {"profile": "cpu", "study": "planted", "run": "`run-b`", "commit": "?", "finished": "?"}]
    assert table.columns == ["profile", "study", "run", "commit", "finished"]
    assert page.devices(results) == ["?", "cpu"]
    assert page.provenance_table(results[1:]).markdown() == (
        "| profile | study | run | commit | finished |\n|---|---|---|---|---|")


def test_the_record_keeps_every_profiles_verdicts_the_regrets_and_the_planted_drop(tmp_path):
    runs = selection_runs(tmp_path)
    planted = planted_run(tmp_path)
    found = {"C1 seed 0": runs["C1 seed 0"], "planted": planted}
    results = [StudyResults("cpu", PLANTED, found, tmp_path, "x"),
               StudyResults("full", PLANTED, {}, tmp_path, "y")]
    verdicts = {"cpu": [{"claim": "C1 fall", "verdict": "holds", "test": "t"}],
                "full": [{"claim": "C1 fall", "verdict": "not run", "test": ""}]}
    m = page.record("smoke", results, verdicts)
    # PLANTED names 4 studies: C1 seed 0, its KD-AT student, C5 standard seed 0, planted
    assert {k: m[k] for k in ("profile", "results", "n_found", "verdicts", "profiles")} == {
        "profile": "smoke", "results": "cpu", "n_found": 2, "verdicts": {"C1 fall": "holds"},
        "profiles": {"cpu": {"n_found": 2, "n_studies": 4, "verdicts": {"C1 fall": "holds"}},
                     "full": {"n_found": 0, "n_studies": 4,
                              "verdicts": {"C1 fall": "not run"}}}}
    assert m["regrets"] == [pytest.approx({"_cas": 0.2, "_val": 0.1, "_last": 0.1})]
    assert m["planted"] == diagnostics.planted_concentration(planted, page.planted_sharing(PLANTED))
    assert m["planted"]["drop_share_of_cas_drop"] == pytest.approx(1.0)
    assert m["planted"]["share_fraction_of_pairs"] == pytest.approx(1 / 3)
    assert page.record("cpu", results[1:], verdicts)["planted"] is None
    json.dumps(m)  # what record_metrics writes


def test_the_verdict_table_shows_six_columns_and_names_each_test_once():
    rows = [{"claim": "C1 fall", "statement": "s", "ours": "o", "premise": "p", "verdict": "holds",
             "paper": "q", "agree": 3, "tested": 3, "test": "b"},
            {"claim": "C4", "statement": "s", "ours": "o", "premise": "p", "verdict": "not run",
             "paper": "q", "agree": None, "tested": None, "test": ""}]
    assert page.verdict_table(rows).markdown().splitlines() == [
        "| claim | statement | ours | premise | verdict | paper |", "|---|---|---|---|---|---|",
        "| C1 fall | s | o | p | holds | q |", "| C4 | s | o | p | not run | q |"]
    assert page.tests_used(rows + [{**rows[0], "test": "a"}]) == ["a", "b"]


def test_a_table_shows_its_first_rows_keys_unless_given_columns():
    t = page.Table([{"a": 1, "b": "x|y"}])
    assert t.columns == ["a", "b"] and t.markdown() == "| a | b |\n|---|---|\n| 1 | x/y |"
    assert page.Table([{"a": 1, "b": 2}], ["b"]).markdown() == "| b |\n|---|\n| 2 |"
    assert page.Table().columns == [] and page.Table([], ["x"]).markdown() == "| x |\n|---|"


HEADLINE_ROWS = [
    {"claim": "C1 fall", "statement": "s", "premise": "p", "verdict": "holds",
     "ours": "CAS best − last +3.45 (1/1 > 0); beyond both intervals in 1/1",
     "paper": "CAS 25.6 best (epoch 108) vs 9.0 last; RA 47.8% vs 42.5%"},
    {"claim": "C4", "statement": "s", "premise": "-", "verdict": "not run",
     "ours": "0 of 6 runs found", "paper": "CAS plummets (Fig. 7; values in it)"}]


def test_the_headline_keeps_one_short_line_per_claim_part():
    assert page.headline(HEADLINE_ROWS) == [
        {"claim": "C1 fall", "verdict": "holds", "ours": "CAS best − last +3.45 (1/1 > 0)",
         "the paper's": "CAS 25.6 best (epoch 108) vs 9.0 last"},
        {"claim": "C4", "verdict": "not run", "ours": "0 of 6 runs found",
         "the paper's": "CAS plummets (Fig. 7)"}]


def test_the_headline_html_is_what_the_first_page_pastes():
    html = page.headline_html(HEADLINE_ROWS, "**cpu profile**: read from `notebooks/results/cpu/`")
    assert html.startswith("<p>cpu profile: read from notebooks/results/cpu/</p>\n<table>")
    assert "<th>the paper&#x27;s</th>" in html
    assert "<td>C4</td><td>not run</td><td>0 of 6 runs found</td><td>CAS plummets (Fig. 7)</td>" in html
