"""The whole study as scheduler jobs: plan the runs, launch them (submitit), read their state.

Three steps, one command each (:mod:`xcf.cli.main`):

- :func:`make_plan` / :func:`write_plan` (``xcf plan``): every distinct run the chosen
  notebooks train at a profile (each page's runs, as :mod:`xcf.companion.page_runs` declares
  them, through :func:`xcf.companion.costs.notebook_runs`, and the Claims page's
  studies, :func:`xcf.companion.claim_runs.studies_of`, where a profile names them), deduplicated by
  run key, one YAML config per run (``<slug>-<key>.yaml``, what ``xcf train`` reads),
  ``plan.json`` with each run's dependencies (a KD-AT student, Eq. 3 of Wei, Guo & Wang,
  ICML 2025, after its teacher) and the estimated cost (:mod:`xcf.companion.costs`);
- :func:`launch` (``xcf launch``): one submitit job per run, an array for the runs that
  wait for nothing, ``afterok`` dependencies for the students on Slurm, and, on the local
  and debug executors, students started only after their teachers have finished;
- :func:`xcf.cli.status.plan_status` (``xcf status``): each planned run's state, read from its run folder.

A job is a :class:`TrainJob`: ``xcf.train.runner.train`` on the run's config.  Preempted or out of
time, submitit calls its ``checkpoint()``, which resubmits the same job; the new job finds
the run folder and resumes from ``checkpoints/last.pt`` (the runner's resume, exact on CPU).

A student's run key includes its teacher's weights digest (:func:`xcf.runs.identity.teacher_digest`),
known only once the teacher has finished: the plan names a student by the key it has
before, and :func:`current_config` recomputes it from the teacher's run folder, as the
notebook's :func:`xcf.companion.locate.kd_pair` does.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import yaml

from xcf import __version__
from xcf.atomic import write_json, write_text
from xcf.runs.config import TrainConfig, make_config
from xcf.runs.config_file import read_config_file
from xcf.runs.identity import folder_name, teacher_identity
from xcf.companion.locate import kd_overrides
from xcf.companion.costs import ESTIMATE_LABEL, GPUS, format_pflop, gpu_hours, notebook_runs, plan_runs
from xcf.companion.page_runs import TRAINING_NOTEBOOKS
from xcf.companion.profiles import PROFILES, profile_knobs
from xcf.runs.provenance import DIVERGED, now
from xcf.runs.folder import Run, default_runs_dir, find_run
from xcf.companion.claim_runs import studies_of

__all__ = ["EXECUTORS", "PlanEntry", "select_notebooks", "make_plan",
           "write_plan", "format_summary", "read_plan", "current_config", "run_folder",
           "run_state", "LaunchFailedError", "TrainJob", "launch"]

EXECUTORS = ("slurm", "local", "debug")
# Requeues after a timeout (submitit's default is 3): a 200-epoch run under a short --time
# is resumed from last.pt as often as it needs.  Preemptions are not counted by submitit.
MAX_TIMEOUT_REQUEUES = 50


@dataclass
class PlanEntry:
    """One planned run: its folder name ``<slug>-<key>``, the config mapping its YAML file
    holds, the notebooks (and labels) that need it, its cost and the runs it waits for."""

    name: str
    config: dict
    labels: list[str]
    epochs: int
    flops: float
    depends_on: list[str] = field(default_factory=list)

    @property
    def notebooks(self) -> list[str]:
        return list(dict.fromkeys(label.split(":")[0] for label in self.labels))

    @property
    def config_file(self) -> str:
        return f"{self.name}.yaml"


def select_notebooks(spec: Optional[str]) -> list[str]:
    """``"03,04"`` (numbers or full names) -> the training notebooks' names, in book order;
    ``None``: all of :data:`xcf.companion.page_runs.TRAINING_NOTEBOOKS`.  An unknown one is
    a ``ValueError``."""
    if not spec:
        return list(TRAINING_NOTEBOOKS)
    chosen = []
    for token in (t.strip() for t in spec.split(",")):
        match = [nb for nb in TRAINING_NOTEBOOKS if token in (nb, nb.split("_")[0])]
        if token in ("02", "02_measuring_cross_class_features"):
            raise ValueError("--notebooks: notebook 02 trains its small CNN in memory when "
                             "it runs (no run folder), so it has no run to plan; leave it out")
        if not match:
            numbers = ", ".join(nb.split("_")[0] for nb in TRAINING_NOTEBOOKS)
            raise ValueError(f"--notebooks: unknown notebook {token!r}; the notebooks that "
                             f"train runs are {numbers} (or full names, e.g. 03_at_dynamics)")
        chosen += match
    return [nb for nb in TRAINING_NOTEBOOKS if nb in chosen]


def _claims_runs(P: Mapping[str, Any], runs_dir: Path) -> list[tuple[str, dict]]:
    """The Claims page's studies as ``(label, config)`` (none unless the profile's
    ``11_claims`` section names a ``train`` setting); a KD student is taught by C1's run
    of its seed, named by that run's folder under ``runs_dir``."""
    if "train" not in P:
        return []
    out = []
    for study in studies_of(P):
        overrides = dict(study.overrides)
        if study.teacher_seed is not None:
            teacher = make_config(dict(study.config), seed=study.teacher_seed)
            folder = runs_dir / folder_name(teacher)
            overrides = {**kd_overrides(folder, P["kd_lambda"], P["kd_temperature"],
                                        study.kd_form), "seed": study.teacher_seed}
        out.append((study.name, make_config(dict(study.config), **overrides).to_dict()))
    return out


