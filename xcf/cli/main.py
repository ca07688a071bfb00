"""Command line: ``xcf train CONFIG.yaml``, ``xcf measure RUN_DIR --epoch N`` and
``xcf measure-model PACKAGE.MODULE:FACTORY --dataset NAME --eps EPS`` (any classifier whose
last layer is a Linear, e.g. ``torchvision.models:resnet18``; see
:func:`xcf.models.as_feature_classifier`); the whole study as jobs (:mod:`xcf.cli.launch`):
``xcf plan --profile P --out DIR``, ``xcf launch DIR --executor slurm|local|debug`` and
``xcf status DIR``.

``python -m xcf ...`` is the same.  ``train`` resumes an unfinished run and reuses a
finished one by default (runs are keyed by a hash of their config, see :mod:`xcf.runs.folder`);
``--overwrite`` starts afresh.  Exit status: 0 success, 1 training failed (it diverged: a
non-finite loss, weight or evaluation number, one line naming the epoch and the value, the
run's session recorded as "diverged"; or the run is locked by another live process; a
launched run failed), 2 bad config or arguments.  ``train --dry-run`` prints the run folder a config maps to, and trains nothing.
``train --wait SECONDS`` bounds the wait for a run another process is training (default:
as long as it lives; 0: fail at once); ``train --ddp N`` trains on N processes under
torchrun, as ``torchrun --nproc_per_node N -m xcf train CONFIG`` does (:mod:`xcf.train.distributed`).

A user error (config, flag, file, model, output path) is never a traceback: exit status 2
and one line ``xcf COMMAND: error: ...`` naming the value and the fix.  Output paths
(``measure --json FILE``, whose folder must exist; ``measure-model --out``, ``train
--runs-dir``, ``plan --out``, folders created if missing) are checked before any work.  A
config file may not give a key twice, and with its ``--set`` overrides may not set a
section its objective does not use (:func:`xcf.runs.config.check_sections_used`).
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Optional, Sequence

import yaml

from xcf.cli import measure_model
from xcf.cli.arguments import (check_output, count, device, floats, fraction, merge,
                               parse_set, seconds)

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="xcf", description="Train runs and measure cross-class "
                                "features (Wei, Guo & Wang, ICML 2025).")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("train", help="train (or resume, or reuse) the run of a YAML config")
    t.add_argument("config", type=Path, help="YAML file with TrainConfig keys (see configs/)")
    t.add_argument("--runs-dir", type=Path, default=None,
                   help="where run folders go (default: $XCF_RUNS_DIR or ./runs)")
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set epochs=3 --set kd.lambda=0.3")
    t.add_argument("--device", type=device, default=None,
                   help="auto, cpu, cuda, cuda:N, mps (not part of the run key)")
    t.add_argument("--overwrite", action="store_true", help="delete an existing run folder first")
    t.add_argument("--no-progress", action="store_true", help="no progress bars")
    t.add_argument("--dry-run", action="store_true", help="print the run folder the config "
                   "maps to and its state; train nothing")
    t.add_argument("--wait", type=seconds, default=None, metavar="SECONDS",
                   help="when another process trains the run, wait this long for it, then "
                   "reuse the run it finished (default: as long as it lives; 0: fail at once)")
    t.add_argument("--ddp", type=count(1), nargs="?", const=0, default=None, metavar="N",
                   help="train on N processes with DistributedDataParallel (re-runs this "
                   "command under torchrun; default N: the visible GPUs)")

    m = sub.add_parser("measure", help="recompute C, CAS and robust accuracy of a checkpoint")
    m.add_argument("run_dir", type=Path)
    m.add_argument("--epoch", type=_epoch_arg, default="best", help="epoch number, 'best' or 'last' (default best)")
    m.add_argument("--eval-n", type=int, default=None, help="test samples (default: the run's eval_n)")
    m.add_argument("--steps", type=int, default=None, help="PGD steps (default: the run's eval_steps)")
    m.add_argument("--eps", type=float, default=None, help="attack radius (default: the run's eval_eps)")
    m.add_argument("--instance", action="store_true", help="also the instance-wise I-CAS (Sec. 5.3)")
    m.add_argument("--device", type=device, default=None, help="auto, cpu, cuda, cuda:N, mps")
    m.add_argument("--json", type=Path, default=None, help="also write the results (with C) "
                   "to this file (its folder must exist)")
    m.add_argument("--no-progress", action="store_true")
    measure_model.add_parser(sub)
    _cluster_parsers(sub)
    return p


def _cluster_parsers(sub) -> None:
    pl = sub.add_parser("plan", help="write every run the notebooks need at a profile as "
                        "YAML configs, with dependencies and estimated GPU-hours")
    pl.add_argument("--profile", required=True, help="smoke, cpu, gpu or full")
    pl.add_argument("--notebooks", default=None, metavar="03,04,...",
                    help="notebook numbers or names (default: every notebook that trains)")
    pl.add_argument("--out", type=Path, required=True, help="folder for the plan")
    pl.add_argument("--runs-dir", type=Path, default=None,
                    help="where the runs will go (default: $XCF_RUNS_DIR or ./runs)")
    la = sub.add_parser("launch", help="submit a plan's runs as jobs (submitit)")
    la.add_argument("plan_dir", type=Path, metavar="DIR", help="a folder xcf plan wrote")
    la.add_argument("--executor", required=True, help="slurm, local (subprocesses here) or "
                    "debug (in this process, one after another)")
    la.add_argument("--partition", default=None, help="Slurm partition")
    la.add_argument("--gpus-per-job", type=count(0), default=1, help="default 1")
    la.add_argument("--time", type=count(1), default=None, metavar="MIN",
                    help="time limit per job in minutes; a job out of time is requeued and "
                         "resumes from its last epoch")
    la.add_argument("--runs-dir", type=Path, default=None, help="default: the plan's")
    la.add_argument("--slurm-option", dest="slurm_options", action="append", default=[],
                    metavar="KEY=VALUE", help="an sbatch option, e.g. account=abc, qos=high")
    st = sub.add_parser("status", help="the state of each run of a plan")
    st.add_argument("plan_dir", type=Path, metavar="DIR", help="a folder xcf plan wrote")
    st.add_argument("--runs-dir", type=Path, default=None, help="default: the plan's")


def _train(args: argparse.Namespace) -> int:
    if args.ddp is not None and not args.dry_run:
        return _train_under_torchrun(args)
    # torch loads here, after main() has set OMP_WAIT_POLICY
    from xcf.runs.config import TrainConfig, check_sections_used
    from xcf.runs.config_file import read_config_file
    from xcf.train.distributed import RankZeroFailed, leave
    from xcf.train.runner import train  # noqa: E402  (same reason)

    raw = read_config_file(args.config)  # ConfigFileError naming the file (and line)
    if args.runs_dir is not None:
        check_output(args.runs_dir, "--runs-dir", folder=True)
    raw = merge(raw, parse_set(args.overrides))
    if args.device:
        raw["device"] = args.device
    cfg = TrainConfig.from_dict(raw)
    check_sections_used(cfg)  # a user's file and --set: a section it sets must be used
    if args.dry_run:
        return _dry_run(cfg, args.runs_dir)
    try:
        run = train(cfg, runs_dir=args.runs_dir, progress=not args.no_progress,
                    overwrite=args.overwrite, wait=args.wait)
    except RankZeroFailed:  # a rank of torchrun: rank 0 reports why
        return 1
    if int(os.environ.get("RANK", "0")) != 0:  # the other ranks of torchrun: rank 0 reports
        leave()
        return 0
    leave()
    final = run.final()
    best = final.get("best")
    if not isinstance(best, dict) or not isinstance(best.get("test_robust_acc"), (int, float)):
        raise ValueError(f"{run.path / 'final.json'} lacks the best epoch's metrics ('best'); it "
                         "was edited or truncated: rerun with --overwrite, or restore it")
    print(f"run folder: {run.path}")
    print(f"best epoch {final.get('best_epoch')}: test robust {best.get('test_robust_acc', float('nan')):.4f}, "
          f"CAS {best.get('cas', float('nan')):.2f}")
    return 0


def _train_under_torchrun(args: argparse.Namespace) -> int:
    """``xcf train ... --ddp N``: the same command without ``--ddp``, as N processes of
    ``python -m torch.distributed.run --standalone`` (one node; :mod:`xcf.train.distributed`)."""
    import subprocess

    import torch

    if "WORLD_SIZE" in os.environ:
        raise ValueError("--ddp under torchrun would start processes within processes; drop "
                         "--ddp (torchrun already starts them), or run xcf train --ddp N alone")
    n = args.ddp or torch.cuda.device_count()
    if n < 1:
        raise ValueError("--ddp without N uses the visible GPUs, and there are none; give the "
                         "number of processes, e.g. --ddp 2 (on the CPU, with device: cpu)")
    argv = [str(args.config)]
    for flag, value in (("--runs-dir", args.runs_dir), ("--device", args.device),
                        ("--wait", args.wait)):
        if value is not None:
            argv += [flag, str(value)]
    for item in args.overrides:
        argv += ["--set", item]
    argv += [flag for flag, on in (("--overwrite", args.overwrite),
                                   ("--no-progress", args.no_progress)) if on]
    return subprocess.call([sys.executable, "-m", "torch.distributed.run", "--standalone",
                            f"--nproc_per_node={n}", "-m", "xcf", "train", *argv])


def _dry_run(cfg, runs_dir: Optional[Path]) -> int:
    """Print the run folder ``cfg`` maps to and its state (:func:`xcf.cli.launch.run_state`)."""
    from xcf.cli.launch import run_folder, run_state

    run = run_folder(cfg, runs_dir)
    state, done, best = run_state(run)
    print(f"run folder: {run.path}")
    detail = f", {done} of {cfg.epochs} epochs" if state != "not started" else ""
    detail += f", best epoch {best}" if best is not None else ""
    print(f"state: {state}{detail} (dry run: nothing trained)")
    return 0


def _plan(args: argparse.Namespace) -> int:
    from xcf.cli.launch import make_plan, select_notebooks, write_plan

    check_output(args.out, "--out", folder=True)
    entries = make_plan(args.profile, select_notebooks(args.notebooks), args.runs_dir)
    print(write_plan(entries, args.out, args.profile, args.runs_dir))
    print(f"wrote {len(entries)} config(s), plan.json and summary.txt to {args.out}")
    return 0


def _launch(args: argparse.Namespace) -> int:
    from xcf.cli.launch import LaunchFailedError, launch

    try:
        launch(args.plan_dir, args.executor, partition=args.partition,
               gpus_per_job=args.gpus_per_job, time_min=args.time, runs_dir=args.runs_dir,
               slurm_options=parse_set(args.slurm_options, "--slurm-option"))
    except LaunchFailedError as err:  # a job failed; its log folder was named above
        print(f"xcf launch: {err}", file=sys.stderr)
        return 1
    return 0


def _status(args: argparse.Namespace) -> int:
    from xcf.cli.status import format_status, plan_status

    print(format_status(plan_status(args.plan_dir, args.runs_dir)))
    return 0


def _epoch_arg(text: str):
    """``best``, ``last`` or an epoch number >= 1 (an argparse type)."""
    if text in ("best", "last"):
        return text
    try:
        epoch = int(text)
    except ValueError:
        epoch = 0
    if epoch < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not an epoch: give best, last or an "
                                         "epoch number N >= 1")
    return epoch


class _Parser(argparse.ArgumentParser):
    """argparse, exiting 2 with one ``xcf COMMAND: error: ...`` line (the usage is left out)."""

    def error(self, message: str):  # type: ignore[override]
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def _measure(args: argparse.Namespace) -> int:
    from xcf.train.posthoc import measure_run  # torch loads here, after OMP_WAIT_POLICY is set

    if args.json is not None:  # before the measurement, not after it
        check_output(args.json, "--json", folder=False)
    epoch, numbers, adv, clean = measure_run(
        args.run_dir, args.epoch, eval_n=args.eval_n, eval_steps=args.steps,
        eval_eps=args.eps, instance=args.instance, device=args.device, progress=not args.no_progress)
    line = (f"epoch {epoch}: test clean {numbers['test_clean_acc']:.4f}  robust "
            f"{numbers['test_robust_acc']:.4f}  CAS {numbers['cas']:.3f}  "
            f"(clean CAS {numbers['cas_clean']:.3f})  n={numbers['eval_n']}")
    if args.instance:
        line += f"  I-CAS {numbers['i_cas']:.3f}"
    print(line)
    if adv.C.shape[0] <= 20:
        print("C (Eq. 6, adversarial inputs):")
        for row in adv.C.tolist():
            print("  " + " ".join(f"{v:6.3f}" for v in row))
    if args.json:
        from xcf.atomic import write_json  # loads torch: after OMP_WAIT_POLICY, like the rest

        out = dict(numbers, epoch=epoch, C=adv.C.tolist(), C_clean=clean.C.tolist())
        if args.instance:
            out["C_instance"] = adv.C_instance.tolist()
        write_json(args.json, out)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``xcf`` script; returns the exit status."""
    # OpenMP threads that spin while waiting starve each other on a shared CPU (a 30 s
    # smoke run took 194 s on 2 busy cores); sleeping waits cost little.  Must be set
    # before torch loads, so torch is imported only below.  The user's setting wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    args = _parser().parse_args(argv)
    # Imported only now, after OMP_WAIT_POLICY is set: these modules load torch.
    from xcf.runs.checkpoints import CheckpointError
    from xcf.runs.config_file import ConfigError
    from xcf.data.dataset import DatasetUnavailableError
    from xcf.runs.lock import RunLockedError

    def say(message, *rest, **kw) -> None:  # a warning (bf16 emulated here) as one line
        print(f"xcf {args.command}: warning: {message}", file=sys.stderr, flush=True)

    try:
        run = {"train": _train, "measure": _measure, "measure-model": measure_model.run,
               "plan": _plan, "launch": _launch, "status": _status}
        with warnings.catch_warnings():
            warnings.showwarning = say
            return run[args.command](args)
    except (FloatingPointError, RunLockedError) as err:  # TrainingDiverged is the first
        text = " ".join(str(err).split())  # one line, whatever the message holds
        print(f"xcf {args.command}: training stopped: {text}", file=sys.stderr)
        return 1
    except (ConfigError, CheckpointError, OSError, ValueError, yaml.YAMLError) as err:
        return _user_error(args.command, err)
    except DatasetUnavailableError as err:  # a RuntimeError, but the user's to fix
        return _user_error(args.command, err)
    except KeyboardInterrupt:
        resume = "; the same command resumes from the last finished epoch"
        print(f"xcf {args.command}: interrupted{resume if args.command == 'train' else ''}",
              file=sys.stderr)
        return 130


def _user_error(command: str, err: BaseException) -> int:
    """Exit status 2 and one line on stderr: ``xcf train: error: ...``."""
    text = " ".join(str(err).split()) or type(err).__name__
    if isinstance(err, OSError) and err.filename and str(err.filename) not in text:
        text += f": {err.filename}"
    print(f"xcf {command}: error: {text}", file=sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
