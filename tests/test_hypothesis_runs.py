"""Issue 28's order of work: the rules and predictions of the causal test
(xcf/hypotheses.py) were committed before the first run of its study, so every committed
H1 and H2 run was trained at a commit that already held them."""
import subprocess
from pathlib import Path

import pytest

from xcf import study_plan
from xcf.profiles import profile_knobs

ROOT = Path(__file__).resolve().parent.parent
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
    shown = git("show", f"{RULES_COMMIT}:xcf/hypotheses.py")
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
