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

__all__ = ["main"]


def _parse_set(items: Sequence[str], flag: str = "--set") -> dict:
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


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


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
    t.add_argument("--device", type=_device, default=None,
                   help="auto, cpu, cuda, cuda:N, mps (not part of the run key)")
    t.add_argument("--overwrite", action="store_true", help="delete an existing run folder first")
    t.add_argument("--no-progress", action="store_true", help="no progress bars")
    t.add_argument("--dry-run", action="store_true", help="print the run folder the config "
                   "maps to and its state; train nothing")
    t.add_argument("--wait", type=_seconds, default=None, metavar="SECONDS",
                   help="when another process trains the run, wait this long for it, then "
                   "reuse the run it finished (default: as long as it lives; 0: fail at once)")
    t.add_argument("--ddp", type=_count(1), nargs="?", const=0, default=None, metavar="N",
                   help="train on N processes with DistributedDataParallel (re-runs this "
                   "command under torchrun; default N: the visible GPUs)")

    m = sub.add_parser("measure", help="recompute C, CAS and robust accuracy of a checkpoint")
    m.add_argument("run_dir", type=Path)
    m.add_argument("--epoch", type=_epoch_arg, default="best", help="epoch number, 'best' or 'last' (default best)")
    m.add_argument("--eval-n", type=int, default=None, help="test samples (default: the run's eval_n)")
    m.add_argument("--steps", type=int, default=None, help="PGD steps (default: the run's eval_steps)")
    m.add_argument("--eps", type=float, default=None, help="attack radius (default: the run's eval_eps)")
    m.add_argument("--instance", action="store_true", help="also the instance-wise I-CAS (Sec. 5.3)")
    m.add_argument("--device", type=_device, default=None, help="auto, cpu, cuda, cuda:N, mps")
    m.add_argument("--json", type=Path, default=None, help="also write the results (with C) "
                   "to this file (its folder must exist)")
    m.add_argument("--no-progress", action="store_true")
    _measure_model_parser(sub)
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
    la.add_argument("--gpus-per-job", type=_count(0), default=1, help="default 1")
    la.add_argument("--time", type=_count(1), default=None, metavar="MIN",
                    help="time limit per job in minutes; a job out of time is requeued and "
                         "resumes from its last epoch")
    la.add_argument("--runs-dir", type=Path, default=None, help="default: the plan's")
    la.add_argument("--slurm-option", dest="slurm_options", action="append", default=[],
                    metavar="KEY=VALUE", help="an sbatch option, e.g. account=abc, qos=high")
    st = sub.add_parser("status", help="the state of each run of a plan")
    st.add_argument("plan_dir", type=Path, metavar="DIR", help="a folder xcf plan wrote")
    st.add_argument("--runs-dir", type=Path, default=None, help="default: the plan's")


