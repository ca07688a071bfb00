"""Every number this project quotes from the paper (Wei, Guo & Wang, "Identifying and
Understanding Cross-Class Features in Adversarial Training", ICML 2025), in one place.

All of them are for the paper's protocol: CIFAR-10, PreActResNet-18, PGD-10 AT for 200
epochs (Table 2), unless a name says otherwise.  Code and notebooks import them from here
rather than typing them, so a number the book prints beside ours has one source.
"""
from __future__ import annotations

__all__ = ["TABLE1", "TABLE1_EARLY_EPOCH", "EPOCHS", "BEST_EPOCH_PGD_AT", "UNDERFITTED_EPOCH",
           "FAST_AT_CAS_AFTER_CO", "AT_CAS_TYPICAL_LOWER_BOUND", "STANDARD_EPOCHS",
           "table1_cas_gaps"]

# Table 1 (Section 5.1): ε -> CAS / RA% at epoch 10, at the best and at the last
# checkpoint of l-inf PGD-AT: (CAS_10, RA_10, CAS_best, RA_best, CAS_last, RA_last).
TABLE1 = {
    "8/255": (16.7, 36.9, 25.6, 47.8, 9.0, 42.5),
    "12/255": (15.6, 29.8, 18.9, 38.7, 8.7, 34.1),
    "16/255": (14.4, 23.8, 17.5, 31.3, 8.4, 28.1),
}
TABLE1_EARLY_EPOCH = 10          # Table 1's first column
EPOCHS = 200                     # Table 2: training epochs
BEST_EPOCH_PGD_AT = 108          # Section 3.2: best test RA at the 108th of 200 epochs
UNDERFITTED_EPOCH = 70           # Section 3.2 / Fig. 2: the under-fitted checkpoint
FAST_AT_CAS_AFTER_CO = 2.1       # Section 5.2 / Fig. 7: CAS after catastrophic overfitting
AT_CAS_TYPICAL_LOWER_BOUND = 20  # Section 5.4: AT's CAS is "generally > 20"
STANDARD_EPOCHS = (50, 100, 150, 200)  # Section 5.4 / Fig. 9: epochs shown


def table1_cas_gaps() -> dict[str, float]:
    """CAS(best) - CAS(last) per ε of Table 1, rounded to the table's one decimal."""
    return {eps: round(v[2] - v[4], 1) for eps, v in TABLE1.items()}
