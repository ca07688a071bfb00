"""Issue 28's order of work: the rules and predictions of the causal test
(xcf/companion/hypotheses.py) were committed before the first run of its study, so every committed
H1 and H2 run was trained at a commit that already held them."""
import subprocess
from pathlib import Path

import pytest

from xcf.companion import claim_runs as study_plan
from xcf.companion.profiles import profile_knobs

ROOT = Path(__file__).resolve().parents[2]
RULES_COMMIT = "de40c43"  # "The causal test's rules and predictions, before any of its runs"


def git(*args):
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)


def hypothesis_runs():
    S = profile_knobs("11_claims", "cpu", ROOT / "notebooks" / "params")
    found = study_plan.find_studies(ROOT / "notebooks" / "results" / "cpu", S)
    return {name: run for name, run in found.items() if name.startswith(("H1 ", "H2 "))}


def test_the_rules_commit_holds_the_rules():
    if git("cat-file", "-e", RULES_COMMIT).returncode != 0:
        pytest.skip("not a git checkout with history (a shallow clone or an sdist)")
    shown = git("show", f"{RULES_COMMIT}:xcf/hypotheses.py")  # its path before the layout
    assert shown.returncode == 0 and "PREDICTIONS" in shown.stdout
    for prediction in ("H1a", "H1b", "H2"):
        assert f'"{prediction}":' in shown.stdout


@pytest.mark.parametrize("name", sorted(hypothesis_runs()) or ["(none committed yet)"])
def test_every_run_of_the_study_was_trained_after_its_rules(name):
    runs = hypothesis_runs()
    if not runs:
        pytest.skip("no H1 or H2 run is committed yet")
    if git("cat-file", "-e", RULES_COMMIT).returncode != 0:
        pytest.skip("not a git checkout with history (a shallow clone or an sdist)")
    prov = runs[name].provenance()
    commit, dirty = prov["git"]["commit"], prov["git"]["dirty"]
    assert dirty is False, f"{name} was trained from a dirty tree"
    assert git("merge-base", "--is-ancestor", RULES_COMMIT, commit).returncode == 0, \
        f"{name} was trained at {commit}, which does not descend from the rules' commit"


def test_the_verdicts_are_recomputed_from_the_raw_files():
    """H1 and H2 as the rules state them, from metrics.jsonl and erasure.json alone
    (held-out selection, the premises, scipy's t interval), against xcf.companion.hypotheses."""
    import json

    from test_claims_artifacts import interval_verdict, raw_read
    from xcf.companion import hypotheses

    S = profile_knobs("11_claims", "cpu", ROOT / "notebooks" / "params")
    found = study_plan.find_studies(ROOT / "notebooks" / "results" / "cpu", S)
    h1_in, h2_in = study_plan.hypothesis_inputs(found, S)
    if not h1_in and not h2_in:
        pytest.skip("no complete seed of H1 or H2 is committed yet")
    rules = {o.name: o.verdict for o in hypotheses.h1(h1_in) + hypotheses.h2(h2_in)}
    if h1_in:
        diffs = {"H1a": [], "H1b": []}
        for run, _ in h1_in:
            raw = raw_read(run.path)
            rec = json.loads((run.path / "erasure.json").read_text())
            assert {c: rec[c]["epoch"] for c in ("under", "best", "last")} == {
                "under": raw["early"]["epoch"], "best": raw["best"]["epoch"],
                "last": raw["last"]["epoch"]}
            assert rec["best"]["as_is"]["cas"] == pytest.approx(raw["best"]["cas"], abs=1e-3)
            if not raw["overfits"]:
                continue
            cost = lambda c, t: rec[c]["as_is"]["robust_acc"] - rec[c][t]["robust_acc"]  # noqa
            diffs["H1a"].append(cost("best", "shared_erased") - cost("last", "shared_erased"))
            diffs["H1b"].append(cost("last", "exclusive_erased")
                                - cost("best", "exclusive_erased"))
        for name, d in diffs.items():
            assert rules[name] == interval_verdict(d), name
    if h2_in:
        reads = [{arm: raw_read(run.path) for arm, run in seed.items()} for seed in h2_in]
        gap = lambda r, k: r["best"][k] - r["last"][k]  # noqa: E731
        tested = [r for r in reads if gap(r["pgd_at"], "cas") > 0]
        for label, control, quantity, sign in hypotheses.H2_PARTS:
            value = {"cas_gap": lambda r: gap(r, "cas"),
                     "ra_gap": lambda r: gap(r, "test_robust_acc"),
                     "cas_best": lambda r: r["best"]["cas"]}[quantity]
            d = [sign * (value(r[control]) - value(r["kd"])) for r in tested]
            assert rules[f"H2: {label}"] == interval_verdict(d), label
