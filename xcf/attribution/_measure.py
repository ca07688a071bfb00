"""Algorithm 1 of Wei, Guo & Wang (ICML 2025) on a model: one attack-and-embed loop (shared
with the sharded measurement of :mod:`xcf.train.distributed`), then C, CAS and accuracy."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from xcf.attacks import PGD, Attack, Norm, attack_mode
from xcf.attribution._matrix import (_check_counts, cas, class_attribution_vectors,
                                     correlation_matrix, i_cas,
                                     instance_correlation_matrix)
from xcf.inputs import (ArgumentError, ShapeError, check_batch_size, check_images, check_labels,
                        check_lengths, check_num_classes)
from xcf.models import as_feature_classifier, check_feature_model, input_channels

__all__ = ["Measurement", "measure", "check_measure_inputs", "attack_and_embed", "summarise"]


@dataclass
class Measurement:
    """Result of :func:`measure`."""

    C: torch.Tensor                      # (K, K) class-wise correlation matrix, Eq. 6
    cas: float                           # Eq. 7
    accuracy: float                      # on the attacked inputs (robust accuracy), or clean if attack is None
    attribution: torch.Tensor            # (K, n) class attribution vectors
    counts: torch.Tensor                 # (K,) samples per class
    C_instance: Optional[torch.Tensor] = None   # (K, K), Section 5.3, if instance=True
    i_cas: Optional[float] = None
    features: Optional[torch.Tensor] = None     # (N, n) g(x + delta), if keep_features=True


@torch.no_grad()
def _features_and_logits(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    feats = model.features(x)
    return feats, model.head(feats)


def measure(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack: Optional[Attack] = None,
            *, eps: float | None = None, norm: Norm = "linf", steps: int = 20,
            alpha: float | None = None, mean: Sequence[float] | None = None,
            std: Sequence[float] | None = None, num_classes: int | None = None,
            batch_size: int = 500, instance: bool = False, keep_features: bool = False,
            generator: torch.Generator | None = None, progress: bool = False) -> Measurement:
    """Algorithm 1 in one pass: C, CAS and robust accuracy of ``model`` on ``(x, y)``.

    >>> m = xcf.measure(torchvision.models.resnet18(num_classes=10), x, y, eps=8/255)
    >>> m.cas, m.accuracy, m.C.shape       # Eq. 7, robust accuracy, (10, 10) matrix of Eq. 6

    Args:
        model: any classifier ending in an ``nn.Linear``.  A model with ``features(x) ->
            (B, n)`` and a linear ``head`` (Eq. 4, e.g. every :mod:`xcf.models` model) is
            measured as it is; any other (a torchvision or timm classifier) is wrapped by
            :func:`xcf.models.as_feature_classifier` with ``mean``/``std`` first.
        x: test inputs in [0, 1], (N, C, H, W); y: labels, (N,).
        attack: ``attack(model, x, y) -> x_adv`` (e.g. ``xcf.attacks.PGD(eps=8/255,
            steps=20)``), or ``None``: with ``eps`` also None, clean examples (the
            standard-training matrices of Fig. 9).
        eps, norm, steps, alpha: the attack in keywords instead: PGD-``steps`` of radius
            ``eps`` (pixel units, e.g. 8/255), step ``alpha`` (default Table 2's eps/4 for
            l-inf, eps/8 for l2).  Give either ``attack`` or ``eps``.
        mean, std: the input normalisation of a model that is wrapped (see above).
        num_classes: K; default ``model.head.out_features``.
        batch_size: samples per attack batch; batches mix classes.
        instance: also compute the instance-wise matrix and I-CAS (keeps (N, n) vectors).
        keep_features: return the (N, n) features g(x + delta) (for :func:`bootstrap_cas`).
        generator: random generator passed to the attack, for reproducibility.
        progress: show a progress bar.

    Every input is checked before the attack pass (:mod:`xcf.inputs`): images finite and
    in [0, 1] (with or without an attack), of the channels the model takes
    (:func:`xcf.models.input_channels`; a model that names none takes any), integer labels
    in ``[0, K)``, one label per image, ``batch_size >= 1``, ``num_classes`` equal to
    the head's outputs, and ``model(x) == head(features(x))`` on the first two images.
    """
    if eps is not None:
        if attack is not None:
            raise ArgumentError(f"measure() got both attack={attack!r} and eps={eps!r}; give "
                                "one: an attack object, or eps (with norm, steps, alpha)")
        attack = PGD(eps=eps, steps=steps, norm=norm, alpha=alpha)
    if not _is_feature_model(model):
        model = as_feature_classifier(model, mean, std, num_classes=num_classes,
                                      input_channels=x.shape[1] if torch.is_tensor(x)
                                      and x.dim() == 4 else None)
    W, counts = check_measure_inputs(model, x, y, num_classes=num_classes,
                                     batch_size=batch_size)
    _check_channels(model, x)
    _check_forward(model, x[:2])
    features, correct = attack_and_embed(model, x, y, attack, batch_size=batch_size,
                                         generator=generator, progress=progress)
    return summarise(features, y, W, counts, correct, instance=instance,
                     keep_features=keep_features)


def check_measure_inputs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                         num_classes: int | None = None,
                         batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """The checks every measurement makes before its attack pass (:func:`measure` and the
    sharded one of :mod:`xcf.train.distributed`): a ``features``/``head`` model, images,
    labels, lengths, the batch size and a sample of every class.  Returns the head's
    weight W (K, n) and the per-class counts (K,)."""
    check_feature_model(model)
    W = model.head.weight.detach()
    K = check_num_classes(num_classes, W.shape[0])
    check_images(x)
    check_labels(y, K)
    check_lengths(x, y)
    check_batch_size(batch_size)
    counts = torch.bincount(y.cpu(), minlength=K)
    _check_counts(counts)  # before the attack pass, not after it
    return W, counts


def attack_and_embed(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                     attack: Optional[Attack], *, batch_size: int = 500,
                     generator: torch.Generator | None = None,
                     progress: bool = False) -> tuple[torch.Tensor, int]:
    """Lines 2-4 of Algorithm 1 over ``(x, y)`` in batches: attack each batch (``attack``
    None: clean), embed it, count the correct predictions.  The one loop of the metric:
    :func:`measure` runs it on the whole set, the sharded measurement on a rank's shard.
    Returns the features g(x + delta) as float32, (N, n), and the number correct."""
    kept, correct = [torch.zeros(0, model.head.in_features, device=x.device)], 0
    with attack_mode(model, "eval"):  # eval mode, frozen weights; both restored after
        for start in tqdm(range(0, len(x), batch_size), disable=not progress, desc="attribution"):
            xb, yb = x[start:start + batch_size], y[start:start + batch_size]
            if attack is not None:
                xb = attack(model, xb, yb, generator=generator) if generator is not None else attack(model, xb, yb)
            feats, logits = _features_and_logits(model, xb)
            correct += int((logits.argmax(1) == yb).sum())
            kept.append(feats.float())
    return torch.cat(kept), correct


def summarise(features: torch.Tensor, y: torch.Tensor, W: torch.Tensor, counts: torch.Tensor,
              correct: int, *, instance: bool = False, keep_features: bool = False) -> Measurement:
    """Lines 5-7 of Algorithm 1: class attribution vectors, C (Eq. 6) and CAS (Eq. 7), and
    the accuracy, from the features (N, n) of all N samples and the number correct."""
    # Class means summed in float64, so that they do not depend on the batch order.
    A = class_attribution_vectors(features.double(), y.to(features.device), W.double()).float()
    C = correlation_matrix(A)
    result = Measurement(C=C.cpu(), cas=cas(C), accuracy=correct / len(y), attribution=A.cpu(),
                         counts=counts)
    if instance:
        Ci = instance_correlation_matrix(features, y.to(features.device), W.float())
        result.C_instance, result.i_cas = Ci.cpu(), i_cas(Ci)
    if keep_features:
        result.features = features
    return result


def _is_feature_model(model: nn.Module) -> bool:
    """Measured as it is: ``features`` callable and ``head`` an ``nn.Linear`` (Eq. 4)."""
    return callable(getattr(model, "features", None)) and isinstance(
        getattr(model, "head", None), nn.Linear)


def _check_forward(model: nn.Module, x: torch.Tensor) -> None:
    """Algorithm 1 attacks ``model`` but attributes ``head(features(x))``: if the forward
    pass computes something else (a temperature, an ensemble, another branch), the attack
    and the attribution disagree and C is silently wrong.  Checked on two images, loosely
    (mixed precision splits a forward pass differently): 5% of the largest logit."""
    if len(x) == 0:
        return
    with attack_mode(model, "eval"), torch.no_grad():
        feats, split = _features_and_logits(model, x)
        whole = model(x)
    if not (torch.isfinite(split).all() and torch.isfinite(whole).all()):
        return  # a diverged model: the measurement's own checks name it (TrainingDiverged)
    if whole.shape != split.shape:
        raise ArgumentError(f"model(x) has shape {tuple(whole.shape)} but head(features(x)) "
                            f"{tuple(split.shape)}; {_FORWARD_FIX}")
    whole, split = whole.float(), split.float()
    scale = float(split.abs().max()) + 1e-3
    gap = float((whole - split).abs().max())
    if not gap <= 0.05 * scale:
        raise ArgumentError(f"model(x) differs from head(features(x)) by {gap:.3g} (logits up "
                            f"to {scale:.3g}), so the attack and the attribution would see "
                            f"different models; {_FORWARD_FIX}")


_FORWARD_FIX = ("make forward(x) return self.head(self.features(x)), or pass the plain "
                "classifier and let measure wrap it (xcf.models.as_feature_classifier)")


def _check_channels(model: nn.Module, x: torch.Tensor) -> None:
    """Grey images given to a colour model would broadcast against its 3-channel
    normalisation into 3 channels, and be measured without a word: refused, with the fix."""
    want = input_channels(model)
    if want is None or x.shape[1] == want:
        return
    fix = (f"pass {want}-channel images (x.expand(-1, {want}, -1, -1) repeats grey ones)"
           if x.shape[1] == 1 else f"pass {want}-channel images")
    if x.shape[1] == 1 and want > 1:
        fix += (", or wrap another library's model with xcf.models.as_feature_classifier("
                "..., input_channels=1)")
    raise ShapeError(f"x has {x.shape[1]}-channel images but {type(model).__name__} takes "
                     f"{want}-channel images; {fix}")


