"""The checks of one config value, each raising :class:`~xcf.runs.config_file.ConfigError`
that names the key, the value and what is allowed.

Typed checks (:func:`need_int`, :func:`need_number`, :func:`need_choice`,
:func:`need_bool`), a number typed as text (:func:`as_float`: ``1e-3``, ``8/255``) and the
hint for a misspelt key (:func:`did_you_mean`).  Separate from the schema
(:mod:`xcf.runs.config`): they know no field of :class:`~xcf.runs.config.TrainConfig`; the
schema's validation applies them field by field, before any data is loaded.
"""
from __future__ import annotations

import difflib
import math
import re
from typing import Any, Sequence

from xcf.runs.config_file import ConfigError

__all__ = ["is_int", "as_float", "need_int", "need_number", "need_choice", "need_bool",
           "did_you_mean"]

_FLOAT_TEXT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
# A fraction as the paper writes radii (``8/255``): numerator / positive denominator.
_FRACTION_TEXT = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))\s*/\s*(\d+\.?\d*|\.\d+)$")


def is_int(v: Any) -> bool:
    """An integer, and not a bool (``True`` is an ``int`` to Python, not to a config)."""
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def as_float(v: Any) -> Any:
    """``v`` as a float when it is a string that reads as a number (``"1e-3"``: YAML 1.1
    reads it, without a dot, as a string) or as a fraction (``"8/255"``); else ``v``
    unchanged, for the checks to judge."""
    if isinstance(v, str) and _FLOAT_TEXT.match(v.strip()):
        return float(v.strip())
    fraction = _FRACTION_TEXT.match(v.strip()) if isinstance(v, str) else None
    if fraction and float(fraction.group(2)) > 0:
        return float(fraction.group(1)) / float(fraction.group(2))
    return v


def need_int(key: str, v: Any, low: int, optional: bool = False) -> None:
    """``v`` must be an integer >= ``low`` (or ``None`` when ``optional``)."""
    if v is None and optional:
        return
    if not is_int(v) or v < low:
        raise ConfigError(key, f"must be an integer >= {low}{' or null' if optional else ''}, got {v!r}")


def need_number(key: str, v: Any, *, low: float | None = None, high: float | None = None,
                strict_low: bool = False, optional: bool = False, hint: str = "") -> None:
    """``v`` must be a finite number within the bounds given (``low`` excluded when
    ``strict_low``), or ``None`` when ``optional``; ``hint`` ends the message."""
    if v is None and optional:
        return
    ok = _is_number(v) and (low is None or (v > low if strict_low else v >= low)) \
        and (high is None or v <= high)
    if not ok:
        bound = []
        if low is not None:
            bound.append(f"{'>' if strict_low else '>='} {low}")
        if high is not None:
            bound.append(f"<= {high:g}")
        raise ConfigError(key, f"must be a finite number {' and '.join(bound)}"
                          f"{' or null' if optional else ''}, got {v!r}{hint}")


def need_choice(key: str, v: Any, allowed: Sequence[str]) -> None:
    """``v`` must be one of ``allowed``; the message lists them and the closest one."""
    if v not in allowed:
        raise ConfigError(key, f"got {v!r}" + did_you_mean(v, allowed), allowed)


def need_bool(key: str, v: Any) -> None:
    """``v`` must be ``True`` or ``False`` (not ``"yes"``, not 1)."""
    if not isinstance(v, bool):
        raise ConfigError(key, f"must be true or false, got {v!r}", [True, False])


def did_you_mean(key: Any, known: Sequence[str]) -> str:
    """``" (did you mean 'epochs'?)"`` for the entry of ``known`` closest to ``key``, or
    ``""`` when none is close."""
    close = difflib.get_close_matches(str(key), known, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""
