"""What gets lowered: the scope's ops, its GEMMs on the design's array, types and prediction.

Scope `block`: the forward-phase ops of the first block (one DDiT block for MDLM/SEDD, one
BERT layer for Diffusion-LM, one LLaMA block for LLaDA). Ops of the block that run once per
sampling run (MDLM's adaLN without time conditioning) are not lowered: their outputs are
inputs of the program, as they are inputs of the simulated forward pass. Scope `forward`: the
forward-phase ops of every block (the block stack); the embedding, conditioning and output
head stay on the host.

"Predicted cycles" of a lowered program (stored in its manifest): the makespan of the
simulator's event-driven run of exactly the lowered ops at the lowered shapes, as one segment
(inputs and weights from DRAM, as the simulator plans them), at the arch clock. It is what an
HLS report's top-function latency is compared against by `dlmsim calibrate`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from dlmsim.arch import Accelerator
from dlmsim.config import config_hash
from dlmsim.errors import InputError
from dlmsim.workloads.ir import Op, Trace

SUPPORTED_SFU = {"layernorm", "rmsnorm", "modulate", "residual", "gelu", "silu", "swiglu",
                 "softmax", "rotary", "split_heads", "merge_heads"}
K_TILE_MAX = 64  # (u) reduction depth of one array call; K is padded to a multiple of it

# Devices Allo knows by name (allo.md); others get the nearest family member and their part
# written into the project files by the driver.
ALLO_DEVICES = {"zcu102", "zcu104", "u200", "u250", "u280", "vck190", "ultra96v2"}
ALLO_FALLBACK = {"kv260": "zcu104", "u50": "u280", "u55c": "u280", "v80": "u280"}

BIG_PES = 256  # compose time grows with the PEs the schedule unrolls (allo.md)
BIG_MACS = 2**31  # llvm run of the whole scope gets slow beyond this


@dataclass(frozen=True)
class GemmPlan:
    """One GEMM of the scope on the shared array."""

    op: Op
    function: str  # the generated wrapper that calls the array tile by tile
    batch: int
    m: int
    k: int
    n: int
    transpose_b: bool
    b_is_weight: bool
    dataflow: str  # "os" or "ws": the loop order of the tile calls
    passes: int  # array passes per product (2: an 8-bit activation on a 4-bit-weight array)
    predicted_cycles: float

    def padded(self, rows: int, cols: int, kt: int) -> tuple[int, int, int]:
        up = lambda x, t: math.ceil(x / t) * t
        return up(self.m, rows), up(self.k, kt), up(self.n, cols)


@dataclass(frozen=True)
class Types:
    """Allo type expressions of the design, for the HLS path and the llvm functional check."""

    a_hls: str
    w_hls: str
    c_hls: str
    a_llvm: str
    w_llvm: str
    c_llvm: str
    a_bits: int | str
    w_bits: int | str
    acc_bits: int | str
    integer: bool


def design_types(arch: Accelerator) -> Types:
    b = arch.bits
    if b.weights == "fp32":
        return Types(*(["float32"] * 6), "fp32", "fp32", "fp32", False)

    def ty(bits):
        return f"int{bits}" if bits in (8, 16, 32) else f"Int({bits})"

    # Allo's llvm backend cannot load/store < 8-bit integers: 4-bit values in int8 containers.
    return Types(ty(b.activations), ty(b.weights), ty(b.accumulator),
                 ty(max(b.activations, 8)), ty(max(b.weights, 8)),
                 ty(b.accumulator) if b.accumulator in (16, 32) else
                 ("int32" if b.accumulator < 32 else "int64"),
                 b.activations, b.weights, b.accumulator, True)


def ident(name: str, strip: str = "") -> str:
    """A Python identifier from a trace tensor/op name ('blocks.0.attn.scores' -> ...)."""
    if strip and name.startswith(strip):
        name = name[len(strip):]
    s = re.sub(r"\W+", "_", name).strip("_")
    return s if not s[:1].isdigit() else "t_" + s


def family(trace: Trace) -> str:
    from dlmsim.functional import family_of

    return family_of(trace)


TOP_NAMES = {"mdlm": "ddit_block", "diffusion_lm": "bert_layer", "llada": "llada_block"}


def scope_ops(trace: Trace, scope: str) -> list[Op]:
    # The first kind of forward pass (a cache refresh when the run has several kinds).
    fwd = [op for op in trace.forward_variants()[0][2] if op.block is not None]
    if not fwd:
        raise InputError(f"workload {trace.model}: no blocks in the forward pass to lower")
    if scope == "block":
        first = fwd[0].block
        fwd = [op for op in fwd if op.block == first]
    elif scope != "forward":
        raise InputError(f"unknown scope '{scope}'; known: block, forward")
    for op in fwd:
        if op.kind == "gather" or (op.kind == "sfu" and op.fn not in SUPPORTED_SFU):
            raise InputError(f"op '{op.name}': {op.kind} {op.fn} has no lowering")
    return fwd


def top_name(trace: Trace, scope: str) -> str:
    base = TOP_NAMES[family(trace)]
    return base if scope == "block" else base.replace("_block", "_stack").replace(
        "_layer", "_stack")


def plan_gemms(arch: Accelerator, ops: list[Op], strip: str) -> tuple[list[GemmPlan], list]:
    """The simulator's mapping of the scope: a GemmPlan per GEMM, and the OpPlans."""
    from dlmsim.mapping import Mapper, operand_passes

    plans = Mapper(arch).plan(ops)
    out = []
    for p in plans:
        op = p.op
        if op.kind != "gemm":
            continue
        b, m, k, n = op.gemm_dims
        out.append(GemmPlan(op=op, function="gemm_" + ident(op.name, strip), batch=b, m=m, k=k,
                            n=n, transpose_b=bool(op.attr("transpose_b")),
                            b_is_weight=op.inputs[1].role == "weight", dataflow=p.dataflow,
                            passes=operand_passes(op, arch), predicted_cycles=p.compute_cycles))
    return out, plans


