"""Mapping: each op of a trace onto the accelerator — dataflow, tiles, traffic, unit cycles.

Pure arithmetic (no simulation). The engine turns the resulting `OpPlan`s into timed events.

Modelling decisions, stated once:
- Buffer-level loop order is weight-panel reuse: a GEMM's weight panel [K, Nt] is loaded once
  and the activation streams through it in row blocks, so weights are read from DRAM exactly
  once per forward pass. The activation is re-read once per N panel unless it is on chip.
  If even a [K, cols] panel does not fit, K is split and partial sums spill to DRAM.
- Array-level dataflow: OS finishes R x C output blocks one after another, so whole output
  rows complete early and a consumer may start on them (row-block hand-off). WS holds a
  weight fold while all M rows stream; rows complete only when the op ends, and partial sums
  across the ceil(K/R) folds go through the shared buffer's port.
- An activation passed between ops stays on chip if it fits the resident share of the
  buffer, or if it is handed off row block by row block to the very next op, which is its
  only consumer and uses it as its streamed (first) operand (and, for a GEMM, needs a single
  weight panel). Otherwise the producer writes it to DRAM and every consumer reads it back.
- All activations are stored at the activation width (re-quantised on the array's output
  path); weights at the weight width; indices as int32.
- A PE built for W-bit weights multiplies two A-bit activations (attention) in
  ceil(A/W) passes (SDA: 8-bit attention products as two 4x8 products).
- SFU ops cost passes x elements / (lanes x elements per lane) cycles plus the pipeline depth
  once per op; head split/merge cost no SFU pass by default (address patterns).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dlmsim.arch import Accelerator, bytes_of
from dlmsim.cost.systolic import gemm_cycles
from dlmsim.workloads.ir import LAYOUT_FNS, Op


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
    weight_panels: int  # N panels of a GEMM (1 when its whole B fits)
    roofline_cycles: float  # max(peak compute, compulsory bytes / bandwidth)
    full_dependency: bool  # consumers must wait for the whole op (WS, layout ops)
    on_chip_inputs: tuple[str, ...]  # activation inputs that did not come from DRAM
    output_on_chip: bool


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
        if t.role == "weight":
            return t.numel * self.wb
        if t.role == "index":
            return t.numel * 4.0
        return t.numel * self.ab

    # ---- residency -----------------------------------------------------------------------
    def on_chip_edges(self, ops: list[Op], dataflows: list[str]) -> set[tuple[int, str]]:
        """(consumer index, tensor name) pairs whose activation never goes to DRAM."""
        producer: dict[str, int] = {}
        consumers: dict[str, list[int]] = {}
        for j, op in enumerate(ops):
            for t in op.inputs:
                if t.role in ("activation", "cache", "index"):
                    consumers.setdefault(t.name, []).append(j)
            for t in op.outputs:
                producer[t.name] = j
        edges = set()
        for j, op in enumerate(ops):
            for pos, t in enumerate(op.inputs):
                if t.role not in ("activation", "cache", "index") or t.name not in producer:
                    continue
                i = producer[t.name]
                if self.tensor_bytes(t) <= self.resident:
                    edges.add((j, t.name))
                    continue
                p = ops[i]
                streamable = (
                    pos == 0
                    and i == j - 1
                    and consumers.get(t.name) == [j]
                    and not (p.kind == "gemm" and dataflows[i] == "ws")
                    and not (p.kind == "sfu" and p.fn in LAYOUT_FNS)
                    and not (op.kind == "gemm" and self.weight_panels(op) > 1)
                )
                if streamable:
                    edges.add((j, t.name))
        return edges

    # ---- GEMMs ---------------------------------------------------------------------------
    def weight_panels(self, op: Op) -> int:
        """N panels: how many [K, Nt] panels of B the tile pool holds one at a time."""
        _, _, k, n = op.gemm_dims
        bb = self.wb if op.inputs[1].role == "weight" else self.ab
        # A panel must leave room for double-buffered activation rows and an output block.
        room = self.pool - 2 * self.r * k * self.ab - self.r * self.c * self.ab
        cols_fit = int(room // max(k * bb, 1))
        if cols_fit >= n:
            return 1
        nt = max(self.c, (cols_fit // self.c) * self.c)
        return math.ceil(n / nt)

    def k_splits(self, op: Op) -> int:
        """K chunks when not even a [K, cols] panel fits (partial sums then spill)."""
        _, _, k, _ = op.gemm_dims
        bb = self.wb if op.inputs[1].role == "weight" else self.ab
        per_k = self.c * bb + 2 * self.r * self.ab  # one K row of panel + activation rows
        return max(1, math.ceil(k * per_k / max(self.pool - self.r * self.c * self.accb, 1)))

    def array_cycles(self, op: Op, dataflow: str) -> float:
        b, m, k, n = op.gemm_dims
        cyc = b * gemm_cycles(dataflow, m, k, n, self.r, self.c) * operand_passes(op, self.arch)
        if dataflow == "ws":
            # Partial sums of every K fold but the last go out to the buffer and back in.
            psum_bytes = b * m * n * max(math.ceil(k / self.r) - 1, 0) * 2 * self.accb
            cyc = max(cyc, psum_bytes / self.arch.buffer.bytes_per_cycle)
        return cyc

    def sfu_cycles(self, op: Op) -> float:
        """SFU busy cycles: passes x elements / (lanes x elements per lane) + depth."""
        sfu = self.arch.sfu
        work = sfu.fn_passes(op.fn) * op.elements / sfu.elems_per_cycle
        return work + (sfu.pipeline_depth_cycles if work else 0)

    def choose_dataflow(self, op: Op, previous: str | None, consumer: Op | None = None
                        ) -> tuple[str, float]:
        """(dataflow, array cycles incl. switch cost) under the arch's policy.

        `auto` takes the cheaper of OS and WS per op. When the next op is an SFU op streaming
        this output, the pair is compared: under OS the SFU works on rows as they come, about
        max(GEMM, SFU) cycles; under WS it waits for the whole GEMM, GEMM + SFU cycles.
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
                pair = cyc + sfu if df == "ws" else max(cyc, sfu)
            if best is None or pair < best[2]:
                best = (df, cyc, pair)
        return best[:2]

    # ---- plans ---------------------------------------------------------------------------
    def plan(self, ops: list[Op]) -> list[OpPlan]:
        """Plans for `ops` in order; inputs produced outside the list come from DRAM."""
        dataflows: list[str] = []
        prev = None
        gemm_choice: dict[int, tuple[str, float]] = {}
        for j, op in enumerate(ops):
            if op.kind == "gemm":
                nxt = ops[j + 1] if j + 1 < len(ops) else None
                streams = (nxt is not None and nxt.kind == "sfu" and nxt.inputs
                           and nxt.inputs[0].name == op.outputs[0].name)
                gemm_choice[j] = self.choose_dataflow(op, prev, nxt if streams else None)
                prev = gemm_choice[j][0]
                dataflows.append(prev)
            else:
                dataflows.append("")
        edges = self.on_chip_edges(ops, dataflows)
        later_use: dict[str, int] = {}
        for j, op in enumerate(ops):
            for t in op.inputs:
                later_use[t.name] = j
        plans = []
        for j, op in enumerate(ops):
            on_chip = tuple(t.name for t in op.inputs if (j, t.name) in edges)
            out = op.outputs[0]
            consumers_on_chip = all((jj, out.name) in edges for jj in range(j + 1, len(ops))
                                    if any(t.name == out.name for t in ops[jj].inputs))
            used_later = later_use.get(out.name, -1) > j
            output_on_chip = used_later and consumers_on_chip
            plans.append(self._plan_op(op, on_chip, output_on_chip, gemm_choice.get(j)))
        return plans

    def _plan_op(self, op: Op, on_chip: tuple[str, ...], output_on_chip: bool,
                 choice) -> OpPlan:
        reads = 0.0
        panels = 1
        if op.kind == "gemm":
            dataflow, cycles = choice
            b, m, _, n = op.gemm_dims
            panels = self.weight_panels(op)
            ksplit = self.k_splits(op)
            a, bop = op.inputs[0], op.inputs[1]
            if a.name not in on_chip:
                reads += self.tensor_bytes(a) * panels
            if bop.name not in on_chip:
                reads += self.tensor_bytes(bop)
            for t in op.inputs[2:]:
                reads += self.tensor_bytes(t)
            spill = b * m * n * self.accb * 2 * (ksplit - 1)
            writes = (0.0 if output_on_chip else self.tensor_bytes(op.outputs[0])) + spill
            reads += spill
            unit = "array"
            # Chunks: array output blocks, independent of the buffer size (so that a bigger
            # buffer only ever removes traffic, never coarsens the pipeline).
            rows = b * math.ceil(m / self.r) * math.ceil(n / self.c)
            compute_roof = op.macs * operand_passes(op, self.arch) / self.peak_macs
        else:
            dataflow = ""
            for pos, t in enumerate(op.inputs):
                if t.role == "const":
                    continue  # host-computed tables (rotary cos/sin) stay on chip
                if op.kind == "gather" and pos == 0:
                    reads += op.outputs[0].numel * (self.wb if t.role == "weight" else self.ab)
                elif t.name not in on_chip:
                    reads += self.tensor_bytes(t)
            writes = 0.0 if output_on_chip else sum(self.tensor_bytes(t) for t in op.outputs)
            data = op.inputs[0] if op.kind == "sfu" else op.outputs[0]
            rows = max(1, data.numel // data.shape[-1])
            if op.kind == "gather":
                unit, cycles, compute_roof = "dma", 0.0, 0.0
            else:
                unit = "sfu"
                cycles = self.sfu_cycles(op)
                compute_roof = cycles - (self.arch.sfu.pipeline_depth_cycles if cycles else 0)
        memory_roof = (reads + writes) / self.bw
        # Rows complete only at the op's end for WS, and when the weights come in several
        # panels (the last panel finishes every row); layout ops permute whole tensors.
        full = (op.kind == "gemm" and (dataflow == "ws" or panels > 1)) or (
            op.kind == "sfu" and op.fn in LAYOUT_FNS)
        return OpPlan(
            op=op, unit=unit, dataflow=dataflow, compute_cycles=float(cycles),
            dram_read_bytes=reads, dram_write_bytes=writes,
            chunks=max(1, min(self.max_chunks, rows)), weight_panels=panels,
            roofline_cycles=max(compute_roof, memory_roof), full_dependency=full,
            on_chip_inputs=on_chip, output_on_chip=output_on_chip,
        )
