"""Issue 29, the metric is never silently wrong: Eq. 6 at any finite scale, and Eq. 7 only
of correlation matrices.

Every expected value here is computed independently of :mod:`xcf.attribution`: cosines in
float64 numpy on the exact values of the input (float32 values square to at most 1.2e77
and at least 2e-90, well inside float64), or by hand.  The property tests throw random
matrices of every scale from 1e-30 to 1e30, and random junk (NaN, inf, huge, tiny, wrong
dtype, wrong shape), and accept exactly two outcomes: a right answer or an
:mod:`xcf.inputs` error.
"""
import math
import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from xcf import inputs
from xcf.attribution import (CORRELATION_TOL, cas, correlation_matrix, i_cas,
                             instance_correlation_matrix)

FAST = settings(max_examples=60, deadline=None, derandomize=True)  # same examples every run
NAN, INF = float("nan"), float("inf")
REAL_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
# Half an ulp of 1 in each dtype (plus float64 slack): how far a cast cosine may move.
ROUNDING = {torch.float16: 1e-3, torch.bfloat16: 4e-3, torch.float32: 1e-5, torch.float64: 1e-9}

# Hand case: |rows| = 5, cos(row 0, row 1) = (12 + 12) / 25 = 0.96, row 2 orthogonal to both.
HAND = [[3.0, 4.0, 0.0], [4.0, 3.0, 0.0], [0.0, 0.0, 5.0]]
HAND_C = np.array([[1.0, 0.96, 0.0], [0.96, 1.0, 0.0], [0.0, 0.0, 1.0]])


def cosines64(A: torch.Tensor) -> np.ndarray:
    """Eq. 6 the plain way, in float64 numpy; rows must be nonzero."""
    a = A.detach().to(torch.float64).numpy()
    u = a / np.sqrt((a * a).sum(axis=1, keepdims=True))
    return u @ u.T


def instance_matrix64(g: torch.Tensor, y: torch.Tensor, W: torch.Tensor) -> np.ndarray:
    """Section 5.3 the plain way, in float64 numpy: mean over class i of max over class j."""
    g64, W64, y = g.double().numpy(), W.double().numpy(), y.numpy()
    v = g64 * W64[y]
    u = v / np.sqrt((v * v).sum(axis=1, keepdims=True))
    S = u @ u.T
    K = W64.shape[0]
    return np.array([[S[y == i][:, y == j].max(axis=1).mean() for j in range(K)]
                     for i in range(K)])


def assert_is_correlation_of(C: torch.Tensor, A: torch.Tensor) -> None:
    """C is Eq. 6 of A: A's dtype, (K, K), unit diagonal, symmetric, in [-1, 1], right."""
    K = A.shape[0]
    assert C.dtype == A.dtype and C.shape == (K, K)
    c = C.to(torch.float64).numpy()
    assert np.all(np.abs(np.diag(c) - 1) <= 1e-6), np.diag(c)
    assert np.array_equal(c, c.T)
    assert c.min() >= -1 and c.max() <= 1
    np.testing.assert_allclose(c, cosines64(A), rtol=0, atol=ROUNDING[A.dtype])


# --------------------------------------------------------------------------- Eq. 6 at any scale

@pytest.mark.parametrize("scale", [1e19, 1e30, 1e-20, 1e-30])
def test_hand_case_at_a_scale_where_float32_squares_overflow_or_underflow(scale):
    A = torch.tensor(HAND) * scale                  # float32; 1e-30 * 3 is still normal
    squares = (A * A).sum(dim=1)
    # The defect's premise: the plain float32 squared norm is inf or (near) 0 here.
    assert bool(torch.isinf(squares).all()) or bool((squares < 1e-37).all())
    C = correlation_matrix(A)
    assert C.dtype == torch.float32
    np.testing.assert_allclose(C.double().numpy(), HAND_C, rtol=0, atol=1e-6)
    assert cas(C) == pytest.approx(2 * 0.96, abs=1e-6)  # not 0, as a diverged model gave


@pytest.mark.parametrize("scale", [1e19, 1e-30])
def test_random_rows_at_extreme_scale_match_float64_numpy(scale):
    A = torch.randn(3, 4, generator=torch.Generator().manual_seed(0)) * scale
    assert_is_correlation_of(correlation_matrix(A), A)


def test_rows_of_very_different_scale_and_subnormal_rows():
    # One row at 1e30, one at 1e-30, one of float32 subnormals (about 1e-44).
    A = torch.tensor([[1e30, -2e30, 3e29], [1e-30, 5e-31, -2e-30], [1e-44, 3e-44, -2e-44]])
    assert A[2].abs().min() > 0                      # really subnormal, not flushed to 0
    assert_is_correlation_of(correlation_matrix(A), A)


