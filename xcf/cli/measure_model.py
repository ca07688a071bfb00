"""``xcf measure-model PACKAGE.MODULE:FACTORY --dataset NAME --eps EPS``: its flags, and
their parsing into a model (built from its spec, with its weights) and a test set, handed to
:func:`xcf.runs.measurement.measure_model`, which measures and writes the files."""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from typing import Optional

from xcf.cli.arguments import check_output, count, device, floats, fraction, parse_set

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    """The ``measure-model`` subcommand and its flags."""
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
    a.add_argument("--data-root", type=Path, default=None, help="default $XCF_DATA_DIR or ./data")
    a.add_argument("--data-arg", dest="data_args", action="append", default=[],
                   metavar="KEY=VALUE", help="keyword for the dataset loader, e.g. image_size=16")
    a.add_argument("--eps", type=fraction, required=True, help="attack radius in [0, 1] "
                   "pixel units, e.g. 8/255")
    a.add_argument("--norm", choices=("linf", "l2"), default="linf")
    a.add_argument("--steps", type=count(0), default=20, help="PGD steps (default 20)")
    a.add_argument("--alpha", type=fraction, default=None,
                   help="PGD step (default eps/4 for linf, eps/8 for l2, Table 2)")
    a.add_argument("--n-test", type=count(1), default=1000,
                   help="class-balanced test samples (default 1000)")
    a.add_argument("--batch-size", type=count(1), default=200)
    a.add_argument("--mean", type=floats, default=None,
                   help="the model's input normalisation, e.g. 0.485,0.456,0.406")
    a.add_argument("--std", type=floats, default=None, help="e.g. 0.229,0.224,0.225")
    a.add_argument("--image-size", type=count(1), default=None,
                   help="resize test images to N x N (bilinear) for the model")
    a.add_argument("--seed", type=count(0), default=0,
                   help="test subset, PGD random start, and the initial weights of a model "
                        "built without --weights")
    a.add_argument("--out", type=Path, default=None,
                   help="folder for C.npy, C_instance.npy, C.png, summary.json "
                        "(default ./measure-FACTORY-DATASET)")
    a.add_argument("--device", type=device, default="auto", help="auto, cpu, cuda, cuda:N, mps")
    a.add_argument("--no-progress", action="store_true")
    a.add_argument("--overwrite", action="store_true",
                   help="replace an earlier measurement in --out (refused without it)")




def run(args: argparse.Namespace) -> int:
    """Build the model from its spec, load its weights and the test set, then measure it
    with :func:`xcf.runs.measurement.measure_model`, which writes the files."""
    os.environ.setdefault("MPLBACKEND", "Agg")  # figures go to files; no display needed
    import torch  # after OMP_WAIT_POLICY, like every torch import here

    from xcf.runs.measurement import load_weights, measure_model
    from xcf.train.setup import resolve_device

    if (args.mean is None) != (args.std is None):
        raise ValueError("give --mean and --std together (one value per model channel)")
    device = resolve_device(args.device)
    if args.out is not None:  # the default folder is named after the dataset: checked below
        check_output(args.out, "--out", folder=True)
    factory_args = parse_set(args.factory_args, "--arg")
    data_args = parse_set(args.data_args, "--data-arg")
    torch.manual_seed(args.seed)  # a factory's random init: the same command, the same model
    model = _build_from_spec(args.spec, factory_args)
    digest = load_weights(model, args.weights, args.spec) if args.weights else None
    ds = _load_test_set(args, data_args)
    out = args.out or Path(f"measure-{args.spec.rpartition(':')[2]}-{ds.name}")
    check_output(out, "--out", folder=True)
    x, y = ds.x_test, ds.y_test
    if args.image_size is not None and args.image_size != x.shape[-1]:
        x = torch.nn.functional.interpolate(x, size=(args.image_size, args.image_size),
                                            mode="bilinear", antialias=True).clamp_(0, 1)
    report = measure_model(
        model, x, y, out, eps=args.eps, norm=args.norm, steps=args.steps, alpha=args.alpha,
        mean=args.mean, std=args.std, head=args.head, seed=args.seed,
        batch_size=args.batch_size, device=device, name=args.spec,
        progress=not args.no_progress, overwrite=args.overwrite,
        describe={"model": {"spec": args.spec, "args": factory_args},
                  "weights": None if digest is None else {"path": str(args.weights),
                                                          "sha256": digest},
                  "dataset": {"name": ds.name, "seed": args.seed, "data_args": data_args}})
    net, adv, clean = report.net, report.adversarial, report.clean
    if net.repeats_channels:
        print(f"note: {args.spec} takes {net.model_channels} channels and {ds.name} has 1: "
              "each grey image is repeated inside the model, so PGD perturbs the grey image")
    print(f"{args.spec} (head '{net.head_name}', {net.num_features} features) on {ds.name}, "
          f"n={len(y)}, {args.norm} eps={args.eps:.4g}, PGD-{args.steps}")
    print(f"clean accuracy {clean.accuracy:.4f}  robust accuracy {adv.accuracy:.4f}  "
          f"CAS {adv.cas:.3f}  I-CAS {adv.i_cas:.3f}  (clean CAS {clean.cas:.3f})")
    print(f"wrote {', '.join(p.name for p in report.paths)} to {out}")
    return 0


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