def _teacher_name(config: Mapping[str, Any]) -> Optional[str]:
    """The run folder name of a KD student's teacher (``None`` for other objectives)."""
    kd = config.get("kd") or {}
    if config.get("objective") != "kd_at" or not kd.get("teacher"):
        return None
    return teacher_identity(str(kd["teacher"]))


def _repoint(config: Mapping[str, Any], runs_dir: Path) -> dict:
    """``config`` with a KD teacher named as its folder under ``runs_dir`` (the key keeps:
    it names a teacher by folder name and digest, :func:`xcf.runs.identity.teacher_identity`)."""
    out = dict(config)
    name = _teacher_name(config)
    if name is not None and not name.endswith(".pt"):
        out["kd"] = {**out["kd"], "teacher": str(runs_dir / name)}
    return out


def make_plan(profile: str, notebooks: Optional[Sequence[str]] = None,
              runs_dir: str | Path | None = None,
              params_dir: str | Path | None = None) -> list[PlanEntry]:
    """The distinct runs ``notebooks`` (default: all that train) need at ``profile``, in
    training order (a teacher before its student), each kept once, where first asked for.
    ``runs_dir`` (default ``$XCF_RUNS_DIR`` or ``./runs``) is where the teachers are named."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; use one of {', '.join(PROFILES)}")
    root = Path(runs_dir if runs_dir is not None else default_runs_dir()).absolute()
    if root.exists() and not root.is_dir():
        raise ValueError(f"--runs-dir {root} is a file, not a folder; give a folder (it is "
                         "created if missing)")
    asked: list[tuple[str, dict]] = []
    for nb in select_notebooks(",".join(notebooks or ())):  # an unknown one raises
        knobs = profile_knobs(nb, profile, Path(params_dir) if params_dir else None)
        runs = _claims_runs(knobs, root) if nb == "11_claims" else notebook_runs(nb, knobs)
        asked += [(f"{nb}: {label}", _repoint(config, root)) for label, config in runs]
    by_key: dict[str, PlanEntry] = {}
    for label, config in asked:
        c = make_config(dict(config))
        if c.key() in by_key:
            by_key[c.key()].labels.append(label)
        else:
            by_key[c.key()] = PlanEntry(folder_name(c), config, [label], c.epochs, 0.0)
    entries = list(by_key.values())
    costs = plan_runs([(e.name, e.config) for e in entries])  # FLOPs, in the same order
    names = {e.name for e in entries}
    for entry, cost in zip(entries, costs):
        entry.flops = cost.flops
        teacher = _teacher_name(entry.config)
        entry.depends_on = [teacher] if teacher in names else []
    return entries


def _hours(flops: float) -> dict[str, float]:
    return {gpu: gpu_hours(flops, gpu) for gpu in GPUS}


def format_summary(entries: Sequence[PlanEntry], profile: str) -> str:
    """The plan as text: one line per run (epochs, PFLOP, A100-hours, what it waits for,
    which notebooks need it) and the total in GPU-hours per GPU class (:data:`xcf.companion.costs.GPUS`)."""
    total = sum(e.flops for e in entries)
    hours = ", ".join(f"{gpu} {h:,.0f}" if h >= 100 else f"{gpu} {h:.3g}"
                      for gpu, h in _hours(total).items())
    lines = [f"plan {profile}: {len(entries)} run(s), {sum(e.epochs for e in entries)} epochs, "
             f"{format_pflop(total)} PFLOP",
             f"GPU-hours ({ESTIMATE_LABEL}): {hours}"]
    for e in entries:
        after = f", after {e.depends_on[0]}" if e.depends_on else ""
        nbs = ", ".join(nb.split("_")[0] for nb in e.notebooks)
        lines.append(f"  {e.name}: {e.epochs} epochs, {format_pflop(e.flops)} PFLOP, "
                     f"A100 {gpu_hours(e.flops, 'A100'):.2g} h{after} (notebooks {nbs})")
    return "\n".join(lines)


def write_plan(entries: Sequence[PlanEntry], out: str | Path, profile: str,
               runs_dir: str | Path | None = None) -> str:
    """Write one ``<name>.yaml`` per run, ``plan.json`` and ``summary.txt`` under ``out``;
    returns the summary.  Config files of an earlier plan in ``out`` that this plan no
    longer lists are removed (and nothing else)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder (it is created if missing)")
    out.mkdir(parents=True, exist_ok=True)
    old = read_plan(out)["runs"] if (out / "plan.json").is_file() else []
    for stale in {r["config_file"] for r in old} - {e.config_file for e in entries}:
        (out / Path(stale).name).unlink(missing_ok=True)
    for e in entries:
        head = "".join(f"# {label}\n" for label in e.labels)
        write_text(out / e.config_file, f"# xcf plan --profile {profile}: run {e.name}\n{head}"
                   "# train it alone: xcf train THIS_FILE (--dry-run: its run folder)\n"
                   + yaml.safe_dump(e.config, sort_keys=False))
    summary = format_summary(entries, profile)
    root = Path(runs_dir if runs_dir is not None else default_runs_dir()).absolute()
    write_json(out / "plan.json", {
        "profile": profile, "runs_dir": str(root), "created": now(), "xcf_version": __version__,
        "estimate": ESTIMATE_LABEL,
        "totals": {"runs": len(entries), "epochs": sum(e.epochs for e in entries),
                   "flops": sum(e.flops for e in entries),
                   "gpu_hours": _hours(sum(e.flops for e in entries))},
        "runs": [{"name": e.name, "config_file": e.config_file, "labels": e.labels,
                  "notebooks": e.notebooks, "epochs": e.epochs, "flops": e.flops,
                  "gpu_hours": _hours(e.flops), "depends_on": e.depends_on}
                 for e in entries]})
    write_text(out / "summary.txt", summary + "\n")
    return summary


