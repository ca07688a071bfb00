"""The cross-class feature metric of Wei, Guo & Wang (ICML 2025), Section 3.1 and Algorithm 1.

For a classifier f(x) = W g(x) (Eq. 4) with features g(x) in R^n and W in R^{K x n}:

- attribution vector of sample x on class i (Eq. 5):  A_i(x) = g(x) * W[i]          (n,)
- class attribution vector (Algorithm 1):            A^y = mean_{x in D_y} A_y(x + delta)
- feature attribution correlation matrix (Eq. 6):    C[i, j] = cos(A^i, A^j)          (K, K)
- Class Attribution Similarity (Eq. 7):              CAS(C) = sum_{i != j} max(C[i, j], 0)
- instance-wise matrix (Section 5.3): C[i, j] = mean over x in class i of
  max over x' in class j of cos(A_i(x), A_j(x')); I-CAS is CAS of that matrix.

:func:`measure` runs one attack pass over a test set (batches mixed across classes) and
returns C, CAS and robust accuracy together.  Unlike the official code, which drops a
class's remainder beyond a multiple of 100 samples, every test sample is used.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from .attacks import Attack, attack_mode
from .inputs import (MatrixError, check_batch_size, check_count, check_features, check_images,
                     check_labels, check_lengths, check_matrix, check_num_classes)
from .models import check_feature_model

__all__ = ["attribution_vectors", "class_attribution_vectors", "correlation_matrix", "cas",
           "instance_correlation_matrix", "i_cas", "Measurement", "measure", "bootstrap_cas"]


def attribution_vectors(features: torch.Tensor, weight: torch.Tensor,
                        labels: torch.Tensor) -> torch.Tensor:
    """Per-sample attribution vectors on each sample's own class, Eq. 5.

    Args:
        features: g(x), (N, n).
        weight: the linear head's W, (K, n).
        labels: the class each row is attributed to, (N,).
    Returns:
        A_{y_k}(x_k) = g(x_k) * W[y_k], (N, n).
    Raises :class:`xcf.inputs.InputError` for shapes that disagree, labels outside
    ``[0, K)`` or non-finite values.
    """
    check_features(features, labels, weight)
    return features * weight[labels]


def class_attribution_vectors(features: torch.Tensor, labels: torch.Tensor,
                              weight: torch.Tensor) -> torch.Tensor:
    """Class attribution vectors of Algorithm 1: A^y = mean over class y of g(x) * W[y].

    Args:
        features: g(x + delta) of every test sample, (N, n).
        labels: true labels, (N,).
        weight: W, (K, n).
    Returns:
        (K, n).  Raises ``ValueError`` if a class has no sample, and
        :class:`xcf.inputs.InputError` for bad shapes, labels or non-finite values.
    """
    check_features(features, labels, weight)
    sums, counts = _class_feature_sums(features, labels, weight.shape[0])
    _check_counts(counts)
    return sums / counts.unsqueeze(1) * weight


def correlation_matrix(A: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every pair of rows, Eq. 6.

    Args:
        A: class attribution vectors, (K, n).
    Returns:
        C, (K, K), symmetric, ones on the diagonal.
    Raises :class:`xcf.inputs.MatrixError` for an empty, non-2-D or non-finite ``A``.
    """
    check_matrix(A, "A", square=False)
    norms = A.norm(dim=1)
    zero = torch.nonzero(norms == 0).flatten().tolist()
    if zero:
        raise MatrixError(f"attribution vector of class(es) {zero} is all zeros; cosine "
                          "similarity is undefined (a dead head row or all-zero features?)")
    unit = A / norms.unsqueeze(1)
    return (unit @ unit.T).clamp(-1.0, 1.0)


def cas(C: torch.Tensor) -> float:
    """Class Attribution Similarity, Eq. 7: sum of the positive off-diagonal entries of C.

    ``C``: (K, K), finite, K >= 1 (:class:`xcf.inputs.MatrixError` otherwise)."""
    check_matrix(C, "C")
    off = ~torch.eye(C.shape[0], dtype=torch.bool, device=C.device)
    return float(C.clamp(min=0)[off].sum())


