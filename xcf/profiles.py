"""Parameter profiles for the notebooks: ``smoke``, ``cpu`` and ``full``.

Every notebook has a cell tagged ``parameters`` that names the profile and its knobs::

    profile = "smoke"      # smoke | cpu | full | auto (full on a GPU, else smoke)
    epochs = None          # None: take the value from notebooks/params/<profile>.yaml

and, right after it, a cell that resolves and checks them::

    P = xcf.profiles.notebook_parameters("02_measuring_cross_class_features", globals())

A knob left at ``None`` takes its value from ``notebooks/params/<profile>.yaml``
(top-level key: the notebook's name); a knob given a value (by hand or by papermill's
``-p``) overrides it.  Papermill only *warns* about a parameter the notebook does not
declare, so this check turns a misspelled knob into an error that names it.
"""
from __future__ import annotations

import os
import types
from pathlib import Path
from typing import Any, Mapping

import yaml

from .atomic import write_json
from .runs import default_runs_dir

__all__ = ["PROFILES", "ParameterError", "Parameters", "params_dir", "resolve_profile",
           "profile_knobs", "notebook_parameters", "runs_dir", "record_metrics"]

PROFILES = ("smoke", "cpu", "full")
# Names IPython/Jupyter put into a kernel's namespace by itself.
_KERNEL_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open"}


class ParameterError(ValueError):
    """A notebook was given a parameter or profile it does not know."""


class Parameters(dict):
    """Resolved knobs; readable as ``P.epochs`` or ``P["epochs"]``."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"no parameter {name!r}; known: {sorted(self)}") from None


def params_dir() -> Path:
    """Folder holding ``<profile>.yaml``: ``$XCF_PARAMS_DIR``, else ``params`` or
    ``notebooks/params`` found from the working directory upwards (notebooks run with cwd
    ``notebooks/``).

    Never relative to where xcf is installed: after ``pip install .`` that is site-packages,
    which holds no profile files.  Raises :class:`ParameterError` when none is found.
    """
    env = os.environ.get("XCF_PARAMS_DIR")
    if env:
        return Path(env)
    here = Path.cwd().resolve()
    for d in (here, *here.parents):
        for cand in (d / "params", d / "notebooks" / "params"):
            if (cand / "smoke.yaml").is_file():
                return cand
    raise ParameterError(
        f"no profile files (params/smoke.yaml or notebooks/params/smoke.yaml) in {here} or "
        "any folder above it; run the notebook from the repository or set XCF_PARAMS_DIR"
    )


def resolve_profile(profile: str) -> str:
    """``auto`` becomes ``full`` when a CUDA device is present, else ``smoke``."""
    if profile == "auto":
        import torch

        return "full" if torch.cuda.is_available() else "smoke"
    if profile not in PROFILES:
        raise ParameterError(
            f"unknown profile {profile!r}; use one of {', '.join(PROFILES)} or 'auto'"
        )
    return profile


def profile_knobs(notebook: str, profile: str, directory: Path | None = None) -> dict:
    """The knobs ``notebooks/params/<profile>.yaml`` sets for ``notebook``."""
    path = (directory or params_dir()) / f"{profile}.yaml"
    if not path.is_file():
        raise ParameterError(f"profile file {path} not found; set XCF_PARAMS_DIR or run from the repository")
    table = yaml.safe_load(path.read_text()) or {}
    if notebook not in table:
        raise ParameterError(f"{path} has no section {notebook!r}; sections: {sorted(table)}")
    return dict(table[notebook] or {})


def notebook_parameters(notebook: str, namespace: Mapping[str, Any],
                        directory: Path | None = None) -> Parameters:
    """Resolve a notebook's knobs from its namespace and its profile file.

    Raises :class:`ParameterError` for an unknown profile, for a name in the namespace
    that is not a knob of this notebook (a misspelled papermill ``-p``), and for a
    knob that the profile file does not define.
    """
    if "profile" not in namespace:
        raise ParameterError("the parameters cell must define `profile`")
    profile = resolve_profile(str(namespace["profile"]))
    knobs = profile_knobs(notebook, profile, directory)
    given = {k: v for k, v in namespace.items() if _is_parameter(k, v)}
    unknown = sorted(set(given) - set(knobs) - {"profile"})
    if unknown:
        raise ParameterError(
            f"unknown parameter(s) {unknown} for notebook {notebook!r}; "
            f"allowed: {['profile', *sorted(knobs)]}"
        )
    resolved = Parameters(profile=profile)
    for key, default in knobs.items():
        value = given.get(key)
        resolved[key] = default if value is None else value
    return resolved


def _is_parameter(name: str, value: Any) -> bool:
    if name.startswith("_") or name in _KERNEL_NAMES:
        return False
    return not isinstance(value, (types.ModuleType, types.FunctionType, type)) and not callable(value)


def runs_dir() -> Path:
    """Where notebooks write run folders and metrics: the trainer's own default,
    :func:`xcf.runs.default_runs_dir` (``$XCF_RUNS_DIR`` or ``./runs``)."""
    return default_runs_dir()


def record_metrics(notebook: str, metrics: Mapping[str, Any]) -> Path:
    """Save a notebook's headline numbers as ``<runs_dir>/metrics/<notebook>.json``
    (atomically), for the notebook tests and the figures notebook to read back.
    Returns the path written."""
    return write_json(runs_dir() / "metrics" / f"{notebook}.json", dict(metrics))
