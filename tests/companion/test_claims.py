"""xcf.companion.claims, the rule book: each rule on run folders written by hand whose verdict is
known from the numbers planted in them (not from the code under test)."""
import numpy as np
import pytest

from run_folders import make_run
from xcf.companion import claim_verdicts, claims, claims_page, paired


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


def curve_run(tmp_path, name, *, best=10, epochs=40, fall=0.06, cas=None, holdout=None,
              ci_best=None, ci_last=None, test_spike=None):
    """A run whose test RA rises linearly to 0.5 at epoch ``best`` and then falls by
    ``fall`` to the last epoch while train RA rises (robust overfitting when ``fall`` >=
    3 points); held-out RA follows test RA unless ``holdout`` (a list) is given;
    ``test_spike``: an epoch whose test RA alone jumps to 0.6 (a lucky evaluation).
    ``cas``: the CAS per epoch (a list), default 10 before the best and 7 after it."""
    ra = [0.2 + 0.3 * e / best if e <= best else 0.5 - fall * (e - best) / (epochs - best)
          for e in range(1, epochs + 1)]
    hold = holdout or list(ra)
    if test_spike:
        ra[test_spike - 1] = 0.6
    cas = cas or [10.0 if e <= best else 7.0 for e in range(1, epochs + 1)]
    extra = {e: {"holdout_robust_acc": hold[e - 1]} for e in range(1, epochs + 1)}
    if ci_best:
        extra[best]["cas_ci95"] = list(ci_best)
    if ci_last:
        extra[epochs]["cas_ci95"] = list(ci_last)
    return make_run(tmp_path, ra, cas, extra=extra, name=name,
                    train_ra=[0.01 * e for e in range(1, epochs + 1)])


def gap_runs(tmp_path, gaps, prefix="s", **kw):
    """One overfitting run per CAS gap (best 10, last 10 - gap)."""
    return [curve_run(tmp_path, f"{prefix}{i}", cas=[10.0] * 39 + [10.0 - g], **kw)
            for i, g in enumerate(gaps)]


def t_interval(values):
    """By hand: mean ± t(0.975, n - 1) sd / sqrt(n) (t from a table: 4.303 for n = 3)."""
    v = np.asarray(values, dtype=float)
    half = {3: 4.303, 5: 2.776}[len(v)] * v.std(ddof=1) / np.sqrt(len(v))
    return v.mean() - half, v.mean() + half


def test_c1_fall_is_decided_by_the_paired_interval_over_seeds(tmp_path):
    v = claims.c1(gap_runs(tmp_path, [3.0, 2.5, 2.0]))        # 2.5 ± 4.303 * 0.5 / √3
    lo, hi = t_interval([3.0, 2.5, 2.0])
    assert v.verdict == "holds" and (v.agree, v.tested) == (3, 3)
    assert f"+2.50 [{lo:+.2f}, {hi:+.2f}] (3/3 > 0)" in v.ours and lo > 0
    # the same mean with more spread: the interval contains 0
    v = claims.c1(gap_runs(tmp_path, [4.5, 2.5, 0.5], prefix="w"))
    assert v.verdict == "inconclusive" and t_interval([4.5, 2.5, 0.5])[0] < 0
    v = claims.c1(gap_runs(tmp_path, [-3.0, -2.5, -2.0], prefix="n"))
    assert v.verdict == "does not hold"
    assert claims.c1([]).verdict == "not run"


def test_c1_fall_premise_is_robust_overfitting_not_a_best_before_the_last(tmp_path):
    """A best-to-last fall of one point (the best is before the last, so the paper's
    comparison applies) is not robust overfitting: every seed fails the premise."""
    runs = gap_runs(tmp_path, [3.0, 2.5, 2.0], fall=0.01)
    v = claims.c1(runs)
    assert v.verdict == "not tested" and v.tested == 0
    assert "in 0/3 seeds (falls 0.9, 0.9, 0.9 pts)" in v.premise  # 5-epoch means
    assert claims.c1_specificity(runs).verdict == "not tested"


def test_c1_counts_gaps_beyond_both_bootstrap_intervals(tmp_path):
    runs = [curve_run(tmp_path, "clear", cas=[10.0] * 39 + [7.0], ci_best=(9.5, 10.5),
                      ci_last=(6.5, 7.5)),
            curve_run(tmp_path, "overlap", cas=[10.0] * 39 + [9.8], ci_best=(9.5, 10.5),
                      ci_last=(9.3, 10.3))]
    assert "beyond both bootstrap intervals in 1/2" in claims.c1(runs).ours


