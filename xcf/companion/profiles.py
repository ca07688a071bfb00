"""Parameter profiles for the notebooks: ``smoke``, ``cpu``, ``gpu`` and ``full``.

Every notebook has a cell tagged ``parameters`` that names the profile and its knobs::

    profile = "smoke"      # smoke | cpu | gpu | full | auto (gpu on a GPU, else smoke)
    epochs = None          # None: take the value from notebooks/params/<profile>.yaml

and, right after it, a cell that resolves and checks them::

    P = xcf.companion.profiles.notebook_parameters("02_measuring_cross_class_features", globals())

A knob left at ``None`` takes its value from ``notebooks/params/<profile>.yaml``
(top-level key: the notebook's name); a knob given a value (by hand or by papermill's
``-p``) overrides it.  Papermill only *warns* about a parameter the notebook does not
declare, so this check turns a misspelled knob into an error that names it, and
:func:`check_knobs` turns a value of the wrong type or out of range (``epochs 0``,
``eps 5``) into an error naming the knob, the value and the allowed range, before any
training.  A number may be written as a fraction (``8/255``) in a profile file or a
``-p`` value.

``full`` (the paper's 200-epoch setting) is never picked by ``auto``: it is chosen by
name.  In a checkout, a notebook's runs and data go to ``runs/`` and ``data/`` of the
repository root, where ``xcf train`` run from the root puts them
(:func:`use_checkout_folders`); ``$XCF_RUNS_DIR`` and ``$XCF_DATA_DIR`` override both.
"""
from __future__ import annotations

import math
import os
import re
import types
from pathlib import Path
from typing import Any, Mapping

import yaml

from xcf.atomic import write_json
from xcf.runs.config import make_config
from xcf.runs.config_file import ConfigError
from xcf.runs.folder import default_runs_dir

__all__ = ["PROFILES", "ParameterError", "Parameters", "params_dir", "resolve_profile",
           "profile_knobs", "check_knobs", "notebook_parameters", "use_checkout_folders",
           "runs_dir", "results_dir", "record_metrics"]

PROFILES = ("smoke", "cpu", "gpu", "full")
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


def resolve_profile(profile: str, say=print) -> str:
    """``auto`` becomes ``gpu`` when a CUDA device is present, else ``smoke``, and says
    (through ``say``) what it picked and how to choose another; it never picks ``full``,
    whose runs take days (book page "Reproduce on a GPU")."""
    if profile == "auto":
        import torch

        picked = "gpu" if torch.cuda.is_available() else "smoke"
        where = "a CUDA GPU" if picked == "gpu" else "no CUDA GPU"
        say(f"profile auto: {where} found, so profile {picked!r}; set profile = \"full\" "
            "in the parameters cell for the paper's 200-epoch runs, or \"smoke\", "
            "\"cpu\", \"gpu\"")
        return picked
    if profile not in PROFILES:
        raise ParameterError(
            f"unknown profile {profile!r}; use one of {', '.join(PROFILES)} or 'auto'"
        )
    return profile


def profile_knobs(notebook: str, profile: str, directory: Path | None = None) -> dict:
    """The knobs ``notebooks/params/<profile>.yaml`` sets for ``notebook``."""
    path = Path(directory or params_dir()) / f"{profile}.yaml"
    if not path.is_file():
        raise ParameterError(f"profile file {path} not found; set XCF_PARAMS_DIR or run "
                             "from the repository")
    table = yaml.safe_load(path.read_text()) or {}
    if notebook not in table:
        raise ParameterError(f"{path} has no section {notebook!r}; sections: {sorted(table)}")
    return _fractions(dict(table[notebook] or {}))


_FRACTION = re.compile(r"^\s*([+-]?\d+(?:\.\d*)?)\s*/\s*(\d+(?:\.\d*)?)\s*$")


