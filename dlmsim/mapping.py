"""Mapping: each op of a trace onto the accelerator — dataflow, tiles, traffic, unit cycles.

Pure arithmetic (no simulation). The engine turns the resulting `OpPlan`s into timed events.

Modelling decisions, stated once:
- Buffer-level loop order, per GEMM C[M,N] = A[M,K] B[K,N] (one product of a batch; r = min(R,
  M), c = min(C, N) the rows and columns of the array it uses; ab, bb the bytes of an A and a
  B element; the tile pool P is the buffer minus its resident share):
  * weight-panel: a panel B[K, Nt] stays in the pool while the rows of A stream through it in
    r-row blocks (double-buffered) into an r x c output block: needs
    K Nt bb + 2 r K ab + r c ab <= P, Nt = N or the largest multiple of c that fits. B is read
    once, A once per panel: ceil(N / Nt) times.
  * output-row (activation-stationary, SDA's order): a row block A[Mt, K] stays in the pool
    while B streams through it in c-column panels (double-buffered): needs
    Mt K ab + 2 K c bb + r c ab <= P, Mt = M or the largest multiple of r that fits. A is read
    once, B once per row block: ceil(M / Mt) times.
  * output-block: both operands stream in K chunks into one r x c output block whose
    accumulators stay in the array; the smallest tile (`arch.smallest_tile_bytes`) always
    fits. A is read ceil(N / c) times, B ceil(M / r) times.
  Rule (`buffer.loop_order: auto`), among the orders whose tiles fit the pool: the least
  estimated time, max(array cycles, DRAM bytes / bandwidth) -- plus the next op's SFU cycles
  when that op streams the output and the order completes rows only at its last panel (the
  weighing `choose_dataflow` does for OS against WS) --, then the least DRAM traffic (an
  operand already on chip costs nothing), then weight-panel, output-row, output-block. So a
  compute-bound GEMM takes the order with the least traffic, and output-block (dominated by a
  one-column-block weight panel) runs only when neither other order fits. A forced order
  that does not fit falls back to output-block. WS partial sums accumulate in the array's
  own psum path (their port traffic is counted, their storage is not taken from the pool):
  a simplification.
- Array-level dataflow: OS finishes R x C output blocks one after another, so whole output
  rows complete early and a consumer may start on them (row-block hand-off). WS holds a
  weight fold while all M rows stream; rows complete only when the op ends, and partial sums
  across the ceil(K/R) folds go through the shared buffer's port.
- On-chip activations. The resident share of the buffer holds whole tensors between ops:
  walking the segment in program order, a produced activation stays resident if it fits the
  share beside the tensors still live there (first come, first served; it leaves after its
  last consumer). Otherwise it may be handed off row block by row block to the very next op,
  its only consumer, which streams it once in row order as its first operand (an SFU op, or a
  GEMM whose loop order reads A once), when the producer completes rows in order (not a WS
  or multi-panel GEMM, not a layout op): the share then reserves a double-buffered block of
  max(producer, consumer) rows for the two ops. Anything else goes to DRAM and every consumer
  reads it back. So no tensor, and no hand-off block, is ever on chip beyond the share.
- All activations are stored at the activation width (re-quantised on the array's output
  path); weights at the weight width; indices as int32.
- A PE built for W-bit weights multiplies two A-bit activations (attention) in
  ceil(A/W) passes: SDA's released PE (sa_tools.h, PE_wrapper) has only a W_BIT = 4 weight
  path, so its 8-bit attention products need two passes of 4-bit halves.
- SFU ops cost what dlmsim.sfu says: passes per function, each at the II of its loop-carried
  reduction at the SFU's precision and clock, limited by the buffer port for the operands it
  streams, plus the pipeline depth once per op; head split/merge cost no pass.
- Output order (SDA's dataflow argument, see `output_order`): OS completes whole output
  rows first, WS runs its folds N-outer and completes whole output columns (channels) first.
  A consumer that reduces rows (softmax, layernorm; a GEMM streaming its A operand) can
  start on an OS producer's rows; GroupNorm, which reduces (H, W, C/groups) per sample, can
  start on a WS producer's channel groups; element-wise ops take either order and pass it
  on. Otherwise the consumer waits for the whole producer. A GroupNorm channel group is
  assumed to fit the tile share for its two passes (SD v1.5 at 512x512: 40 KiB at 8 bits).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dlmsim.arch import Accelerator, bytes_of, stored_bytes
from dlmsim.cost.systolic import gemm_cycles
from dlmsim.sfu import cost as sfu_cost
from dlmsim.sfu import streams as sfu_streams
from dlmsim.workloads.ir import Op
from dlmsim.workloads.vocab import ELEMENTWISE_FNS, LAYOUT_FNS

LOOP_ORDERS = ("weight_panel", "output_row", "output_block")
CHIP_ROLES = ("activation", "cache", "index")  # tensors that may stay on chip between ops


@dataclass(frozen=True)
class Tiling:
    """A GEMM's buffer-level loop order: operand reads per product and what the pool holds."""

    order: str  # one of LOOP_ORDERS
    a_reads: int  # times A comes from DRAM (when it is not on chip)
    b_reads: int  # times B comes from DRAM (when it is not on chip)
    tile_bytes: float  # bytes of the tile pool the order holds at once
    rows: int  # rows of A consumed, and of the output completed, together
    in_order: bool  # output rows complete block by block (not only at the last panel)
    cols: int  # columns of B held or streamed together (the panel width Nt, or c)


