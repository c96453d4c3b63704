"""Cycle-by-cycle register model of the systolic array described in ``dlmsim.cost.systolic``.

Every PE holds registers -- an operand A register, an operand B register and an accumulator
(OS), or an operand A register, a stationary weight and a partial-sum register (WS) -- each
with a valid bit and index tags. Each loop iteration is one clock cycle: every register takes
its new value from its neighbour (or the edge buffer) at once, and a PE multiplies the real
numbers it holds. The loops end when the last result has entered the edge buffer, not after a
precomputed count, so the cycle counts independently check the analytic formulas; the tags
check that every MAC pairs the right operands. Meant for small arrays in tests, not for speed.

Zero work (M, K or N == 0) runs no fold: a zero matrix and 0 cycles.
"""

import numpy as np


def _shift_right(reg: np.ndarray, edge) -> np.ndarray:
    """Each PE takes its left neighbour's register; column 0 takes the edge."""
    out = np.empty_like(reg)
    out[:, 1:] = reg[:, :-1]
    out[:, 0] = edge
    return out


def _shift_down(reg: np.ndarray, edge) -> np.ndarray:
    """Each PE takes its upper neighbour's register; row 0 takes the edge."""
    out = np.empty_like(reg)
    out[1:] = reg[:-1]
    out[0] = edge
    return out


def _shift_up(reg: np.ndarray, edge) -> np.ndarray:
    """Each PE takes its lower neighbour's register; the bottom row takes the edge."""
    out = np.empty_like(reg)
    out[:-1] = reg[1:]
    out[-1] = edge
    return out


def _edge(values: np.ndarray, index: np.ndarray, dtype) -> tuple[np.ndarray, np.ndarray]:
    """Edge-buffer port values for this cycle: values[i] where index[i] >= 0, else invalid."""
    ok = index >= 0
    return np.where(ok, values, 0).astype(dtype), index


def _os_fold(a_blk: np.ndarray, b_blk: np.ndarray, rows: int, cols: int, dtype):
    """One OS fold: outputs (m, n) and array cycles, fill + compute + drain."""
    m, k = a_blk.shape
    n = b_blk.shape[1]
    a, b, acc = (np.zeros((rows, cols), dtype) for _ in range(3))
    a_p, b_p = np.full((rows, cols), -1), np.full((rows, cols), -1)  # reduction index, -1 = empty
    macs = np.zeros((rows, cols), int)
    row_idx, col_idx = np.arange(rows), np.arange(cols)
    cycles = 0
    while (macs[:m, :n] < k).any():
        t = cycles
        # Row i of A enters row i skewed by i cycles; column j of B enters column j skewed by j.
        p_left = np.where((row_idx < m) & (t - row_idx >= 0) & (t - row_idx < k), t - row_idx, -1)
        p_top = np.where((col_idx < n) & (t - col_idx >= 0) & (t - col_idx < k), t - col_idx, -1)
        a_edge = a_blk[np.minimum(row_idx, m - 1), np.clip(p_left, 0, k - 1)]
        b_edge = b_blk[np.clip(p_top, 0, k - 1), np.minimum(col_idx, n - 1)]
        a_val, a_ptag = _edge(a_edge, p_left, dtype)
        b_val, b_ptag = _edge(b_edge, p_top, dtype)
        a, a_p = _shift_right(a, a_val), _shift_right(a_p, a_ptag)
        b, b_p = _shift_down(b, b_val), _shift_down(b_p, b_ptag)
        fire = (a_p >= 0) & (b_p >= 0)
        assert (a_p[fire] == b_p[fire]).all(), "MAC paired operands of different k"
        acc[fire] += a[fire] * b[fire]
        macs += fire
        cycles += 1
    assert (macs[:m, :n] == k).all() and macs.sum() == m * n * k
    # Drain: each column shifts its accumulators up one row per cycle, row 0 into the buffer.
    out = np.zeros((m, n), dtype)
    held = np.zeros((rows, cols), bool)
    held[:m, :n] = True
    row_tag = np.repeat(row_idx[:, None], cols, axis=1)
    while held.any():
        for j in np.flatnonzero(held[0]):
            out[row_tag[0, j], j] = acc[0, j]
        acc, held, row_tag = _shift_up(acc, 0), _shift_up(held, False), _shift_up(row_tag, -1)
        cycles += 1
    return out, cycles


