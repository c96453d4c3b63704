"""Cycle-by-cycle register model of the systolic array described in ``dlmsim.cost.systolic``.

Every PE holds registers -- an operand A register, an operand B register and an accumulator
(OS), or an operand A register, a stationary weight and a partial-sum register (WS) -- each
with a valid bit and index tags. Each loop iteration is one clock cycle: every register takes
its new value from its neighbour (or the edge buffer) at once, and a PE multiplies the real
numbers it holds. The loops end when the last result has entered the edge buffer, not after a
precomputed count, so the cycle counts independently check the analytic formulas; the tags
check that every MAC pairs the right operands. Meant for small arrays in tests, not for speed.

The overlapped arrays (`overlap="drain"` or `"full"`, see ``dlmsim.cost.systolic``) run all
folds of a GEMM in one loop: PEs carry shadow registers (OS output registers, WS shadow
weights), every value is tagged with its fold, and a `Hazard` is raised if two folds ever
meet where the hardware could not hold both (a port driven twice, a register overwritten
before it was used, a MAC pairing operands of different folds). The folds start when the
array's controller issues them (`fold_starts`, the rule of each overlap); tests pass earlier
starts to show the rule is tight.

Zero work (M, K or N == 0) runs no fold: a zero matrix and 0 cycles.
"""

import numpy as np

OVERLAPS = ("none", "drain", "full")


class Hazard(RuntimeError):
    """Two folds collided in the array: the issue schedule is not buildable."""


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
    """(A, B, dtype) as batched [b, M, K] and [b, K, N] products."""
    if rows < 1 or cols < 1:
        raise ValueError(f"array must be at least 1 x 1, got rows={rows}, cols={cols}")
    A, B = np.asarray(A), np.asarray(B)
    if (A.ndim != B.ndim or A.ndim not in (2, 3) or A.shape[-1] != B.shape[-2]
            or A.shape[:-2] != B.shape[:-2]):
        raise ValueError(f"cannot multiply shapes {A.shape} and {B.shape}")
    if A.ndim == 2:
        A, B = A[None], B[None]
    return A, B, np.result_type(A, B)


def _tiles(size: int, step: int) -> list[slice]:
    return [slice(start, min(start + step, size)) for start in range(0, size, step)]


def _sizes(size: int, step: int) -> list[int]:
    return [t.stop - t.start for t in _tiles(size, step)]


def fold_starts(dataflow: str, overlap: str, M: int, K: int, N: int, rows: int, cols: int,
                batch: int = 1) -> list[int]:
    """Cycle each fold's first operand enters the array (OS) or its activation stream starts
    (WS), as the controller of an overlapped array issues them; `batch` products run one
    after another, folds in the same order in each."""
    starts, t = [], 0
    if dataflow == "os":
        shape = [(m, n) for m in _sizes(M, rows) for n in _sizes(N, cols)] * batch
        for f, (m, n) in enumerate(shape):
            starts.append(t)
            if overlap == "full":
                t += max(K, m)
            else:  # drain: after this fold's last MAC, later if its copy must wait
                d = K + m + n - 2
                nxt = K + sum(shape[f + 1]) - 2 if f + 1 < len(shape) else d
                t += d + max(0, m - nxt)
        return starts
    shape = [(k, n) for k in _sizes(K, rows) for n in _sizes(N, cols)] * batch
    t = shape[0][0] if shape else 0  # fold 0's weights preload first
    for f, (k, n) in enumerate(shape):
        starts.append(t)
        k_next = shape[f + 1][0] if f + 1 < len(shape) else k
        if overlap == "drain":  # after the last MAC, once the next weights are in
            t += max(M + k + n - 2, k_next)
        else:
            t += max(M + k - k_next, k + k_next - 1)
    return starts


