"""The command line's argument types and checks, shared by its commands: ``KEY=VALUE``
lists, fractions like ``8/255``, counts, devices, durations, and output paths checked
before any work."""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any, Sequence

import yaml

__all__ = ["parse_set", "merge", "fraction", "floats", "count", "device", "check_output",
           "seconds"]


def parse_set(items: Sequence[str], flag: str = "--set") -> dict:
    """``["epochs=3", "kd.lambda=0.3"]`` -> ``{"epochs": 3, "kd": {"lambda": 0.3}}``
    (values parsed as YAML, so numbers, booleans, lists and null work)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{flag} expects KEY=VALUE, got {item!r}")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as err:
            what = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise ValueError(f"{flag} {item!r}: the value is not YAML ({what}); quote it, "
                             "e.g. KEY='[1, 2]'") from None
        *parents, last = key.split(".")
        node = out
        for i, p in enumerate(parents):
            node = node.setdefault(p, {})
            if not isinstance(node, dict):  # e.g. --set kd=3 --set kd.lambda=0.3
                raise ValueError(f"{flag} {item!r}: {'.'.join(parents[:i + 1])} was set to "
                                 f"{node!r} by an earlier {flag}, so it has no key {last!r}")
        node[last] = value
    return out


def merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def fraction(text: str) -> float:
    """``0.03`` or ``8/255`` (an argparse type)."""
    num, sep, den = text.partition("/")
    try:
        return float(num) / float(den) if sep else float(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (e.g. 0.03 or 8/255)")


def floats(text: str) -> list[float]:
    """``0.485,0.456,0.406`` -> a list of floats (an argparse type)."""
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of "
                                         "numbers, e.g. 0.485,0.456,0.406")


def count(least: int):
    """An argparse type: an integer >= ``least``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = least - 1
        if value < least:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer >= {least}")
        return value
    return parse


def device(text: str) -> str:
    """``auto``, ``cpu``, ``mps``, ``cuda`` or ``cuda:N`` (an argparse type): checked here,
    as torch.device would raise a RuntimeError listing its internal device types."""
    from xcf.runs.config import DEVICE_PATTERN  # loads torch: only when --device is given

    if not DEVICE_PATTERN.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device; use auto, cpu, cuda, "
                                         "cuda:N (e.g. cuda:0) or mps")
    return text


def check_output(path: Path, flag: str, *, folder: bool) -> None:
    """Refuse, before any work, an output the command could not write at its end:
    ``folder`` (created with its parents if missing) given as a file or under a file, a
    file given as a folder or in a folder that does not exist, or a folder not writable."""
    if folder:
        if path.exists() and not path.is_dir():
            raise ValueError(f"{flag} {path} is a file, not a folder; give a folder (it is "
                             "created if missing)")
        parent = next(p for p in (path, *path.absolute().parents) if p.exists())
        if not parent.is_dir():
            raise ValueError(f"{flag} {path} cannot be created: {parent} is a file, not a "
                             "folder; give another folder")
    else:
        if path.is_dir():
            raise ValueError(f"{flag} {path} is a folder; give a file path, e.g. "
                             f"{path / 'results.json'}")
        parent = path.absolute().parent
        if parent.exists() and not parent.is_dir():
            raise ValueError(f"{flag} {path}: {parent} is a file, not a folder; give a path "
                             "in an existing folder")
        if not parent.exists():
            raise ValueError(f"{flag} {path}: its folder {parent} does not exist; create it "
                             "first (mkdir -p), or give a path in an existing folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {path}: the folder {parent} is not writable; give a "
                         "folder you can write to")


def seconds(text: str) -> float:
    """A number of seconds >= 0 (an argparse type)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds >= 0 (0: fail "
                                         "at once when the run is locked)")
    return value
