"""Equations 5-7 of Wei, Guo & Wang (ICML 2025) and the instance-wise matrix of Section 5.3:
attribution vectors, C, CAS, I-CAS and the bootstrap interval of CAS, with the checks
that keep them from being silently wrong.  Pure tensor functions; no model."""
from __future__ import annotations

import torch

from xcf.inputs import (MatrixError, ShapeError, check_count, check_features,
                        check_labels, check_matrix)

__all__ = ["CORRELATION_TOL", "attribution_vectors", "class_attribution_vectors",
           "correlation_matrix", "cas", "instance_correlation_matrix", "i_cas",
           "bootstrap_cas"]


#: Absolute slack allowed by :func:`cas` and :func:`i_cas` on the range [-1, 1] and on
#: the diagonal: float32 cosines averaged over a class (the instance-wise diagonal) or a
#: matrix read back from a saved table may miss 1 by rounding, far less than 1e-4.
CORRELATION_TOL = 1e-4


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
    """Cosine similarity of every pair of rows, Eq. 6: C[i, j] = cos(A^i, A^j).

    Safe for finite vectors of any scale: each row is divided by its largest absolute
    entry (cosines do not change under a positive scale per row) and the cosines are
    formed in float64 (float32 on MPS, which has no float64), so float32 rows of size
    1e30 (whose norm overflows to inf) or 1e-30 (whose squared entries underflow to 0)
    still give a unit diagonal; a diverged model is never recorded as CAS 0.

    Args:
        A: class attribution vectors, (K, n), real floating point, finite.
    Returns:
        C, (K, K), of ``A``'s dtype and device: exactly symmetric, ones on the diagonal,
        entries in [-1, 1].
    Raises :class:`xcf.inputs.MatrixError` for a non-tensor, an integer, bool or complex
    ``A``, an empty or non-2-D ``A``, NaN or inf in ``A``, and for an all-zero row (whose
    cosine with anything is undefined).
    """
    _check_real_float(A, "A", "class attribution vectors (K, n)")
    check_matrix(A, "A", square=False)
    work = _scale_rows(A.to(_work_dtype(A.device)))
    zero = torch.nonzero(work.abs().amax(dim=1) == 0).flatten().tolist()
    if zero:
        raise MatrixError(f"attribution vector of class(es) {zero} is all zeros; cosine "
                          "similarity is undefined (a dead head row or all-zero features?)")
    unit = work / work.norm(dim=1, keepdim=True)  # norms in [1, sqrt(n)]: no over/underflow
    C = unit @ unit.T
    C = (C + C.T) / 2  # the two dot products may round differently; Eq. 6 is symmetric
    # cos(a, a) = 1 exactly; the computed unit . unit is only 1 up to rounding.
    eye = torch.eye(C.shape[0], dtype=torch.bool, device=C.device)
    C = torch.where(eye, torch.ones_like(C), C.clamp(-1.0, 1.0))
    return C.to(A.dtype)


def cas(C: torch.Tensor) -> float:
    """Class Attribution Similarity, Eq. 7: sum of the positive off-diagonal entries of C.

    ``C``: a correlation matrix (K, K) from :func:`correlation_matrix` (or the
    instance-wise matrix of Section 5.3 when it has a unit diagonal): real floating point,
    finite, K >= 1, every entry in [-1, 1] and every diagonal entry 1, each within
    ``CORRELATION_TOL``.  Anything else raises :class:`xcf.inputs.MatrixError` naming the
    entry, so that, say, a covariance or a raw similarity matrix never yields a CAS.
    Symmetry is not required: Eq. 7 is also applied to the asymmetric instance-wise
    matrix (:func:`i_cas`).  The sum is taken in float64 on the CPU.
    """
    C64 = _check_correlation(C, "cas", "C = correlation_matrix(A)", unit_diagonal=True)
    return _positive_off_diagonal_sum(C64)