def _ws_fold(a_blk: np.ndarray, w_blk: np.ndarray, rows: int, cols: int, dtype):
    """One WS fold: partial sums (m, n) over this fold's k and array cycles, preload + stream."""
    m, k = a_blk.shape
    n = w_blk.shape[1]
    row_idx, col_idx = np.arange(rows), np.arange(cols)
    w = np.zeros((rows, cols), dtype)
    w_p = np.full((rows, cols), -1)  # which row of B the weight is, -1 = empty
    cycles = 0
    # Preload: weight rows shifted down from the top edge, deepest row first.
    while not (w_p[:k, :n] == np.arange(k)[:, None]).all():
        p = k - 1 - cycles
        w_val, w_ptag = _edge(
            w_blk[p, np.minimum(col_idx, n - 1)], np.where(col_idx < n, p, -1), dtype
        )
        w, w_p = _shift_down(w, w_val), _shift_down(w_p, w_ptag)
        cycles += 1
    # Stream: A[r, p] enters row p at cycle r + (k-1-p); partial sums flow up, out of the top.
    a = np.zeros((rows, cols), dtype)
    a_p, a_r = np.full((rows, cols), -1), np.full((rows, cols), -1)
    ps = np.zeros((rows, cols), dtype)
    ps_r = np.full((rows, cols), -1)  # which row of A the partial sum belongs to, -1 = empty
    out = np.zeros((m, n), dtype)
    got = np.zeros((m, n), bool)
    s = 0
    while not got.all():
        for j in np.flatnonzero(ps_r[0] >= 0):  # the edge buffer latches row 0's partial sums
            assert not got[ps_r[0, j], j]
            out[ps_r[0, j], j], got[ps_r[0, j], j] = ps[0, j], True
        r_left = s - (k - 1 - row_idx)
        ok = (row_idx < k) & (r_left >= 0) & (r_left < m)
        a_edge = a_blk[np.clip(r_left, 0, m - 1), np.minimum(row_idx, k - 1)]
        a_val, a_rtag = _edge(a_edge, np.where(ok, r_left, -1), dtype)
        a, a_r = _shift_right(a, a_val), _shift_right(a_r, a_rtag)
        a_p = _shift_right(a_p, np.where(ok, row_idx, -1))
        ps_in, ps_in_r = _shift_up(ps, 0), _shift_up(ps_r, -1)  # nothing enters at the bottom
        fire = (a_r >= 0) & (w_p >= 0)
        chained = fire & (ps_in_r >= 0)
        assert (a_p[fire] == w_p[fire]).all(), "activation met the wrong weight row"
        assert (ps_in_r[chained] == a_r[chained]).all(), "partial sum met the wrong activation row"
        ps = np.where(fire, a * w + np.where(chained, ps_in, 0), 0).astype(dtype)
        ps_r = np.where(fire, a_r, -1)
        s += 1
    return out, cycles + s


def _operands(A, B, rows: int, cols: int):
    if rows < 1 or cols < 1:
        raise ValueError(f"array must be at least 1 x 1, got rows={rows}, cols={cols}")
    A, B = np.asarray(A), np.asarray(B)
    if A.ndim != 2 or B.ndim != 2 or A.shape[1] != B.shape[0]:
        raise ValueError(f"cannot multiply shapes {A.shape} and {B.shape}")
    return A, B, np.result_type(A, B)


def _tiles(size: int, step: int) -> list[slice]:
    return [slice(start, min(start + step, size)) for start in range(0, size, step)]


def run_os(A: np.ndarray, B: np.ndarray, rows: int, cols: int) -> tuple[np.ndarray, int]:
    """C = A @ B on an output-stationary rows x cols array, folds back to back.
    Returns (C, total array cycles over all folds)."""
    A, B, dtype = _operands(A, B, rows, cols)
    (M, K), N = A.shape, B.shape[1]
    C = np.zeros((M, N), dtype)
    if M == 0 or K == 0 or N == 0:
        return C, 0
    cycles = 0
    for mi in _tiles(M, rows):
        for nj in _tiles(N, cols):
            C[mi, nj], fold_cycles = _os_fold(A[mi], B[:, nj], rows, cols, dtype)
            cycles += fold_cycles
    return C, cycles


def run_ws(A: np.ndarray, B: np.ndarray, rows: int, cols: int) -> tuple[np.ndarray, int]:
    """C = A @ B on a weight-stationary rows x cols array, folds back to back; partial sums of
    the K folds are added outside the array (buffer), costing no array cycles.
    Returns (C, total array cycles over all folds)."""
    A, B, dtype = _operands(A, B, rows, cols)
    (M, K), N = A.shape, B.shape[1]
    C = np.zeros((M, N), dtype)
    if M == 0 or K == 0 or N == 0:
        return C, 0
    cycles = 0
    for kp in _tiles(K, rows):
        for nj in _tiles(N, cols):
            partial, fold_cycles = _ws_fold(A[:, kp], B[kp, nj], rows, cols, dtype)
            C[:, nj] += partial
            cycles += fold_cycles
    return C, cycles