@pytest.mark.parametrize("scale", [1e200, 1e-200])
def test_float64_rows_beyond_float64_squares(scale):
    A = torch.tensor(HAND, dtype=torch.float64) * scale
    C = correlation_matrix(A)
    assert C.dtype == torch.float64
    np.testing.assert_allclose(C.numpy(), HAND_C, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_input_keeps_its_dtype(dtype):
    A = torch.tensor(HAND, dtype=dtype) * 1000
    C = correlation_matrix(A)
    assert C.dtype == dtype
    assert torch.equal(C.diagonal(), torch.ones(3, dtype=dtype))
    np.testing.assert_allclose(C.double().numpy(), HAND_C, rtol=0, atol=ROUNDING[dtype])


ROW_KINDS = ["one scale"] * 3 + ["mixed scales"] * 2 + ["zero"]


@st.composite
def scaled_matrices(draw):
    """float32 (K, n): each row at its own scale 1e-30..1e30, or with a scale per entry,
    or all zeros; entries below float32's range come out subnormal or 0."""
    K, n = draw(st.integers(1, 6)), draw(st.integers(1, 8))
    rows = []
    for _ in range(K):
        kind = draw(st.sampled_from(ROW_KINDS))
        if kind == "zero":
            rows.append([0.0] * n)
            continue
        mantissa = draw(st.lists(st.floats(-1, 1), min_size=n, max_size=n))
        exponents = (draw(st.lists(st.integers(-30, 30), min_size=n, max_size=n))
                     if kind == "mixed scales" else [draw(st.integers(-30, 30))] * n)
        rows.append([m * 10.0 ** e for m, e in zip(mantissa, exponents)])
    return torch.tensor(rows, dtype=torch.float64).to(torch.float32)


@FAST
@given(scaled_matrices())
def test_any_finite_float32_matrix_gives_its_cosines(A):
    nonzero = [k for k in range(A.shape[0]) if bool(A[k].any())]
    zero = [k for k in range(A.shape[0]) if k not in nonzero]
    if zero:  # documented: an all-zero row has no cosine, and is named
        with pytest.raises(inputs.MatrixError, match=re.escape(f"class(es) {zero} is all zeros")):
            correlation_matrix(A)
        if not nonzero:
            return
        A = A[nonzero]  # the nonzero rows alone: however tiny, never taken for zero
    assert_is_correlation_of(correlation_matrix(A), A)


# --------------------------------------------------------------------------- Section 5.3

@pytest.mark.parametrize("g_scale, w_scale", [(1e20, 1e20), (1e-25, 1e-25), (1e30, 1e-30)])
def test_instance_matrix_at_extreme_scale_matches_float64_numpy(g_scale, w_scale):
    # 1e20 * 1e20 overflows float32 and 1e-25 * 1e-25 underflows it: the plain
    # features * weight would give inf/NaN or zero vectors.
    gen = torch.Generator().manual_seed(3)
    g, W = torch.rand(13, 5, generator=gen) + 0.1, torch.randn(3, 5, generator=gen)
    y = torch.arange(13) % 3
    C = instance_correlation_matrix(g * g_scale, y, W * w_scale, chunk=4)
    assert C.dtype == torch.float32 and bool(torch.isfinite(C).all())
    np.testing.assert_allclose(C.double().numpy(), instance_matrix64(g, y, W), rtol=0, atol=1e-5)
    assert torch.allclose(C.diagonal(), torch.ones(3), atol=1e-6)
    assert i_cas(C) == pytest.approx(cas(C))


def test_instance_matrix_counts_an_all_zero_vector_as_cosine_zero():
    # Hand case, W = identity: class 0 = (1, 0), (0, 0); class 1 = (0, 1), (0, 2).
    g = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0], [0.0, 2.0]])
    y = torch.tensor([0, 0, 1, 1])
    C = instance_correlation_matrix(g, y, torch.eye(2))
    # C[0, 0] = (1 + 0) / 2: the zero vector adds 0; all other cosines are 0 or 1.
    np.testing.assert_allclose(C.numpy(), [[0.5, 0.0], [0.0, 1.0]], atol=1e-6)
    assert i_cas(C) == 0.0
    with pytest.raises(inputs.MatrixError, match=r"C\[0, 0\] is 0\.5.*use i_cas"):
        cas(C)


# --------------------------------------------------------------------------- Eq. 7 domain

