"""The runs behind the Claims page: which runs each claim reads, and how to find them.

One job: *name the studies*.  An ``11_claims`` section of a profile (``P``) lists a base
training setting (``train``) and, per claim, what varies; :func:`studies_of` turns it into
named :class:`Study` entries, in the order they must train (a KD student after its
teacher), and :func:`located_studies` finds each one with any :mod:`xcf.companion.locate` locator.
The rules that decide the claims on these runs are :mod:`xcf.companion.claims`; training and
exporting them is ``tools/run_claims.py``'s job.  :func:`claims_results` gathers, for the
Claims page, the committed results of every profile that names studies (cpu: Fashion-MNIST
at CPU scale; full: the paper's CIFAR-10 setting, the very runs of notebooks 03-08),
each labelled with its profile and "not run" where none were exported.

Keys of ``P`` (each list of seeds defaults to ``seeds``):

- ``seeds``: C1's PGD-AT seeds; ``kd_seeds`` (``kd_seeds_by_form``: per KD form),
  ``eps_seeds``, ``fast_seeds``,
  ``standard_seeds``, ``across_seeds``: the seeds of C2, C3, C4, C5 and of the rows across
  norms and architectures;
- ``kd_lambda``, ``kd_temperature`` and ``kd_forms`` (or one ``kd_form``): C2's KD-AT, one
  student per form and seed, taught by the best checkpoint of C1's run of that seed;
- ``eps_list``: C3's ε values; ``fast``: C4's fast-AT settings (``{label, overrides}``);
- ``across``: ``{label, overrides}`` rows that repeat C1's fall under another norm or
  model; a row with ``whole: true`` repeats the whole of C1 (rise, fall, control) on a
  second setting, and ``seeds`` gives a row its own seeds;
- ``search``: settings tried for robust overfitting; ``planted``: the planted-data run;
- ``h1`` and ``h2`` (beyond the paper, :mod:`xcf.companion.hypotheses`): ``h1`` the overrides of
  H1's planted PGD-AT runs (each keeps every epoch's checkpoint, so that the erasure can
  be measured at whichever epoch the held-out images select); ``h2``: ``{form,
  soft_labels, overrides}``, the KD form, the soft labels of H2's students (``teacher``,
  ``shuffled``, ``smoothing``; without ``teacher`` C2's student of the form is the KD arm)
  and overrides of every arm alike (a precision), each taught by C1's run of its seed;
  ``h1_seeds``, ``h2_seeds``;
- ``seed_overrides``: ``{seed: overrides}`` applied to every run of that seed (a KD
  student and its teacher alike), e.g. ``{3: {amp: none}}`` for seeds trained in fp32 on
  a CPU without native bf16; each run's key and page label carry its precision.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional

from xcf.companion.hypotheses import read_erasure
from xcf.companion.locate import Committed, kd_overrides
from xcf.companion.page_runs import at_eps, standard
from xcf.train.precision import precision_label
from xcf.companion.profiles import PROFILES, ParameterError, params_dir, profile_knobs, results_dir

__all__ = ["Study", "StudyResults", "studies_of", "fast_settings", "fast_studies", "kd_forms",
           "seeds_of", "across_row_seeds", "seed_overrides", "located_studies",
           "hypothesis_inputs", "find_studies",
           "claims_profiles", "claims_results"]


@dataclass
class Study:
    """One named run of the Claims page: ``config`` with ``overrides``; a KD student
    also names its teacher's seed and its KD form (its teacher is found at run time)."""

    name: str
    config: Mapping[str, Any]
    overrides: dict = field(default_factory=dict)
    teacher_seed: Optional[int] = None
    kd_form: Optional[str] = None
    soft_labels: str = "teacher"

    def __iter__(self):  # unpacks as (name, config, overrides)
        return iter((self.name, self.config, self.overrides))


def seeds_of(P: Mapping[str, Any], claim: str, form: Optional[str] = None) -> list[int]:
    """The seeds of ``claim`` (``kd``, ``eps``, ``fast``, ``standard``, ``across``):
    ``P[claim + '_seeds']``, or C1's ``seeds``.  For ``kd`` and a KD ``form``,
    ``P['kd_seeds_by_form'][form]`` first (one form's new seeds can land before the
    other's)."""
    if claim == "kd" and form is not None and form in (P.get("kd_seeds_by_form") or {}):
        return list(P["kd_seeds_by_form"][form])
    return list(P.get(f"{claim}_seeds", P["seeds"]))


def across_row_seeds(P: Mapping[str, Any], row: Mapping[str, Any]) -> list[int]:
    """The seeds of one ``across`` row: its own ``seeds``, else ``across_seeds`` (a row
    that repeats the whole of C1 on a second setting needs C1's seed count)."""
    return list(row.get("seeds", seeds_of(P, "across")))


def seed_overrides(P: Mapping[str, Any], seed: int) -> dict:
    """The overrides ``P['seed_overrides']`` names for every run of ``seed`` (``{}``)."""
    return dict((P.get("seed_overrides") or {}).get(seed, {}))