def k_tile(arch: Accelerator, gemms: list[GemmPlan]) -> int:
    """Reduction depth of the one array instance: the array's rows (a WS weight fold), at
    most K_TILE_MAX, and no deeper than the shallowest GEMM needs."""
    kmin = min((g.k for g in gemms), default=arch.array.rows)
    return max(1, min(arch.array.rows, K_TILE_MAX, 1 << (kmin.bit_length() - 1)))


def predict(arch: Accelerator, ops: list[Op]) -> dict:
    """The simulator's figures for exactly these ops (see the module docstring)."""
    from dlmsim.engine import run_ops
    from dlmsim.mapping import Mapper
    from dlmsim.resources import estimate

    plans, seg = run_ops(Mapper(arch), ops)
    res = estimate(arch)
    return {
        "definition": "makespan of the simulator's event-driven run of exactly the lowered "
                      "ops at the lowered shapes, as one segment (inputs and weights from "
                      "DRAM as planned), at the arch clock",
        "cycles": float(seg.cycles),
        "clock_mhz": arch.clock_mhz,
        "seconds": seg.cycles / (arch.clock_mhz * 1e6),
        "resources": {k: float(v) for k, v in res.used.items()},
        "per_op": [{"name": p.op.name, "unit": p.unit, "dataflow": p.dataflow,
                    "compute_cycles": float(p.compute_cycles),
                    "start_cycle": float(t.start), "end_cycle": float(t.end)}
                   for p, t in zip(plans, seg.timings)],
    }


def design_hash(arch: Accelerator) -> str:
    """The design's identity without its calibration (calibrating must not change it)."""
    data = arch.model_dump(mode="json")
    data.pop("calibration", None)
    return config_hash(data)


def allo_device(device_name: str) -> str:
    if device_name in ALLO_DEVICES:
        return device_name
    return ALLO_FALLBACK.get(device_name, "u280")


def warnings_for(arch: Accelerator, ops: list[Op]) -> list[str]:
    out = []
    if arch.array.fold_overlap != "none":
        out.append(f"array.fold_overlap is {arch.array.fold_overlap}, but Allo's systolic "
                   "template runs tiles one after another (fold_overlap none): expect the HLS "
                   "report to show more array cycles than the prediction")
    if arch.pes > BIG_PES:
        out.append(f"the array has {arch.pes} PEs: Allo's compose/schedule time grows with "
                   "the PEs it unrolls (six 8x8 arrays took ~90 s and 1.3 GB, allo.md); "
                   "expect the vhls/csyn steps to take long")
    macs = sum(op.macs for op in ops)
    if macs > BIG_MACS:
        out.append(f"the scope has {macs / 1e9:.1f} G MACs: the llvm check runs every tile "
                   "call on the CPU; use --seq-len/--batch to lower a smaller instance")
    return out