def _measure_model_parser(sub) -> None:
    a = sub.add_parser("measure-model", help="robust accuracy, C, CAS and I-CAS of any "
                       "classifier ending in a Linear (torchvision, timm, your own)")
    a.add_argument("spec", metavar="PACKAGE.MODULE:FACTORY",
                   help="a function or class returning the model, e.g. torchvision.models:"
                        "resnet18 (imported as from the current folder)")
    a.add_argument("--arg", dest="factory_args", action="append", default=[],
                   metavar="KEY=VALUE", help="keyword for the factory (YAML value), e.g. "
                   "--arg num_classes=10")
    a.add_argument("--head", default=None, metavar="NAME", help="qualified name of the last "
                   "Linear, if not the last registered layer (e.g. fc)")
    a.add_argument("--weights", type=Path, default=None,
                   help="a state_dict saved with torch.save (read with weights_only=True)")
    a.add_argument("--dataset", required=True, help="an xcf.data name, e.g. fashion-mnist")
    a.add_argument("--data-root", type=Path, default=None, help="default $XCF_DATA or ./data")
    a.add_argument("--data-arg", dest="data_args", action="append", default=[],
                   metavar="KEY=VALUE", help="keyword for the dataset loader, e.g. image_size=16")
    a.add_argument("--eps", type=_fraction, required=True, help="attack radius in [0, 1] "
                   "pixel units, e.g. 8/255")
    a.add_argument("--norm", choices=("linf", "l2"), default="linf")
    a.add_argument("--steps", type=_count(0), default=20, help="PGD steps (default 20)")
    a.add_argument("--alpha", type=_fraction, default=None,
                   help="PGD step (default eps/4 for linf, eps/8 for l2, Table 2)")
    a.add_argument("--n-test", type=_count(1), default=1000,
                   help="class-balanced test samples (default 1000)")
    a.add_argument("--batch-size", type=_count(1), default=200)
    a.add_argument("--mean", type=_floats, default=None,
                   help="the model's input normalisation, e.g. 0.485,0.456,0.406")
    a.add_argument("--std", type=_floats, default=None, help="e.g. 0.229,0.224,0.225")
    a.add_argument("--image-size", type=_count(1), default=None,
                   help="resize test images to N x N (bilinear) for the model")
    a.add_argument("--seed", type=_count(0), default=0, help="test subset and PGD random start")
    a.add_argument("--out", type=Path, default=None,
                   help="folder for C.npy, C_instance.npy, C.png, summary.json "
                        "(default ./measure-FACTORY-DATASET)")
    a.add_argument("--device", type=_device, default="auto", help="auto, cpu, cuda, cuda:N, mps")
    a.add_argument("--no-progress", action="store_true")


def _fraction(text: str) -> float:
    """``0.03`` or ``8/255`` (an argparse type)."""
    num, sep, den = text.partition("/")
    try:
        return float(num) / float(den) if sep else float(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (e.g. 0.03 or 8/255)")


def _floats(text: str) -> list[float]:
    """``0.485,0.456,0.406`` -> a list of floats (an argparse type)."""
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of "
                                         "numbers, e.g. 0.485,0.456,0.406")


def _count(least: int):
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


def _device(text: str) -> str:
    """``auto``, ``cpu``, ``mps``, ``cuda`` or ``cuda:N`` (an argparse type): checked here,
    as torch.device would raise a RuntimeError listing its internal device types."""
    from xcf.runs.config import DEVICE_PATTERN  # loads torch: only when --device is given

    if not DEVICE_PATTERN.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device; use auto, cpu, cuda, "
                                         "cuda:N (e.g. cuda:0) or mps")
    return text


def _check_output(path: Path, flag: str, *, folder: bool) -> None:
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