def kd_forms(P: Mapping[str, Any]) -> list[str]:
    """The KD forms C2 runs (:class:`xcf.runs.config.KDConfig`): ``kd_forms``, or ``kd_form``."""
    return list(P.get("kd_forms") or [P.get("kd_form", "eq3")])


def fast_settings(P: Mapping[str, Any]) -> list[dict]:
    """The fast-AT settings to try for C4, in order: ``{label, overrides}`` each (a single
    mapping of overrides is one setting labelled by its ε and step)."""
    fast = P.get("fast", [])
    if isinstance(fast, Mapping):
        step = fast.get("fast_at", {}).get("alpha")
        fast = [{"label": f"ε {fast.get('eps')}, step {step}", "overrides": fast}]
    return list(fast)


def fast_studies(P: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(label, study name)`` of every C4 run: each fast-AT setting on each seed."""
    return [(f"{f['label']} (seed {s})", f"C4 fast AT {f['label']} seed {s}")
            for f in fast_settings(P) for s in seeds_of(P, "fast")]


def studies_of(P: Mapping[str, Any]) -> Iterator[Study]:
    """Every run the ``11_claims`` section ``P`` names, teachers before students."""
    base = P["train"]
    of = lambda seed, overrides: {**seed_overrides(P, seed), **overrides, "seed": seed}  # noqa: E731
    for probe in P.get("search", []):
        yield Study(f"search: {probe['label']}", base, dict(probe["overrides"]))
    for seed in P["seeds"]:
        yield Study(f"C1 seed {seed}", base, of(seed, {}))
    for form in kd_forms(P):
        for seed in seeds_of(P, "kd", form):
            yield Study(f"C2 KD-AT {form} seed {seed}", base, of(seed, {"objective": "kd_at"}),
                        teacher_seed=seed, kd_form=form)
    for eps in P.get("eps_list", []):
        for seed in seeds_of(P, "eps"):
            yield Study(f"C3 eps {eps:g} seed {seed}", base, of(seed, at_eps(eps)))
    for setting in fast_settings(P):
        for seed in seeds_of(P, "fast"):
            yield Study(f"C4 fast AT {setting['label']} seed {seed}", base,
                        of(seed, setting["overrides"]))
    for seed in seeds_of(P, "standard"):
        yield Study(f"C5 standard seed {seed}", base, of(seed, standard()))
    for row in P.get("across", []):
        for seed in across_row_seeds(P, row):
            yield Study(f"C1 {row['label']} seed {seed}", base, of(seed, row["overrides"]))
    if P.get("planted"):
        yield Study("planted", base, dict(P["planted"]))
    if P.get("h1"):
        epochs = int({**base, **P["h1"]}["epochs"])
        for seed in seeds_of(P, "h1"):
            yield Study(f"H1 planted seed {seed}", base,
                        of(seed, {**P["h1"], "save_checkpoints_at": list(range(1, epochs + 1))}))
    if P.get("h2"):
        for soft in P["h2"]["soft_labels"]:
            for seed in seeds_of(P, "h2"):
                overrides = {"objective": "kd_at", **P["h2"].get("overrides", {})}
                yield Study(f"H2 KD-AT {soft} seed {seed}", base, of(seed, overrides),
                            teacher_seed=seed, kd_form=P["h2"]["form"], soft_labels=soft)


def located_studies(P: Mapping[str, Any], locate: Callable[..., Any],
                    only: Optional[Callable[[str], bool]] = None,
                    announce: Optional[Callable[[str], None]] = None
                    ) -> Iterator[tuple[str, Any]]:
    """``(name, run)`` for every study of ``P`` (those ``only(name)`` keeps); ``run`` is
    ``locate(config, **overrides)`` and may be ``None`` if ``locate`` finds nothing.

    A KD student's teacher is C1's run of the same seed: the one already located, or
    located first (``locate(config, seed=...)``) when ``only`` skipped it.  Without a
    teacher the student is yielded as ``None`` and nothing is located for it.
    ``announce(name)`` is called before each study is located (a training locator
    prints it)."""
    c1: dict[int, Any] = {}
    for study in studies_of(P):
        if only is not None and not only(study.name):
            continue
        overrides = study.overrides
        if study.teacher_seed is not None:
            seed = study.teacher_seed
            if seed not in c1:
                c1[seed] = locate(study.config, **seed_overrides(P, seed), seed=seed)
            if c1[seed] is None:
                yield study.name, None
                continue
            overrides = {**overrides,
                         **kd_overrides(c1[seed].path, P["kd_lambda"], P["kd_temperature"],
                                        study.kd_form, study.soft_labels), "seed": seed}
        if announce is not None:
            announce(study.name)
        run = locate(study.config, **overrides)
        if study.name.startswith("C1 seed "):
            c1[overrides["seed"]] = run
        yield study.name, run


def hypothesis_inputs(found: Mapping[str, Any], P: Mapping[str, Any]
                      ) -> tuple[list[tuple[Any, dict]], list[dict]]:
    """What :func:`xcf.companion.hypotheses.h1` and :func:`xcf.companion.hypotheses.h2` read, from the
    finished runs ``found`` (name -> run) of ``P``'s studies: H1's ``(planted run, its
    erasure record)`` per seed that has both, and H2's ``{pgd_at, kd, kd_shuffled,
    label_smoothing}`` per seed that has every arm (C1's run and C2's student of the
    ``h2`` form, or H2's own student of the real teacher where ``h2`` names one, are
    its PGD-AT and KD arms)."""
    h1 = []
    for seed in seeds_of(P, "h1") if P.get("h1") else []:
        run = found.get(f"H1 planted seed {seed}")
        record = read_erasure(run) if run is not None else None
        if record is not None:
            h1.append((run, record))
    h2 = []
    arm = {"teacher": "kd", "shuffled": "kd_shuffled", "smoothing": "label_smoothing"}
    for seed in seeds_of(P, "h2") if P.get("h2") else []:
        runs = {"pgd_at": found.get(f"C1 seed {seed}"),
                "kd": found.get(f"C2 KD-AT {P['h2']['form']} seed {seed}"),
                **{arm[s]: found.get(f"H2 KD-AT {s} seed {seed}") for s in P["h2"]["soft_labels"]}}
        if all(r is not None for r in runs.values()) and len(runs) == 4:
            h2.append(runs)
    return h1, h2


def find_studies(root: str | Path, P: Mapping[str, Any]) -> dict:
    """The finished runs of ``P``'s studies under ``root`` (missing ones left out)."""
    locate = Committed(root, profile=Path(root).name)
    return {name: run for name, run in located_studies(P, locate) if run is not None}