def instance_correlation_matrix(features: torch.Tensor, labels: torch.Tensor,
                                weight: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """Instance-wise correlation matrix of Section 5.3.

    C[i, j] = mean over x in class i of max over x' in class j of cos(A_i(x), A_j(x')).
    The diagonal includes x' = x, so it is 1; it does not enter I-CAS.  Not symmetric.
    A sample whose attribution vector A_i(x) is all zeros (e.g. all-zero features) has
    no direction: its cosine with every vector is taken as 0, so it adds 0, not 1, to
    C[i, i] and nothing positive to row i.

    The unit vectors are formed as in :func:`correlation_matrix` (rows scaled by their
    largest entry, then normalised in float64), so attribution vectors of any finite
    scale, 1e-30 or 1e30 in float32, keep their direction; the (N, N) cosines are then
    taken in the dtype of ``features * weight``.

    Args:
        features: (N, n); labels: (N,); weight: (K, n).
        chunk: rows of the (N, N) similarity matrix formed at a time (bounds memory).
    Returns:
        (K, K), entries in [-1, 1].
    """
    check_features(features, labels, weight)
    check_count(chunk, "chunk", 1, 1024)
    K = weight.shape[0]
    counts = torch.bincount(labels, minlength=K)
    _check_counts(counts)
    unit = _unit_attribution_vectors(features, weight, labels)
    best_sum = torch.zeros(K, K, dtype=unit.dtype, device=unit.device)
    for start in range(0, unit.shape[0], chunk):
        rows = unit[start:start + chunk]
        sims = (rows @ unit.T).clamp_(-1.0, 1.0)                    # (c, N)
        best = torch.full((rows.shape[0], K), -2.0, dtype=unit.dtype, device=unit.device)
        best.scatter_reduce_(1, labels.expand(rows.shape[0], -1), sims, reduce="amax")
        best_sum.index_add_(0, labels[start:start + chunk], best)  # sum over x in class i
    return best_sum / counts.unsqueeze(1).to(best_sum.dtype)


def i_cas(C_instance: torch.Tensor) -> float:
    """Instance-wise CAS (Section 5.3): Eq. 7 applied to the instance-wise matrix.

    ``C_instance``: (K, K) from :func:`instance_correlation_matrix`: real floating point,
    finite, entries in [-1, 1] and a diagonal in [0, 1] (each within ``CORRELATION_TOL``;
    the diagonal is 1 unless a class has all-zero attribution vectors, which count 0).
    Not symmetric.  Anything else raises :class:`xcf.inputs.MatrixError` naming the entry.
    """
    C64 = _check_correlation(C_instance, "i_cas",
                             "C = instance_correlation_matrix(features, labels, weight)",
                             unit_diagonal=False)
    return _positive_off_diagonal_sum(C64)


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


# --------------------------------------------------------------------------- helpers

def _work_dtype(device: torch.device) -> torch.dtype:
    # MPS has no float64; there, row scaling alone keeps float32 norms finite and nonzero.
    return torch.float32 if device.type == "mps" else torch.float64


def _scale_rows(M: torch.Tensor) -> torch.Tensor:
    """Each row divided by its largest absolute entry (zero rows unchanged), (R, n).

    A nonzero row then has an entry of exactly +-1 (x / x is exact) and all others in
    [-1, 1], so its norm lies in [1, sqrt(n)]: it can neither overflow nor underflow.
    """
    peak = M.abs().amax(dim=1, keepdim=True)
    return M / torch.where(peak > 0, peak, torch.ones_like(peak))


def _unit_attribution_vectors(features: torch.Tensor, weight: torch.Tensor,
                              labels: torch.Tensor) -> torch.Tensor:
    """A_{y_k}(x_k) / ||A_{y_k}(x_k)||, Eq. 5 normalised, (N, n); all-zero rows stay zero.

    ``features * weight[labels]`` itself overflows in float32 for entries of 1e20 each, so
    features and weight are scaled per row first (cosines ignore positive scales) and
    multiplied in float64, where products of float32 values never overflow or underflow.
    """
    work = _work_dtype(features.device)
    dtype = torch.promote_types(features.dtype, weight.dtype)
    if not dtype.is_floating_point:
        dtype = torch.get_default_dtype()
    vecs = _scale_rows(_scale_rows(features.to(work)) * _scale_rows(weight.to(work))[labels])
    norm = vecs.norm(dim=1, keepdim=True)
    return (vecs / torch.where(norm > 0, norm, torch.ones_like(norm))).to(dtype)


def _check_real_float(M, name: str, what: str) -> None:
    """Refuse integer, bool and complex tensors (non-tensors are left to check_matrix)."""
    if isinstance(M, torch.Tensor) and not M.is_floating_point():
        fix = (f"{name}.real if its imaginary part is zero" if M.is_complex()
               else f"{name}.float()")
        raise MatrixError(f"{name} has dtype {M.dtype}; {what} must be real floating point: "
                          f"pass {fix}")


def _check_correlation(C, fn: str, source: str, *, unit_diagonal: bool) -> torch.Tensor:
    """Check that ``C`` is a correlation matrix (Eq. 6); return it as float64 on the CPU.

    Entries in [-1, 1]; the diagonal 1 if ``unit_diagonal`` (class-wise, Eq. 6), else in
    [0, 1] (instance-wise, Section 5.3); both within ``CORRELATION_TOL``.
    """
    _check_real_float(C, "C", "a correlation matrix (K, K)")
    check_matrix(C, "C")
    # K x K is small: the copy makes the checks and the sum exact for float16/bfloat16 too.
    C64 = C.detach().to("cpu", torch.float64)
    tol = CORRELATION_TOL
    need = f"{fn} needs a correlation matrix of cosines (Eq. 6): pass {source}"
    outside = (C64 < -1 - tol) | (C64 > 1 + tol)
    if bool(outside.any()):
        i, j = outside.nonzero()[0].tolist()
        raise MatrixError(f"C[{i}, {j}] is {C64[i, j].item():.6g}, outside [-1, 1]; {need}, "
                          "not a covariance, a raw similarity or a CAS table")
    diag = C64.diagonal()
    bad = (diag - 1).abs() > tol if unit_diagonal else diag < -tol
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        want = ("1 (the cosine of a vector with itself)" if unit_diagonal else
                "in [0, 1] (1, or 0 for all-zero attribution vectors)")
        hint = (" (for the instance-wise matrix of Section 5.3 use i_cas)" if unit_diagonal
                else "")
        raise MatrixError(f"C[{i}, {i}] is {diag[i].item():.6g}; the diagonal of a correlation "
                          f"matrix is {want}; {need}{hint}")
    return C64


def _positive_off_diagonal_sum(C: torch.Tensor) -> float:
    """Eq. 7 on a checked (K, K) matrix: sum over i != j of max(C[i, j], 0)."""
    off = ~torch.eye(C.shape[0], dtype=torch.bool, device=C.device)
    return float(C.clamp(min=0)[off].sum())