def _os_overlapped(A, B, rows: int, cols: int, overlap: str, starts: list[int], dtype):
    """All OS folds in one loop; results leave through one output port per column."""
    (nb, M, K), N = A.shape, B.shape[2]
    folds = [(bi, mi, nj) for bi in range(nb) for mi in _tiles(M, rows) for nj in _tiles(N, cols)]
    nf = len(folds)
    R, Cc = rows, cols
    a, b, acc, out = (np.zeros((R, Cc), dtype) for _ in range(4))
    a_f, a_p, b_f, b_p = (np.full((R, Cc), -1) for _ in range(4))  # fold and k index tags
    acc_f, acc_n = np.full((R, Cc), -1), np.zeros((R, Cc), int)  # fold accumulated, MACs
    out_f = np.full((R, Cc), -1)  # fold whose result the output register holds
    C = np.zeros((nb, M, N), dtype)
    written = np.zeros((nb, M, N), bool)
    ri, cj = np.arange(R), np.arange(Cc)
    m_of = [mi.stop - mi.start for _, mi, _ in folds]
    n_of = [nj.stop - nj.start for _, _, nj in folds]
    copied = 0  # drain: folds copied into the output registers so far
    cycles = 0
    while not written.all():
        t = cycles
        # 1. Each column's output port takes one waiting result, top row first.
        for j in range(Cc):
            held = np.flatnonzero(out_f[:, j] >= 0)
            if overlap == "full" and len(held) > 1:
                raise Hazard(f"cycle {t}: column {j} has {len(held)} results for one port")
            if len(held):
                i = held[0]
                bi, mi, nj = folds[out_f[i, j]]
                r, c = mi.start + i, nj.start + j
                if written[bi, r, c]:
                    raise Hazard(f"cycle {t}: output ({bi}, {r}, {c}) written twice")
                C[bi, r, c], written[bi, r, c] = out[i, j], True
                out_f[i, j] = -1
        # 2. Edge ports: the fold whose skewed stream covers this cycle drives each port.
        a_edge, a_ef, a_ep = np.zeros(R, dtype), np.full(R, -1), np.full(R, -1)
        b_edge, b_ef, b_ep = np.zeros(Cc, dtype), np.full(Cc, -1), np.full(Cc, -1)
        for f, (bi, mi, nj) in enumerate(folds):
            p = t - starts[f] - ri
            on = (ri < m_of[f]) & (p >= 0) & (p < K)
            if (on & (a_ef >= 0)).any():
                raise Hazard(f"cycle {t}: two folds drive one A port")
            a_edge = np.where(on, A[bi, np.minimum(mi.start + ri, M - 1), np.clip(p, 0, K - 1)],
                              a_edge)
            a_ef, a_ep = np.where(on, f, a_ef), np.where(on, p, a_ep)
            p = t - starts[f] - cj
            on = (cj < n_of[f]) & (p >= 0) & (p < K)
            if (on & (b_ef >= 0)).any():
                raise Hazard(f"cycle {t}: two folds drive one B port")
            b_edge = np.where(on, B[bi, np.clip(p, 0, K - 1), np.minimum(nj.start + cj, N - 1)],
                              b_edge)
            b_ef, b_ep = np.where(on, f, b_ef), np.where(on, p, b_ep)
        a, a_f, a_p = _shift_right(a, a_edge), _shift_right(a_f, a_ef), _shift_right(a_p, a_ep)
        b, b_f, b_p = _shift_down(b, b_edge), _shift_down(b_f, b_ef), _shift_down(b_p, b_ep)
        # 3. MACs: both operands of one fold and one k index, into an accumulator of that fold.
        fire = (a_f >= 0) & (b_f >= 0)
        if ((a_f != b_f) | (a_p != b_p))[fire].any():
            raise Hazard(f"cycle {t}: a MAC paired operands of different folds or k")
        if ((acc_f >= 0) & (acc_f != a_f))[fire].any():
            raise Hazard(f"cycle {t}: a fold reached an accumulator still holding another")
        acc = np.where(fire, np.where(acc_f >= 0, acc, 0) + a * b, acc).astype(dtype)
        acc_f = np.where(fire, a_f, acc_f)
        acc_n = acc_n + fire
        # 4. Finished sums move into the output registers.
        if overlap == "full":
            done = acc_n == K
        else:  # drain: the whole fold at once, after its last MAC
            done = np.zeros((R, Cc), bool)
            if copied < nf and (acc_n[:m_of[copied], :n_of[copied]] == K).all():
                done[:m_of[copied], :n_of[copied]] = True
                copied += 1
        if (done & (out_f >= 0)).any():
            raise Hazard(f"cycle {t}: a result register overwritten before its port took it")
        out = np.where(done, acc, out)
        out_f = np.where(done, acc_f, out_f)
        acc_f, acc_n = np.where(done, -1, acc_f), np.where(done, 0, acc_n)
        cycles += 1
    return C, cycles