def test_cas_accepts_correlation_matrices_within_the_tolerance():
    half = CORRELATION_TOL / 2
    C = torch.tensor([[1 + half, 1 + half], [-1 - half, 1 - half]], dtype=torch.float64)
    assert cas(C) == pytest.approx(1 + half)       # Eq. 7 by hand: only C[0, 1] > 0
    assert i_cas(C) == pytest.approx(1 + half)
    asym = torch.tensor([[1.0, -0.5, 0.2], [0.3, 1.0, -0.1], [0.4, 0.0, 1.0]])
    assert cas(asym) == pytest.approx(0.9)          # Eq. 7 does not need symmetry
    assert cas(torch.eye(1)) == 0.0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cas_of_a_half_precision_matrix_is_summed_exactly(dtype):
    K = 100  # 9900 entries of 0.5: a float16 running sum near 4950 steps by 4
    C = torch.full((K, K), 0.5, dtype=dtype).fill_diagonal_(1.0)
    assert cas(C) == K * (K - 1) * 0.5


def sym(K=3, **entries):
    """A (K, K) float32 matrix: ones on the diagonal, 0.25 elsewhere, then ``entries``
    (name 'ij' -> value), each set at (i, j) and (j, i)."""
    C = torch.full((K, K), 0.25).fill_diagonal_(1.0)
    for key, value in entries.items():
        i, j = int(key[1]), int(key[2])
        C[i, j] = C[j, i] = value
    return C


def with_entry(M, at, value):
    M = M.clone()
    M[at] = value
    return M