def _seconds(text: str) -> float:
    """A number of seconds >= 0 (an argparse type)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds >= 0 (0: fail "
                                         "at once when the run is locked)")
    return value


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
        _check_output(args.runs_dir, "--runs-dir", folder=True)
    raw = _merge(raw, _parse_set(args.overrides))
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

    _check_output(args.out, "--out", folder=True)
    entries = make_plan(args.profile, select_notebooks(args.notebooks), args.runs_dir)
    print(write_plan(entries, args.out, args.profile, args.runs_dir))
    print(f"wrote {len(entries)} config(s), plan.json and summary.txt to {args.out}")
    return 0


def _launch(args: argparse.Namespace) -> int:
    from xcf.cli.launch import LaunchFailedError, launch

    try:
        launch(args.plan_dir, args.executor, partition=args.partition,
               gpus_per_job=args.gpus_per_job, time_min=args.time, runs_dir=args.runs_dir,
               slurm_options=_parse_set(args.slurm_options, "--slurm-option"))
    except LaunchFailedError as err:  # a job failed; its log folder was named above
        print(f"xcf launch: {err}", file=sys.stderr)
        return 1
    return 0


def _status(args: argparse.Namespace) -> int:
    from xcf.cli.launch import format_status, plan_status

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
        _check_output(args.json, "--json", folder=False)
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


def _measure_model(args: argparse.Namespace) -> int:
    """Algorithm 1 on any classifier: build, load weights, wrap, attack, measure, save."""
    os.environ.setdefault("MPLBACKEND", "Agg")  # figures go to files; no display needed
    import torch  # after OMP_WAIT_POLICY, like every torch import here

    from xcf import data
    from xcf.attacks import PGD, default_step_size
    from xcf.attribution import measure
    from xcf.models import as_feature_classifier
    from xcf.train.setup import resolve_device

    attack = PGD(eps=args.eps, steps=args.steps, norm=args.norm, alpha=args.alpha)
    if args.mean is not None and args.std is None or args.std is not None and args.mean is None:
        raise ValueError("give --mean and --std together (one value per model channel)")
    device = resolve_device(args.device)
    if args.out is not None:  # the default folder is named after the dataset: checked below
        _check_output(args.out, "--out", folder=True)
    factory_args = _parse_set(args.factory_args, "--arg")
    model = _build_from_spec(args.spec, factory_args)
    digest = _load_state_dict(model, args.weights, args.spec) if args.weights else None
    ds = _load_test_set(args, _parse_set(args.data_args, "--data-arg"))
    out = args.out or Path(f"measure-{args.spec.rpartition(':')[2]}-{ds.name}")
    _check_output(out, "--out", folder=True)
    x, y = ds.x_test, ds.y_test
    if args.image_size is not None and args.image_size != x.shape[-1]:
        x = torch.nn.functional.interpolate(x, size=(args.image_size, args.image_size),
                                            mode="bilinear", antialias=True).clamp_(0, 1)
    net = as_feature_classifier(model, args.mean, args.std, num_classes=ds.num_classes,
                                head=args.head, input_channels=x.shape[1]).to(device).eval()
    if net.repeats_channels:
        print(f"note: {args.spec} takes {net.model_channels} channels and {ds.name} has 1: "
              "each grey image is repeated inside the model, so PGD perturbs the grey image")
    x, y = x.to(device), y.to(device)
    _probe(net, x[:2], args.spec, ds.name, attack=args.steps > 0 and args.eps > 0)
    gen = torch.Generator(device=device).manual_seed(args.seed)
    adv = measure(net, x, y, attack, batch_size=args.batch_size, instance=True,
                  generator=gen, progress=not args.no_progress)
    clean = measure(net, x, y, None, batch_size=args.batch_size)
    print(f"{args.spec} (head '{net.head_name}', {net.num_features} features) on {ds.name}, "
          f"n={len(y)}, {args.norm} eps={args.eps:.4g}, PGD-{args.steps}")
    print(f"clean accuracy {clean.accuracy:.4f}  robust accuracy {adv.accuracy:.4f}  "
          f"CAS {adv.cas:.3f}  I-CAS {adv.i_cas:.3f}  (clean CAS {clean.cas:.3f})")
    summary = dict(
        model={"spec": args.spec, "args": factory_args, "head": net.head_name,
               "num_features": net.num_features, "num_classes": net.num_classes,
               "mean": args.mean, "std": args.std, "repeats_channels": net.repeats_channels},
        weights=None if digest is None else {"path": str(args.weights), "sha256": digest},
        dataset={"name": ds.name, "n_test": len(y), "image_shape": list(x.shape[1:]),
                 "seed": args.seed, "data_args": _parse_set(args.data_args, "--data-arg"),
                 "counts": adv.counts.tolist()},
        attack={"name": "pgd", "norm": args.norm, "eps": args.eps, "steps": args.steps,
                "alpha": default_step_size(args.eps, args.norm) if args.alpha is None
                else args.alpha, "random_start": True, "seed": args.seed},
        results={"clean_accuracy": clean.accuracy, "robust_accuracy": adv.accuracy,
                 "cas": adv.cas, "i_cas": adv.i_cas, "cas_clean": clean.cas})
    paths = _save_measurement(out, adv, summary, device)
    print(f"wrote {', '.join(p.name for p in paths)} to {out}")
    return 0


# Keywords of xcf.data.load that are not dataset parameters (--dataset, --n-test, --seed, ...).
_LOAD_KEYWORDS = ("key", "root", "n_train", "n_test", "seed", "download")


def _dataset_parameters(name: str) -> Optional[dict]:
    """``{parameter: default}`` of the loader of dataset ``name``; None for an unknown name
    (xcf.data.load then names the datasets)."""
    import inspect

    from xcf.data import cifar, fashion_mnist, planted, tiny_imagenet

    loader = {"planted": planted.planted, "cifar10": cifar.load_cifar,
              "cifar100": cifar.load_cifar, "tiny-imagenet": tiny_imagenet.load_tiny_imagenet,
              "fashion-mnist": fashion_mnist.load_fashion_mnist}.get(name.lower().replace("_", "-"))
    if loader is None:
        return None
    return {p.name: p.default for p in inspect.signature(loader).parameters.values()
            if p.name not in _LOAD_KEYWORDS and p.kind is not p.VAR_KEYWORD}


# The type of a loader parameter's default -> the values it takes, in words.
_KINDS = {bool: ((bool,), "true or false"), int: ((int,), "an integer"),
          float: ((int, float), "a number"), str: ((str,), "a string")}


def _load_test_set(args: argparse.Namespace, data_args: dict):
    """The test set of ``--dataset`` with ``--data-arg`` keywords, each checked against the
    loader's parameters first (an unknown name, or a value of another type than the
    default's), so a bad one is a one-line error naming it, not a TypeError."""
    from xcf import data

    params = _dataset_parameters(args.dataset) if data_args else None
    if params is not None:
        listed = ", ".join(f"{k}={v!r}" for k, v in params.items()) or "none"
        for key, value in data_args.items():
            if key not in params:
                raise ValueError(f"--data-arg {key}={value!r}: dataset {args.dataset!r} has no "
                                 f"parameter {key!r}{_close(key, params)}; its parameters "
                                 f"(with defaults): {listed}")
            default = params[key]
            kind = _KINDS.get(type(default))
            if kind and (not isinstance(value, kind[0]) or type(default) is not bool
                         and isinstance(value, bool)):
                raise ValueError(f"--data-arg {key}={value!r}: dataset {args.dataset!r} takes "
                                 f"{kind[1]} for {key} (default {default!r}), not "
                                 f"{type(value).__name__} {value!r}")
    try:
        return data.load(args.dataset, root=args.data_root, n_train=0, n_test=args.n_test,
                         seed=args.seed, **data_args)
    except (TypeError, ValueError) as err:  # a value the loader refuses
        if not data_args:
            raise
        given = " ".join(f"--data-arg {k}={v!r}" for k, v in data_args.items())
        first = (str(err).splitlines() or [type(err).__name__])[0]
        raise ValueError(f"{given} not accepted by dataset {args.dataset!r}: {first}") from None