def test_the_best_epoch_is_chosen_on_held_out_images_and_the_test_row_says_so(tmp_path):
    """A lucky test evaluation at epoch 30 (RA 0.6) is the paper's best; the held-out
    images do not see it, so the held-out reading keeps epoch 10 and its CAS."""
    cas = [10.0 if e <= 10 else 12.0 if e == 30 else 7.0 for e in range(1, 41)]
    runs = [curve_run(tmp_path, f"s{i}", cas=cas, test_spike=30) for i in range(3)]
    from xcf.companion import evidence

    assert evidence.reading(runs[0]).best["epoch"] == 10
    assert evidence.reading(runs[0], "test").best["epoch"] == 30
    assert "CAS best 10.00" in claims.c1(runs).ours
    test_selected = claims.c1(runs, claim="C1 fall, test-selected", select="test")
    assert "CAS best 12.00" in test_selected.ours and "test RA" in test_selected.statement


def test_c1_rise_compares_table_1s_early_epoch_with_the_best(tmp_path):
    """Epoch 10 of 200 is epoch 2 of 40; CAS there 6 against 10 at the best: a rise."""
    rising = [6.0 if e <= 2 else 10.0 if e <= 10 else 7.0 for e in range(1, 41)]
    v = claims.c1_rise([curve_run(tmp_path, f"r{i}", cas=rising) for i in range(3)])
    assert v.verdict == "holds" and "CAS best − epoch 2 +4.00" in v.ours
    falling = [14.0 if e <= 2 else 10.0 if e <= 10 else 7.0 for e in range(1, 41)]
    v = claims.c1_rise([curve_run(tmp_path, f"f{i}", cas=falling) for i in range(3)])
    assert v.verdict == "does not hold"
    # Fig. 2's epoch 70 of 200 is epoch 14 of 40, after this best (10): not tested
    v = claims.c1_rise([curve_run(tmp_path, f"g{i}", cas=rising) for i in range(3)], "fig2")
    assert v.verdict == "not tested" and "epoch 14 before the best epoch in 0/3" in v.premise
    # a best at epoch 1 leaves no under-fitted checkpoint before it
    early = [curve_run(tmp_path, f"e{i}", best=1, cas=rising) for i in range(3)]
    assert claims.c1_rise(early).verdict == "not tested"


ZIG = [1, -1, 1, 1, -1, -1, 1, -1, 1, 1, -1, 1, -1, -1, 1, -1, 1, -1, -1, 1, 1, -1, 1, -1,
       -1, 1, 1, -1, 1, -1]  # epochs 11-40: an irregular zig-zag around the trend


def tracked_run(tmp_path, name, sign):
    """After the best (epoch 10) test RA and CAS both fall linearly; around that trend
    CAS moves with RA (``sign`` +1) or against it (-1)."""
    ra = [0.2 + 0.03 * e for e in range(1, 11)] + [0.5 - 0.002 * t + 0.01 * z
                                                    for t, z in enumerate(ZIG, 1)]
    cas = [10.0] * 10 + [10 - 0.1 * t + 0.3 * sign * z for t, z in enumerate(ZIG, 1)]
    return make_run(tmp_path, ra, cas, name=name, train_ra=[0.01 * e for e in range(1, 41)],
                    extra={e: {"holdout_robust_acc": ra[e - 1] if e != 10 else 0.9}
                           for e in range(1, 41)})


def test_c1_specificity_asks_whether_cas_follows_ra_beyond_time(tmp_path):
    follows = [tracked_run(tmp_path, f"f{i}", +1) for i in range(3)]
    v = claims.c1_specificity(follows)
    assert v.verdict == "holds" and v.ours.split(": ")[1].startswith("+0.9")
    against = [tracked_run(tmp_path, f"a{i}", -1) for i in range(3)]
    assert claims.c1_specificity(against).verdict == "not specific"


