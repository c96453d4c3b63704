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

import fnmatch
import math
import re
from dataclasses import dataclass, replace

from dlmsim.arch import Accelerator, Unit, bytes_of, stored_bytes, tile_pools
from dlmsim.cost.systolic import gemm_cycles, template_cycles
from dlmsim.errors import InputError
from dlmsim.sfu import cost as sfu_cost
from dlmsim.sfu import streams as sfu_streams
from dlmsim.workloads.ir import Op
from dlmsim.workloads.vocab import ELEMENTWISE_FNS, LAYOUT_FNS

LOOP_ORDERS = ("weight_panel", "output_row", "output_block")
UNIT_KINDS = {"gemm": "array", "sfu": "sfu", "gather": "dma"}
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
    # Inputs that arrive through a stream from another unit: (input name, rows its FIFO
    # holds beyond the block each end works on, cycles of SLR crossing on the way).
    streamed_inputs: tuple[tuple[str, float, float], ...] = ()

    @property
    def unit_kind(self) -> str:
        """"array", "sfu" or "dma": what kind of unit runs the op."""
        return UNIT_KINDS[self.op.kind]

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


def streamed_operand(op: Op, pos: int) -> bool:
    """Can `op` take its input `pos` row block by row block: its first (streamed) input, or
    any input of the data's shape of an element-wise op (a residual's two terms)?"""
    return pos == 0 or (input_need(op) == "any" and op.inputs[pos].shape == op.inputs[0].shape)


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


_BLOCK = re.compile(r"^(blocks|layers)\.\d+\.")


def op_group(name: str) -> str:
    """'blocks.3.qkv' -> 'blocks.*.qkv': what the same op of every block shares."""
    return _BLOCK.sub(lambda m: f"{m.group(1)}.*.", name)


def _matches(unit: Unit, op: Op) -> bool:
    for p in unit.ops:
        if p.startswith("fn:"):
            if fnmatch.fnmatchcase(op.fn, p[3:]):
                return True
        elif fnmatch.fnmatchcase(op.name, p):
            return True
    return False


def _runs(unit: Unit, op: Op) -> bool:
    """Can the unit run the op at all (its kind; an SFU's functions; layout ops anywhere)?"""
    if unit.kind != UNIT_KINDS[op.kind]:
        return False
    return unit.kind == "array" or not unit.functions or op.fn in unit.functions \
        or op.fn in LAYOUT_FNS


def assign(arch: Accelerator, ops) -> dict[str, str]:
    """Unit name of every op (`Accelerator.compute_units` states the rule). Ops no pattern
    claims are balanced over the auto units (those without `ops`, or listing `auto`) by
    longest processing time first: op groups (the same op of every block, `op_group`) in
    decreasing work (MACs of a GEMM, elements of an SFU op, over all instances), each to
    the unit that would then finish its work, claimed and balanced, soonest at its peak rate
    (PEs, or elements per cycle); a simplification that weighs work, not the pipeline it
    forms."""
    units = arch.compute_units()
    out: dict[str, str] = {}
    if not arch.is_spatial:
        for op in ops:
            out[op.name] = "dma" if op.kind == "gather" else UNIT_KINDS[op.kind]
        return out
    load: dict[str, float] = {u.name: 0.0 for u in units}
    rate = {u.name: float(u.pes if u.kind == "array" else u.sfu.elems_per_cycle)
            for u in units}

    def work(op) -> float:
        return float(op.macs if op.kind == "gemm" else op.elements)

    groups: dict[str, list] = {}
    for op in ops:
        if op.kind == "gather":
            out[op.name] = "dma"
            continue
        able = [u for u in units if _runs(u, op)]
        claimed = next((u for u in able if _matches(u, op)), None)
        if claimed is not None:
            out[op.name] = claimed.name
            load[claimed.name] += work(op) / rate[claimed.name]
            continue
        auto = [u for u in able if not u.ops or "auto" in u.ops]
        if not auto:
            what = "an array" if op.kind == "gemm" else f"an SFU implementing {op.fn}"
            raise InputError(f"{arch.name}: no unit runs op {op.name} ({op.fn}): it needs "
                             f"{what} whose ops match it, or one without ops (auto)")
        groups.setdefault(op_group(op.name), []).append((op, auto))
    order = sorted(groups.items(), key=lambda kv: -sum(work(o) for o, _ in kv[1]))
    for _, members in order:
        w = sum(work(o) for o, _ in members)
        best = min(members[0][1], key=lambda u: load[u.name] + w / rate[u.name])
        load[best.name] += w / rate[best.name]
        for o, _ in members:
            out[o.name] = best.name
    return out