def read_plan(directory: str | Path) -> dict:
    """``plan.json`` of a plan folder; a ``ValueError`` naming the folder when it has none."""
    path = Path(directory) / "plan.json"
    if not path.is_file():
        raise ValueError(f"{directory} holds no plan (no plan.json); make one with "
                         f"xcf plan --profile smoke|cpu|gpu|full --out {directory}")
    try:
        plan = json.loads(path.read_text())
        plan["runs"] = list(plan["runs"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path} is not a plan xcf plan wrote ({err}); make it again") from err
    return plan


def current_config(directory: str | Path, run: Mapping[str, Any], runs_dir: str | Path) -> dict:
    """The config of planned ``run`` as its YAML file holds it, with a KD teacher named
    under ``runs_dir``: its key now (a student's includes a finished teacher's digest)."""
    return _repoint(read_config_file(Path(directory) / run["config_file"]), Path(runs_dir))


def run_folder(config: TrainConfig | Mapping[str, Any], runs_dir: str | Path | None = None) -> Run:
    """The run folder ``config`` trains into, as :func:`xcf.train.runner.train` finds it: the
    folder under ``runs_dir`` whose name ends in the key, else
    :func:`~xcf.runs.identity.folder_name` there."""
    c = make_config(config)
    root = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    return find_run(root, c.key()) or Run(root / folder_name(c))


def run_state(run: Run) -> tuple[str, int, Optional[int]]:
    """``(state, epochs done, best epoch)`` of a run folder; state is ``not started``,
    ``running`` (a live process holds its lock), ``finished``, ``diverged`` (its last
    session stopped at a non-finite number, :class:`~xcf.train.loop.TrainingDiverged`),
    ``failed`` (its last session raised another error) or ``interrupted`` (killed,
    preempted or stopped; the next train resumes it from last.pt)."""
    if not (run.path / "config.yaml").is_file():
        return "not started", 0, None
    done = len(run.metrics())
    best = run.best_epoch if done else None
    if run.finished:
        return "finished", done, best
    if run.locked:
        return "running", done, best
    sessions = run.provenance().get("sessions") or [{}]
    error = str(sessions[-1].get("error") or "")
    if sessions[-1].get("status") == DIVERGED:  # not "interrupted": a rerun diverges again
        return "diverged", done, best
    # A requeue (submitit exits with SystemExit) or Ctrl-C ends a session as "failed": the
    # run was stopped, not broken.
    if sessions[-1].get("status") == "failed" and not error.startswith(
            ("SystemExit", "KeyboardInterrupt")):
        return "failed", done, best
    return "interrupted", done, best


class LaunchFailedError(RuntimeError):
    """A launched run failed (its log folder is named where it failed), or its teacher did."""


class TrainJob:
    """One submitit job: train (or resume, or reuse) the run of ``config`` under
    ``runs_dir``; returns the run folder.  ``checkpoint()`` is submitit's requeue hook
    (the protocol of :class:`submitit.helpers.Checkpointable`, kept duck-typed so that
    ``xcf plan`` and ``xcf status`` need no submitit): it resubmits the same job, which
    resumes from ``checkpoints/last.pt``."""

    def __init__(self, name: str, config: Mapping[str, Any], runs_dir: str | Path) -> None:
        self.name, self.config, self.runs_dir = name, dict(config), str(runs_dir)

    def __call__(self) -> str:
        from xcf.train.runner import train

        print(f"xcf job {self.name}: training into {self.runs_dir}", flush=True)
        return str(train(dict(self.config), runs_dir=self.runs_dir, progress=False).path)

    def checkpoint(self, *args: Any, **kwargs: Any):
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(type(self)(self.name, self.config, self.runs_dir))


def _executor(kind: str, logs: Path, partition: Optional[str], gpus: int,
              time_min: Optional[int], slurm_options: Mapping[str, Any]):
    if kind not in EXECUTORS:
        raise ValueError(f"--executor {kind!r} is unknown; use one of {', '.join(EXECUTORS)}")
    missing = [tool for tool in ("sbatch", "srun") if shutil.which(tool) is None]
    if kind == "slurm" and missing:
        raise ValueError(f"--executor slurm: no Slurm here ({' and '.join(missing)} not on "
                         "PATH); run xcf launch on the cluster's login node, or use "
                         "--executor local")
    try:
        import submitit
    except ImportError:
        raise ValueError("xcf launch needs submitit: pip install 'xcf[cluster]' (or "
                         "pip install submitit)") from None
    ex = submitit.AutoExecutor(folder=logs / "%j", cluster=kind,
                               slurm_max_num_timeout=MAX_TIMEOUT_REQUEUES,
                               local_max_num_timeout=MAX_TIMEOUT_REQUEUES)
    params: dict[str, Any] = {"name": "xcf", "tasks_per_node": 1}
    if kind != "debug":
        params.update(gpus_per_node=gpus)
        if time_min is not None:
            params["timeout_min"] = time_min
    if kind == "slurm":
        params.update(slurm_partition=partition, slurm_additional_parameters=dict(slurm_options))
    ex.update_parameters(**params)
    return ex


def launch(directory: str | Path, executor: str = "local", *, partition: Optional[str] = None,
           gpus_per_job: int = 1, time_min: Optional[int] = None,
           runs_dir: str | Path | None = None, slurm_options: Mapping[str, Any] = (),
           say=print) -> dict[str, str]:
    """Submit one job per unfinished planned run; returns ``{run name: job id}``.

    Slurm: the runs that wait for nothing go as one job array, each student as a job
    with ``--dependency=afterok:<teacher's job>``, and the command returns once all are
    queued.  Local and debug: the runs go level by level (teachers, then their students),
    and the command returns when all have ended.  Logs: ``<directory>/logs/<job id>/``;
    the job ids also go to ``<directory>/jobs.json``.  A finished run, or one a live
    process is training, is not submitted again."""
    directory = Path(directory)
    plan = read_plan(directory)
    root = Path(runs_dir if runs_dir is not None else plan["runs_dir"]).absolute()
    if runs_dir is not None and root.exists() and not root.is_dir():
        raise ValueError(f"--runs-dir {root} is a file, not a folder")
    ex = _executor(executor, directory / "logs", partition, gpus_per_job, time_min,
                   dict(slurm_options))
    if partition and executor != "slurm":
        say(f"note: --partition {partition} applies to --executor slurm only; ignored")
    pending: dict[str, dict] = {}
    running: set[str] = set()
    for r in plan["runs"]:
        config = current_config(directory, r, root)
        state = run_state(run_folder(config, root))[0]
        if state in ("finished", "running"):
            say(f"{r['name']}: {state}, not submitted")
            running |= {r["name"]} if state == "running" else set()
        elif set(r["depends_on"]) & running:  # no job of ours to wait for
            say(f"{r['name']}: not submitted, its teacher is still training; launch again "
                "once it has finished")
        else:
            pending[r["name"]] = {**r, "config": config}
    jobs: dict[str, str] = {}
    failed: set[str] = set()
    level = [n for n, r in pending.items() if not set(r["depends_on"]) & set(pending)]
    while level:
        batch = [n for n in level if not set(pending[n]["depends_on"]) & failed]
        failed |= set(level) - set(batch)
        for n in set(level) - set(batch):
            say(f"{n}: not submitted, its teacher failed")
        submitted = _submit(ex, executor, batch, pending, jobs, root, dict(slurm_options))
        for n, job in submitted.items():
            jobs[n] = str(job.job_id)
            say(f"{n}: job {job.job_id}")
        _write_jobs(directory, executor, jobs)
        if executor != "slurm":  # dependencies by order: wait for this level to end
            for n, job in submitted.items():
                try:
                    job.result()
                    say(f"{n}: finished")
                except Exception as err:  # the job's own error, shown with its log folder
                    failed.add(n)
                    first = (str(err).strip().splitlines() or [type(err).__name__])[-1]
                    say(f"{n}: failed ({first}); log: {directory / 'logs' / str(job.job_id)}")
        done = set(jobs) | failed
        level = [n for n, r in pending.items() if n not in done
                 and set(r["depends_on"]) & set(pending) <= done]
    if failed:
        raise LaunchFailedError(f"{len(failed)} run(s) did not finish: {', '.join(sorted(failed))}")
    return jobs


def _submit(ex, executor: str, names: Sequence[str], pending: Mapping[str, dict],
            jobs: Mapping[str, str], root: Path, slurm_options: Mapping[str, Any]) -> dict:
    """Submit ``names``: as one array where none waits for a queued job, else one job
    each with ``afterok`` on its teachers' jobs (Slurm)."""
    waits = {n: [jobs[d] for d in pending[n]["depends_on"] if d in jobs] for n in names}
    free = [n for n in names if not waits[n] or executor != "slurm"]
    out = {}
    if free:
        if executor == "slurm":  # no dependency left over from an earlier submission
            ex.update_parameters(slurm_additional_parameters=dict(slurm_options))
        with ex.batch():
            handles = [ex.submit(TrainJob(n, pending[n]["config"], root)) for n in free]
        out.update(zip(free, handles))
    for n in names:
        if n in out:
            continue
        ex.update_parameters(slurm_additional_parameters={
            **slurm_options, "dependency": "afterok:" + ":".join(waits[n])})
        out[n] = ex.submit(TrainJob(n, pending[n]["config"], root))
    return out


def _write_jobs(directory: Path, executor: str, jobs: Mapping[str, str]) -> None:
    path = directory / "jobs.json"
    known = json.loads(path.read_text()) if path.is_file() else {}
    known.update({n: {"job_id": j, "executor": executor} for n, j in jobs.items()})
    write_json(path, known)