def _fractions(value: Any) -> Any:
    """``value`` with every ``"a/b"`` string (``8/255``) read as the float a / b, inside
    mappings and lists too; other values unchanged."""
    if isinstance(value, str):
        m = _FRACTION.match(value)
        if m and float(m.group(2)) != 0:
            return float(m.group(1)) / float(m.group(2))
        return value
    if isinstance(value, Mapping):
        return {k: _fractions(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_fractions(v) for v in value]
    return value


def notebook_parameters(notebook: str, namespace: Mapping[str, Any],
                        directory: Path | None = None) -> Parameters:
    """Resolve a notebook's knobs from its namespace and its profile file.

    Raises :class:`ParameterError` for an unknown profile, for a name in the namespace
    that is not a knob of this notebook (a misspelled papermill ``-p``), for a knob that
    the profile file does not define, and for a value of the wrong type or out of range
    (:func:`check_knobs`).  In a checkout, it points the runs and data folders at the
    repository's (:func:`use_checkout_folders`).
    """
    if "profile" not in namespace:
        raise ParameterError("the parameters cell must define `profile`")
    profile = resolve_profile(str(namespace["profile"]))
    directory = Path(directory) if directory is not None else params_dir()
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
        resolved[key] = default if value is None else _fractions(value)
    check_knobs(resolved, knobs)
    use_checkout_folders(directory)
    return resolved


def _is_parameter(name: str, value: Any) -> bool:
    if name.startswith("_") or name in _KERNEL_NAMES:
        return False
    return not isinstance(value, (types.ModuleType, types.FunctionType, type)) \
        and not callable(value)


def use_checkout_folders(directory: Path) -> None:
    """When ``directory`` is a checkout's ``notebooks/params``, make the checkout's
    ``runs/`` and ``data/`` the default folders, so a notebook (working directory
    ``notebooks/``) and ``xcf train`` run from the root share their runs.  A folder set
    already (``$XCF_RUNS_DIR``, ``$XCF_DATA_DIR``) is kept; ``$XCF_DATA_DIR`` is passed on
    as ``$XCF_DATA``, the name the data loaders read."""
    if os.environ.get("XCF_DATA_DIR"):
        os.environ.setdefault("XCF_DATA", os.environ["XCF_DATA_DIR"])
    directory = Path(directory).resolve()
    if directory.name != "params" or directory.parent.name != "notebooks":
        return
    root = directory.parent.parent
    os.environ.setdefault("XCF_RUNS_DIR", str(root / "runs"))
    os.environ.setdefault("XCF_DATA", str(root / "data"))


# ----------------------------------------------------------------- knob types and ranges
# (low, high, low_open, high_open) per knob name; a knob not named here is checked for its
# type only (the type of its value in the profile file).
_POSITIVE_INT = (1, None, False, False)
_RANGES: dict[str, tuple] = {
    **{k: _POSITIVE_INT for k in (
        "epochs", "n_train", "n_test", "attack_steps", "width", "n_samples", "n_mc",
        "n_brute", "n_eps", "train_steps", "pgd_steps", "pgd_restarts", "n_w2",
        "n_matrices", "early_epoch", "n_standard_matrices", "n_examples", "batch", "steps",
        "per_class", "copies")},
    "seed": (0, None, False, False),
    "seeds": (0, None, False, False),
    # l-inf radii and steps in [0, 1] pixel units (the paper: 8/255); l2: up to 64.
    **{k: (0, 1, True, False) for k in ("eps", "fast_eps", "fast_alpha", "curve_eps",
                                        "eps_list", "table_eps")},
    "l2_eps": (0, 64, True, False),
    "lr": (0, None, True, False),
    "mu": (0, None, True, False),
    "sigma": (0, None, True, False),
    "lam": (0, None, True, False),
    "beta": (0, 1 / 3, False, True),      # Theorem 3: 0 <= beta < 1/3
    "kd_lambda": (0, 1, False, False),    # Eq. 3: (1 - lambda) CE + lambda KL
    "kd_temperature": (0, None, True, False),
}
_INT_KNOBS = {k for k, r in _RANGES.items() if r == _POSITIVE_INT} | {"seed", "seeds"}
_CHOICES = {"kd_form": ("eq3", "hinton"), "results": PROFILES, "profiles": PROFILES}
_CONFIG_KNOBS = ("train", "teacher")       # whole training configs
_OVERRIDE_KNOBS = {"vit": "train"}         # overrides of another knob's config
_OVERRIDE_TABLES = {"datasets": "train",   # name -> overrides of another knob's config
                    "seed_overrides": "train"}


class _Bad(Exception):
    """One knob value that fails its check: what was expected."""


def check_knobs(values: Mapping[str, Any], defaults: Mapping[str, Any]) -> None:
    """Check every knob's type (that of its value in the profile file, ``defaults``) and
    range (:data:`_RANGES`, :data:`_CHOICES`; training configs through
    :func:`xcf.runs.config.make_config`).  Raises :class:`ParameterError` naming the knob, the
    value, what is allowed and the fix, before the notebook does any work."""
    for name, value in values.items():
        if name == "profile" or name not in defaults:
            continue
        try:
            _check_one(name, value, defaults[name], values)
        except _Bad as bad:
            raise ParameterError(
                f"parameter {name} = {value!r}: {bad}; set it in the parameters cell (or "
                f"with papermill -p {name} ...), or leave it None for the profile's value "
                f"{_short(defaults[name])}"
            ) from None


def _check_one(name: str, value: Any, default: Any, values: Mapping[str, Any]) -> None:
    if name in _CONFIG_KNOBS:
        _check_config(value)
    elif name in _OVERRIDE_KNOBS:
        _check_config(value, values.get(_OVERRIDE_KNOBS[name]))
    elif name in _OVERRIDE_TABLES:
        if not isinstance(value, Mapping):
            raise _Bad("expected a mapping of names to config overrides")
        for sub in value.values():
            _check_config(sub, values.get(_OVERRIDE_TABLES[name]))
    elif isinstance(default, list):
        if not isinstance(value, (list, tuple)) or not value:
            raise _Bad(f"expected a non-empty list, like {_short(default)}")
        kind = default[0] if default else None
        for item in value:
            _check_scalar(name, item, kind, element=True)
    else:
        _check_scalar(name, value, default)


def _check_config(value: Any, base: Any = None) -> None:
    if not isinstance(value, Mapping):
        raise _Bad("expected a mapping of xcf.runs.config.TrainConfig keys to values")
    try:
        make_config(dict(base) if isinstance(base, Mapping) else {}, **dict(value))
    except ConfigError as err:
        raise _Bad(f"not a valid training config ({err})") from None


def _check_scalar(name: str, value: Any, default: Any, element: bool = False) -> None:
    what = "each element " if element else ""
    if name in _CHOICES:
        if value not in _CHOICES[name]:
            raise _Bad(f"{what}must be one of {', '.join(_CHOICES[name])}, got {value!r}")
        return
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise _Bad(f"{what}must be True or False, got {value!r}")
        return
    if name in _INT_KNOBS or (isinstance(default, int) and name not in _RANGES):
        if not isinstance(value, int) or isinstance(value, bool):
            raise _Bad(f"{what}must be an integer{_range_text(name)}, got {value!r}")
    elif isinstance(default, float) or name in _RANGES:
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value):
            raise _Bad(f"{what}must be a finite number{_range_text(name)}, got {value!r}")
    elif isinstance(default, str) and not isinstance(value, str):
        raise _Bad(f"{what}must be a string, got {value!r}")
    if name in _RANGES and not _in_range(value, *_RANGES[name]):
        raise _Bad(f"{what}{value!r} is out of range: allowed{_range_text(name)}")


