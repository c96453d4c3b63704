"""Analytic cycle model of an R x C systolic array computing C[M,N] = A[M,K] B[K,N].

Microarchitecture (also implemented register by register in ``dlmsim.cost.register_model``):

- PE(i, j), 0 <= i < R (row), 0 <= j < C (column), does at most one multiply-accumulate per
  cycle. Every hop -- edge buffer -> PE, PE -> neighbouring PE, PE -> edge buffer -- takes
  exactly one cycle: a PE computes on the values its neighbours (or the edge buffer) latched in
  the previous cycle and latches its own result at the end of the cycle.
- Operand A enters at the left edge, one port per row, and moves right one PE per cycle.
  Each column has one port at the top edge: operand B (OS) or weights (WS) come in through it,
  and results (OS outputs, WS partial sums) leave through it.
- A fold smaller than the array (ragged edge) uses the top-left corner of the array; the unused
  PEs idle. So a fold costs its own m, k, n, and R, C only bound them.
- Simplifications: folds run back to back with no overlap (no double-buffered accumulators or
  weights, so one fold's drain/preload never hides under another fold's compute), and the edge
  buffers always have the next operand ready (memory stalls are the engine's business).

Output stationary (OS), one fold: outputs C[0:m, 0:n] held in the PE accumulators.
  Row i of A enters row i skewed by i cycles, column j of B enters column j skewed by j cycles,
  so PE(i, j) multiplies A[i, p] * B[p, j] at cycle p + i + j (0-based).
  The last MAC is at PE(m-1, n-1), cycle (k-1) + (m-1) + (n-1): k + m + n - 2 cycles of
  fill + compute. Then every column shifts its accumulators up one row per cycle, row 0 into
  the edge buffer: the value of row m-1 needs m hops, so the drain takes m cycles.
      os_fold_cycles = k + 2m + n - 2
  (Any drain through the top edge gives the same fold latency: the last MAC is at
  PE(m-1, n-1), m hops from the top edge.)

Weight stationary (WS), one fold: weights B[0:k, 0:n] held in PE(p, j), p < k, j < n.
  Preload: the weight rows are shifted down from the top edge, one row per cycle, deepest row
  (k-1) first; after k cycles PE(p, j) holds B[p, j]. Preload does not overlap streaming.
  Stream: all m rows of A stream through. A[r, p] enters row p at cycle r + (k-1-p), so partial
  sums flow *up* the columns: PE(p, j) adds A[r, p] * B[p, j] to the partial sum PE(p+1, j)
  latched the cycle before (row k-1 starts from zero) at cycle r + (k-1-p) + j. PE(0, j) latches
  the finished sum of (r, j) at cycle r + (k-1) + j, and it enters the edge buffer one cycle
  later. The last one, (m-1, n-1), leaves at cycle (m-1) + (k-1) + (n-1) + 1: m + k + n - 1
  cycles of streaming.
      ws_fold_cycles = k (preload) + m + k + n - 1 = 2k + m + n - 1
  Partial sums of the ceil(K/R) folds along K are added outside the array (in the buffer);
  that costs no array cycles here.

Whole GEMM: sum over folds, ragged edge folds with their own m, n, k. Each formula is linear
in m, n, k, and the fold sizes along a dimension sum to that dimension (e.g. sum of the m of
the ceil(M/R) row folds = M), so with FM = ceil(M/R), FN = ceil(N/C), FK = ceil(K/R):
      OS: sum_{i,j} (K + 2 m_i + n_j - 2) = FM FN (K - 2) + 2 M FN + N FM
      WS: sum_{p,j} (2 k_p + M + n_j - 1) = FK FN (M - 1) + 2 K FN + N FK
Both are >= FM FN K (resp. FK FN M) >= the compute roofline M K N / (R C), since M >= FM,
K >= FK, N >= FN; and neither grows with R or C (each fold count has a non-negative
coefficient, e.g. N + FN (K - 2) >= N - FN >= 0).

Zero work (M, K or N == 0) costs 0 cycles; rows or cols < 1 raise ValueError.
"""

DATAFLOWS = ("os", "ws")


def _check_array(rows: int, cols: int) -> None:
    if rows < 1 or cols < 1:
        raise ValueError(f"array must be at least 1 x 1, got rows={rows}, cols={cols}")


def _check_fold(m: int, k: int, n: int, held: str, held_rows: int, rows: int, cols: int) -> None:
    if min(m, k, n) < 0 or held_rows > rows or n > cols:
        raise ValueError(
            f"fold m={m}, k={k}, n={n} does not fit a {rows} x {cols} array"
            f" (needs 0 <= {held} <= rows, 0 <= n <= cols)"
        )


def os_fold_cycles(m: int, k: int, n: int, rows: int, cols: int) -> int:
    """Cycles of one output-stationary fold: an m x n block of outputs (m <= rows, n <= cols)
    held in the PEs, K = k operand pairs streamed through, including fill (skew), compute and
    drain (outputs shifted up the columns and out of the top edge): k + 2m + n - 2."""
    _check_array(rows, cols)
    _check_fold(m, k, n, "m", m, rows, cols)
    if m == 0 or k == 0 or n == 0:
        return 0
    return k + 2 * m + n - 2


def ws_fold_cycles(m: int, k: int, n: int, rows: int, cols: int) -> int:
    """Cycles of one weight-stationary fold: a k x n block of weights (k <= rows, n <= cols)
    preloaded, m activation rows streamed through, partial sums leaving the array through the
    top edge, including preload (k), fill and drain: 2k + m + n - 1."""
    _check_array(rows, cols)
    _check_fold(m, k, n, "k", k, rows, cols)
    if m == 0 or k == 0 or n == 0:
        return 0
    return 2 * k + m + n - 1


def folds(dataflow: str, M: int, K: int, N: int, rows: int, cols: int) -> int:
    """Number of folds: OS ceil(M/rows) * ceil(N/cols), WS ceil(K/rows) * ceil(N/cols)."""
    _check_array(rows, cols)
    if M < 0 or K < 0 or N < 0:
        raise ValueError(f"negative GEMM size M={M}, K={K}, N={N}")
    if M == 0 or K == 0 or N == 0:
        if dataflow not in DATAFLOWS:
            raise ValueError(f"unknown dataflow {dataflow!r}, expected one of {DATAFLOWS}")
        return 0
    if dataflow == "os":
        return -(-M // rows) * -(-N // cols)
    if dataflow == "ws":
        return -(-K // rows) * -(-N // cols)
    raise ValueError(f"unknown dataflow {dataflow!r}, expected one of {DATAFLOWS}")


def gemm_cycles(dataflow: str, M: int, K: int, N: int, rows: int, cols: int) -> int:
    """All folds of C[M,N] = A[M,K] B[K,N] run back to back on the array (sum over folds, with
    the ragged edge folds costing their own smaller m/n/k). Closed form, O(1):
    OS FM FN (K-2) + 2 M FN + N FM; WS FK FN (M-1) + 2 K FN + N FK (see module docstring)."""
    _check_array(rows, cols)
    if M < 0 or K < 0 or N < 0:
        raise ValueError(f"negative GEMM size M={M}, K={K}, N={N}")
    if dataflow not in DATAFLOWS:
        raise ValueError(f"unknown dataflow {dataflow!r}, expected one of {DATAFLOWS}")
    if M == 0 or K == 0 or N == 0:
        return 0
    fn = -(-N // cols)
    if dataflow == "os":
        fm = -(-M // rows)
        return fm * fn * (K - 2) + 2 * M * fn + N * fm
    fk = -(-K // rows)
    return fk * fn * (M - 1) + 2 * K * fn + N * fk