@dataclass(frozen=True)
class OpPlan:
    """One op mapped onto the accelerator. Cycles are at the accelerator clock."""

    op: Op
    unit: str  # "array", "sfu" or "dma" (a gather is pure data movement)
    dataflow: str  # "os", "ws" or "" for non-GEMMs
    compute_cycles: float  # busy cycles of the unit (incl. switch cost, psum port limit)
    dram_read_bytes: float
    dram_write_bytes: float
    chunks: int  # row blocks the engine splits the op into
    loop_order: str  # a GEMM's buffer-level loop order (LOOP_ORDERS), "" for other ops
    roofline_cycles: float  # max(peak compute, compulsory bytes / bandwidth)
    full_dependency: bool  # rows complete only at the op's end (WS, multi-panel, layout)
    on_chip_inputs: tuple[str, ...]  # activation inputs that did not come from DRAM
    output_on_chip: bool
    # What completes first: "rows", "channels" or "" (all at the end); by default what
    # full_dependency says.
    order: str | None = None
    # Bytes of the tile pool the op holds while it runs (its double-buffered tiles).
    tile_bytes: float = 0.0
    dram_reads: tuple[tuple[str, float], ...] = ()  # (input name, DRAM bytes read)

    def __post_init__(self):
        if self.order is None:
            object.__setattr__(self, "order", "" if self.full_dependency else "rows")

    def hands_off_to(self, consumer: Op) -> bool:
        """May `consumer` start on this op's first chunks (streamed, first input)?"""
        return streams(self.order, input_need(consumer))


def input_need(op: Op) -> str:
    """The part of its streamed input an op needs before it can start: "rows" (a GEMM's A
    rows, a row reduction, a layout op), "channels" (GroupNorm's channel groups over all
    pixels) or "any" (element-wise)."""
    if op.kind == "sfu" and op.fn == "groupnorm":
        return "channels"
    if op.kind == "sfu" and op.fn in ELEMENTWISE_FNS:
        return "any"
    return "rows"


def streams(order: str, need: str) -> bool:
    return bool(order) and need in ("any", order)


def gemm_order(dataflow: str, tiling: Tiling) -> str:
    """What of a GEMM's output completes first. OS: rows, when the loop order completes them
    block by block (`Tiling.in_order`), else "" (all at the last panel). WS: its folds run
    N-outer (a column fold's K folds back to back), so output columns -- channels -- complete
    in order over all rows, when the buffer-level order also covers every row per column
    panel (weight panel, or one output-row block); else "" (all at the last row block)."""
    if dataflow == "ws":
        whole_columns = tiling.order == "weight_panel" or (
            tiling.order == "output_row" and tiling.b_reads == 1)
        return "channels" if whole_columns else ""
    return "rows" if tiling.in_order else ""