A0 = torch.tensor(HAND)
BAD_CASES = {
    # correlation_matrix: dtype, values, shape, zero row
    "A int64": (correlation_matrix, A0.long(), r"A has dtype torch\.int64.*pass A\.float\(\)"),
    "A int32": (correlation_matrix, A0.int(), r"A has dtype torch\.int32"),
    "A uint8": (correlation_matrix, A0.to(torch.uint8), r"A has dtype torch\.uint8"),
    "A bool": (correlation_matrix, A0.bool(), r"A has dtype torch\.bool"),
    "A complex": (correlation_matrix, A0.to(torch.complex64),
                  r"A has dtype torch\.complex64.*real floating point.*A\.real"),
    "A NaN": (correlation_matrix, with_entry(A0, (1, 2), NAN), r"A\[1, 2\] is nan"),
    "A inf": (correlation_matrix, with_entry(A0, (2, 0), INF), r"A\[2, 0\] is inf"),
    "A -inf": (correlation_matrix, with_entry(A0, (0, 1), -INF), r"A\[0, 1\] is -inf"),
    "A float16 overflow": (correlation_matrix, torch.tensor([[1e5, 1.0]]).half(),
                           r"A\[0, 0\] is inf"),
    "A 3-D": (correlation_matrix, torch.ones(2, 2, 2), r"A has shape \(2, 2, 2\)"),
    "A 1-D": (correlation_matrix, torch.ones(3), r"A has shape \(3,\)"),
    "A 0-D": (correlation_matrix, torch.tensor(1.0), r"A has shape \(\)"),
    "A ndarray": (correlation_matrix, np.ones((2, 2)), r"got ndarray"),
    "A zero row among tiny ones": (correlation_matrix,
                                   torch.tensor([[1e-30, 2e-30], [0.0, 0.0], [1e-44, 0.0]]),
                                   r"class\(es\) \[1\] is all zeros"),
    # cas: not a correlation matrix
    "C off-diagonal 5": (cas, torch.tensor([[1.0, 5.0], [5.0, 1.0]]),
                         r"C\[0, 1\] is 5, outside \[-1, 1\].*C = correlation_matrix\(A\)"),
    "C below -1": (cas, sym(c10=-1.5), r"C\[0, 1\] is -1\.5, outside \[-1, 1\]"),
    "C just beyond the tolerance": (cas, sym(c12=1.0002), r"C\[1, 2\] is 1\.0002, outside"),
    "C diagonal 2": (cas, 2 * torch.eye(3), r"C\[0, 0\] is 2, outside \[-1, 1\]"),
    "C diagonal 0.5": (cas, with_entry(sym(), (1, 1), 0.5),
                       r"C\[1, 1\] is 0\.5; the diagonal of a correlation matrix is 1"
                       r".*C = correlation_matrix\(A\)"),
    "C diagonal 0.9": (cas, with_entry(sym(), (2, 2), 0.9), r"C\[2, 2\] is 0\.9; the diagonal"),
    "C diagonal -1": (cas, -torch.eye(2), r"C\[0, 0\] is -1; the diagonal"),
    "C covariance": (cas, torch.tensor([[4.0, 1.0], [1.0, 9.0]]), r"C\[0, 0\] is 4, outside"),
    "C int64": (cas, torch.eye(3, dtype=torch.long), r"C has dtype torch\.int64.*C\.float\(\)"),
    "C bool": (cas, torch.eye(3, dtype=torch.bool), r"C has dtype torch\.bool"),
    "C complex": (cas, torch.eye(3, dtype=torch.complex64), r"C has dtype torch\.complex64"),
    "C NaN": (cas, with_entry(sym(), (2, 1), NAN), r"C\[2, 1\] is nan"),
    "C -inf": (cas, with_entry(sym(), (0, 2), -INF), r"C\[0, 2\] is -inf"),
    "C not square": (cas, torch.ones(2, 3), r"C has shape \(2, 3\).*square"),
    # i_cas: the instance-wise matrix, asymmetric, diagonal in [0, 1]
    "I off-diagonal 5": (i_cas, with_entry(sym(), (0, 1), 5.0),
                         r"C\[0, 1\] is 5, outside \[-1, 1\].*instance_correlation_matrix"),
    "I below -1": (i_cas, with_entry(sym(), (2, 0), -3.0), r"C\[2, 0\] is -3, outside"),
    "I negative diagonal": (i_cas, with_entry(sym(), (1, 1), -0.5),
                            r"C\[1, 1\] is -0\.5; the diagonal.*in \[0, 1\]"),
    "I int64": (i_cas, torch.eye(2, dtype=torch.long), r"C has dtype torch\.int64"),
    "I inf": (i_cas, with_entry(sym(), (1, 0), INF), r"C\[1, 0\] is inf"),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_input_is_an_input_error_naming_the_value(case):
    fn, M, text = BAD_CASES[case]
    with pytest.raises(inputs.MatrixError, match=text) as info:
        fn(M)
    assert isinstance(info.value, (ValueError, TypeError))


# --------------------------------------------------------------------------- random junk

SPECIAL = [NAN, INF, -INF, 0.0, -0.0, 1.0, -1.0, 0.5, 1e30, -1e30, 1e-30, 1e-45, 3e38, 1e300,
           5.0, -2.0]
DTYPES = list(REAL_FLOATS) + [torch.int64, torch.int32, torch.uint8, torch.bool,
                              torch.complex64]
values = st.one_of(st.sampled_from(SPECIAL), st.floats(-1.5, 1.5))


@st.composite
def junk(draw):
    """Any shape of rank 0..3 (sizes 0..4), any dtype, values from finite to NaN."""
    shape = draw(st.lists(st.integers(0, 4), max_size=3))
    size = math.prod(shape)
    data = draw(st.lists(values, min_size=size, max_size=size))
    t = torch.tensor(data, dtype=torch.float64).reshape(shape)
    return t.to(draw(st.sampled_from(DTYPES)))  # casts to int wrap; that tensor is refused anyway


@st.composite
def near_correlation(draw):
    """(K, K) matrices that often are correlation matrices and often just miss."""
    K = draw(st.integers(1, 4))
    C = torch.tensor(draw(st.lists(st.one_of(values, st.floats(-1, 1)), min_size=K * K,
                                   max_size=K * K)), dtype=torch.float64).reshape(K, K)
    if draw(st.booleans()):
        C = (C + C.T) / 2
    if draw(st.booleans()):
        C.fill_diagonal_(1.0)
    return C.to(draw(st.sampled_from(DTYPES)))


def outcome(fn, x):
    """``fn(x)`` or the xcf.inputs error it raised; any other exception fails the test."""
    try:
        return fn(x), None
    except inputs.InputError as error:
        return None, error


def finite_real_matrix(M) -> bool:
    return (M.dtype in REAL_FLOATS and M.dim() == 2 and M.numel() > 0
            and bool(torch.isfinite(M).all()))


@FAST
@given(st.one_of(junk(), scaled_matrices()))
def test_correlation_matrix_of_junk_is_right_or_an_input_error(A):
    C, error = outcome(correlation_matrix, A)
    ok = finite_real_matrix(A) and bool((A != 0).any(dim=1).all())
    if not ok:
        assert isinstance(error, inputs.MatrixError), (A, C)
        return
    assert error is None, error
    assert_is_correlation_of(C, A)


@FAST
@given(st.one_of(junk(), near_correlation()))
def test_cas_and_i_cas_of_junk_are_right_or_an_input_error(C):
    tol = CORRELATION_TOL
    for fn in (cas, i_cas):
        value, error = outcome(fn, C)
        ok = finite_real_matrix(C) and C.shape[0] == C.shape[1]
        if ok:
            c = C.to(torch.float64).numpy()
            d = np.diag(c)
            ok = c.min() >= -1 - tol and c.max() <= 1 + tol and (
                bool(np.all(np.abs(d - 1) <= tol)) if fn is cas else bool(np.all(d >= -tol)))
        if not ok:
            assert isinstance(error, inputs.MatrixError), (fn.__name__, C, value)
            continue
        assert error is None, error
        off = ~np.eye(len(c), dtype=bool)
        assert isinstance(value, float) and math.isfinite(value)
        assert value == pytest.approx(np.maximum(c[off], 0).sum(), abs=1e-9)  # Eq. 7 by hand
