"""Reading a config file, and the errors a config raises: :class:`ConfigError` (a value,
named by its key) and :class:`ConfigFileError` (a file as a whole).

Separate from :mod:`xcf.runs.config` (the schema) so that every module that checks a
config value, or names a run by its config (:mod:`xcf.runs.identity`), can raise
:class:`ConfigError` without importing the schema.  A YAML file is read by
:func:`read_config_file` with :class:`UniqueKeyLoader`, which refuses a key given twice.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

import yaml

__all__ = ["ConfigError", "ConfigFileError", "read_config_file", "DuplicateKeyError",
           "UniqueKeyLoader", "short_repr"]


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the key and what is allowed."""

    def __init__(self, key: str, problem: str, allowed: Optional[Iterable[Any]] = None) -> None:
        self.key = key
        self.allowed = list(allowed) if allowed is not None else None
        text = f"config key '{key}': {problem}"
        if self.allowed is not None:
            text += f"; allowed values: {', '.join(map(str, self.allowed))}"
        super().__init__(text)


class ConfigFileError(ConfigError):
    """A config file cannot be used as a whole: missing, unreadable, not YAML, empty, or not
    a mapping.  The message names the file (and the line, for a YAML syntax error)."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.key = "<file>"
        self.allowed = None
        ValueError.__init__(self, f"config file {path}: {problem}")


def read_config_file(path: str | Path) -> dict:
    """The mapping a YAML config file holds; :class:`ConfigFileError` naming the file when it
    is missing, unreadable, not valid YAML (with the line), empty or comment-only (which
    would otherwise mean the CIFAR-10 / 200-epoch defaults), or not a mapping."""
    path = Path(path)
    if not path.exists():
        raise ConfigFileError(path, "does not exist")
    if path.is_dir():
        raise ConfigFileError(path, "is a directory; give a YAML file (see configs/)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigFileError(path, f"cannot be read ({err})") from err
    try:
        data = yaml.load(text, Loader=UniqueKeyLoader)
    except DuplicateKeyError as err:
        raise ConfigFileError(path, str(err)) from err
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        what = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigFileError(path, f"is not valid YAML{where}: {what}") from err
    if data is None:
        raise ConfigFileError(path, "is empty (or holds only comments); write the config keys "
                              "in it, e.g. start from configs/smoke.yaml (an empty config "
                              "would mean the full CIFAR-10, 200-epoch defaults)")
    if not isinstance(data, Mapping):
        raise ConfigFileError(path, f"must hold a mapping of config keys to values, got a "
                              f"{type(data).__name__} ({short_repr(data)})")
    return dict(data)


class DuplicateKeyError(yaml.YAMLError):
    """A key given twice in one YAML mapping; the message names it and both lines."""


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping, at any depth:
    PyYAML keeps the last silently, so ``epochs: 2`` ... ``epochs: 50`` would train 50."""

    def get_single_node(self):
        node = super().get_single_node()
        if node is not None:
            _check_unique_keys(node, (), set())
        return node


def _check_unique_keys(node: yaml.Node, where: tuple, seen_nodes: set) -> None:
    if id(node) in seen_nodes:  # an alias of a node already checked (or a recursive one)
        return
    seen_nodes.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_unique_keys(item, where + (str(i),), seen_nodes)
    if not isinstance(node, yaml.MappingNode):
        return
    first: dict[tuple, tuple] = {}
    for key, value in node.value:
        if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
            continue  # "<<: *base" merges may override keys: that is what they are for
        name = ".".join(where + (key.value,))
        if (key.tag, key.value) in first:
            line, old = first[(key.tag, key.value)]
            scalars = isinstance(old, yaml.ScalarNode) and isinstance(value, yaml.ScalarNode)
            at = (f"line {line} ({key.value}: {old.value}) and line {key.start_mark.line + 1} "
                  f"({key.value}: {value.value})" if scalars
                  else f"line {line} and line {key.start_mark.line + 1}")
            raise DuplicateKeyError(f"key '{name}' is given twice, at {at}; YAML would keep the "
                                    "last silently: keep one of them")
        first[(key.tag, key.value)] = (key.start_mark.line + 1, value)
        _check_unique_keys(value, where + (key.value,), seen_nodes)


def short_repr(value: Any, width: int = 60) -> str:
    """``repr(value)``, cut to ``width`` characters (ending in ``...`` when cut): how an
    error message quotes a value that may be long."""
    text = repr(value)
    return text if len(text) <= width else text[:width - 3] + "..."