@dataclass
class StudyResults:
    """The Claims page's view of one profile: its studies (``studies``, the profile's
    ``11_claims`` section), the finished runs of them found under ``root`` (``found``,
    name -> run; empty: not run), and how the page names that folder (``where``,
    ``notebooks/results/<profile>``: no machine's path in a rendered page)."""

    profile: str
    studies: Mapping[str, Any]
    found: dict
    root: Path
    where: str

    @property
    def n_studies(self) -> int:
        return len(list(studies_of(self.studies)))

    @property
    def ran(self) -> bool:
        return bool(self.found)

    def caption(self) -> str:
        """One Markdown line naming the profile and what was found, e.g. ``**cpu profile**:
        19 of its 19 studies have a finished run, read from `notebooks/results/cpu/`.``"""
        head = f"**{self.profile} profile**"
        if not self.ran:
            return (f"{head}: not run. No finished run of its {self.n_studies} studies under "
                    f"`{self.where}/`; `tools/run_claims.py --profile {self.profile}` trains "
                    "and exports them. Every verdict is *not run*.")
        return (f"{head}: {len(self.found)} of its {self.n_studies} studies have a finished "
                f"run, read from `{self.where}/`; trained in {self.precisions()}.")

    def precisions(self) -> str:
        """The precisions the found runs trained in, with counts, e.g. ``bf16 autocast
        (61 runs) and fp32 (8 runs)``: a run's precision is part of its key."""
        counts: dict[str, int] = {}
        # two studies may name one run (a search row that is C3's run): count runs once
        for run in {str(r.path): r for r in self.found.values()}.values():
            label = precision_label(run.config.get("amp", "none"))
            counts[label] = counts.get(label, 0) + 1
        parts = [f"{label} ({n} run{'s' * (n != 1)})" for label, n in counts.items()]
        return " and ".join(parts) if parts else "-"


def claims_profiles(directory: str | Path | None = None) -> list[str]:
    """The profiles whose ``11_claims`` section names studies (a ``train`` setting), in
    :data:`xcf.companion.profiles.PROFILES` order; ``directory``: the profile files' folder."""
    folder = Path(directory) if directory is not None else params_dir()
    named = []
    for profile in PROFILES:
        try:
            if "train" in profile_knobs("11_claims", profile, folder):
                named.append(profile)
        except ParameterError:  # no such profile file, or no 11_claims section in it
            continue
    return named


def claims_results(lead: str, root: str | Path | None = None,
                   directory: str | Path | None = None) -> list[StudyResults]:
    """The committed results of every profile that names Claims studies, ``lead`` (the
    page's ``results`` knob) first: for each, its studies and the finished runs of them
    under ``root/<profile>`` (``root`` default: the checkout's ``notebooks/results``,
    :func:`xcf.companion.profiles.results_dir`).  A profile without results comes back with nothing
    found, so the page says "not run" for it.  ``lead`` must name studies itself
    (:class:`xcf.companion.profiles.ParameterError` otherwise, before anything is read)."""
    folder = Path(directory) if directory is not None else params_dir()
    named = claims_profiles(folder)
    if lead not in named:
        raise ParameterError(f"parameter results = {lead!r}: profile {lead!r} names no Claims "
                             f"studies (its 11_claims section has no train setting); use one "
                             f"of {', '.join(named)}")
    out = []
    for profile in [lead, *(p for p in named if p != lead)]:
        where = Path(root) / profile if root is not None else results_dir(profile, folder)
        S = profile_knobs("11_claims", profile, folder)
        out.append(StudyResults(profile, S, find_studies(where, S), where,
                                f"notebooks/results/{profile}"))
    return out
