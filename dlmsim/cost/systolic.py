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
- Simplification: the edge buffers always have the next operand ready (memory stalls are the
  engine's business).

Fold overlap (`fold_overlap`, an array option) says how consecutive folds of one GEMM share
the array; the formulas for each follow the single-fold ones below.

- `none`: folds run back to back; each pays its fill, compute and drain (or preload). This
  is what SCALE-Sim-style tools count, and what Allo's systolic template does: its fused
  outer tile loop (allo/library/systolic.py, `systolic`) loads A and B tiles, calls
  `systolic_tile` and stores C one tile after another, with no dataflow between iterations.
- `drain`: the part of a fold that uses no operand stream hides under the next fold: OS
  accumulators are double-buffered (a fold's results are copied into shadow registers in one
  cycle and drain out of a separate column output port while the next fold computes), WS
  weights are double-buffered (the next fold's weights shift into shadow registers while the
  current fold streams, and all PEs swap at the fold boundary). Each fold still pays its fill.
- `full`: the next fold's operands stream in right behind the previous fold's, so fill and
  drain overlap too. OS as SDA's `PE_wrapper` (github Michaela1224/SDA_code, sa_tools.h): one
  II=1 loop over all folds, each PE capturing its finished sum into an output register and
  restarting from zero when the next fold's first operand arrives (`acc_tmp = 0` when
  `i + j == rn_index`), each column's output port taking the sum of the PE that just finished
  (`res_C_reg[j]`, `fifo_C_out[j]`: a bus from the column's R PEs). WS as a TPU-style
  double-buffered weight chain: each PE swaps to its shadow weight when the first activation
  of the next fold reaches it, and a column's chain shifts the next fold's weights in once all
  its PEs have swapped. The overlapped arrays have separate operand-in and result-out ports
  per column.

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

Fold order: OS row folds outer, column folds inner (fold (mi, nj), m_mi, n_nj); WS K folds
outer, column folds inner (fold (kp, nj), k_kp, n_nj). A ragged fold is the last along its
dimension: m_L = M - (FM-1) R, k_L = K - (FK-1) R, n_L = N - (FN-1) C (FM = ceil(M/R),
FK = ceil(K/R), FN = ceil(N/C)). t_f is the cycle fold f's first operand enters the array.

OS, drain. Fold f computes for d_f = k + m_f + n_f - 2 cycles; its accumulators are copied at
its end (cycle c_f = t_f + d_f) and drain m_f cycles through the output port, under fold f+1.
Fold f+1 starts at c_f, later if its own copy would find the shadows still draining:
c_{f+1} = c_f + max(d_{f+1}, m_f). Within a row of folds m_f = m_{f+1} <= d_{f+1}; only the
first fold of the last row (m_L after m = R, FM >= 2) can wait. The last fold ends m_L after
its copy:
    OS drain = sum_f d_f + m_L + [FM >= 2] max(0, R - (K + m_L + min(N, C) - 2))
             = FM FN (K - 2) + M FN + N FM + m_L + [FM >= 2] max(0, R - K - m_L - min(N, C) + 2)
OS, full. PE(i, j) does fold f's p-th MAC at t_f + p + i + j, captures its sum after the last
(p = k-1) and the column port takes it one cycle later, at t_f + k + i + j; fold f ends at
t_f + k + m_f + n_f - 1. Row i's A port streams k operands per fold, and column j's output
port carries m_f results per fold, so t_{f+1} = t_f + max(k, m_f) is the earliest start that
neither port collides at (one cycle earlier, one of them would). With P = max(K, R),
P_L = max(K, m_L): t(mi, nj) = mi FN P + nj P for mi < FM-1 and (FM-1) FN P + nj P_L in the
last row. The run ends at the latest fold end; earlier rows end earlier (P >= R), and in the
last row only the last two folds can be latest (a full-width fold followed by a narrow one):
    OS full = (FM-1) FN P + K + m_L - 1 + max((FN-1) P_L + n_L, [FN >= 2] ((FN-2) P_L + C))
  e.g. attention's scores, K = dh = 64 on 32 x 64: 64 cycles a fold against 190 for none.
WS, drain. Fold 0 preloads k_0 = min(K, R); fold f streams from s_f (s_0 = k_0) until its
last MAC, m + k_f + n_f - 2 cycles later, when every PE swaps to the next fold's weights,
which shifted in meanwhile (k_{f+1} <= k_f <= m + k_f + n_f - 2 in this order). The last
fold's last partial sum reaches the buffer one cycle after its last MAC:
    WS drain = k_0 + sum_f (M + k_f + n_f - 2) + 1 = k_0 + FK FN (M - 2) + K FN + N FK + 1
WS, full. Activation row r of fold f enters row p at s_f + r + (k_f - 1 - p); fold f+1's
rows follow once row p's port is free and every PE of a row is done with fold f:
s_{f+1} >= s_f + M + k_f - k_{f+1}. A column's shadow chain takes the next fold's weights
only after its row 0 swapped (at s_f + k_f - 1 + j), shifting k_{f+1} cycles from the next
cycle on, and PE(k_{f+1}-1, j) swaps in the cycle its last shift lands (s_{f+1} + j):
s_{f+1} >= s_f + k_f + k_{f+1} - 1. So the period is max(M + k_f - k_{f+1},
k_f + k_{f+1} - 1): Q = max(M, 2R - 1) within a K row, Q_T = max(M + R - k_L, R + k_L - 1)
into the last K row, Q_L = max(M, 2 k_L - 1) within it. Fold f ends at
s_f + M + k_f + n_f - 1; as for OS only the last K row's last two folds can be latest:
    S_L = k_0 + [FK >= 2] (((FK-1) FN - 1) Q + Q_T)
    WS full = S_L + M + k_L - 1 + max((FN-1) Q_L + n_L, [FN >= 2] ((FN-2) Q_L + C))
Neither overlap is ever slower than none (no fold starts later). They are not ordered
against each other: a WS GEMM with M < 2R - 1 waits on full's shadow chain, which takes the
next weights only once a whole column has swapped, while drain's global swap frees it at
once. Nor is a bigger array always faster under overlap: with K < R the column output port
carries R results per fold, and a fold's end waits on its own skew (m + n), so a taller or
wider array can lose on small or ragged GEMMs (e.g. OS full, M=1, K=2, N=191 on 35 x 33:
43 cycles, on 35 x 90: 94). The register model checks every formula cycle for cycle and
that the full-overlap periods are tight (one cycle earlier collides).

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
OVERLAPS = ("none", "drain", "full")


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
    _validate(dataflow, M, K, N, rows, cols, "none")
    if M == 0 or K == 0 or N == 0:
        return 0
    return -(-(M if dataflow == "os" else K) // rows) * -(-N // cols)


def _validate(dataflow: str, M: int, K: int, N: int, rows: int, cols: int, overlap: str) -> None:
    _check_array(rows, cols)
    if M < 0 or K < 0 or N < 0:
        raise ValueError(f"negative GEMM size M={M}, K={K}, N={N}")
    if dataflow not in DATAFLOWS:
        raise ValueError(f"unknown dataflow {dataflow!r}, expected one of {DATAFLOWS}")
    if overlap not in OVERLAPS:
        raise ValueError(f"unknown fold overlap {overlap!r}, expected one of {OVERLAPS}")


def _last_row(steps: int, period: int, last: int, full_width: int) -> int:
    """Latest fold end of a row of `steps` folds starting `period` apart: the last fold
    (width `last`) or, when there are two or more, the one before it (full width)."""
    end = (steps - 1) * period + last
    return max(end, (steps - 2) * period + full_width) if steps >= 2 else end


def gemm_cycles(dataflow: str, M: int, K: int, N: int, rows: int, cols: int,
                overlap: str = "none", batch: int = 1) -> int:
    """Array cycles of `batch` products C[M,N] = A[M,K] B[K,N] run one after another, every
    fold with its own (ragged) size, under a fold overlap (see the module docstring for each
    derivation). Closed forms, O(1): none OS FM FN (K-2) + 2 M FN + N FM; WS
    FK FN (M-1) + 2 K FN + N FK per product."""
    _validate(dataflow, M, K, N, rows, cols, overlap)
    if batch < 0:
        raise ValueError(f"negative batch {batch}")
    if M == 0 or K == 0 or N == 0 or batch == 0:
        return 0
    R, C = rows, cols
    fn = -(-N // C)
    n_last = N - (fn - 1) * C
    if dataflow == "os":
        fm = -(-M // R)
        m_last = M - (fm - 1) * R
        if overlap == "none":
            return batch * (fm * fn * (K - 2) + 2 * M * fn + N * fm)
        if overlap == "drain":
            wait = max(0, R - K - m_last - min(N, C) + 2) if fm >= 2 else 0
            return batch * (fm * fn * (K - 2) + M * fn + N * fm + wait) + m_last
        p, p_last = max(K, R), max(K, m_last)
        period = (fm - 1) * fn * p + fn * p_last  # from one product's start to the next's
        return ((batch - 1) * period + (fm - 1) * fn * p + K + m_last - 1
                + _last_row(fn, p_last, n_last, C))
    fk = -(-K // R)
    k_last, k_first = K - (fk - 1) * R, min(K, R)
    if overlap == "none":
        return batch * (fk * fn * (M - 1) + 2 * K * fn + N * fk)
    if overlap == "drain":
        # The next product's first weights preload during this one's last fold.
        streams = fk * fn * (M - 2) + K * fn + N * fk
        gap = max(0, k_first - (M + k_last + n_last - 2))
        return k_first + batch * streams + (batch - 1) * gap + 1
    q_last = max(M, 2 * k_last - 1)
    start_last = 0
    if fk >= 2:
        start_last = ((fk - 1) * fn - 1) * max(M, 2 * R - 1) + max(M + R - k_last, R + k_last - 1)
    period = start_last + (fn - 1) * q_last + max(M + k_last - k_first, k_last + k_first - 1)
    return ((batch - 1) * period + k_first + start_last + M + k_last - 1
            + _last_row(fn, q_last, n_last, C))


def template_cycles(M: int, K: int, N: int, rows: int, cols: int, mac_ii: int = 1,
                    serial_loads: bool = False, batch: int = 1) -> int:
    """Cycles of `batch` OS products on Allo's systolic template (allo/library/systolic.py:
    `systolic`, its folds back to back, fold_overlap none) as HLS schedules it.

    - mac_ii: PE_kernel's reduction loop `v += a * b` carries its accumulator from one
      iteration to the next; HLS cannot start the next add before the last is done, so the
      PE does a MAC every mac_ii cycles (float32: the fadd latency; integers: 1). A fold's
      last MAC comes (mac_ii - 1)(k - 1) cycles later than at one MAC a cycle: fold cycles
      k + 2m + n - 2 + (mac_ii - 1)(k - 1), i.e. over the FM x FN folds
      none + (mac_ii - 1)(K - 1) FM FN.
    - serial_loads: before each fold the template copies its B tile (K x C: `load_B_tile`,
      a pipelined loop of K iterations) and, at the first fold of a row (ni == 0), its A
      tile (`load_A_tile`, K iterations) into the local buffers the PEs read; nothing
      overlaps them with the folds: + K FM FN + K FM.
    """
    if M == 0 or K == 0 or N == 0 or batch == 0:
        return 0
    fm, fn = -(-M // rows), -(-N // cols)
    cyc = gemm_cycles("os", M, K, N, rows, cols, "none", 1)
    cyc += (mac_ii - 1) * (K - 1) * fm * fn
    if serial_loads:
        cyc += K * fm * fn + K * fm
    return batch * cyc
