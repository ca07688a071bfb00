"""xcf.claims, the rule book: each rule on run folders written by hand whose verdict is
known from the numbers planted in them (not from the code under test)."""
import numpy as np
import pytest

from run_folders import make_run
from xcf import claims


def ci(lo, hi):
    return {"cas_ci95": [lo, hi]}


def c1_run(tmp_path, name, cas_best, cas_last, ra_last=0.4, ci_best=None, ci_last=None):
    """Epochs 1-3: RA 0.3, 0.5 (best), ``ra_last``; CAS 4, ``cas_best``, ``cas_last``."""
    extra = {2: ci(*ci_best) if ci_best else {}, 3: ci(*ci_last) if ci_last else {}}
    return make_run(tmp_path, [0.3, 0.5, ra_last], [4, cas_best, cas_last], extra=extra, name=name)


def test_tally_counts_only_seeds_that_met_the_premise():
    assert claims.tally([True, True, None]) == ("holds", 2, 2)
    assert claims.tally([True, False, True]) == ("mixed", 2, 3)
    assert claims.tally([False, None]) == ("does not hold", 0, 1)
    assert claims.tally([None, None]) == ("not tested", 0, 0)
    assert claims.tally([]) == ("not run", 0, 0)


def test_c1_needs_the_gap_beyond_both_bootstrap_intervals(tmp_path):
    clear = [c1_run(tmp_path, f"s{i}", 10, 10 - g, ci_best=(9.5, 10.5), ci_last=(8 - g, 9 - g))
             for i, g in enumerate([3.0, 1.0, 2.0])]
    v = claims.c1(clear)
    assert v.verdict == "holds" and (v.agree, v.tested) == (3, 3)
    assert "gap 2.00 ± 1.00" in v.ours and "RA best 50.0 ± 0.0% vs last 40.0 ± 0.0%" in v.ours
    # a positive gap whose intervals overlap does not count
    overlap = c1_run(tmp_path, "o", 10, 9.8, ci_best=(9.5, 10.5), ci_last=(9.3, 10.3))
    v = claims.c1(clear[:2] + [overlap])
    assert v.verdict == "mixed" and (v.agree, v.tested) == (2, 3)


def test_c1_without_robust_overfitting_is_not_tested_and_never_does_not_hold(tmp_path):
    no_overfit = [c1_run(tmp_path, f"n{i}", 10, 12, ra_last=0.55) for i in range(2)]  # last best
    v = claims.c1(no_overfit)
    assert v.verdict == "not tested" and "0/2 seeds" in v.premise
    assert claims.c1([]).verdict == "not run"
    # intervals missing: the point comparison decides
    assert claims.c1([c1_run(tmp_path, "p", 10, 9)]).verdict == "holds"
    assert claims.c1([c1_run(tmp_path, "q", 9, 10)]).verdict == "does not hold"


def test_c2_compares_seed_by_seed_and_needs_a_positive_pgd_at_gap(tmp_path):
    at = [c1_run(tmp_path, f"a{i}", 10, 7) for i in range(3)]             # gap 3
    kd = [c1_run(tmp_path, f"k{i}", 10, 10 - g) for i, g in enumerate([0.5, 1.0, 4.0])]
    v = claims.c2(list(zip(at, kd)), form="eq3")
    assert v.verdict == "mixed" and (v.agree, v.tested) == (2, 3) and v.claim == "C2 (eq3)"
    no_gap = [c1_run(tmp_path, f"z{i}", 10, 10.5) for i in range(3)]      # PGD-AT gap -0.5
    v = claims.c2(list(zip(no_gap, kd)))
    assert v.verdict == "not tested" and v.claim == "C2"


def eps_runs(tmp_path, pairs, seed=0):
    """(ε, seed, run) with the planted (CAS gap, RA gap) per ε: best at epoch 2."""
    out = []
    for i, (cas_gap, ra_gap) in enumerate(pairs):
        run = make_run(tmp_path, [0.3, 0.6, 0.6 - ra_gap], [4, 10 - i * 0.5, 10 - i * 0.5 - cas_gap],
                       name=f"eps{i}-s{seed}")
        out.append((0.02 * (i + 1), seed, run))
    return out