def _close(key: str, names) -> str:
    import difflib

    close = difflib.get_close_matches(key, list(names), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _build_from_spec(spec: str, kwargs: dict):
    """Import ``PACKAGE.MODULE:FACTORY`` and call it with ``kwargs``; a user error (bad
    spec, missing module, failing call, not a module) is a one-line ``ValueError``."""
    import torch.nn as nn

    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"model {spec!r} is not PACKAGE.MODULE:FACTORY, e.g. "
                         "torchvision.models:resnet18 or timm:create_model")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # a module of the current folder, as python -m finds
    try:
        factory = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"cannot import {module_name!r} (model {spec!r}): {err}") from None
    for part in attr.split("."):
        if not hasattr(factory, part):
            raise ValueError(f"{module_name} has no {attr!r} (model {spec!r})")
        factory = getattr(factory, part)
    if not callable(factory):
        raise ValueError(f"{spec} is a {type(factory).__name__}, not a function or class")
    call = f"{spec}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"
    try:
        model = factory(**kwargs)
    except Exception as err:  # the user's factory, the user's arguments
        raise ValueError(f"{call} failed: {type(err).__name__}: {err}") from None
    if not isinstance(model, nn.Module):
        raise ValueError(f"{call} returned a {type(model).__name__}, not an nn.Module")
    return model