def _stream_specs(arch: Accelerator, units) -> dict[tuple[str, str], tuple[float, float]]:
    """(producer unit, consumer unit) -> (FIFO bytes, SLR crossing cycles) of each stream.
    A stream between regions on different SLRs pays the device's crossing latency per SLR
    boundary on the way (its width is checked against the wires in dlmsim.resources)."""
    from dlmsim.resources import placement

    slr = placement(arch)
    region = {u.name: u.region for u in units}
    dev = arch.dev()
    lat = dev.slr_crossing.latency_cycles if dev.slr_crossing else 0
    out = {}
    for st in arch.streams.values():
        a, b = slr.get(region[st.producer]), slr.get(region[st.consumer])
        hops = abs(a - b) if a is not None and b is not None else 0
        out[(st.producer, st.consumer)] = (st.depth_bytes, float(hops * lat))
    return out


class Mapper:
    """Maps the ops of one segment (a list executed in order) onto one accelerator.

    A spatial design maps each op with the view of the unit it is assigned to
    (`Accelerator.unit_view`: that unit's array or SFU); `assignment` (op name -> unit name,
    `assign`) is computed over the ops of each call when not given."""

    def __init__(self, arch: Accelerator, max_chunks: int = 16,
                 assignment: dict[str, str] | None = None, _pool: float | None = None):
        self.arch = arch
        self.assignment = dict(assignment or {})
        self._views: dict[str, Mapper] = {}
        self._pools: dict[str, float] | None = None
        self.stream_specs: dict[tuple[str, str], tuple[float, float]] = {}
        if arch.is_spatial and _pool is None:
            units = arch.compute_units()
            pools = tile_pools(arch)
            if len(pools) > 1:
                self._pools = pools
            self._views = {u.name: Mapper(arch.unit_view(u), max_chunks,
                                          _pool=pools.get(u.name, pools[""]))
                           for u in units}
            self.stream_specs = _stream_specs(arch, units)
        self.max_chunks = max_chunks
        self.r, self.c = arch.array.rows, arch.array.cols
        self.ab = bytes_of(arch.bits.activations)
        self.wb = bytes_of(arch.bits.weights)
        self.accb = bytes_of(arch.bits.accumulator)
        self.capacity = arch.buffer.capacity_bytes
        self.resident = self.capacity * arch.buffer.resident_fraction
        # The tile pool: the buffer's tile share, or (a unit of a spatial design) the part
        # of it the unit uses (`arch.tile_pools`).
        self.pool = self.capacity - self.resident if _pool is None else _pool
        self.bw = arch.bandwidth_bytes_per_cycle()
        self.peak_macs = self.r * self.c

    def tensor_bytes(self, t) -> float:
        return stored_bytes(t, self.arch)

    def units_of(self, ops: list[Op]) -> list[str]:
        """The unit of each op (assigning those the mapper has not seen over `ops`)."""
        missing = [op for op in ops if op.name not in self.assignment]
        if missing:
            self.assignment.update(assign(self.arch, missing))
        return [self.assignment[op.name] for op in ops]

    def pools(self) -> float | dict[str, float]:
        """The tile pool(s) the engine reserves from: one shared, or one per unit with its
        own `tile_kib` beside the shared rest ("")."""
        return self._pools if self._pools is not None else self.pool

    def on(self, unit: str) -> Mapper:
        """The mapper of one unit (this one for a temporal design and for the DMA)."""
        return self._views.get(unit, self)

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
        arr = self.arch.array
        if arr.mac_ii > 1 or arr.tile_loads == "serial":  # Allo's template (OS, none)
            cyc = template_cycles(m, k, n, self.r, self.c, arr.mac_ii,
                                  arr.tile_loads == "serial", b)
        else:
            cyc = gemm_cycles(dataflow, m, k, n, self.r, self.c, arr.fold_overlap, b)
        cyc *= operand_passes(op, self.arch)
        if dataflow == "ws":
            # Partial sums of every K fold but the last go out to the buffer and back in.
            psum_bytes = b * m * n * max(math.ceil(k / self.r) - 1, 0) * 2 * self.accb
            cyc = max(cyc, psum_bytes / self.arch.buffer.bytes_per_cycle)
        return cyc

    def sfu_cycles(self, op: Op) -> float:
        """SFU busy cycles of the op (dlmsim.sfu: passes, II per pass, ports, depth)."""
        return sfu_cost(op, self.arch, self.ab).cycles

    def choose_dataflow(self, op: Op, previous: str | None, consumer: Op | None = None,
                        consumer_mapper: Mapper | None = None) -> tuple[str, float]:
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
                sfu = (consumer_mapper or self).sfu_cycles(consumer)
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

    def plan_residency(self, ops: list[Op], ctx: list[GemmContext | None],
                       units: list[str] | None = None
                       ) -> tuple[list[Residency], dict[int, Tiling], dict]:
        """Which produced activations the resident share holds (module docstring), which
        go through a stream to a consumer on another unit (`streamed`: (producer, tensor)
        -> {consumer: (FIFO rows, crossing cycles)}), and the loop order of every GEMM given
        the operands it finds on chip. One pass, O(ops)."""
        units = units or [""] * len(ops)
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
        streamed: dict[tuple[int, str], dict[int, tuple[float, float]]] = {}
        tilings: dict[int, Tiling] = {}
        freed: dict[int, float] = {}
        live = 0.0

        def on_chip(j: int, pos: int) -> bool:
            key = (src[j][pos], ops[j].inputs[pos].name)
            return key in held or (pos == 0 and j in streamed.get(key, ()))

        for j, op in enumerate(ops):
            if op.kind == "gemm" and j not in tilings:
                tilings[j] = self.on(units[j]).tiling(op, on_chip(j, 0), on_chip(j, 1), ctx[j])
            for t in op.outputs:
                consumers = uses.get((j, t.name))
                if not consumers:
                    continue
                if self.stream_specs:
                    sent = self._stream_to(ops, units, ctx, tilings, j, t, consumers, on_chip)
                    if sent:
                        streamed[(j, t.name)] = sent
                        consumers = [c for c in consumers if c[0] not in sent]
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
                        tl = self.on(units[j + 1]).tiling(nxt, False, on_chip(j + 1, 1),
                                                          ctx[j + 1])
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
        return list(held.values()), tilings, streamed

    def _stream_to(self, ops, units, ctx, tilings, j, t, consumers, on_chip
                   ) -> dict[int, tuple[float, float]]:
        """The consumers of op j's output t that take it through a stream: a stream joins
        the two units, the producer completes rows in order (`_streams_rows`, its first
        output's shape), the consumer streams it once in row order (`streamed_operand`; a
        GEMM whose loop order reads A once: that order is then fixed). Any other input
        between two streamed units goes through the buffer or DRAM as in a temporal design.
        Value: (rows the FIFO holds, SLR crossing cycles)."""
        op = ops[j]
        if t.shape != op.outputs[0].shape or not self._streams_rows(op, ctx[j], tilings.get(j)):
            return {}
        width = t.shape[-1] if t.shape else 1
        out = {}
        for k, pos in consumers:
            spec = self.stream_specs.get((units[j], units[k]))
            if spec is None or not streamed_operand(ops[k], pos) or \
                    input_need(ops[k]) == "channels" or not self._can_stream(ops, units, j, k):
                continue
            if ops[k].kind == "gemm":
                tl = self.on(units[k]).tiling(ops[k], True, on_chip(k, 1), ctx[k])
                if tl.a_reads != 1:
                    continue
                tilings[k] = tl
            depth_bytes, cross = spec
            out[k] = (math.floor(depth_bytes / (width * self.ab)), cross)
        return out

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
        units = self.units_of(ops)
        ctx: list[GemmContext | None] = []
        prev: dict[str, str | None] = {}  # the last dataflow of each array (switch cost)
        for j, op in enumerate(ops):
            if op.kind != "gemm":
                ctx.append(None)
                continue
            k = self._sfu_consumer(ops, units, j)
            nxt = ops[k] if k is not None else None
            m = self.on(units[j])
            prev[units[j]], cycles = m.choose_dataflow(
                op, prev.get(units[j]), nxt, self.on(units[k]) if nxt else None)
            ctx.append(GemmContext(prev[units[j]], cycles,
                                   self.on(units[k]).sfu_cycles(nxt) if nxt else None,
                                   input_need(nxt) if nxt else "rows"))
        held, tilings, streamed = self.plan_residency(ops, ctx, units)
        keys = {(h.producer, h.name) for h in held}
        fifo: dict[int, list] = {}  # consumer -> [(input name, FIFO rows, crossing cycles)]
        for (i, name), sent in streamed.items():
            for k, (rows, cross) in sent.items():
                fifo.setdefault(k, []).append((name, float(rows), float(cross)))
        latest: dict[str, int] = {}
        plans: list[OpPlan] = []
        for j, op in enumerate(ops):
            through = fifo.get(j, [])
            on_chip = tuple(t.name for t in op.inputs if t.role in CHIP_ROLES
                            and ((latest.get(t.name), t.name) in keys
                                 or any(t.name == f[0] for f in through)))
            kept = {t.name for t in op.outputs if (j, t.name) in keys or
                    ((j, t.name) in streamed and not self._other_uses(ops, j, t, streamed))}
            src = latest.get(op.inputs[0].name) if op.inputs else None
            via = (plans[src].order if src is not None and plans[src].hands_off_to(op)
                   else None)
            for t in op.outputs:
                latest[t.name] = j
            plan = self.on(units[j])._plan_op(op, on_chip, kept, ctx[j], tilings.get(j), via)
            if self.arch.is_spatial:
                plan = replace(plan, unit=units[j], streamed_inputs=tuple(through))
            plans.append(plan)
        return plans, held

    @staticmethod
    def _can_stream(ops, units, j: int, k: int) -> bool:
        """A FIFO from op j to op k cannot drain when the consumer's unit has other work
        between the two (it reaches k only after that work, while j holds its own unit
        waiting for k), or when k also depends on an op that j's unit runs after j (a SwiGLU
        of gate and up computed one after the other on one array; a U-Net residual whose
        main branch runs on the shortcut's array after it): the tensor then goes through
        the buffer or DRAM. (Longer cycles through several units are caught when
        simulated: an InputError naming the stream.)"""
        if any(units[i] == units[k] for i in range(j + 1, k)):
            return False
        later: set[str] = set()  # what j's unit computes after j, and all that reads it
        for i in range(j + 1, k):
            if units[i] == units[j] or any(t.name in later for t in ops[i].inputs):
                later.update(t.name for t in ops[i].outputs)
        return not any(t.name in later for t in ops[k].inputs)

    def _sfu_consumer(self, ops, units, j: int) -> int | None:
        """The SFU op that streams GEMM j's output, whose cycles its dataflow and loop
        order are weighed against: the next op when the output is its first input, or (a
        spatial design) the first later op that takes it through a stream."""
        out = ops[j].outputs[0].name
        nxt = ops[j + 1] if j + 1 < len(ops) else None
        if nxt is not None and nxt.kind == "sfu" and nxt.inputs and nxt.inputs[0].name == out:
            return j + 1
        if not self.stream_specs:
            return None
        for k in range(j + 1, len(ops)):
            o = ops[k]
            pos = next((p for p, t in enumerate(o.inputs) if t.name == out), None)
            if pos is not None:
                if o.kind == "sfu" and (units[j], units[k]) in self.stream_specs and \
                        streamed_operand(o, pos):
                    return k
                return None
        return None

    @staticmethod
    def _other_uses(ops, j: int, t, streamed) -> bool:
        """Does a later op read op j's output t other than through a stream?"""
        sent = streamed.get((j, t.name), {})
        for k in range(j + 1, len(ops)):
            if k not in sent and any(x.name == t.name for x in ops[k].inputs):
                return True
            if any(x.name == t.name for x in ops[k].outputs):
                return False  # overwritten
        return False

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