def output_order(op: Op, streamed_from: str | None) -> str:
    """What of a non-GEMM op's output completes first: nothing before the end for a layout
    op (a permutation); channel groups for GroupNorm; the order of the producer it streams
    from (`streamed_from`) for an element-wise op; rows otherwise (a row reduction, or an op
    that had its whole input)."""
    if op.kind == "sfu" and op.fn in LAYOUT_FNS:
        return ""
    if op.kind == "sfu" and op.fn == "groupnorm":
        return "channels"
    if streamed_from and input_need(op) == "any":
        return streamed_from
    return "rows"


@dataclass(frozen=True)
class GemmContext:
    """What a GEMM's loop order is weighed against: its dataflow and array cycles, and the
    SFU cycles of the next op when that op streams its output (None otherwise)."""

    dataflow: str
    cycles: float
    consumer_sfu_cycles: float | None
    consumer_need: str = "rows"  # input_need of that consumer


@dataclass(frozen=True)
class Residency:
    """Where the resident share holds a tensor: whole (`handoff` False) or as a
    double-buffered row block handed from its producer to the next op."""

    name: str
    producer: int  # op index in the segment
    last_use: int  # op index of its last consumer
    bytes: float  # bytes it takes in the resident share while live
    handoff: bool


def operand_passes(op: Op, arch: Accelerator) -> int:
    """Array passes per product: ceil(A/W) when both GEMM operands are activations."""
    w, a = arch.bits.weights, arch.bits.activations
    if op.weight_operand is not None or w == "fp32" or a <= w:
        return 1
    return math.ceil(a / w)