def _ws_overlapped(A, B, rows: int, cols: int, overlap: str, starts: list[int], dtype):
    """All WS folds in one loop with double-buffered weights; partial sums of the K folds
    add up in the buffer."""
    (nb, M, K), N = A.shape, B.shape[2]
    folds = [(bi, kp, nj) for bi in range(nb) for kp in _tiles(K, rows) for nj in _tiles(N, cols)]
    nf = len(folds)
    R, Cc = rows, cols
    k_of = [kp.stop - kp.start for _, kp, _ in folds]
    n_of = [nj.stop - nj.start for _, _, nj in folds]
    ri, cj = np.arange(R), np.arange(Cc)
    w, sh = np.zeros((R, Cc), dtype), np.zeros((R, Cc), dtype)  # active and shadow weights
    w_f, w_p = np.full((R, Cc), -1), np.full((R, Cc), -1)  # fold, k row of the active weight
    sh_f, sh_p = np.full((R, Cc), -1), np.full((R, Cc), -1)
    # Each column's weight loader shifts the folds that use the column into its shadow
    # chain in order, the next one once every shadow of the previous one has been swapped.
    queue = [[f for f in range(nf) if j < n_of[f]] for j in range(Cc)]
    loading = [None] * Cc  # (fold, shifts done)
    a, a_f, a_r, a_p = (np.zeros((R, Cc), dtype), *(np.full((R, Cc), -1) for _ in range(3)))
    ps, ps_f, ps_r = np.zeros((R, Cc), dtype), np.full((R, Cc), -1), np.full((R, Cc), -1)
    C = np.zeros((nb, M, N), dtype)
    adds = np.zeros((nb, M, N), int)
    fk = len(_tiles(K, rows))
    swapped = 0  # drain: folds swapped in so far
    cycles = 0
    while (adds < fk).any():
        t = cycles
        # 1. The result port of each column takes row 0's finished partial sum.
        for j in np.flatnonzero(ps_f[0] >= 0):
            bi, _, nj = folds[ps_f[0, j]]
            C[bi, ps_r[0, j], nj.start + j] += ps[0, j]
            adds[bi, ps_r[0, j], nj.start + j] += 1
        # 2. Weight loaders: one shift down per cycle; deepest row of the fold first.
        for j in range(Cc):
            if loading[j] is None and queue[j] and (sh_f[:, j] < 0).all():
                loading[j] = (queue[j].pop(0), 0)
            if loading[j] is None:
                continue
            f, s = loading[j]
            bi, kp, nj = folds[f]
            row = k_of[f] - 1 - s
            sh[:, j] = np.concatenate(([B[bi, kp.start + row, nj.start + j]], sh[:-1, j]))
            sh_f[:, j] = np.concatenate(([f], sh_f[:-1, j]))
            sh_p[:, j] = np.concatenate(([row], sh_p[:-1, j]))
            loading[j] = (f, s + 1) if s + 1 < k_of[f] else None
        # 3. Activations: A[r, p] of fold f enters row p at starts[f] + r + (k_f - 1 - p).
        a_edge, a_ef = np.zeros(R, dtype), np.full(R, -1)
        a_er, a_ep = np.full(R, -1), np.full(R, -1)
        for f, (bi, kp, _) in enumerate(folds):
            r = t - starts[f] - (k_of[f] - 1 - ri)
            on = (ri < k_of[f]) & (r >= 0) & (r < M)
            if (on & (a_ef >= 0)).any():
                raise Hazard(f"cycle {t}: two folds drive one A port")
            a_edge = np.where(on, A[bi, np.clip(r, 0, M - 1), np.minimum(kp.start + ri, K - 1)],
                              a_edge)
            a_ef, a_er, a_ep = np.where(on, f, a_ef), np.where(on, r, a_er), np.where(on, ri, a_ep)
        a, a_f = _shift_right(a, a_edge), _shift_right(a_f, a_ef)
        a_r, a_p = _shift_right(a_r, a_er), _shift_right(a_p, a_ep)
        # Activation rows of fold f only reach the columns it uses.
        a_f = np.where((a_f >= 0) & (cj[None, :] < np.array(n_of)[np.maximum(a_f, 0)]), a_f, -1)
        # 4. Weight swap: all PEs at a fold boundary (drain) or each PE when the next fold's
        # first activation reaches it (full).
        if overlap == "drain":
            if swapped < nf and t == starts[swapped]:
                f = swapped
                need = (ri[:, None] < k_of[f]) & (cj[None, :] < n_of[f])
                if not ((sh_f == f) & (sh_p == ri[:, None]))[need].all():
                    raise Hazard(f"cycle {t}: fold {f}'s weights are not loaded at its start")
                w, w_f, w_p = np.where(need, sh, w), np.where(need, f, -1), np.where(need, sh_p, -1)
                sh_f = np.where(need, -1, sh_f)
                swapped += 1
        else:
            new = (a_f >= 0) & (w_f != a_f)
            if new.any():
                if not ((sh_f == a_f) & (sh_p == a_p))[new].all():
                    raise Hazard(f"cycle {t}: an activation met a weight not yet loaded")
                w, w_f, w_p = np.where(new, sh, w), np.where(new, sh_f, w_f), np.where(new, sh_p, w_p)
                sh_f = np.where(new, -1, sh_f)
        # 5. MACs: partial sums flow up; a fold's bottom row starts from zero.
        ps_in, ps_in_f, ps_in_r = _shift_up(ps, 0), _shift_up(ps_f, -1), _shift_up(ps_r, -1)
        fire = a_f >= 0
        if ((w_f != a_f) | (w_p != a_p))[fire].any():
            raise Hazard(f"cycle {t}: an activation met the wrong weight")
        if ((ps_in_f >= 0) & ~fire).any():
            raise Hazard(f"cycle {t}: a partial sum reached a PE with no MAC for it")
        bottom = fire & (a_p == np.array(k_of)[np.maximum(a_f, 0)] - 1)
        chained = fire & ~bottom
        if (bottom & (ps_in_f >= 0)).any():
            raise Hazard(f"cycle {t}: a partial sum ran into the next fold's first row")
        if ((ps_in_f != a_f) | (ps_in_r != a_r))[chained].any():
            raise Hazard(f"cycle {t}: a partial sum met the wrong activation")
        ps = np.where(fire, a * w + np.where(chained, ps_in, 0), 0).astype(dtype)
        ps_f, ps_r = np.where(fire, a_f, -1), np.where(fire, a_r, -1)
        cycles += 1
    return C, cycles


