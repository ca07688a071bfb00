"""Locators: how a figure finds the run of a config.

A *locator* is a callable ``locate(config, **overrides) -> Run | None`` with a
``profile`` attribute (the profile whose results it gives, named in every figure's
title).  There are two:

- :class:`TrainOrReuse` trains the run, or reuses the finished run folder of the same
  config (runs are keyed by their config), and never returns ``None``;
- :class:`Committed` only looks: it returns the finished run of the config under a
  results folder (e.g. the committed ``notebooks/results/cpu``), or ``None``.

A section notebook's live part, its committed-results part and the all-figures notebook
call the same :mod:`xcf.companion.figures` function, each with its own locator.

The KD-AT student of Eq. 3 is the one run whose config names another run (its teacher,
the best checkpoint of the PGD-AT run of the same config, Section 3.3):
:func:`kd_overrides` writes that link, once, for every caller.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Mapping, Optional, Protocol

from xcf.runs.config import make_config
from xcf.train.precision import precision_label
from xcf.train.runner import train
from xcf.runs.folder import find_run

__all__ = ["Locator", "TrainOrReuse", "Committed", "kd_overrides", "kd_pair"]


class Locator(Protocol):
    """What the figure functions take: a profile name and a way to find runs."""

    profile: str

    def __call__(self, config: Mapping[str, Any], **overrides: Any): ...


class TrainOrReuse:
    """Train (or reuse) the run of ``config`` + ``overrides``, quietly: one printed line
    says whether the run was trained or reused.  ``runs_dir``: where run folders go
    (default: the trainer's own, ``$XCF_RUNS_DIR`` or ``./runs``).

    A locator remembers what it located, so a notebook that asks again for a run (a
    figure, then its verdict) gets it back without a second line."""

    def __init__(self, profile: str, runs_dir: str | Path | None = None) -> None:
        self.profile = profile
        self.runs_dir = runs_dir
        self._located: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"TrainOrReuse({self.profile!r})"

    def __call__(self, config: Mapping[str, Any], **overrides: Any):
        memo = json.dumps([config, overrides], sort_keys=True, default=str)
        if memo in self._located:
            return self._located[memo]
        start = time.time()
        said: list[str] = []

        def log(line: str) -> None:
            said.append(line)
            # hours of training: one live line per epoch; and whatever the profile, a wait
            # for a run another process trains (xcf.runs.lock), or the cell looks hung
            if self.profile != "smoke" or line.startswith(("waiting for", "taking over")):
                print(line, flush=True)

        extra = {} if self.runs_dir is None else {"runs_dir": self.runs_dir}
        run = train(dict(config), progress=False, log=log, **extra, **overrides)
        reused = any(s.startswith("reusing") for s in said)
        verb = "reused" if reused else f"trained in {time.time() - start:.0f} s"
        amp = precision_label(run.config.get("amp", "none"))
        print(f"{run.path.name} ({amp}): {verb}, best epoch {run.best_epoch} of "
              f"{len(run.metrics())}")
        self._located[memo] = run
        return run


class Committed:
    """The finished run of ``config`` + ``overrides`` under ``root``, or ``None``; never
    trains.  ``root``: a folder of run folders (exported results or a runs folder)."""

    def __init__(self, root: str | Path, profile: str) -> None:
        self.root = Path(root)
        self.profile = profile

    def __repr__(self) -> str:
        return f"Committed({self.profile!r})"  # no path: outputs show no machine's folders

    def __call__(self, config: Mapping[str, Any], **overrides: Any):
        run = find_run(self.root, make_config(dict(config), **overrides).key())
        return run if run is not None and run.finished else None


def kd_overrides(teacher_path: str | Path, kd_lambda: float, kd_temperature: float,
                 kd_form: str = "eq3", soft_labels: str = "teacher") -> dict:
    """The overrides that turn a PGD-AT config into its KD-AT student (Eq. 3), taught by
    the best checkpoint of the run folder ``teacher_path``; ``kd_form``: ``eq3`` (as
    printed) or ``hinton`` (with T^2); ``soft_labels``: ``teacher`` (the paper's) or a
    control of :mod:`xcf.companion.hypotheses` (:class:`xcf.runs.config.KDConfig`)."""
    kd = {"teacher": str(teacher_path), "lambda": kd_lambda, "temperature": kd_temperature,
          "form": kd_form}
    if soft_labels != "teacher":  # the paper's students keep the keys they were trained under
        kd["soft_labels"] = soft_labels
    return {"objective": "kd_at", "kd": kd}


def kd_pair(locate: Locator, config: Mapping[str, Any], kd_lambda: float,
            kd_temperature: float, kd_form: str = "eq3"
            ) -> tuple[Optional[Any], Optional[Any]]:
    """``(teacher, student)``: the PGD-AT run of ``config`` and its KD-AT student (either
    ``None`` when ``locate`` finds nothing; the student is never looked for without its
    teacher)."""
    teacher = locate(config)
    if teacher is None:
        return None, None
    return teacher, locate(config, **kd_overrides(teacher.path, kd_lambda, kd_temperature,
                                                  kd_form))