def test_c3_is_a_rank_correlation_over_eps_with_seeds_pooled(tmp_path):
    # rises then falls, the CAS gap tracking the RA gap exactly: rho = 1
    pairs = [(1, .02), (2, .04), (3, .06), (4, .08), (2.5, .05), (1.5, .03)]
    v = claims.c3(eps_runs(tmp_path, pairs) + eps_runs(tmp_path, pairs, seed=1))
    assert v.verdict == "holds" and "ρ = 1.00" in v.ours and (v.agree, v.tested) == (2, 2)
    opposite = [(4, .02), (3, .04), (2, .06), (1, .08), (2.5, .05), (3.5, .03)]
    assert claims.c3(eps_runs(tmp_path / "o", opposite)).verdict == "does not hold"


def test_c3_with_fewer_than_six_eps_values_is_not_tested(tmp_path):
    v = claims.c3(eps_runs(tmp_path, [(1, .02), (2, .04), (3, .06)]))
    assert v.verdict == "not tested" and "3 ε values (needs ≥ 6)" in v.premise


def test_c3_large_eps_checks_early_and_best_cas_and_the_gap_above_the_largest_ra_gap(tmp_path):
    # RA gap peaks at the 2nd ε; above it best CAS (10 - 0.5 i) falls, the gap 3, 2, 1 falls,
    # early CAS (epoch 1: 4 everywhere) does not fall: 2 of 3 parts
    runs = eps_runs(tmp_path, [(1, .02), (3, .08), (2, .05), (1, .03)])
    v = claims.c3_large_eps(runs, early_epoch=1)
    assert v.verdict == "mixed" and (v.agree, v.tested) == (2, 3)
    assert "best CAS falls: 9.50, 9.00, 8.50" in v.ours and "early CAS (epoch 1) does not fall" in v.ours
    assert claims.c3_large_eps(eps_runs(tmp_path / "x", [(1, .02), (3, .08)]), 1).verdict == "not tested"


def test_c4_decides_at_the_collapse_and_lists_every_setting_tried(tmp_path):
    ten = {e: np.eye(10) for e in (1, 2, 3)}  # K = 10: chance 10%, the premise's floor 20%
    calm = make_run(tmp_path, [0.1, 0.2, 0.18], [6, 8, 7], name="calm", matrices=ten)
    co = make_run(tmp_path, [0.3, 0.5, 0.1], [6, 8, 2], name="co", matrices=ten)  # 0.1 <= 0.125
    v = claims.c4([("a", calm), ("b", co)])
    assert v.verdict == "holds" and (v.agree, v.tested) == (1, 1)
    assert "a: no collapse" in v.ours and "b: CAS 8.00 at best (epoch 2" in v.ours
    assert "2.00 at collapse (epoch 3" in v.ours
    v = claims.c4([("a", calm)])
    assert v.verdict == "not tested" and "in 0 of 1 runs tried" in v.premise
    rows = claims.fast_at_table([("a", calm), ("b", co)])
    assert [r["collapse (epoch)"] for r in rows] == ["-", "3"]
    assert rows[1]["CAS best → collapse"] == "8.00 → 2.00"
    assert rows[1]["lowest later RA (epoch)"] == "10.0% (3)"