def _run(dataflow, A, B, rows, cols, overlap, starts):
    batched = np.ndim(A) == 3
    A, B, dtype = _operands(A, B, rows, cols)
    if overlap not in OVERLAPS:
        raise ValueError(f"unknown fold overlap {overlap!r}, expected one of {OVERLAPS}")
    (nb, M, K), N = A.shape, B.shape[2]
    C = np.zeros((nb, M, N), dtype)
    cycles = 0
    if M == 0 or K == 0 or N == 0 or nb == 0:
        pass
    elif overlap == "none":
        for bi in range(nb):
            if dataflow == "os":
                for mi in _tiles(M, rows):
                    for nj in _tiles(N, cols):
                        C[bi, mi, nj], c = _os_fold(A[bi, mi], B[bi, :, nj], rows, cols, dtype)
                        cycles += c
            else:
                for kp in _tiles(K, rows):
                    for nj in _tiles(N, cols):
                        partial, c = _ws_fold(A[bi, :, kp], B[bi, kp, nj], rows, cols, dtype)
                        C[bi, :, nj] += partial
                        cycles += c
    else:
        if starts is None:
            starts = fold_starts(dataflow, overlap, M, K, N, rows, cols, nb)
        run = _os_overlapped if dataflow == "os" else _ws_overlapped
        C, cycles = run(A, B, rows, cols, overlap, list(starts), dtype)
    return (C if batched else C[0]), cycles


def run_os(A: np.ndarray, B: np.ndarray, rows: int, cols: int, overlap: str = "none",
           starts: list[int] | None = None) -> tuple[np.ndarray, int]:
    """C = A @ B on an output-stationary rows x cols array; folds back to back (`none`) or
    overlapped (`drain`, `full`), issued at `starts` (default: the overlap's own rule).
    A [b, M, K] and B [b, K, N] are b products run one after another, their folds in one
    stream. Returns (C, total array cycles over all folds)."""
    return _run("os", A, B, rows, cols, overlap, starts)


def run_ws(A: np.ndarray, B: np.ndarray, rows: int, cols: int, overlap: str = "none",
           starts: list[int] | None = None) -> tuple[np.ndarray, int]:
    """C = A @ B on a weight-stationary rows x cols array; partial sums of the K folds are
    added outside the array (buffer), costing no array cycles. Folds as for `run_os`.
    Returns (C, total array cycles over all folds)."""
    return _run("ws", A, B, rows, cols, overlap, starts)
