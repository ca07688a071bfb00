"""xcf: cross-class features in adversarial training.

Companion library to Wei, Guo & Wang, *Identifying and Understanding Cross-Class Features in
Adversarial Training*, ICML 2025.  The face, five names::

    import xcf
    m = xcf.measure(model, x, y, eps=8/255)   # Algorithm 1 on any classifier ending in a Linear
    m.cas, m.accuracy, m.C                    # CAS (Eq. 7), robust accuracy, C (Eq. 6)
    xcf.cas(C)                                # Eq. 7 of a matrix
    xcf.PGD(eps=8/255, steps=20)              # the evaluation attack
    xcf.load("fashion-mnist", n_test=1000)    # a dataset as in-memory tensors
    xcf.as_feature_classifier(model, mean, std)  # any classifier as head(features(x))

Each is defined once, in the module the API page lists it under (``xcf.attribution``,
``xcf.attacks``, ``xcf.data``, ``xcf.models``).  Beneath the face: ``xcf.theory`` (Section 4's
Gaussian model), ``xcf.runs`` (run folders), ``xcf.train`` (training a config into one),
``xcf.companion`` (the book's claims, figures and profiles) and ``xcf.cli`` (the command line).
"""

__version__ = "0.1.0"

#: The names ``import xcf`` gives, each re-exported from its one defining module.
FACE = {"measure": "xcf.attribution", "cas": "xcf.attribution", "PGD": "xcf.attacks",
        "load": "xcf.data", "as_feature_classifier": "xcf.models"}

__all__ = ["__version__", "measure", "cas", "PGD", "load", "as_feature_classifier"]


def __getattr__(name: str):
    """The face loads on first use (PEP 562), so ``import xcf`` does not load torch: the
    command line sets its thread policy before torch loads (:mod:`xcf.cli.main`)."""
    if name in FACE:
        import importlib

        value = getattr(importlib.import_module(FACE[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'xcf' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *FACE])