def test_c4_premise_needs_robustness_learned_before_the_collapse(tmp_path):
    """A run whose best RA is under twice chance (K = 10: 20%) never learned robustness,
    so its fall to near zero is not catastrophic overfitting: not tested."""
    ten = {e: np.eye(10) for e in (1, 2, 3)}
    chance = make_run(tmp_path, [0.096, 0.05, 0.01], [6, 8, 2], name="chance", matrices=ten)
    v = claims.c4([("e 0.3", chance)])
    assert v.verdict == "not tested" and "e 0.3: no robustness learned (best RA 9.6%" in v.ours
    assert "1 learned no robustness" in v.premise
    assert claims.fast_at_table([("e 0.3", chance)])[0]["learned robustness"] == "no (< 2/10)"
    # the same curve over K = 3 classes (chance 33%, floor 67%) is no robustness either;
    # over K = 10 at 10x the RA it is a collapse whose CAS falls
    assert claims.c4([("x", make_run(tmp_path, [0.5, 0.3, 0.1], [6, 8, 2],
                                     name="k3"))]).verdict == "not tested"
    high = make_run(tmp_path, [0.96, 0.5, 0.1], [8, 8, 2], name="high", matrices=ten)
    assert claims.c4([("y", high)]).verdict == "holds"


def test_c5_needs_lower_and_flat_clean_cas(tmp_path):
    at = c1_run(tmp_path, "at", 10, 7)                              # best CAS 10
    flat = make_run(tmp_path, [0.0] * 6, [2, 4, 8, 8, 8.2, 8], name="flat")   # cas_clean = cas/2
    rising = make_run(tmp_path, [0.0] * 6, [2, 4, 6, 8, 10, 12], name="rise")
    v = claims.c5([(flat, at)])
    assert v.verdict == "holds" and "standard 4.00" in v.ours
    assert claims.c5([(rising, at)]).verdict == "does not hold"    # second half +2 of mean 5
    high = make_run(tmp_path, [0.0] * 4, [30, 30, 30, 30], name="high")       # 15 > 10
    assert claims.c5([(high, at)]).verdict == "does not hold"


P = {"train": {"epochs": 3}, "seeds": [0, 1], "kd_forms": ["eq3", "hinton"],
     "kd_lambda": 0.5, "kd_temperature": 2.0, "eps_list": [0.1], "eps_seeds": [0],
     "fast": [{"label": "a", "overrides": {"eps": 0.2}}], "fast_seeds": [0],
     "standard_seeds": [0], "across": [{"label": "ℓ2", "overrides": {"norm": "l2"}}]}


def test_decide_reads_each_claims_runs_by_their_study_names(tmp_path):
    found = {f"C1 seed {s}": c1_run(tmp_path, f"s{s}", 10, 7) for s in (0, 1)}
    found.update({f"C2 KD-AT eq3 seed {s}": c1_run(tmp_path, f"k{s}", 10, 9.5) for s in (0, 1)})
    found["C1 ℓ2 seed 0"] = c1_run(tmp_path, "l2", 10, 11)
    found["C4 fast AT a seed 0"] = make_run(tmp_path, [0.3, 0.5, 0.1], [6, 8, 2], name="f",
                                            matrices={e: np.eye(10) for e in (1, 2, 3)})
    rows = {r["claim"]: r for r in claims.decide(found, P)}
    assert list(rows) == ["C1", "C1 ℓ2", "C2 (eq3)", "C2 (hinton)", "C3", "C3 large ε", "C4",
                          "C5"]
    assert rows["C1"]["verdict"] == "holds"
    # one of the two ℓ2 seeds: not decided from part of its seeds
    assert rows["C1 ℓ2"]["verdict"] == "not run" and rows["C1 ℓ2"]["ours"] == "1 of 2 runs found"
    found["C1 ℓ2 seed 1"] = c1_run(tmp_path, "l2b", 10, 11)
    rows = {r["claim"]: r for r in claims.decide(found, P)}
    assert rows["C1 ℓ2"]["verdict"] == "does not hold"
    assert rows["C2 (eq3)"]["verdict"] == "holds" and rows["C2 (hinton)"]["verdict"] == "not run"
    assert rows["C3"]["verdict"] == "not run" and rows["C4"]["verdict"] == "holds"
    assert rows["C5"]["verdict"] == "not run"
    assert all(r["paper"] and r["statement"] for r in rows.values())
    assert set(r["verdict"] for r in rows.values()) <= set(claims.VERDICTS)
