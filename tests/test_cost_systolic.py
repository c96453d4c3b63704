"""Analytic systolic-array cycle model (dlmsim.cost.systolic) against the register model."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlmsim.cost.register_model import run_os, run_ws
from dlmsim.cost.systolic import (
    DATAFLOWS,
    folds,
    gemm_cycles,
    os_fold_cycles,
    ws_fold_cycles,
)

RUN = {"os": run_os, "ws": run_ws}
dims = st.integers(1, 12)
array_dims = st.integers(1, 6)


def _fold_sizes(size: int, step: int) -> list[int]:
    return [min(step, size - start) for start in range(0, size, step)]


def _sum_of_folds(dataflow: str, M: int, K: int, N: int, rows: int, cols: int) -> int:
    if dataflow == "os":
        return sum(
            os_fold_cycles(m, K, n, rows, cols)
            for m in _fold_sizes(M, rows)
            for n in _fold_sizes(N, cols)
        )
    return sum(
        ws_fold_cycles(M, k, n, rows, cols)
        for k in _fold_sizes(K, rows)
        for n in _fold_sizes(N, cols)
    )


@pytest.mark.parametrize("dataflow", DATAFLOWS)
@pytest.mark.parametrize(
    "shape", [(4, 4, 4, 4, 4), (7, 5, 9, 3, 4), (1, 1, 1, 1, 1), (3, 8, 2, 6, 1)]
)
def test_register_model_computes_the_product(dataflow, shape):
    M, K, N, rows, cols = shape
    rng = np.random.default_rng(sum(shape))
    A, B = rng.integers(-9, 10, (M, K)), rng.integers(-9, 10, (K, N))
    C, _ = RUN[dataflow](A, B, rows, cols)
    assert C.dtype == (A @ B).dtype
    np.testing.assert_array_equal(C, A @ B)


@pytest.mark.parametrize("dataflow", DATAFLOWS)
def test_register_model_floats(dataflow):
    rng = np.random.default_rng(1)
    A, B = rng.standard_normal((5, 6)), rng.standard_normal((6, 7))
    C, _ = RUN[dataflow](A, B, 2, 3)
    np.testing.assert_allclose(C, A @ B)


@settings(max_examples=200, deadline=None)
@given(
    dataflow=st.sampled_from(DATAFLOWS), M=dims, K=dims, N=dims, rows=array_dims, cols=array_dims
)
def test_gemm_cycles_match_register_model(dataflow, M, K, N, rows, cols):
    A = np.arange(M * K).reshape(M, K) % 7 - 3
    B = np.arange(K * N).reshape(K, N) % 5 - 2
    C, register_cycles = RUN[dataflow](A, B, rows, cols)
    np.testing.assert_array_equal(C, A @ B)
    assert gemm_cycles(dataflow, M, K, N, rows, cols) == register_cycles


@settings(max_examples=300, deadline=None)
@given(
    dataflow=st.sampled_from(DATAFLOWS), M=dims, K=dims, N=dims, rows=array_dims, cols=array_dims
)
def test_gemm_cycles_is_the_sum_of_fold_cycles(dataflow, M, K, N, rows, cols):
    expected = _sum_of_folds(dataflow, M, K, N, rows, cols)
    assert gemm_cycles(dataflow, M, K, N, rows, cols) == expected
    n_folds = len(_fold_sizes(M if dataflow == "os" else K, rows)) * len(_fold_sizes(N, cols))
    assert folds(dataflow, M, K, N, rows, cols) == n_folds


def test_os_square_fold_4x4():
    """4x4 array, M=K=N=4, one OS fold. PE(i,j) does its p-th MAC at cycle p+i+j, so the last
    MAC is PE(3,3) at cycle 3+3+3 = 9: 10 cycles. Draining 4 rows up and out of the top edge
    takes 4 more: 14 = k + 2m + n - 2 = 4 + 8 + 4 - 2."""
    assert os_fold_cycles(4, 4, 4, 4, 4) == 14
    assert gemm_cycles("os", 4, 4, 4, 4, 4) == 14
    assert folds("os", 4, 4, 4, 4, 4) == 1


def test_ws_square_fold_4x4():
    """4x4 array, M=K=N=4, one WS fold. Preload shifts 4 weight rows down: 4 cycles. A[r,p]
    enters row p at r + 3 - p; PE(0,j) latches output (r,j) at r + 3 + j, the last (3,3) at
    cycle 9, and it reaches the buffer at cycle 10: 11 stream cycles. 4 + 11 = 15
    = 2k + m + n - 1."""
    assert ws_fold_cycles(4, 4, 4, 4, 4) == 15
    assert gemm_cycles("ws", 4, 4, 4, 4, 4) == 15
    assert folds("ws", 4, 4, 4, 4, 4) == 1


def test_ragged_6x6x6_on_4x4():
    """M=K=N=6 on 4x4: folds of 4 and 2 along each tiled dimension, 4 folds.
    OS (k=6): (m,n)=(4,4) 6+8+4-2=16, (4,2) 14, (2,4) 12, (2,2) 10 -> 52
      = FM FN (K-2) + 2 M FN + N FM = 4*4 + 24 + 12.
    WS (m=6): (k,n)=(4,4) 8+6+4-1=17, (4,2) 15, (2,4) 13, (2,2) 11 -> 56
      = FK FN (M-1) + 2 K FN + N FK = 4*5 + 24 + 12."""
    assert gemm_cycles("os", 6, 6, 6, 4, 4) == 52
    assert gemm_cycles("ws", 6, 6, 6, 4, 4) == 56
    assert folds("os", 6, 6, 6, 4, 4) == folds("ws", 6, 6, 6, 4, 4) == 4
    A = np.arange(36).reshape(6, 6)
    assert run_os(A, A, 4, 4)[1] == 52
    assert run_ws(A, A, 4, 4)[1] == 56


def test_single_pe():
    """1x1 array, 1x1x1: OS one MAC (1 cycle) + one drain hop = 2; WS one preload shift, one
    MAC, one hop out = 3."""
    assert gemm_cycles("os", 1, 1, 1, 1, 1) == 2
    assert gemm_cycles("ws", 1, 1, 1, 1, 1) == 3


@settings(max_examples=300, deadline=None)
@given(
    dataflow=st.sampled_from(DATAFLOWS),
    M=st.integers(1, 300),
    K=st.integers(1, 300),
    N=st.integers(1, 300),
    rows=st.integers(1, 64),
    cols=st.integers(1, 64),
)
def test_cycles_at_least_compute_roofline(dataflow, M, K, N, rows, cols):
    assert gemm_cycles(dataflow, M, K, N, rows, cols) >= math.ceil(M * K * N / (rows * cols))


@settings(max_examples=200, deadline=None)
@given(
    dataflow=st.sampled_from(DATAFLOWS),
    M=st.integers(1, 300),
    K=st.integers(1, 300),
    N=st.integers(1, 300),
    rows=st.integers(1, 64),
    cols=st.integers(1, 64),
    extra=st.integers(1, 64),
)
def test_bigger_array_never_slower(dataflow, M, K, N, rows, cols, extra):
    cycles = gemm_cycles(dataflow, M, K, N, rows, cols)
    assert gemm_cycles(dataflow, M, K, N, rows + extra, cols) <= cycles
    assert gemm_cycles(dataflow, M, K, N, rows, cols + extra) <= cycles


@pytest.mark.parametrize("dataflow", DATAFLOWS)
def test_bigger_array_never_slower_square_even(dataflow):
    """Square problem S=64, every array side a divisor of S: cycles fall as rows or cols grow."""
    sides = [1, 2, 4, 8, 16, 32, 64]
    for rows in sides:
        by_cols = [gemm_cycles(dataflow, 64, 64, 64, rows, cols) for cols in sides]
        assert by_cols == sorted(by_cols, reverse=True)
    for cols in sides:
        by_rows = [gemm_cycles(dataflow, 64, 64, 64, rows, cols) for rows in sides]
        assert by_rows == sorted(by_rows, reverse=True)


@pytest.mark.parametrize("dataflow", DATAFLOWS)
@pytest.mark.parametrize("shape", [(0, 3, 3), (3, 0, 3), (3, 3, 0), (0, 0, 0)])
def test_zero_work_is_zero_cycles(dataflow, shape):
    M, K, N = shape
    assert gemm_cycles(dataflow, M, K, N, 4, 4) == 0
    assert folds(dataflow, M, K, N, 4, 4) == 0
    C, cycles = RUN[dataflow](np.zeros((M, K), int), np.zeros((K, N), int), 4, 4)
    assert cycles == 0 and C.shape == (M, N) and not C.any()
    assert os_fold_cycles(*(min(d, 4) for d in shape), 4, 4) == 0
    assert ws_fold_cycles(*(min(d, 4) for d in shape), 4, 4) == 0


@pytest.mark.parametrize(
    "call",
    [
        lambda: gemm_cycles("os", 4, 4, 4, 0, 4),
        lambda: gemm_cycles("ws", 4, 4, 4, 4, 0),
        lambda: gemm_cycles("ws", 0, 4, 4, 4, 0),
        lambda: gemm_cycles("is", 4, 4, 4, 4, 4),
        lambda: gemm_cycles("os", -1, 4, 4, 4, 4),
        lambda: folds("os", 4, 4, 4, 0, 1),
        lambda: folds("xs", 4, 4, 4, 4, 4),
        lambda: os_fold_cycles(5, 4, 4, 4, 4),
        lambda: os_fold_cycles(4, 4, 5, 4, 4),
        lambda: ws_fold_cycles(4, 5, 4, 4, 4),
        lambda: ws_fold_cycles(4, 4, 4, 0, 4),
        lambda: run_os(np.ones((2, 2)), np.ones((2, 2)), 0, 2),
        lambda: run_ws(np.ones((2, 3)), np.ones((2, 2)), 2, 2),
    ],
)
def test_bad_arguments_raise(call):
    with pytest.raises(ValueError):
        call()
