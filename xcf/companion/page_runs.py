"""Each page's runs, declared once: which runs a notebook trains at a profile's knobs.

A section page trains (or finds) a few runs, each a base config (its ``train`` or
``teacher`` knob) with overrides.  This module is the one place that says which:

- one function per kind of run gives its overrides of the page's base config:
  :func:`at_eps` (PGD-AT at another ε), :func:`l2_at` (ℓ2 PGD-AT), :func:`standard`,
  :func:`fast_at` (notebook 07's fast AT); the KD-AT student of Eq. 3 (Wei, Guo & Wang,
  ICML 2025) is its teacher's config with :func:`xcf.companion.locate.kd_overrides`,
  which names the teacher's run folder;
- :func:`page_runs` lists the runs of a notebook at a profile's knobs (its section of
  ``notebooks/params/<profile>.yaml``) as :class:`PageRun` entries, in the order they
  train (a KD teacher before its student); :func:`planted_cnn` is the config of the
  small CNN that notebook 02 trains in memory.

Who reads it: the figures (:mod:`xcf.companion.figures`, each locating a page's run by
its overrides here), the plans (:func:`xcf.companion.costs.notebook_runs`, and through
them ``xcf plan`` and ``xcf launch``, :mod:`xcf.cli.launch`), notebook 02 (its training
settings) and 07 (its fast-AT run), and the Claims page's studies
(:func:`xcf.companion.claim_runs.studies_of`: C3's ε and C5's standard training are the
overrides of :func:`at_eps` and :func:`standard`).  A run's key is its config's, so
declaring a run here changes no key.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Sequence

from xcf.companion.locate import kd_overrides

__all__ = ["TRAINING_NOTEBOOKS", "PageRun", "PAGES", "at_eps", "l2_at",
           "standard", "fast_at", "planted_cnn", "page_runs"]

Knobs = Mapping[str, Any]

# Notebooks that train run folders, in book order (the others read them, or train nothing;
# notebook 02 trains its small CNN in memory, in a few minutes, each time it runs; the
# Claims page's runs are its studies, xcf.companion.claim_runs.studies_of).
TRAINING_NOTEBOOKS = ("03_at_dynamics", "04_soft_labels", "05_perturbation_bound",
                      "06_norms_datasets_architectures", "07_fast_at",
                      "08_instance_wise_and_standard", "09_saliency", "11_claims",
                      "13_measure_your_model")


def at_eps(eps: float) -> dict:
    """PGD-AT at radius ``eps`` (Figs. 1 and 4, Table 1; the Claims page's C3)."""
    return {"eps": eps}


def l2_at(l2_eps: float) -> dict:
    """ℓ2 PGD-AT at radius ``l2_eps`` (Figs. 6 and 8)."""
    return {"norm": "l2", "eps": l2_eps}


def standard() -> dict:
    """Standard training on clean examples (Fig. 9; the Claims page's C5)."""
    return {"objective": "standard"}


def fast_at(K: Knobs) -> dict:
    """Notebook 07's fast AT (Fig. 7): FGSM with step ``K["fast_alpha"]`` at radius
    ``K["fast_eps"]`` for ``K["epochs"]`` epochs."""
    return {"objective": "fast_at", "eps": K["fast_eps"],
            "fast_at": {"alpha": K["fast_alpha"]}, "epochs": K["epochs"]}


def planted_cnn(K: Knobs) -> dict:
    """The config of notebook 02's run: PGD-AT of a small CNN on planted data (5 attack
    steps in training, ``K["attack_steps"]`` in Algorithm 1), which the notebook trains
    in memory with these settings."""
    return dict(dataset="planted", n_train=K["n_train"], n_test=K["n_test"],
                model="small_cnn", model_kwargs={"width": K["width"]}, normalize=False,
                eps=K["eps"], attack_steps=5, eval_steps=K["attack_steps"],
                epochs=K["epochs"], batch_size=64, lr=K["lr"], seed=K["seed"])


@dataclass(frozen=True)
class PageRun:
    """One run of a page: ``label``, the page's base config (``base``) and the
    ``overrides`` that make this run of it.  A KD-AT student names its teacher (another
    :class:`PageRun` of the page) and its Eq. 3 knobs (``kd``: ``kd_lambda``,
    ``kd_temperature``, ``kd_form``); its config needs the teacher's run folder."""

    label: str
    base: Mapping[str, Any]
    overrides: Mapping[str, Any] = field(default_factory=dict)
    teacher: Optional["PageRun"] = None
    kd: Optional[Mapping[str, Any]] = None

    def config(self, teacher_folder: Any = None) -> dict:
        """The run's config: ``{**base, **overrides}``; a KD student's also names its
        teacher's run folder ``teacher_folder`` (:func:`xcf.companion.locate.kd_overrides`)."""
        out = {**self.base, **self.overrides}
        if self.teacher is not None:
            if teacher_folder is None:
                raise ValueError(f"{self.label}: a KD student's config names its teacher's "
                                 "run folder; pass teacher_folder")
            out.update(kd_overrides(teacher_folder, self.kd["kd_lambda"],
                                    self.kd["kd_temperature"], self.kd["kd_form"]))
        return out


def _kd(K: Knobs) -> list[PageRun]:
    teacher = PageRun("teacher: PGD-AT", K["teacher"])
    kd = {k: K[k] for k in ("kd_lambda", "kd_temperature", "kd_form")}
    return [teacher, PageRun("student: KD-AT (Eq. 3)", K["teacher"], teacher=teacher, kd=kd)]


def _pgd_at(K: Knobs, *more: tuple[str, dict]) -> list[PageRun]:
    """The page's PGD-AT run of ``K["train"]``, then ``more`` (label, overrides)."""
    return [PageRun("PGD-AT", K["train"]),
            *(PageRun(label, K["train"], over) for label, over in more)]


def _eps(eps: Sequence[float]) -> list[tuple[str, dict]]:
    return [(f"PGD-AT ε {e:.4g}", at_eps(e)) for e in eps]


# notebook -> its runs at a profile's knobs (its section of notebooks/params/<profile>.yaml)
PAGES: dict[str, Callable[[Knobs], list[PageRun]]] = {
    "02_measuring_cross_class_features": lambda K: [
        PageRun("PGD-AT, planted", planted_cnn(K))],
    "03_at_dynamics": lambda K: _pgd_at(K, *_eps(K["curve_eps"])),
    "04_soft_labels": _kd,
    "05_perturbation_bound": lambda K: _pgd_at(
        K, *_eps(dict.fromkeys([*K["eps_list"], *K["table_eps"]]))),
    "06_norms_datasets_architectures": lambda K: _pgd_at(
        K, *((f"PGD-AT, {name}", dict(over)) for name, over in K["datasets"].items()),
        ("ℓ2 PGD-AT", l2_at(K["l2_eps"])), ("PGD-AT, DeiT-Ti", dict(K["vit"]))),
    "07_fast_at": lambda K: [PageRun("fast AT", K["train"], fast_at(K))],
    "08_instance_wise_and_standard": lambda K: _pgd_at(
        K, ("ℓ2 PGD-AT", l2_at(K["l2_eps"])), ("standard training", standard())),
}

# pages whose runs are not built from a `train` knob (every other page needs one)
_OWN_CONFIG = ("02_measuring_cross_class_features", "04_soft_labels")


def page_runs(notebook: str, knobs: Knobs) -> list[PageRun]:
    """The runs ``notebook`` trains with ``knobs`` (its section of a profile), in the
    order it trains them (:data:`PAGES`); a page not listed there trains the PGD-AT run
    of its ``train`` knob where it has one (09, 13), else nothing (a page that only
    reads runs, or the Claims page, whose studies are :mod:`xcf.companion.claim_runs`')."""
    K = dict(knobs)
    if notebook in _OWN_CONFIG:
        return PAGES[notebook](K)
    if "train" not in K:
        return []
    return PAGES.get(notebook, _pgd_at)(K)
