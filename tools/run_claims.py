"""Train the studies behind the Claims page and export their small artifacts.

    .venv/bin/python tools/run_claims.py                 # every study of the cpu profile
    .venv/bin/python tools/run_claims.py --only "search" # a subset, by regular expression
    .venv/bin/python tools/run_claims.py --profile full  # the paper's setting, on a GPU

The ``full`` study is the paper's setting (CIFAR-10, PreActResNet-18, 200 epochs, one
seed): exactly the runs notebooks 03-08 train at ``full``, so it reuses those already
trained in the checkout's ``runs/`` (where the notebooks and ``xcf train`` put them) and
trains the others there; it needs CIFAR-10, CIFAR-100 and Tiny-ImageNet under ``data/``
(or ``$XCF_DATA_DIR``) and a GPU (book page "Reproduce on a GPU").  Its export,
``notebooks/results/full/``, is what the Claims and figures pages read for ``full``.

To record clean provenance, train from a clean worktree of the commit and export outside
it (``git worktree add ../study HEAD``, then from there ``--export-to /tmp/export``, and
from the checkout ``--collect /tmp/export`` to copy the folders into
``notebooks/results/<profile>/``): an export into the worktree itself would make every
later run of the same call record ``git.dirty: true``.  A run folder that is replaced by
a new training of the same key keeps the earlier one in ``provenance.json``.

Runs go to ``$XCF_RUNS_DIR`` (default ``runs/cpu`` for the cpu study, ``runs/`` for the
others) and resume if killed; each finished run is copied without checkpoints to
``notebooks/results/<profile>/``, which the book reads.  Runs train one after another.

This is the one place that knows the checkout's layout; :mod:`xcf.companion.claim_runs` names the
runs and :mod:`xcf.companion.claims` decides.
"""
import argparse
import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning OpenMP threads: 5x slower here
REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))

from xcf.companion.hypotheses import record_erasure  # noqa: E402
from xcf.companion.claim_runs import located_studies, studies_of  # noqa: E402
from xcf.companion.locate import TrainOrReuse  # noqa: E402
from xcf.companion.profiles import PROFILES, profile_knobs  # noqa: E402
from xcf.companion.claim_runs import claims_profiles  # noqa: E402
from xcf.atomic import write_json  # noqa: E402
from xcf.runs.folder import Run  # noqa: E402


def run_studies(P: Mapping[str, Any], export_to: str | Path | None = None,
                only: Optional[Callable[[str], bool]] = None, profile: str = "cpu") -> dict:
    """Train (or reuse) every study of ``P`` one after another; export each finished run
    (without checkpoints) to ``export_to``.  Runs go to ``$XCF_RUNS_DIR``; a killed call
    resumes where it stopped.  ``only(name)`` picks a subset."""
    runs = {}
    announce = lambda name: print(f"== {name}", flush=True)  # noqa: E731
    for name, run in located_studies(P, TrainOrReuse(profile), only, announce=announce):
        runs[name] = run
        if name.startswith("H1 ") and run is not None and run.finished:
            # H1's numbers are measured on the kept checkpoints, which the export leaves out
            print(f"   erasure record of {run.path.name}: measuring", flush=True)
            record_erasure(run)
        if export_to is not None:
            export_run(run, export_to)
    return runs


def export_run(run, dest: str | Path, root: str | Path | None = None) -> Path:
    """Copy a finished run folder to ``dest`` without ``checkpoints/`` (small artifacts:
    config, provenance, metrics, matrices, final summary); replaces an older copy.

    Paths under the repository that the copy's config and provenance name (a KD
    teacher's) are written relative to the repository root, so tracked results carry no
    machine's absolute paths.  ``root`` defaults to this checkout (:data:`REPOSITORY`)."""
    if not run.finished:
        raise ValueError(f"{run.path} has not finished training; nothing exported")
    target = Path(dest) / run.path.name
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(run.path, tmp,
                    ignore=shutil.ignore_patterns("checkpoints", "*.lock", "*.tmp*"))
    for name in ("config.yaml", "provenance.json"):
        if (tmp / name).exists():
            text = (tmp / name).read_text()
            (tmp / name).write_text(repository_relative(text, root or REPOSITORY))
    if (tmp / "provenance.json").is_file():
        earlier = earlier_trainings(target, tmp)
        if earlier:
            prov = json.loads((tmp / "provenance.json").read_text())
            write_json(tmp / "provenance.json", {**prov, "earlier": earlier})
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def earlier_trainings(old: Path, new: Path) -> list[dict]:
    """What the copy ``new`` keeps of the folder ``old`` it replaces, so that a run key
    trained again (at a later commit, on another machine) does not erase how it was
    trained before: ``old``'s provenance and final record, under ``earlier``, after the
    trainings either already keeps there.  The same training copied again (the same
    provenance ``created``) adds nothing.  Different best weights for the same key are
    kept too, and said: the results then hold two outcomes of one configuration."""
    def read(folder: Path, name: str) -> dict:
        f = folder / name
        return json.loads(f.read_text()) if f.is_file() else {}

    prov, before = read(new, "provenance.json"), read(old, "provenance.json")
    kept = list(prov.get("earlier", []))
    seen = {prov.get("created")} | {k["provenance"].get("created") for k in kept}
    for e in before.pop("earlier", []):
        if e["provenance"].get("created") not in seen:
            kept.append(e)
            seen.add(e["provenance"].get("created"))
    if not before or before.get("created") in seen:
        return kept
    final = read(old, "final.json")
    digest, now = final.get("best_weights_sha256"), read(new, "final.json").get(
        "best_weights_sha256")
    differs = f"; its best weights differ ({digest[:12]}, now {str(now)[:12]})" if (
        digest and digest != now) else ""
    print(f"   {old.name}: replaces the training of {before.get('created')}, kept in "
          f"provenance.json under 'earlier'{differs}", flush=True)
    return kept + [{"provenance": before, "final": final}]