def test_c2_has_three_parts_each_paired_over_seeds(tmp_path):
    at = gap_runs(tmp_path, [3.0, 3.0, 3.0], prefix="a")
    kd = gap_runs(tmp_path, [0.5, 1.0, 0.0], prefix="k")
    rel, own, rob = claims.c2(list(zip(at, kd)), form="eq3")
    assert [v.claim for v in (rel, own, rob)] == ["C2 (eq3)", "C2 (eq3) own gap",
                                                  "C2 (eq3) robustness"]
    assert rel.verdict == "holds" and "+2.50" in rel.ours      # 3 - (0.5, 1, 0)
    # 0.5 ± 1.24 contains 0, but with no intervals the point comparison finds a gap
    # in 2 of 3 seeds: more than half, so not read as "no gap"
    assert own.verdict == "inconclusive"
    overlapping = gap_runs(tmp_path, [0.5, 1.0, 0.0], prefix="o", ci_best=(9, 11),
                           ci_last=(8.5, 10.5))
    assert claims.c2(list(zip(at, overlapping)))[1].verdict == "holds"
    assert rob.verdict == "inconclusive"                       # identical RA curves: 0 ± 0
    big = gap_runs(tmp_path, [2.5, 3.0, 3.5], prefix="b")      # KD keeps a clear gap
    assert claims.c2(list(zip(at, big)))[1].verdict == "does not hold"
    no_gap = gap_runs(tmp_path, [-0.5] * 3, prefix="z")
    rel = claims.c2(list(zip(no_gap, kd)))[0]
    assert rel.verdict == "not tested" and rel.claim == "C2"


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
    rows = claims_page.fast_at_table([("a", calm), ("b", co)])
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
    assert claims_page.fast_at_table([("e 0.3", chance)])[0]["learned robustness"] == "no (< 2/10)"
    # the same curve over K = 3 classes (chance 33%, floor 67%) is no robustness either;
    # over K = 10 at 10x the RA it is a collapse whose CAS falls
    assert claims.c4([("x", make_run(tmp_path, [0.5, 0.3, 0.1], [6, 8, 2],
                                     name="k3"))]).verdict == "not tested"
    high = make_run(tmp_path, [0.96, 0.5, 0.1], [8, 8, 2], name="high", matrices=ten)
    assert claims.c4([("y", high)]).verdict == "holds"


def test_c5_needs_lower_and_flat_clean_cas_paired_over_seeds(tmp_path):
    at = [curve_run(tmp_path, f"at{i}") for i in range(3)]          # best CAS 10
    flat = [make_run(tmp_path, [0.0] * 6, [2, 4, 8, 8, 8.2, 8 + i / 10], name=f"flat{i}")
            for i in range(3)]                                      # cas_clean = cas / 2
    v = claims.c5(list(zip(flat, at)))
    assert v.verdict == "holds" and "standard 4.05 ± 0.05" in v.ours
    rising = [make_run(tmp_path, [0.0] * 6, [2, 4, 6, 8, 10, 12 + i / 10], name=f"rise{i}")
              for i in range(3)]                                    # +2 of a mean of 5
    assert claims.c5(list(zip(rising, at))).verdict == "mixed"
    high = [make_run(tmp_path, [0.0] * 4, [30 + i] * 4, name=f"high{i}") for i in range(3)]
    assert claims.c5(list(zip(high, at))).verdict == "does not hold"   # 15 > 10
    assert claims.c5(list(zip(flat, at))[:1]).verdict == "inconclusive"  # one seed


P = {"train": {"epochs": 3}, "seeds": [0, 1, 2], "across_seeds": [0, 1], "kd_seeds": [0, 1, 2],
     "kd_forms": ["eq3", "hinton"],
     "kd_lambda": 0.5, "kd_temperature": 2.0, "eps_list": [0.1], "eps_seeds": [0],
     "fast": [{"label": "a", "overrides": {"eps": 0.2}}], "fast_seeds": [0],
     "standard_seeds": [0], "across": [{"label": "ℓ2", "overrides": {"norm": "l2"}}]}


