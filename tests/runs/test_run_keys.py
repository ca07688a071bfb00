"""Run keys are stable: they depend only on the identity fields that differ from the frozen
baseline, so adding a field with a default, or changing a default later, keeps the key of
every existing run; and one number typed two ways gives one key."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass

import pytest

from xcf.runs import config
from xcf.runs.config import TrainConfig, make_config
from xcf.runs.identity import KEY_BASELINE, NON_IDENTITY, canonical, config_key


@dataclass
class WithDummyField(TrainConfig):
    """TrainConfig after a (hypothetical) new field with a default has been added."""

    dummy: int = 3


@dataclass
class WithDummySection(TrainConfig):
    """TrainConfig after a new field with a default has been added to the KD section."""

    kd: config.KDConfig = dataclasses.field(default_factory=lambda: KDPlus())


@dataclass
class KDPlus(config.KDConfig):
    warmup: int = 0


SETTINGS = [
    {},
    {"dataset": "planted", "model": "small_cnn", "epochs": 3, "eps": 0.1, "n_train": 120},
    {"dataset": "fashion-mnist", "model": "small_cnn", "objective": "fast_at", "eps": 0.2,
     "fast_at": {"alpha": 0.25}, "holdout_n": 300},
    {"objective": "kd_at", "kd": {"teacher": "runs/cpu/x-pgd_at-0123456789ab", "lambda": 0.3}},
    {"objective": "trades", "norm": "l2", "trades": {"beta": 1.0}},
    {"objective": "standard", "data_kwargs": {"image_size": 16}, "milestones": [0.3]},
]


@pytest.mark.parametrize("settings", SETTINGS)
def test_a_new_field_with_a_default_keeps_every_key(settings):
    old = make_config(settings)
    new = WithDummyField.from_dict(old.to_dict())
    assert new.dummy == 3
    assert new.key() == old.key()
    assert WithDummyField.from_dict({**old.to_dict(), "dummy": 4}).key() != old.key()


def test_a_new_section_field_with_a_default_keeps_the_key():
    old = make_config(SETTINGS[3])
    d = old.to_dict()
    kd = dict(d.pop("kd"))
    kd["lam"] = kd.pop("lambda")
    new = WithDummySection(**d, kd=KDPlus(**kd))
    assert new.key() == old.key()
    assert WithDummySection(**d, kd=KDPlus(**kd, warmup=2)).key() != old.key()


def test_changing_a_default_later_keeps_the_keys_of_older_runs():
    """attack_mode's default changed from eval to train, and kd.form came in with default
    eq3, after the keys were frozen (issue 15).  A run made before says ``attack_mode:
    eval`` in its config.yaml (and, for KD, used the T^2 form, ``form: hinton``): its key
    must not move, so neither value is part of its identity.  A new run at the new defaults
    is a different run and carries them in its identity."""
    for settings in SETTINGS:
        saved = {**make_config(settings).to_dict(), "attack_mode": "eval"}
        if saved["objective"] == "kd_at":
            saved["kd"] = {**saved["kd"], "form": "hinton"}
        older = make_config(saved)
        assert "attack_mode" not in older.identity()
        assert "form" not in older.identity().get("kd", {})
        newer = make_config(settings)
        assert newer.identity()["attack_mode"] == "train"
        assert newer.key() != older.key()
        if saved["objective"] == "kd_at":
            assert newer.identity()["kd"]["form"] == "eq3"
    # A committed run of before the change, by its folder name (tests/test_claims_artifacts
    # checks every committed folder the same way).
    eps01 = make_config(dataset="fashion-mnist", model="small_cnn", attack_mode="eval")
    assert "attack_mode" not in eps01.identity()


def test_two_spellings_of_a_number_give_one_key():
    typed = make_config(eps=0.0313725490, alpha=0.00784313725, eval_eps=0.0313725490)
    computed = make_config(eps=8 / 255, alpha=2 / 255, eval_eps=8 / 255)
    default = make_config()  # eps None resolves to 8/255
    assert typed.key() == computed.key() == default.key()
    # also inside nested dicts and lists
    a = make_config(objective="fast_at", fast_at={"alpha": 10 / 255}, milestones=[1 / 3])
    b = make_config(objective="fast_at", fast_at={"alpha": 0.0392156863}, milestones=[0.333333333])
    assert a.key() == b.key()


def test_canonical_rounds_floats_to_nine_significant_digits_everywhere():
    assert canonical(8 / 255) == 0.031372549 == canonical(0.0313725490)
    assert canonical({"a": [1 / 3, {"b": 2 / 3}], "c": (0.1, True, None, 7, "s")}) == {
        "a": [0.333333333, {"b": 0.666666667}], "c": [0.1, True, None, 7, "s"]}
    assert canonical(0.1234567894) != canonical(0.1234567896)  # 10th digit rounds apart


@pytest.mark.parametrize("change", [
    {"eps": 0.1}, {"seed": 1}, {"epochs": 3}, {"attack_mode": "eval"}, {"amp": "bf16"},
    {"holdout_n": 300}, {"model_kwargs": {"width": 32}}, {"objective": "trades"},
    {"objective": "trades", "trades": {"beta": 1.0}},
])
def test_a_changed_identity_value_changes_the_key(change):
    assert make_config(change).key() != make_config().key()


def test_runtime_fields_and_other_objectives_sections_do_not_change_the_key():
    base = make_config()
    for change in ({"device": "cpu"}, {"autoattack": True}, {"compile": True},
                   {"log_train_clean": True}, {"trades": {"beta": 1.0}}, {"kd": {"lambda": 0.9}}):
        assert make_config(change).key() == base.key()


def test_the_key_hashes_the_difference_from_the_baseline_by_hand():
    """SHA-256 of the canonical JSON of only the changed fields, 12 hex characters."""
    cfg = make_config(seed=3, eps=0.1)
    # alpha and eval_eps follow eps; attack_mode train differs from the frozen eval
    diff = {"seed": 3, "eps": 0.1, "alpha": 0.025, "eval_eps": 0.1, "attack_mode": "train"}
    assert cfg.identity() == diff
    text = json.dumps(diff, sort_keys=True, separators=(",", ":"))
    assert cfg.key() == hashlib.sha256(text.encode()).hexdigest()[:12]
    assert re.fullmatch(r"[0-9a-f]{12}", cfg.key())
    # the defaults at the freeze hash to the empty difference
    assert make_config(attack_mode="eval").identity() == {}
    assert config_key({}) == hashlib.sha256(b"{}").hexdigest()[:12]


# Identity defaults changed after the baseline was frozen (name -> the frozen value); the
# baseline keeps the old value so that older runs keep their keys.  kd.form is a field
# added after the freeze whose entry is the behaviour of the runs made before (T^2).
CHANGED_DEFAULTS: dict = {"attack_mode": "eval"}
ADDED_WITH_OLD_BEHAVIOUR: dict = {"kd": {"form": "hinton"}}
# Fields added after the freeze, compared with their own default (issue 28's controls).
ADDED_AFTER_THE_FREEZE: dict = {"kd": ("soft_labels",)}


def test_the_baseline_is_the_resolved_default_config_it_was_frozen_from():
    d = TrainConfig().resolved().to_dict()
    for key in NON_IDENTITY:
        d.pop(key)
    assert set(KEY_BASELINE) <= set(d), "the baseline names a field that does not exist"
    for section, fields in ADDED_AFTER_THE_FREEZE.items():
        for field in fields:
            d[section].pop(field)
    frozen_at = {**{k: d[k] for k in KEY_BASELINE}, **CHANGED_DEFAULTS}
    for section, fields in ADDED_WITH_OLD_BEHAVIOUR.items():
        frozen_at[section] = {**frozen_at[section], **fields}
    assert canonical(frozen_at) == canonical(KEY_BASELINE)


def test_the_teacher_is_named_by_its_folder_not_its_location():
    here = make_config(objective="kd_at", kd={"teacher": "runs/cpu/t-pgd_at-0123456789ab"})
    moved = make_config(objective="kd_at",
                        kd={"teacher": "/elsewhere/notebooks/results/cpu/t-pgd_at-0123456789ab"})
    other = make_config(objective="kd_at", kd={"teacher": "runs/cpu/t-pgd_at-ba9876543210"})
    assert here.key() == moved.key() != other.key()
    assert here.identity()["kd"] == {"teacher": "t-pgd_at-0123456789ab", "form": "eq3"}


def test_a_kd_field_added_after_the_freeze_leaves_every_earlier_key_alone():
    """kd.soft_labels (issue 28) at its default is no part of the key; another value is."""
    kd = {"teacher": "runs/cpu/t-pgd_at-0123456789ab", "form": "hinton"}
    before = make_config(objective="kd_at", kd=kd)
    assert "soft_labels" not in before.identity()["kd"]
    assert make_config(objective="kd_at", kd={**kd, "soft_labels": "teacher"}).key() == before.key()
    shuffled = make_config(objective="kd_at", kd={**kd, "soft_labels": "shuffled"})
    assert shuffled.identity()["kd"]["soft_labels"] == "shuffled"
