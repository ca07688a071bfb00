"""The figures page's gallery: the paper's figures by name (:data:`FIGURES`), each drawn
from a profile's section of the page whose runs it reads, by :class:`Gallery`."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import matplotlib.pyplot as plt

from xcf.companion.figures import (fig10_epochs, fig11_saliency, fig1_accuracy_curves, fig2_three_stages, fig3ab_kd, fig3c_saliency, fig4_differences, fig5_datasets, fig6_norm_and_vit, fig7_fast_at, fig8_instance_wise, fig9_standard, table1)
from xcf.companion.locate import Committed, Locator
from xcf.companion.profiles import profile_knobs, results_dir
from xcf.runs.folder import default_runs_dir

__all__ = ["FIGURES", "Gallery"]


# The paper's figures, in its order: name -> (the notebook whose knobs it reads, how it
# draws from a locator and those knobs, a profile's section of that notebook).
FIGURES: dict[str, tuple[str, Callable[[Locator, Mapping[str, Any]], Any]]] = {
    "Fig. 1": ("03_at_dynamics",
               lambda loc, k: fig1_accuracy_curves(loc, k["train"], k["curve_eps"])),
    "Fig. 2": ("03_at_dynamics", lambda loc, k: fig2_three_stages(loc, k["train"])),
    "Fig. 3a/b": ("04_soft_labels", lambda loc, k: fig3ab_kd(
        loc, k["teacher"], k["kd_lambda"], k["kd_temperature"], k["kd_form"])),
    "Fig. 3c": ("09_saliency", lambda loc, k: fig3c_saliency(loc, k["train"])),
    "Fig. 4": ("05_perturbation_bound",
               lambda loc, k: fig4_differences(loc, k["train"], k["eps_list"])),
    "Table 1": ("05_perturbation_bound",
                lambda loc, k: table1(loc, k["train"], k["table_eps"], k["early_epoch"])),
    "Fig. 5": ("06_norms_datasets_architectures",
               lambda loc, k: fig5_datasets(loc, k["train"], k["datasets"])),
    "Fig. 6": ("06_norms_datasets_architectures",
               lambda loc, k: fig6_norm_and_vit(loc, k["train"], k["l2_eps"], k["vit"])),
    "Fig. 7": ("07_fast_at", lambda loc, k: fig7_fast_at(
        loc, k["train"], k["fast_eps"], k["fast_alpha"], k["epochs"])),
    "Fig. 8": ("08_instance_wise_and_standard",
               lambda loc, k: fig8_instance_wise(loc, k["train"], k["l2_eps"])),
    "Fig. 9": ("08_instance_wise_and_standard",
               lambda loc, k: fig9_standard(loc, k["train"], k["n_standard_matrices"])),
    "Fig. 10": ("03_at_dynamics",
                lambda loc, k: fig10_epochs(loc, k["train"], k["n_matrices"])),
    "Fig. 11": ("09_saliency",
                lambda loc, k: fig11_saliency(loc, k["train"], k["n_examples"])),
}


class Gallery:
    """The figures page: each figure drawn once per profile of ``profiles`` that has runs.

    The page's own profile (``page_profile``) reads this build's runs (``runs_dir``,
    default :func:`xcf.runs.folder.default_runs_dir`), or its committed results where this build
    has none; every other profile reads its committed results,
    ``notebooks/results/<profile>`` (:func:`xcf.companion.profiles.results_dir`: the full profile's
    come from ``tools/run_claims.py --profile full`` on a GPU).  A profile has runs when its
    PGD-AT run of notebook 03 is found.  ``directory``: the profile files' folder;
    ``results_root``: a folder of ``<profile>/`` result folders instead of the checkout's.

    :meth:`draw` shows a figure for every profile with runs and prints "not run" for the
    others, so each figure says which profile's results it shows; ``drawn`` maps a figure
    to the profiles it was drawn for."""

    SECTIONS = tuple(sorted({nb for nb, _ in FIGURES.values()}))  # pages 03-09

    def __init__(self, profiles: Sequence[str], page_profile: str, runs_dir: Any = None,
                 directory: Any = None, results_root: Any = None) -> None:
        self.profiles = list(profiles)
        self.drawn: dict[str, list[str]] = {}
        self.found: dict[str, tuple[Locator, dict]] = {}  # profile -> (locator, knobs)
        self.where: dict[str, str] = {}
        built = runs_dir if runs_dir is not None else default_runs_dir()
        for prof in self.profiles:
            K = {nb: profile_knobs(nb, prof, directory) for nb in self.SECTIONS}
            committed = (results_dir(prof, directory) if results_root is None
                         else Path(results_root) / prof)
            places = [(committed, "committed results")]
            if prof == page_profile:
                places.insert(0, (built, "this build's runs"))
            self.where[prof] = "no runs"
            for root, label in places:
                locate = Committed(root, prof)
                if locate(K["03_at_dynamics"]["train"]) is not None:
                    self.found[prof] = (locate, K)
                    self.where[prof] = label
                    break

    def report(self) -> None:
        """One line per profile: where its runs come from, or that it has none."""
        for prof in self.profiles:
            print(f"{prof}: {self.where[prof]}")

    def draw(self, name: str, notebook: Optional[str] = None, draw: Any = None) -> None:
        """``draw(locate, knobs)`` (``knobs``: the profile's section of ``notebook``) for
        every profile with runs, each figure shown as it is drawn; "not run" for the others.
        A function that finds its runs missing says so itself and returns ``None``.
        ``notebook`` and ``draw`` default to the figure's in :data:`FIGURES`."""
        if notebook is None or draw is None:
            notebook, draw = FIGURES[name]
        for prof in self.profiles:
            if prof not in self.found:
                print(f"{name} [{prof} profile]: not run (no {prof}-profile runs)")
                continue
            locate, K = self.found[prof]
            if draw(locate, K[notebook]) is not None:
                self.drawn.setdefault(name, []).append(prof)
                plt.show()

    def summary(self, names: Optional[Sequence[str]] = None) -> dict:
        """Print what was drawn for which profile (of the figures ``names``, default: all
        of :data:`FIGURES`); returns ``drawn``."""
        names = list(FIGURES) if names is None else names
        for name, profs in self.drawn.items():
            print(f"{name:>9}: drawn for {', '.join(profs)}")
        print("not drawn for any profile:", [n for n in names if n not in self.drawn] or "none")
        return dict(self.drawn)