class Mapper:
    """Maps the ops of one segment (a list executed in order) onto one accelerator."""

    def __init__(self, arch: Accelerator, max_chunks: int = 16):
        self.arch = arch
        self.max_chunks = max_chunks
        self.r, self.c = arch.array.rows, arch.array.cols
        self.ab = bytes_of(arch.bits.activations)
        self.wb = bytes_of(arch.bits.weights)
        self.accb = bytes_of(arch.bits.accumulator)
        self.capacity = arch.buffer.capacity_bytes
        self.resident = self.capacity * arch.buffer.resident_fraction
        self.pool = self.capacity - self.resident
        self.bw = arch.bandwidth_bytes_per_cycle()
        self.peak_macs = self.r * self.c

    def tensor_bytes(self, t) -> float:
        return stored_bytes(t, self.arch)

    # ---- GEMM loop order -----------------------------------------------------------------
    def tilings(self, op: Op) -> dict[str, Tiling]:
        """Every loop order whose tiles fit the pool (output-block always does); see the
        module docstring for the formulas."""
        _, m, k, n = op.gemm_dims
        bb = self.wb if op.inputs[1].role == "weight" else self.ab
        ab, pool = self.ab, self.pool
        r, c = max(1, min(self.r, m)), max(1, min(self.c, n))
        out = r * c * ab
        fits: dict[str, Tiling] = {}
        # Weight panel [K, Nt]: Nt = N, or the largest multiple of c that fits.
        cols = int((pool - 2 * r * k * ab - out) // max(k * bb, 1e-9))
        nt = n if cols >= n else (cols // c) * c
        if nt >= 1:
            panels = math.ceil(n / nt)
            fits["weight_panel"] = Tiling("weight_panel", panels, 1,
                                          k * nt * bb + 2 * r * k * ab + out, r, panels == 1,
                                          nt)
        # Output row block [Mt, K]: Mt = M, or the largest multiple of r that fits.
        rows = int((pool - 2 * k * c * bb - out) // max(k * ab, 1e-9))
        mt = m if rows >= m else (rows // r) * r
        if mt >= 1:
            fits["output_row"] = Tiling("output_row", 1, math.ceil(m / mt),
                                        mt * k * ab + 2 * k * c * bb + out, mt, True, c)
        fits["output_block"] = Tiling("output_block", math.ceil(n / c), math.ceil(m / r),
                                      2 * (r * ab + c * bb) + out, r, True, c)
        return fits

    def tiling(self, op: Op, a_on_chip: bool = False, b_on_chip: bool = False,
               ctx: GemmContext | None = None) -> Tiling:
        """The loop order of a GEMM under `buffer.loop_order` (module docstring's rule)."""
        fits = self.tilings(op)
        policy = self.arch.buffer.loop_order
        if policy != "auto":
            return fits.get(policy, fits["output_block"])
        a = 0.0 if a_on_chip else self.tensor_bytes(op.inputs[0])
        b = 0.0 if b_on_chip else self.tensor_bytes(op.inputs[1])

        def key(t: Tiling):
            traffic = a * t.a_reads + b * t.b_reads
            if ctx is None:
                return (0.0, traffic, LOOP_ORDERS.index(t.order))
            est = max(ctx.cycles, traffic / self.bw)
            if ctx.consumer_sfu_cycles is not None:
                sfu = ctx.consumer_sfu_cycles
                overlap = streams(gemm_order(ctx.dataflow, t), ctx.consumer_need)
                est = max(est, sfu) if overlap else est + sfu
            return (est, traffic, LOOP_ORDERS.index(t.order))

        return min(fits.values(), key=key)

    def array_cycles(self, op: Op, dataflow: str) -> float:
        b, m, k, n = op.gemm_dims
        # The b products of a batched matmul are one stream of folds (a fold overlap runs
        # across them); operand passes repeat the whole product.
        cyc = gemm_cycles(dataflow, m, k, n, self.r, self.c, self.arch.array.fold_overlap, b)
        cyc *= operand_passes(op, self.arch)
        if dataflow == "ws":
            # Partial sums of every K fold but the last go out to the buffer and back in.
            psum_bytes = b * m * n * max(math.ceil(k / self.r) - 1, 0) * 2 * self.accb
            cyc = max(cyc, psum_bytes / self.arch.buffer.bytes_per_cycle)
        return cyc

    def sfu_cycles(self, op: Op) -> float:
        """SFU busy cycles of the op (dlmsim.sfu: passes, II per pass, ports, depth)."""
        return sfu_cost(op, self.arch, self.ab).cycles

    def choose_dataflow(self, op: Op, previous: str | None, consumer: Op | None = None
                        ) -> tuple[str, float]:
        """(dataflow, array cycles incl. switch cost) under the arch's policy.

        `auto` takes the cheaper of OS and WS per op. When the next op is an SFU op streaming
        this output, the pair is compared: if the SFU can start on what the dataflow
        completes first (rows under OS, channels under WS; see `gemm_order`), about
        max(GEMM, SFU) cycles, else it waits for the whole GEMM, GEMM + SFU cycles.
        """
        policy = self.arch.array.policy
        options = self.arch.array.dataflows if policy == "auto" else [policy]
        best = None
        for df in options:
            cyc = self.array_cycles(op, df)
            if previous and df != previous:
                cyc += self.arch.array.switch_cycles
            pair = cyc
            if consumer is not None:
                sfu = self.sfu_cycles(consumer)
                order = "channels" if df == "ws" else "rows"
                pair = max(cyc, sfu) if streams(order, input_need(consumer)) else cyc + sfu
            if best is None or pair < best[2]:
                best = (df, cyc, pair)
        return best[:2]

    # ---- residency -----------------------------------------------------------------------
    @staticmethod
    def _streams_rows(op: Op, ctx: GemmContext | None, tiling: Tiling | None) -> bool:
        """The op completes its output rows in order (a consumer may start on them)."""
        if op.kind == "gemm":
            return ctx.dataflow != "ws" and tiling.in_order
        return not (op.kind == "sfu" and op.fn in LAYOUT_FNS)

    def plan_residency(self, ops: list[Op], ctx: list[GemmContext | None]
                       ) -> tuple[list[Residency], dict[int, Tiling]]:
        """Which produced activations the resident share holds (module docstring), and the
        loop order of every GEMM given the operands it finds on chip. One pass, O(ops)."""
        latest: dict[str, int] = {}
        src: list[list[int | None]] = []  # per op and input: index of its in-segment producer
        uses: dict[tuple[int, str], list[tuple[int, int]]] = {}  # -> (op, input position)
        for j, op in enumerate(ops):
            row = []
            for pos, t in enumerate(op.inputs):
                i = latest.get(t.name) if t.role in CHIP_ROLES else None
                row.append(i)
                if i is not None:
                    uses.setdefault((i, t.name), []).append((j, pos))
            src.append(row)
            for t in op.outputs:
                latest[t.name] = j
        held: dict[tuple[int, str], Residency] = {}
        tilings: dict[int, Tiling] = {}
        freed: dict[int, float] = {}
        live = 0.0

        def on_chip(j: int, pos: int) -> bool:
            return (src[j][pos], ops[j].inputs[pos].name) in held

        for j, op in enumerate(ops):
            if op.kind == "gemm" and j not in tilings:
                tilings[j] = self.tiling(op, on_chip(j, 0), on_chip(j, 1), ctx[j])
            for t in op.outputs:
                consumers = uses.get((j, t.name))
                if not consumers:
                    continue
                size, handoff = self.tensor_bytes(t), False
                if live + size > self.resident:
                    # Not resident: a hand-off to the next op, if the two stream rows.
                    if consumers != [(j + 1, 0)] or t.name != op.outputs[0].name or \
                            not self._streams_rows(op, ctx[j], tilings.get(j)) or \
                            input_need(ops[j + 1]) == "channels":  # it would wait for all
                        continue
                    nxt, tl, rows_in = ops[j + 1], None, 1
                    if nxt.kind == "gemm":
                        tl = self.tiling(nxt, False, on_chip(j + 1, 1), ctx[j + 1])
                        if tl.a_reads != 1:
                            continue
                        rows_in = tl.rows
                    rows_out = tilings[j].rows if op.kind == "gemm" else 1
                    width = t.shape[-1] if t.shape else 1
                    rows = min(max(rows_out, rows_in), max(1, t.numel // max(width, 1)))
                    size, handoff = 2 * rows * width * self.ab, True
                    if live + size > self.resident:
                        continue
                    if tl is not None:
                        tilings[j + 1] = tl
                last = consumers[-1][0]
                held[(j, t.name)] = Residency(t.name, j, last, size, handoff)
                live += size
                freed[last] = freed.get(last, 0.0) + size
            live -= freed.pop(j, 0.0)
        return list(held.values()), tilings

    # ---- plans ---------------------------------------------------------------------------
    def plan(self, ops: list[Op]) -> list[OpPlan]:
        """Plans for `ops` in order; inputs produced outside the list come from DRAM."""
        return self.plan_segment(ops)[0]

    def sfu_tile_bytes(self, op: Op) -> float:
        """Two rows in flight of every full-size operand and output (double-buffered)."""
        data = op.inputs[0] if op.inputs else op.outputs[0]
        ins, outs = sfu_streams(op)
        row = data.shape[-1] if data.shape else 1
        return 2 * row * self.ab * (ins + outs)

    def plan_segment(self, ops: list[Op]) -> tuple[list[OpPlan], list[Residency]]:
        """The plans and what the resident share holds for them."""
        ctx: list[GemmContext | None] = []
        prev = None
        for j, op in enumerate(ops):
            if op.kind != "gemm":
                ctx.append(None)
                continue
            nxt = ops[j + 1] if j + 1 < len(ops) else None
            streams = (nxt is not None and nxt.kind == "sfu" and nxt.inputs
                       and nxt.inputs[0].name == op.outputs[0].name)
            prev, cycles = self.choose_dataflow(op, prev, nxt if streams else None)
            ctx.append(GemmContext(prev, cycles, self.sfu_cycles(nxt) if streams else None,
                                   input_need(nxt) if streams else "rows"))
        held, tilings = self.plan_residency(ops, ctx)
        keys = {(h.producer, h.name) for h in held}
        latest: dict[str, int] = {}
        plans: list[OpPlan] = []
        for j, op in enumerate(ops):
            on_chip = tuple(t.name for t in op.inputs if t.role in CHIP_ROLES
                            and (latest.get(t.name), t.name) in keys)
            kept = {t.name for t in op.outputs if (j, t.name) in keys}
            src = latest.get(op.inputs[0].name) if op.inputs else None
            streamed = (plans[src].order if src is not None and plans[src].hands_off_to(op)
                        else None)
            for t in op.outputs:
                latest[t.name] = j
            plans.append(self._plan_op(op, on_chip, kept, ctx[j], tilings.get(j), streamed))
        return plans, held

    def _plan_op(self, op: Op, on_chip: tuple[str, ...], kept: set[str],
                 ctx: GemmContext | None, tiling: Tiling | None,
                 streamed_from: str | None = None) -> OpPlan:
        per_input: dict[str, float] = {}  # DRAM bytes read of each input (memory traces)

        def read(t, nbytes: float) -> float:
            per_input[t.name] = per_input.get(t.name, 0.0) + nbytes
            return nbytes

        reads = 0.0
        writes = sum(self.tensor_bytes(t) for t in op.outputs if t.name not in kept)
        order = ""
        if op.kind == "gemm":
            dataflow, cycles = ctx.dataflow, ctx.cycles
            b, m, _, n = op.gemm_dims
            order = tiling.order
            a, bop = op.inputs[0], op.inputs[1]
            if a.name not in on_chip:
                reads += read(a, self.tensor_bytes(a) * tiling.a_reads)
            if bop.name not in on_chip:
                reads += read(bop, self.tensor_bytes(bop) * tiling.b_reads)
            for t in op.inputs[2:]:
                reads += read(t, self.tensor_bytes(t))
            unit = "array"
            # Chunks: array output blocks, independent of the buffer size (so that a bigger
            # buffer only ever removes traffic, never coarsens the pipeline).
            rows = b * math.ceil(m / self.r) * math.ceil(n / self.c)
            compute_roof = op.macs * operand_passes(op, self.arch) / self.peak_macs
            out_order = gemm_order(dataflow, tiling)
            tile = tiling.tile_bytes
        else:
            dataflow = ""
            for pos, t in enumerate(op.inputs):
                if t.role == "const":
                    continue  # host-computed tables (rotary cos/sin) stay on chip
                if op.kind == "gather" and pos == 0:
                    reads += read(t, op.outputs[0].numel * (self.wb if t.role == "weight" else self.ab))
                elif t.name not in on_chip:
                    # A slice or a take reads only the rows it selects.
                    part = pos == 0 and op.fn in ("slice", "take")
                    reads += read(t, op.outputs[0].numel * self.ab if part else self.tensor_bytes(t))
            data = op.inputs[0] if op.kind == "sfu" else op.outputs[0]
            rows = max(1, data.numel // data.shape[-1])
            if op.kind == "gather":
                unit, cycles, compute_roof = "dma", 0.0, 0.0
            else:
                unit = "sfu"
                sc = sfu_cost(op, self.arch, self.ab)
                cycles, compute_roof = sc.cycles, sc.ideal_cycles
            out_order = output_order(op, streamed_from)
            tile = min(self.sfu_tile_bytes(op), self.pool) if op.kind == "sfu" else 0.0
        memory_roof = (reads + writes) / self.bw
        return OpPlan(
            op=op, unit=unit, dataflow=dataflow, compute_cycles=float(cycles),
            dram_read_bytes=reads, dram_write_bytes=writes,
            chunks=max(1, min(self.max_chunks, rows)), loop_order=order,
            roofline_cycles=max(compute_roof, memory_roof),
            full_dependency=out_order != "rows", on_chip_inputs=on_chip,
            output_on_chip=bool(kept), order=out_order, tile_bytes=float(tile),
            dram_reads=tuple(per_input.items()),
        )
