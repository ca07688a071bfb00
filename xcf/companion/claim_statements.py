"""The claims in words: what each claim part states, and what the paper reports for it.

The rule book (:mod:`xcf.companion.claims`) decides each part; these are the two columns
the Claims page prints beside its verdict and our numbers.  :data:`STATEMENT` says what a
part claims, :data:`PAPER` what the paper reports for it (CIFAR-10, PreActResNet-18, 200
epochs), built from the numbers of :mod:`xcf.companion.paper` so that each has one source.
"""
from __future__ import annotations

from xcf.companion import paper

__all__ = ["PAPER", "STATEMENT"]

_T1 = paper.TABLE1["8/255"]
_GAPS = paper.table1_cas_gaps()
PAPER = {  # what the paper reports for each claim (CIFAR-10, PreActResNet-18, 200 epochs)
    "C1": f"CAS {_T1[2]} best (epoch {paper.BEST_EPOCH_PGD_AT}) vs {_T1[4]} last; "
          f"RA {_T1[3]}% vs {_T1[5]}% (Table 1, ε = 8/255)",
    "C1 across": "best > last for ℓ2, CIFAR-100, Tiny-ImageNet and DeiT-Ti "
                 "(Figs. 5-6; values only in the figures)",
    "C2": "no significant gap between KD-AT's best and last matrices "
          "(Fig. 3; values only in the figure)",
    "C3": "gap grows from ε = 2/255 to 8/255 (Fig. 4; values only in the figure) and "
          "shrinks at larger ε with the RA gap (Table 1)",
    "C3 large ε": "Table 1, ε " + ", ".join(e.split("/")[0] for e in _GAPS) + "/255: gaps "
                  + ", ".join(f"{g}" for g in _GAPS.values())
                  + "; early and best CAS fall with ε",
    "C4": f"CAS plummets to {paper.FAST_AT_CAS_AFTER_CO} after catastrophic overfitting, "
          "RA near zero (Fig. 7)",
    "C5": "standard training's CAS well below AT's, which is "
          f"'generally > {paper.AT_CAS_TYPICAL_LOWER_BOUND}', and stable (Fig. 9)",
}
PAPER.update({
    "C1 rise": f"CAS {_T1[0]} at epoch {paper.TABLE1_EARLY_EPOCH} < {_T1[2]} at the best "
               f"(Table 1); epoch {paper.UNDERFITTED_EPOCH} below epoch "
               f"{paper.BEST_EPOCH_PGD_AT} (Fig. 2)",
    "C2 own gap": "no significant gap between KD-AT's best and last matrices, "
                  "nor a large gap in CAS (Fig. 3)",
    "C2 robustness": "soft labels improve robustness; KD-AT mitigates robust overfitting "
                     "(Sec. 3.3)",
})
STATEMENT = {
    "C1": "PGD-AT: CAS(best) > CAS(last)",
    "C1 fall": "PGD-AT: CAS(best) > CAS(last)",
    "C1 specificity": "after the best epoch CAS follows RA, beyond their trend in time",
    "C2 own gap": "KD-AT: no significant CAS gap between best and last",
    "C2 robustness": "KD-AT's best RA > PGD-AT's",
    "C2": "KD-AT's CAS gap < PGD-AT's",
    "C3": "the CAS gap moves with the RA gap over ε",
    "C3 large ε": "at large ε, early CAS, best CAS and the gap fall with ε",
    "C4": "fast AT loses CAS at catastrophic overfitting",
    "C5": "standard training: clean CAS below AT's, flat in the second half",
}