def _load_state_dict(model, path: Path, spec: str) -> str:
    """Load a state_dict file into ``model`` (``weights_only=True``); returns its sha256.
    Accepts a bare state_dict or one under ``model`` / ``state_dict`` (xcf and Lightning-
    style checkpoints), with DataParallel's ``module.`` prefix stripped."""
    import torch

    from xcf.runs.checkpoints import CheckpointError, file_digest, load_torch

    obj = load_torch(path)  # CheckpointError naming the file if missing or unreadable

    def is_state(d) -> bool:
        return isinstance(d, dict) and bool(d) and all(
            isinstance(k, str) and torch.is_tensor(v) for k, v in d.items())

    state = obj if is_state(obj) else next(
        (obj[k] for k in ("model", "state_dict") if isinstance(obj, dict) and is_state(obj.get(k))),
        None)
    if state is None:
        raise CheckpointError(f"{path} holds no state_dict (names -> tensors); save one with "
                              "torch.save(model.state_dict(), path)")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    own = model.state_dict()
    problems = []
    for label, keys in (("missing", [k for k in own if k not in state]),
                        ("unexpected", [k for k in state if k not in own])):
        if keys:
            problems.append(f"{len(keys)} {label} key(s) ({', '.join(keys[:3])})")
    shapes = [k for k in own if k in state and own[k].shape != state[k].shape]
    if shapes:
        k = shapes[0]
        problems.append(f"{len(shapes)} shape mismatch(es) ({k}: {tuple(state[k].shape)} in "
                        f"the file, {tuple(own[k].shape)} in the model)")
    if problems:
        raise CheckpointError(f"weights {path} do not fit {spec}: {'; '.join(problems)}; "
                              "build the model they were saved from (--arg ...)")
    model.load_state_dict(state)
    return file_digest(path)


def _probe(net, x, spec: str, dataset: str, attack: bool = True) -> None:
    """One forward pass on two images, so an input the model cannot take fails before
    the attack pass, naming the input shape; with ``attack``, also that the output has a
    gradient with respect to the input (PGD needs it)."""
    import torch

    from xcf.models import LinearHeadError

    x = x.detach().clone().requires_grad_(attack)
    try:
        with torch.set_grad_enabled(attack):
            out = net(x)
    except LinearHeadError:
        raise
    except Exception as err:  # the user's model rejecting the data
        first = (str(err).splitlines() or [""])[0]
        raise ValueError(f"{spec} fails on {dataset} images of shape {tuple(x.shape[1:])}: "
                         f"{type(err).__name__}: {first}; build it for this input (e.g. timm "
                         "img_size=...) or resize with --image-size N") from None
    grad = torch.autograd.grad(out.sum(), x, allow_unused=True)[0] \
        if attack and out.requires_grad else None
    if attack and grad is None:
        raise ValueError(f"the output of {spec} has no gradient with respect to its input "
                         "(its features are computed under torch.no_grad(), or detached), so "
                         "PGD cannot attack it; compute the forward pass with gradients "
                         "enabled, or measure clean inputs only with --steps 0")


def _save_measurement(out: Path, adv, summary: dict, device) -> list[Path]:
    """C.npy, C_instance.npy, C.png and summary.json (with provenance) under ``out``."""
    import matplotlib.pyplot as plt

    from xcf import __version__, plots
    from xcf.runs import provenance
    from xcf.atomic import save_npy, write_json

    out.mkdir(parents=True, exist_ok=True)
    paths = [save_npy(adv.C.numpy(), out / "C.npy"),
             save_npy(adv.C_instance.numpy(), out / "C_instance.npy")]
    fig, ax = plt.subplots(figsize=(4.2, 3.8))
    res = summary["results"]
    im = plots.correlation_heatmap(
        adv.C, ax, title=f"{summary['model']['spec']} on {summary['dataset']['name']}\n"
        f"RA {res['robust_accuracy']:.1%}, CAS {res['cas']:.2f}")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(out / "C.png", dpi=120)
    plt.close(fig)
    paths.append(out / "C.png")
    meta = {"xcf_version": __version__, "command": provenance.command(),
            "created": provenance.now(), "environment": provenance.environment(device)}
    paths.append(write_json(out / "summary.json", {**summary, **meta,
                                                   "C": adv.C.tolist(),
                                                   "files": ["C.npy", "C_instance.npy",
                                                             "C.png"]}))
    return paths


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
        run = {"train": _train, "measure": _measure, "measure-model": _measure_model,
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
