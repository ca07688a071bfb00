"""Run identity: what names a run, from its key (:func:`config_key`) to its folder's name
(:func:`folder_name`, ``<dataset>-<model>-<objective>-<key>``).

**Run keys.**  :meth:`xcf.runs.config.TrainConfig.key` names a run's folder
(:mod:`xcf.runs.folder`).  It hashes only the identity fields whose value differs from
:data:`KEY_BASELINE`, a frozen copy of the defaults written out literally below, and floats
are rounded to 9 significant digits first (:func:`canonical`).  So adding a field with a
default keeps every existing key (the field is at its baseline in every old run), changing
a default later keeps the keys of the runs made before (their value still equals the
frozen baseline), and ``0.0313725490`` and ``8/255`` give one key.  A KD student's key
names its teacher by folder (:func:`teacher_identity`) and by weights
(:func:`teacher_digest`).

Separate from the schema (:mod:`xcf.runs.config`, whose
:meth:`~xcf.runs.config.TrainConfig.identity` assembles a config's identity from these
pieces) so that the key's pieces and the folder's name have one definition, called alike
by training, the launcher and the companion's plans.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping, Protocol

from xcf.runs.checkpoints import CheckpointError, weights_digest
from xcf.runs.config_file import ConfigError

__all__ = ["NON_IDENTITY", "KEY_BASELINE", "KEY_LENGTH", "FLOAT_DIGITS", "canonical",
           "config_key", "teacher_identity", "teacher_digest", "NamedConfig", "run_slug",
           "folder_name"]

# Runtime- or logging-only fields: they do not change the trained weights, so they are left
# out of the run key; a run can move to another device, or get an AutoAttack or a final
# whole-test-set evaluation later, and stay the same run.
NON_IDENTITY = ("device", "data_root", "autoattack", "autoattack_n", "final_test", "compile",
                "log_train_clean")

# The identity defaults as of the change to difference-based keys (the resolved Table 2
# defaults), frozen: do NOT edit a value here when a default changes, or every run made
# before loses its key.  A new field needs no entry (its own default is its baseline),
# unless the runs made before it behaved like another value: then that value is its
# entry (kd.form: the KD runs before the field existed used the T^2 "hinton" form).
# Defaults changed since the freeze: attack_mode (eval -> train), kd.form (new, eq3).
KEY_BASELINE: dict[str, Any] = {
    "dataset": "cifar10", "data_kwargs": {}, "n_train": None, "n_test": None, "eval_n": None,
    "holdout_n": None, "data_seed": 0, "augment": True,
    "model": "preact_resnet18", "model_kwargs": {}, "normalize": True,
    "objective": "pgd_at", "norm": "linf", "eps": 8 / 255, "alpha": 2 / 255,
    "attack_steps": 10, "attack_mode": "eval",
    "kd": {"teacher": None, "lambda": 0.5, "temperature": 2.0, "form": "hinton"},
    "trades": {"beta": 6.0},
    "fast_at": {"alpha": 10 / 255},
    "epochs": 200, "batch_size": 128, "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4,
    "milestones": [0.5, 0.75], "lr_gamma": 0.1, "seed": 0, "amp": "none",
    "channels_last": True, "eval_eps": 8 / 255, "eval_steps": 20, "eval_batch_size": 500,
    "best_metric": "test_robust_acc", "save_matrices_every": 10, "save_checkpoints_at": [],
}
KEY_LENGTH = 12  # hex characters of a run key
FLOAT_DIGITS = 9  # significant digits a float keeps in a key: 0.0313725490 == 8/255


def canonical(value: Any) -> Any:
    """``value`` in the form that is hashed: floats rounded to :data:`FLOAT_DIGITS`
    significant digits (also inside mappings and lists), tuples as lists, keys as strings."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return float(f"{value:.{FLOAT_DIGITS}g}")
    if isinstance(value, Mapping):
        return {str(k): canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    return value


def config_key(identity: Mapping[str, Any], length: int = KEY_LENGTH) -> str:
    """Hex digest of an identity: SHA-256 of its canonical JSON (sorted keys, floats by
    :func:`canonical`), truncated to ``length`` characters."""
    text = json.dumps(canonical(dict(identity)), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def teacher_identity(teacher: str) -> str:
    """The part of a teacher's path that names it: the run folder's name (which carries
    the teacher's own config key), not where the folder lies, so a student run keeps its
    key when its teacher's results move (e.g. into ``notebooks/results/``)."""
    p = Path(teacher)
    if p.suffix == ".pt" and p.parent.name == "checkpoints":
        return f"{p.parent.parent.name}/checkpoints/{p.name}"
    if p.suffix != ".pt":
        return p.name
    return str(p)


def teacher_digest(teacher: str) -> dict[str, str]:
    """What a KD student's key records of its teacher's content, as far as it can be known:
    ``{"teacher_weights_sha256": ...}`` (:func:`xcf.runs.checkpoints.weights_digest` of the
    teacher's best weights), or for an older teacher the field it had, or ``{}``.

    A run folder: the ``best_weights_sha256`` its final.json records (written when it
    finished training, :func:`xcf.train.runner.train`); an exported folder keeps its final.json
    but not its checkpoints, so the digest travels with it.  A final.json from before
    weights digests gives its ``best_sha256`` (the digest of the file) as
    ``teacher_sha256``, and one from before any digest gives ``{}``: the students of
    those teachers keep their keys.  A ``.pt`` file: the weights digest of the file.  A
    missing teacher: ``{}``."""
    p = Path(teacher)
    if p.suffix == ".pt":
        return {"teacher_weights_sha256": _weights_digest_cached(p)} if p.is_file() else {}
    final = p / "final.json"
    if not final.is_file():
        return {}
    try:
        recorded = json.loads(final.read_text())
        weights, file = recorded.get("best_weights_sha256"), recorded.get("best_sha256")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError) as err:
        raise ConfigError("kd.teacher", f"the teacher's {final} is unreadable ({err}); "
                          "restore it or train the teacher again") from err
    if isinstance(weights, str):
        return {"teacher_weights_sha256": weights}
    return {"teacher_sha256": file} if isinstance(file, str) else {}


_DIGESTS: dict[tuple, str] = {}  # (path, inode, size, mtime, ctime) -> weights sha256


def _weights_digest_cached(path: Path) -> str:
    """:func:`xcf.runs.checkpoints.weights_digest`, once per version of the file (keys are
    computed often; a checkpoint can be large).  A version is told by inode, size and
    times: an atomic rewrite (:mod:`xcf.atomic`) always gets a new inode."""
    st = path.stat()
    tag = (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if tag not in _DIGESTS:
        try:
            _DIGESTS[tag] = weights_digest(path)
        except CheckpointError as err:
            raise ConfigError("kd.teacher", f"{err}; a teacher .pt must be an xcf model "
                              "checkpoint (xcf.runs.checkpoints.save_model)") from err
    return _DIGESTS[tag]


class NamedConfig(Protocol):
    """What a run folder's name reads of a config: its dataset, model and objective
    (:func:`run_slug`) and its key.  :class:`xcf.runs.config.TrainConfig` is one."""

    dataset: str
    model: str
    objective: str

    def key(self) -> str: ...


def run_slug(c: NamedConfig) -> str:
    """``<dataset>-<model>-<objective>``: the readable part of a run folder's name."""
    return f"{c.dataset}-{c.model}-{c.objective}".replace("/", "_").lower()


def folder_name(c: NamedConfig) -> str:
    """The name of the run folder of config ``c``: ``<dataset>-<model>-<objective>-<key>``
    (:func:`run_slug` and :meth:`xcf.runs.config.TrainConfig.key`); the one place it is
    built.  A folder is found by its key alone (:func:`xcf.runs.folder.find_run`)."""
    return f"{run_slug(c)}-{c.key()}"
