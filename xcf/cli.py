"""Command line: ``xcf train CONFIG.yaml`` and ``xcf measure RUN_DIR --epoch N``.

``python -m xcf ...`` is the same.  ``train`` resumes an unfinished run and reuses a
finished one by default (runs are keyed by a hash of their config, see :mod:`xcf.runs`);
``--overwrite`` starts afresh.  Exit status: 0 success, 1 training failed (a non-finite
loss, or the run is locked by another live process), 2 bad config or arguments.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

import yaml

__all__ = ["main"]


def _parse_set(items: Sequence[str]) -> dict:
    """``["epochs=3", "kd.lambda=0.3"]`` -> ``{"epochs": 3, "kd": {"lambda": 0.3}}``
    (values parsed as YAML, so numbers, booleans, lists and null work)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        value = yaml.safe_load(raw) if raw.strip() else None
        *parents, last = key.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
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
    t.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N (not part of the run key)")
    t.add_argument("--overwrite", action="store_true", help="delete an existing run folder first")
    t.add_argument("--no-progress", action="store_true", help="no progress bars")

    m = sub.add_parser("measure", help="recompute C, CAS and robust accuracy of a checkpoint")
    m.add_argument("run_dir", type=Path)
    m.add_argument("--epoch", type=_epoch_arg, default="best", help="epoch number, 'best' or 'last' (default best)")
    m.add_argument("--eval-n", type=int, default=None, help="test samples (default: the run's eval_n)")
    m.add_argument("--steps", type=int, default=None, help="PGD steps (default: the run's eval_steps)")
    m.add_argument("--eps", type=float, default=None, help="attack radius (default: the run's eval_eps)")
    m.add_argument("--instance", action="store_true", help="also the instance-wise I-CAS (Sec. 5.3)")
    m.add_argument("--device", default=None)
    m.add_argument("--json", type=Path, default=None, help="also write the results (with C) here")
    m.add_argument("--no-progress", action="store_true")
    return p


def _train(args: argparse.Namespace) -> int:
    from .config import TrainConfig, read_config_file  # torch loads here, after main() has set OMP_WAIT_POLICY
    from .runner import train  # noqa: E402  (same reason)

    raw = read_config_file(args.config)  # ConfigFileError naming the file (and line)
    if args.runs_dir is not None and args.runs_dir.exists() and not args.runs_dir.is_dir():
        raise ValueError(f"--runs-dir {args.runs_dir} is a file, not a folder; give a folder "
                         "(it is created if missing)")
    raw = _merge(raw, _parse_set(args.overrides))
    if args.device:
        raw["device"] = args.device
    cfg = TrainConfig.from_dict(raw)
    run = train(cfg, runs_dir=args.runs_dir, progress=not args.no_progress, overwrite=args.overwrite)
    final = run.final()
    best = final.get("best")
    if not isinstance(best, dict) or not isinstance(best.get("test_robust_acc"), (int, float)):
        raise ValueError(f"{run.path / 'final.json'} lacks the best epoch's metrics ('best'); it "
                         "was edited or truncated: rerun with --overwrite, or restore it")
    print(f"run folder: {run.path}")
    print(f"best epoch {final.get('best_epoch')}: test robust {best.get('test_robust_acc', float('nan')):.4f}, "
          f"CAS {best.get('cas', float('nan')):.2f}")
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
    """argparse, exiting 2 with one ``xcf: error: ...`` line (the usage is left out)."""

    def error(self, message: str):  # type: ignore[override]
        print(f"xcf: error: {message} (see xcf {self.prog.split()[-1]} --help)", file=sys.stderr)
        raise SystemExit(2)


def _measure(args: argparse.Namespace) -> int:
    from .posthoc import measure_run  # torch loads here, after OMP_WAIT_POLICY is set

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
        from .atomic import write_json  # loads torch: after OMP_WAIT_POLICY, like the rest

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
    from .checkpoints import CheckpointError
    from .config import ConfigError
    from .data.dataset import DatasetUnavailableError
    from .runs import RunLockedError

    try:
        return _train(args) if args.command == "train" else _measure(args)
    except (FloatingPointError, RunLockedError) as err:
        print(f"xcf {args.command}: training stopped: {err}", file=sys.stderr)
        return 1
    except (ConfigError, CheckpointError, OSError, ValueError, yaml.YAMLError) as err:
        return _user_error(args.command, err)
    except DatasetUnavailableError as err:  # a RuntimeError, but the user's to fix
        return _user_error(args.command, err)
    except KeyboardInterrupt:
        print(f"xcf {args.command}: interrupted; the same command resumes from the last "
              "finished epoch", file=sys.stderr)
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
