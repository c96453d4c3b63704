"""Analytic systolic-array cycle model (dlmsim.cost.systolic) against the register model."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlmsim.cost.register_model import Hazard, fold_starts, run_os, run_ws
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
        lambda: run_os(np.ones((2, 2)), np.ones((2, 2)), 2, 2, overlap="half"),
        lambda: gemm_cycles("os", 4, 4, 4, 4, 4, "half"),
        lambda: gemm_cycles("os", 4, 4, 4, 4, 4, "full", batch=-1),
    ],
)
def test_bad_arguments_raise(call):
    with pytest.raises(ValueError):
        call()


# ------------------------------------------------------------------------ fold overlap
OVERLAPPED = ("drain", "full")


@settings(max_examples=120, deadline=None)
@given(dataflow=st.sampled_from(DATAFLOWS), overlap=st.sampled_from(OVERLAPPED),
       batch=st.integers(1, 3), M=st.integers(1, 9), K=st.integers(1, 9), N=st.integers(1, 9),
       rows=st.integers(1, 5), cols=st.integers(1, 5))
def test_overlap_formulas_match_register_model(dataflow, overlap, batch, M, K, N, rows, cols):
    """The closed forms of systolic.py (module docstring) against the register model, which
    issues folds by the overlap's rule and raises Hazard if two folds ever collide."""
    rng = np.random.default_rng(M * 100 + K * 10 + N)
    A, B = rng.integers(-5, 6, (batch, M, K)), rng.integers(-5, 6, (batch, K, N))
    C, register_cycles = RUN[dataflow](A, B, rows, cols, overlap=overlap)
    np.testing.assert_array_equal(C, A @ B)
    assert gemm_cycles(dataflow, M, K, N, rows, cols, overlap, batch) == register_cycles


@settings(max_examples=60, deadline=None)
@given(dataflow=st.sampled_from(DATAFLOWS), batch=st.integers(1, 2), M=st.integers(1, 7),
       K=st.integers(1, 7), N=st.integers(1, 7), rows=st.integers(1, 4), cols=st.integers(1, 4),
       pick=st.integers(0, 10 ** 6))
def test_full_overlap_periods_are_tight(dataflow, batch, M, K, N, rows, cols, pick):
    """Issuing any fold (and those after it) one cycle before the full-overlap rule allows
    (OS max(K, m), WS max(M + k_f - k_next, k_f + k_next - 1)) collides: a port driven by two
    folds, a register overwritten before use, or a MAC pairing two folds' operands."""
    starts = fold_starts(dataflow, "full", M, K, N, rows, cols, batch)
    if len(starts) < 2:
        return
    f = 1 + pick % (len(starts) - 1)
    early = starts[:f] + [s - 1 for s in starts[f:]]
    A, B = np.ones((batch, M, K), int), np.ones((batch, K, N), int)
    with pytest.raises(Hazard):
        RUN[dataflow](A, B, rows, cols, overlap="full", starts=early)


@settings(max_examples=300, deadline=None)
@given(dataflow=st.sampled_from(DATAFLOWS), batch=st.integers(1, 8),
       M=st.integers(1, 300), K=st.integers(1, 300), N=st.integers(1, 300),
       rows=st.integers(1, 64), cols=st.integers(1, 64))
def test_overlap_never_slower_than_none_nor_than_roofline(dataflow, batch, M, K, N, rows, cols):
    none = gemm_cycles(dataflow, M, K, N, rows, cols, "none", batch)
    for overlap in OVERLAPPED:
        cycles = gemm_cycles(dataflow, M, K, N, rows, cols, overlap, batch)
        assert math.ceil(batch * M * K * N / (rows * cols)) <= cycles <= none


def test_attention_scores_fold_on_32x64():
    """Attention scores, K = dh = 64, one 32 x 64 output fold per (M, N) block of a
    1024 x 1024 product on a 32 x 64 array (FM = 32, FN = 16, 512 folds).
    none: every fold k + 2m + n - 2 = 64 + 64 + 64 - 2 = 190 cycles for 64 of MACs.
    full: folds start max(K, R) = 64 apart; the last fold ends K + m + n - 1 = 159 after its
    start: 511 * 64 + 159 = 32863, i.e. 64.2 cycles a fold.
    drain: each fold pays k + m + n - 2 = 158 and the last one drains m = 32 more:
    512 * 158 + 32 = 80928."""
    assert os_fold_cycles(32, 64, 64, 32, 64) == 190
    assert gemm_cycles("os", 1024, 64, 1024, 32, 64, "none") == 512 * 190
    assert gemm_cycles("os", 1024, 64, 1024, 32, 64, "full") == 511 * 64 + 159
    assert gemm_cycles("os", 1024, 64, 1024, 32, 64, "drain") == 512 * 158 + 32


def test_overlap_worked_example_8x8x8_on_4x4():
    """M = K = N = 8 on 4 x 4: four full folds (m = n = k = 4 along the tiled dims).
    OS full: starts 0, 8, 16, 24 (period max(K=8, m=4)); last ends 24 + 8 + 4 + 4 - 1 = 39.
    OS drain: d = 8 + 4 + 4 - 2 = 14 per fold, last drains 4: 4 * 14 + 4 = 60 (none 72).
    WS (k = 4, two K folds x two N folds, M = 8): full: preload 4, periods max(8 + 4 - 4,
    4 + 4 - 1) = 8: starts 4, 12, 20, 28, last ends 28 + 8 + 4 + 4 - 1 = 43.
    WS drain: 4 + 4 * (8 + 4 + 4 - 2) + 1 = 61 (none 76)."""
    A = np.arange(64).reshape(8, 8) % 7 - 3
    assert fold_starts("os", "full", 8, 8, 8, 4, 4) == [0, 8, 16, 24]
    assert fold_starts("ws", "full", 8, 8, 8, 4, 4) == [4, 12, 20, 28]
    for df, overlap, cycles in (("os", "full", 39), ("os", "drain", 60), ("os", "none", 72),
                                ("ws", "full", 43), ("ws", "drain", 61), ("ws", "none", 76)):
        C, register_cycles = RUN[df](A, A, 4, 4, overlap=overlap)
        np.testing.assert_array_equal(C, A @ A)
        assert gemm_cycles(df, 8, 8, 8, 4, 4, overlap) == register_cycles == cycles


