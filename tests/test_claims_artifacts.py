"""The committed cpu-profile results behind the Claims page: they load, carry provenance,
hold no checkpoints, and the Claims table is what the rules give on them (recomputed here
from the raw files, independently of xcf.studies)."""
import json
import re
from pathlib import Path

import pytest
import yaml

from xcf import claims
from xcf.config import TrainConfig
from xcf.profiles import profile_knobs
from xcf.runner import run_slug

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "notebooks" / "results" / "cpu"
S = profile_knobs("11_claims", "cpu", ROOT / "notebooks" / "params")


@pytest.fixture(scope="module")
def found():
    return claims.find_studies(RESULTS, S)


def raw_gap(folder: Path) -> tuple[float, float, float]:
    """(CAS at the first epoch of highest test RA, CAS at the last epoch, gap) from metrics.jsonl."""
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    best = max(rows, key=lambda r: r["test_robust_acc"])
    return best["cas"], rows[-1]["cas"], best["cas"] - rows[-1]["cas"]


def test_every_study_of_the_claims_page_is_committed(found):
    names = [name for name, _, _ in claims.studies_of(S)]
    assert sorted(found) == sorted(names), f"missing: {sorted(set(names) - set(found))}"


def test_committed_runs_are_small_finished_and_traceable(found):
    for run in {r.path for r in found.values()}:
        assert not (run / "checkpoints").exists()
        final = json.loads((run / "final.json").read_text())
        assert final["best_epoch"] >= 1
        prov = json.loads((run / "provenance.json").read_text())
        assert prov["sessions"] and prov["sessions"][-1]["status"] == "finished"
        assert re.fullmatch(r"[0-9a-f]{40}", prov["git"]["commit"])


def test_claims_table_is_regenerated_from_the_artifacts(found):
    rows = {r["claim"]: r for r in claims.decide(found, S)}
    gaps = [raw_gap(found[f"C1 seed {s}"].path) for s in S["seeds"]]
    for best, last, _ in gaps:
        assert f"{best:.2f}" in rows["C1"]["ours"] or len(gaps) > 1  # one seed: its numbers appear as is
    mean_gap = sum(g for _, _, g in gaps) / len(gaps)
    assert f"gap {mean_gap:.2f} ±" in rows["C1"]["ours"]
    assert rows["C1"]["verdict"] == ("holds" if all(g > 0 for _, _, g in gaps) else "does not hold")
    kd, at = raw_gap(found["C2 KD-AT"].path)[2], gaps[0][2]
    assert f"gap KD-AT {kd:.2f}" in rows["C2"]["ours"]
    assert rows["C2"]["verdict"] == ("holds" if kd < at else "does not hold")
    eps_gaps = [raw_gap(found[f"C3 eps {e:g}"].path)[2] for e in sorted(S["eps_list"])]
    assert rows["C3"]["verdict"] == ("holds" if all(b > a for a, b in zip(eps_gaps, eps_gaps[1:]))
                                     else "does not hold")
    for g in eps_gaps:
        assert f"{g:.2f}" in rows["C3"]["ours"]
    assert all(rows[c]["paper"] == claims.PAPER[c] for c in rows)


def test_every_committed_run_folder_is_named_by_its_config_key():
    """Each folder is ``<slug>-<key>`` of its own config.yaml, so any locator that computes
    a config's key finds it (after the re-keying to difference-based keys too)."""
    folders = sorted(p for p in RESULTS.iterdir() if p.is_dir())
    assert folders
    for folder in folders:
        cfg = TrainConfig.from_dict(yaml.safe_load((folder / "config.yaml").read_text()))
        assert folder.name == f"{run_slug(cfg)}-{cfg.key()}"
        teacher = cfg.kd.teacher if cfg.objective == "kd_at" else None
        if teacher:  # the student names a teacher that is committed next to it
            assert (RESULTS / Path(teacher).name).is_dir(), teacher