def test_decide_reads_each_claims_runs_by_their_study_names(tmp_path):
    found = {f"C1 seed {s}": curve_run(tmp_path, f"s{s}", cas=[10.0] * 39 + [7.0 + s / 4])
             for s in (0, 1, 2)}
    found.update({f"C2 KD-AT eq3 seed {s}": curve_run(tmp_path, f"k{s}", cas=[10.0] * 39 + [9.5])
                  for s in (0, 1, 2)})
    found["C1 ℓ2 seed 0"] = curve_run(tmp_path, "l2", cas=[10.0] * 39 + [11.0])
    found["C4 fast AT a seed 0"] = make_run(tmp_path, [0.3, 0.5, 0.1], [6, 8, 2], name="f",
                                            matrices={e: np.eye(10) for e in (1, 2, 3)})
    rows = {r["claim"]: r for r in claim_verdicts.decide(found, P)}
    assert list(rows) == ["C1 rise", "C1 rise (Fig. 2's epoch)", "C1 fall", "C1 specificity",
                          "C1 fall, test-selected", "C1 ℓ2", "C2 (eq3)", "C2 (eq3) own gap",
                          "C2 (eq3) robustness", "C2 (hinton)", "C2 (hinton) own gap",
                          "C2 (hinton) robustness", "C3", "C3 large ε", "C4", "C5"]
    assert rows["C1 fall"]["verdict"] == "holds"               # gaps 3, 2.75, 2.5
    assert rows["C1 rise"]["verdict"] == "inconclusive"        # CAS 10 early and best: 0 ± 0
    # one of the two ℓ2 seeds: not decided from part of its seeds
    assert rows["C1 ℓ2"]["verdict"] == "not run" and rows["C1 ℓ2"]["ours"] == "1 of 2 runs found"
    found["C1 ℓ2 seed 1"] = curve_run(tmp_path, "l2b", cas=[10.0] * 39 + [11.0])
    rows = {r["claim"]: r for r in claim_verdicts.decide(found, P)}
    assert rows["C1 ℓ2"]["verdict"] == "inconclusive"          # two seeds give no interval
    assert rows["C2 (eq3)"]["verdict"] == "holds"              # 3 - 0.5 etc.
    assert rows["C2 (hinton)"]["verdict"] == "not run"
    assert rows["C3"]["verdict"] == "not run" and rows["C4"]["verdict"] == "holds"
    assert rows["C5"]["verdict"] == "not run"
    assert all(r["paper"] and r["statement"] for r in rows.values())
    assert set(r["verdict"] for r in rows.values()) <= set(claims.VERDICTS)


def test_partial_spearman_agrees_with_the_textbook_formula():
    """Independent truth: r_xy.z = (r_xy - r_xz r_yz) / sqrt((1 - r_xz²)(1 - r_yz²)) on
    Spearman correlations, against the rule book's residualised ranks."""
    from scipy import stats

    rng = np.random.default_rng(0)
    z = rng.normal(size=30)
    x, y = z + rng.normal(size=30), z + rng.normal(size=30)
    r = lambda a, b: stats.spearmanr(a, b)[0]  # noqa: E731
    want = (r(x, y) - r(x, z) * r(y, z)) / np.sqrt((1 - r(x, z) ** 2) * (1 - r(y, z) ** 2))
    got, p = paired.partial_spearman(x, y, z)
    assert abs(got - want) < 1e-9 and 0 < p < 1


def test_a_whole_row_repeats_c1s_three_parts_on_a_second_setting_with_its_own_seeds(tmp_path):
    """An ``across`` row with ``whole: true`` (the setting of the search that showed the
    paper's shape) gets C1's rise, fall and control under its label, on its own seeds, and
    reads *not run* until every one of them is there."""
    Q = {**P, "across": [{"label": "wide", "overrides": {"model": "m"}, "whole": True,
                          "seeds": [0, 1, 2]}]}
    found = {f"C1 wide seed {s}": curve_run(tmp_path, f"w{s}", cas=[10.0] * 39 + [7.0 + s / 4])
             for s in (0, 1)}
    rows = {r["claim"]: r for r in claim_verdicts.decide(found, Q)}
    parts = ["C1 rise, wide", "C1 fall, wide", "C1 specificity, wide"]
    assert all(rows[p]["verdict"] == "not run" and rows[p]["ours"] == "2 of 3 runs found"
               for p in parts)
    found["C1 wide seed 2"] = curve_run(tmp_path, "w2", cas=[10.0] * 39 + [7.5])
    rows = {r["claim"]: r for r in claim_verdicts.decide(found, Q)}
    assert rows["C1 fall, wide"]["verdict"] == "holds"          # gaps 3, 2.75, 2.5
    assert rows["C1 rise, wide"]["verdict"] == "inconclusive"   # CAS 10 early and best
    assert "C1 wide" not in rows and rows["C1 fall"]["verdict"] == "not run"


# ------------------------------------------------------------------ a section page's verdict

def test_a_page_verdict_is_the_claims_pages_rule_on_the_pages_runs(tmp_path, capsys):
    """Each page states its claim by the study's rule on its own runs (one seed): the
    verdicts printed are the rule's, and those returned."""
    run = curve_run(tmp_path, "at", cas=[10.0] * 39 + [7.0])       # overfits, gap 3
    v = claim_verdicts.page_verdict("C1", {"PGD-AT": run}, "cpu")
    assert [x.row() for x in v] == [claims.c1([run]).row()]
    assert v[0].verdict == "inconclusive"                         # one seed: no interval
    assert capsys.readouterr().out == v[0].say("cpu") + "\n"
    assert v[0].say("cpu").startswith("C1 fall, PGD-AT: CAS(best) > CAS(last): "
                                      "inconclusive at the cpu profile\n  ours: ")