def _in_range(v: float, low, high, low_open: bool, high_open: bool) -> bool:
    if low is not None and (v <= low if low_open else v < low):
        return False
    return high is None or (v < high if high_open else v <= high)


def _range_text(name: str) -> str:
    if name not in _RANGES:
        return ""
    low, high, low_open, high_open = _RANGES[name]
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high:.4g}")
    return " " + " and ".join(parts)


def _short(value: Any, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def runs_dir() -> Path:
    """Where notebooks write run folders and metrics: the trainer's own default,
    :func:`xcf.runs.folder.default_runs_dir` (``$XCF_RUNS_DIR`` or ``./runs``)."""
    return default_runs_dir()


def results_dir(profile: str, directory: Path | None = None) -> Path:
    """The committed results of ``profile`` (what ``tools/run_claims.py --profile <profile>``
    exports and the Claims and figures pages read): ``results/<profile>`` beside the
    profile files' folder (``notebooks/results/<profile>`` in a checkout; ``directory``:
    that folder, default :func:`params_dir`).  The folder may not exist: no results yet."""
    if profile not in PROFILES:
        raise ParameterError(f"unknown profile {profile!r}; use one of {', '.join(PROFILES)}")
    return Path(directory or params_dir()).parent / "results" / profile


def record_metrics(notebook: str, metrics: Mapping[str, Any]) -> Path:
    """Save a notebook's headline numbers as ``<runs_dir>/metrics/<notebook>.json``
    (atomically), for the notebook tests and the figures notebook to read back.
    Returns the path written."""
    return write_json(runs_dir() / "metrics" / f"{notebook}.json", dict(metrics))