def instance_correlation_matrix(features: torch.Tensor, labels: torch.Tensor,
                                weight: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """Instance-wise correlation matrix of Section 5.3.

    C[i, j] = mean over x in class i of max over x' in class j of cos(A_i(x), A_j(x')).
    The diagonal includes x' = x, so it is 1; it does not enter I-CAS.  Not symmetric.

    Args:
        features: (N, n); labels: (N,); weight: (K, n).
        chunk: rows of the (N, N) similarity matrix formed at a time (bounds memory).
    Returns:
        (K, K).
    """
    check_features(features, labels, weight)
    check_count(chunk, "chunk", 1, 1024)
    K = weight.shape[0]
    counts = torch.bincount(labels, minlength=K)
    _check_counts(counts)
    vecs = attribution_vectors(features, weight, labels)
    unit = vecs / vecs.norm(dim=1, keepdim=True).clamp_min(1e-12)
    best_sum = torch.zeros(K, K, dtype=unit.dtype, device=unit.device)
    for start in range(0, unit.shape[0], chunk):
        rows = unit[start:start + chunk]
        sims = rows @ unit.T                                        # (c, N)
        best = torch.full((rows.shape[0], K), -2.0, dtype=unit.dtype, device=unit.device)
        best.scatter_reduce_(1, labels.expand(rows.shape[0], -1), sims, reduce="amax")
        best_sum.index_add_(0, labels[start:start + chunk], best)  # sum over x in class i
    return best_sum / counts.unsqueeze(1).to(best_sum.dtype)


def i_cas(C_instance: torch.Tensor) -> float:
    """Instance-wise CAS (Section 5.3): :func:`cas` of the instance-wise matrix."""
    return cas(C_instance)


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


def measure(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack: Optional[Attack], *,
            num_classes: int | None = None, batch_size: int = 500, instance: bool = False,
            keep_features: bool = False, generator: torch.Generator | None = None,
            progress: bool = False) -> Measurement:
    """Algorithm 1 in one pass: C, CAS and robust accuracy of ``model`` on ``(x, y)``.

    Args:
        model: a classifier with ``features(x) -> (B, n)`` and a linear ``head`` (Eq. 4);
            see :func:`xcf.models.check_feature_model`.
        x: test inputs in [0, 1], (N, C, H, W); y: labels, (N,).
        attack: ``attack(model, x, y) -> x_adv`` (e.g. ``xcf.attacks.PGD(eps=8/255, steps=20)``),
            or ``None`` for clean examples (the standard-training matrices of Fig. 9).
        num_classes: K; default ``model.head.out_features``.
        batch_size: samples per attack batch; batches mix classes.
        instance: also compute the instance-wise matrix and I-CAS (keeps (N, n) vectors).
        keep_features: return the (N, n) features g(x + delta) (for :func:`bootstrap_cas`).
        generator: random generator passed to the attack, for reproducibility.
        progress: show a progress bar.

    Every input is checked before the attack pass (:mod:`xcf.inputs`): images finite and
    in [0, 1] (with or without an attack), integer labels in ``[0, K)``, one label per
    image, ``batch_size >= 1`` and ``num_classes`` equal to the head's outputs.
    """
    check_feature_model(model)
    W = model.head.weight.detach()
    K = check_num_classes(num_classes, W.shape[0])
    check_images(x)
    check_labels(y, K)
    check_lengths(x, y)
    check_batch_size(batch_size)
    counts = torch.bincount(y.cpu(), minlength=K)
    _check_counts(counts)  # before the attack pass, not after it
    with attack_mode(model, "eval"):  # eval mode, frozen weights; both restored after
        kept, correct = [], 0
        for start in tqdm(range(0, len(x), batch_size), disable=not progress, desc="attribution"):
            xb, yb = x[start:start + batch_size], y[start:start + batch_size]
            if attack is not None:
                xb = attack(model, xb, yb, generator=generator) if generator is not None else attack(model, xb, yb)
            feats, logits = _features_and_logits(model, xb)
            correct += int((logits.argmax(1) == yb).sum())
            kept.append(feats.float())
    features = torch.cat(kept)
    # Class means summed in float64, so that they do not depend on the batch order.
    A = class_attribution_vectors(features.double(), y.to(features.device), W.double()).float()
    C = correlation_matrix(A)
    result = Measurement(C=C.cpu(), cas=cas(C), accuracy=correct / len(x), attribution=A.cpu(),
                         counts=counts)
    if instance:
        Ci = instance_correlation_matrix(features, y, W.float())
        result.C_instance, result.i_cas = Ci.cpu(), i_cas(Ci)
    if keep_features:
        result.features = features
    return result


def bootstrap_cas(features: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor, *,
                  n_boot: int = 200, generator: torch.Generator | None = None) -> torch.Tensor:
    """CAS (Eq. 7) of ``n_boot`` bootstrap resamples of the test samples (not in the paper).

    Each resample draws, within every class, as many samples as the class has, with
    replacement, so every class stays present and Algorithm 1's class means are defined;
    the attack's perturbations are held fixed.  Percentiles of the result give an interval
    for CAS over the choice of test samples.

    Args:
        features: g(x + delta), (N, n); labels: (N,); weight: W, (K, n).
    Returns:
        (n_boot,) CAS values.
    """
    check_count(n_boot, "n_boot", 1, 200)
    check_features(features, labels, weight)
    K = weight.shape[0]
    _check_counts(torch.bincount(labels.cpu(), minlength=K))
    feats = features.double()
    means = torch.empty(n_boot, K, feats.shape[1], dtype=feats.dtype, device=feats.device)
    for k in range(K):
        F_k = feats[labels == k]                                  # (n_k, n)
        n_k = F_k.shape[0]
        draws = torch.randint(n_k, (n_boot, n_k), generator=generator, device="cpu").to(feats.device)
        counts = torch.zeros(n_boot, n_k, dtype=feats.dtype, device=feats.device)
        counts.scatter_add_(1, draws, torch.ones_like(draws, dtype=feats.dtype))
        means[:, k] = counts @ F_k / n_k                          # resampled class mean
    A = means * weight.double().unsqueeze(0)                      # (B, K, n)
    unit = A / A.norm(dim=2, keepdim=True).clamp_min(1e-300)
    C = (unit @ unit.transpose(1, 2)).clamp(-1, 1)
    off = ~torch.eye(K, dtype=torch.bool, device=C.device)
    return (C.clamp(min=0) * off).sum(dim=(1, 2)).float().cpu()


def _class_feature_sums(features: torch.Tensor, labels: torch.Tensor,
                        K: int) -> tuple[torch.Tensor, torch.Tensor]:
    sums = torch.zeros(K, features.shape[1], dtype=features.dtype, device=features.device)
    sums.index_add_(0, labels, features)
    return sums, torch.bincount(labels, minlength=K)


def _check_counts(counts: torch.Tensor) -> None:
    empty = torch.nonzero(counts == 0).flatten().tolist()
    if empty:
        raise ValueError(
            f"class(es) {empty} have no test sample; Algorithm 1 averages over every class, "
            "so pass a test set that contains each class (or a smaller num_classes)"
        )