def repository_relative(text: str, root: str | Path = REPOSITORY) -> str:
    """``text`` with every absolute path under ``root`` made relative to it
    (``/home/me/xcf/runs/cpu/a`` becomes ``runs/cpu/a``)."""
    return text.replace(str(Path(root)).rstrip("/") + "/", "")


def default_runs_dir(profile: str) -> Path:
    """Where a study trains unless ``$XCF_RUNS_DIR`` says otherwise: ``runs/cpu`` for the
    cpu study (its runs are its own), the checkout's ``runs/`` for the others, whose runs
    are the section notebooks' own (the full study: notebooks 03-08 at ``full``)."""
    return REPOSITORY / "runs" / "cpu" if profile == "cpu" else REPOSITORY / "runs"


def main(argv: Optional[list[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--profile", default="cpu", choices=PROFILES,
                   help="profile whose 11_claims section to run (cpu, or full on a GPU)")
    p.add_argument("--only", default=None, help="regular expression on study names")
    p.add_argument("--list", action="store_true",
                   help="print the study names (those --only keeps) and train nothing")
    p.add_argument("--export-to", default=None,
                   help="where finished runs are copied (default notebooks/results/<profile>); "
                        "a folder outside the checkout keeps a worktree that trains clean, so "
                        "every run's provenance records git dirty false")
    p.add_argument("--collect", default=None, metavar="FOLDER",
                   help="train nothing: copy the finished runs exported to FOLDER into "
                        "notebooks/results/<profile> (a run folder already there keeps its "
                        "earlier training in provenance.json, under 'earlier')")
    args = p.parse_args(argv)
    if args.collect is not None:
        collect(Path(args.collect), REPOSITORY / "notebooks" / "results" / args.profile)
        return
    params = REPOSITORY / "notebooks" / "params"
    P = profile_knobs("11_claims", args.profile, params)
    if "train" not in P:
        sys.exit(f"profile {args.profile!r} names no studies in its 11_claims section (no "
                 f"train setting); the profiles that do: {', '.join(claims_profiles(params))}")
    if args.profile != "cpu" and not _has_cuda():
        print(f"warning: no CUDA GPU here; the {args.profile} study trains 200-epoch runs, "
              "which take days even on a GPU (book page \"Reproduce on a GPU\")", flush=True)
    os.environ.setdefault("XCF_RUNS_DIR", str(default_runs_dir(args.profile)))
    only = _matcher(args.only, [s.name for s in studies_of(P)], args.profile)
    if args.list:
        print("\n".join(s.name for s in studies_of(P) if only is None or only(s.name)))
        return
    export = args.export_to or REPOSITORY / "notebooks" / "results" / args.profile
    run_studies(P, export_to=export, only=only, profile=args.profile)


def collect(source: Path, dest: Path) -> list[Path]:
    """Copy every finished run exported to ``source`` into ``dest``, the last step of the
    clean-worktree recipe above, keeping what each copy replaces
    (:func:`earlier_trainings`); unfinished folders are named and left where they are."""
    if not source.is_dir():
        sys.exit(f"--collect {source}: no such folder; give the --export-to folder of a "
                 "study's run")
    copied = []
    for folder in sorted(f for f in source.iterdir() if f.is_dir() and ".tmp" not in f.name):
        run = Run(folder)
        if not run.finished:
            print(f"   {folder.name}: not finished (no final.json), left out", flush=True)
            continue
        copied.append(export_run(run, dest))
        print(f"   {folder.name} -> {dest}", flush=True)
    return copied


def _matcher(pattern: Optional[str], names: list[str], profile: str
             ) -> Optional[Callable[[str], bool]]:
    """``--only``'s test on a study name; an invalid pattern, or one that keeps no study,
    stops here, before anything trains (a typo would otherwise run nothing and say nothing)."""
    if pattern is None:
        return None
    try:
        search = re.compile(pattern).search
    except re.error as e:
        sys.exit(f"--only {pattern!r} is not a regular expression ({e}); "
                 "e.g. --only '^C1 seed [0-4]$'")
    if not any(search(n) for n in names):
        sys.exit(f"--only {pattern!r} matches none of the {len(names)} studies of the "
                 f"{profile} profile (e.g. {names[0]!r}); --list prints them all")
    return search


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    main()