def test_bigger_array_can_lose_under_full_overlap():
    """OS full, M = 1, K = 2, N = 191 (FM = 1, m = 1, period max(K, m) = 2).
    35 x 33: FN = 6, n_L = 26; the latest fold end is the 5th (full width) at 4*2 + 2 + 1 - 1
    + 33 = 43. 35 x 90: FN = 3, n_L = 11; the 2nd fold (width 90) ends at 2 + 2 + 90 = 94.
    A wider array pays its own skew on a tiny GEMM: documented, not a bug."""
    assert gemm_cycles("os", 1, 2, 191, 35, 33, "full") == 43
    assert gemm_cycles("os", 1, 2, 191, 35, 90, "full") == 94


# SCALE-Sim v2 (github scalesim-project/scale-sim-v2 at 22f88b1, scalesim/compute/
# systolic_compute_{os,ws}.py): cycles of one GEMM = rows of its OFMAP demand matrix, measured
# by running those classes on (M, K, N, R, C). Per fold they count OS T + R + C - 2 (T = K;
# outputs stream out "from the bottom edge" as the last MAC of each PE ends, no drain) and
# WS 2R + T + C - 2 (T = M), always for a full R x C fold, ragged or not.
SCALESIM_V2 = [((4, 4, 4, 4, 4), 10, 14), ((8, 5, 8, 4, 4), 44, 72), ((8, 16, 12, 4, 4), 132, 216),
               ((16, 7, 8, 8, 4), 68, 68), ((32, 64, 64, 8, 16), 1376, 1984),
               ((12, 3, 20, 4, 5), 120, 92), ((6, 6, 6, 4, 4), 48, 64)]


@pytest.mark.parametrize("shape,os_cycles,ws_cycles", SCALESIM_V2)
def test_none_equals_scalesim_up_to_the_drain_term(shape, os_cycles, ws_cycles):
    """With fold_overlap none, on folds that fill the array (M, N multiples of R, C for OS;
    K, N for WS), dlmsim equals SCALE-Sim's per-fold counts plus the drain term SCALE-Sim
    leaves out: OS m = R per fold (dlmsim shifts the accumulators out of the top edge after
    the last MAC), WS 1 per fold (the last partial sum's hop into the buffer). OS is then
    also exactly the analytical per-fold runtime of the SCALE-Sim paper (Samajdar et al.,
    ISPASS 2020): (2R + C + T - 2) ceil(M/R) ceil(N/C). Ragged folds cost dlmsim their own
    size, SCALE-Sim a full fold, so there dlmsim is at most SCALE-Sim + the drain term."""
    M, K, N, R, C = shape
    fm, fk, fn = -(-M // R), -(-K // R), -(-N // C)
    os_dl, ws_dl = (gemm_cycles(df, M, K, N, R, C, "none") for df in DATAFLOWS)
    assert os_cycles == fm * fn * (K + R + C - 2) and ws_cycles == fk * fn * (2 * R + M + C - 2)
    if M % R == 0 and N % C == 0:
        assert os_dl == os_cycles + fm * fn * R == fm * fn * (2 * R + C + K - 2)
    else:
        assert os_dl < os_cycles + fm * fn * R
    if K % R == 0 and N % C == 0:
        assert ws_dl == ws_cycles + fk * fn
    else:
        assert ws_dl < ws_cycles + fk * fn


def test_allo_template_cycles_by_hand():
    """M=16, K=32, N=16 on 8 x 8, mac_ii 4, serial tile loads: FM = FN = 2.
    Each fold: k + 2m + n - 2 = 32 + 16 + 8 - 2 = 54 at a MAC a cycle, + (4 - 1)(32 - 1) = 93
    for the accumulator's II: 147; four folds 588. Loads: a B tile per fold (4 x 32) and an
    A tile per row of folds (2 x 32): 192. Total 780; with mac_ii 1 and overlapped loads it
    is the plain fold_overlap none count, 216."""
    from dlmsim.cost.systolic import template_cycles

    assert template_cycles(16, 32, 16, 8, 8, 4, True) == 780
    assert template_cycles(16, 32, 16, 8, 8, 4, True, batch=3) == 3 * 780
    assert template_cycles(16, 32, 16, 8, 8) == gemm_cycles("os", 16, 32, 16, 8, 8, "none") == 216
    assert template_cycles(0, 32, 16, 8, 8, 4, True) == 0


def test_allo_template_options_need_its_array():
    import dlmsim
    from dlmsim.errors import InputError

    with pytest.raises(InputError, match="model Allo's systolic template"):
        dlmsim.load_arch("int8-zcu102", **{"array.mac_ii": 4})
    a = dlmsim.load_arch("mdlm-original-u280-fp32")
    assert a.array.mac_ii == 4 and a.array.tile_loads == "serial"
    assert all(u.array.mac_ii == 4 for u in a.compute_units() if u.kind == "array")