def test_a_page_verdict_whose_premise_failed_is_not_tested(tmp_path, capsys):
    """Made-up runs that miss each claim's premise: no robust overfitting (C1), no
    PGD-AT gap (C2), too few ε values (C3), no collapse (C4)."""
    calm = curve_run(tmp_path, "calm", fall=0.01, cas=[10.0] * 39 + [7.0])  # falls 1 pt
    [c1] = claim_verdicts.page_verdict("C1", {"PGD-AT": calm}, "smoke")
    assert c1.verdict == "not tested" and "in 0/1 seeds" in c1.premise
    no_gap = gap_runs(tmp_path, [-0.5], prefix="z")[0]
    kd = gap_runs(tmp_path, [0.5], prefix="k")[0]
    rel, own, rob = claim_verdicts.page_verdict("C2", {"PGD-AT": no_gap, "KD-AT": kd},
                                                "smoke", form="eq3")
    assert rel.claim == "C2 (eq3)" and rel.verdict == "not tested"
    assert rel.premise == "PGD-AT's CAS gap > 0 in 0/1 seeds"
    assert [own.claim, rob.claim] == ["C2 (eq3) own gap", "C2 (eq3) robustness"]
    eps = {e: run for e, _, run in eps_runs(tmp_path, [(1, .02), (2, .04), (3, .06)])}
    c3, large = claim_verdicts.page_verdict("C3", eps, "smoke", early_epoch=1)
    assert c3.verdict == "not tested" and "3 ε values (needs ≥ 6)" in c3.premise
    assert large.claim == "C3 large ε" and large.verdict != "not run"
    ten = {e: np.eye(10) for e in (1, 2, 3)}
    [c4] = claim_verdicts.page_verdict(
        "C4", {"ε 0.2, step 0.25": make_run(tmp_path, [0.1, 0.3, 0.28], [6, 8, 7],
                                            name="fast", matrices=ten)}, "smoke")
    assert c4.verdict == "not tested" and "ε 0.2, step 0.25: no collapse" in c4.ours
    out = capsys.readouterr().out
    assert out == "".join(v.say("smoke") + "\n" for v in (c1, rel, own, rob, c3, large, c4))


def test_a_page_verdict_on_standard_training_and_on_fast_at_that_collapsed(tmp_path):
    at = curve_run(tmp_path, "at")                                  # best CAS 10
    flat = make_run(tmp_path, [0.0] * 6, [2, 4, 8, 8, 8.2, 8.1], name="flat")  # clean 4.05
    [c5] = claim_verdicts.page_verdict("C5", {"standard": flat, "PGD-AT": at}, "smoke")
    assert c5.row() == claims.c5([(flat, at)]).row() and "standard 4.05" in c5.ours
    ten = {e: np.eye(10) for e in (1, 2, 3)}
    co = make_run(tmp_path, [0.3, 0.5, 0.1], [6, 8, 2], name="co", matrices=ten)
    [c4] = claim_verdicts.page_verdict("C4", {"b": co}, "smoke")
    assert c4.verdict == "holds" and "b: CAS 8.00 at best (epoch 2" in c4.ours


def test_a_page_missing_a_run_says_nothing_and_a_wrong_run_is_named(tmp_path, capsys):
    run = curve_run(tmp_path, "at")
    assert claim_verdicts.page_verdict("C1", {"PGD-AT": None}, "cpu") == []
    assert claim_verdicts.page_verdict("C2", {"PGD-AT": run, "KD-AT": None}, "cpu") == []
    assert claim_verdicts.page_verdict("C3", {0.1: run, 0.2: None}, "cpu") == []
    assert claim_verdicts.page_verdict("C4", {}, "cpu") == []
    assert capsys.readouterr().out == ""
    with pytest.raises(ValueError, match="C5 on a page reads the runs standard, PGD-AT"):
        claim_verdicts.page_verdict("C5", {"PGD-AT": run}, "cpu")
    with pytest.raises(ValueError, match="a page states one of C1, C2, C3, C4, C5"):
        claim_verdicts.page_verdict("C6", {"PGD-AT": run}, "cpu")
