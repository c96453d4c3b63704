"""SFU cost per function and precision: passes, the II of each pass, lanes, ports, depth.

Each function is a short program of passes over the rows of its data input (the last dim is
a row). A pass streams every element of the row through a chain of operators; a *reducing*
pass also feeds a running accumulator (a sum, a max) that carries from one element to the
next. In HLS such a loop-carried dependency sets the loop's initiation interval (II) to the
latency of the operator closing the loop: a floating-point adder's latency for a sum, one
cycle in fixed point (hardware.md, "HLS loops and the SFU"; AMD AR# 62859: an fp32 sum loop
gets II = fadd latency until it keeps that many interleaved partial sums, XAPP599). A
non-reducing pass runs at II = 1.

Cycles of one op, for each pass p (n = row length, rows = elements / n, L lanes each taking
whole rows, E elements per lane per cycle, P = `partial_sums` interleaved accumulators):
    compute_p = rows * ceil(n / E) * II_p / L,  II_p = ceil(latency(reduce op) / P), 1 if none
    port_p    = elements * bytes * (streams read + streams written in p) / port bytes per cycle
    pass_p    = max(compute_p, port_p)
    cycles    = sum_p pass_p + depth,  depth = pipeline_depth_cycles + sum over passes of the
                latencies along the pass's chain (+ the reducing op) + per-row scalar ops
The first pass reads every full-size operand (a residual's x and y, swiglu's gate and up);
later passes re-read the data input only; the last pass of a function with a full-size output
writes it. Operands smaller than the data (per-channel weights, a per-sample modulation
vector) are held in registers and cost no port (a simplification). Per-row scalar work (the
reciprocal of a softmax sum, the rsqrt of a variance) runs under the next row's first pass:
it adds to the depth once, not per row.

Operator latencies (cycles) at 300 MHz, scaled linearly with the clock (a fixed delay per
pipeline stage, at least 1 cycle; an assumption), from Vitis HLS operator bindings found in
public csynth/RTL outputs for UltraScale+ (module names carry the stage count = latency + 1):
fadd `fadd_32ns_32ns_32_5_full_dsp_1` (LATENCY 4), fmul `fmul_32ns_32ns_32_4_max_dsp_1` (3),
fdiv `fdiv_32ns_32ns_32_16_no_dsp_1` (15), fcmp `fcmp_32ns_32ns_1_2_no_dsp_1` (1), fexp
`fexp_32ns_32ns_32_10_full_dsp_1` (9), frsqrt `frsqrt_32ns_32ns_32_10_full_dsp_1` (9); flog
is taken as fexp (not found). The same operators appear elsewhere with other stage counts
(fadd 1-6, fexp 4-9, frsqrt 9-16), as HLS picks the stages from the target clock; these
figures are for 250-300 MHz designs and the clock scaling is the model's. Fixed point
(ap_fixed up to 32 bits): add and compare in one cycle (so reductions reach II = 1),
multiply 2 (DSP48 pipeline), exp/log/div/rsqrt 3 (a table look-up plus interpolation: an
assumption; SDA's SFUs use such approximations in ap_fixed<16, 8>).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

LATENCY_AT_300MHZ: dict[str, dict[str, int]] = {
    "fp32": {"add": 4, "mul": 3, "div": 15, "cmp": 1, "exp": 9, "log": 9, "rsqrt": 9},
    "fixed": {"add": 1, "mul": 2, "div": 3, "cmp": 1, "exp": 3, "log": 3, "rsqrt": 3},
}
REFERENCE_MHZ = 300.0


@dataclass(frozen=True)
class Pass:
    """One streaming pass over a row: operators along the data path, the loop-carried
    reduction (or None), whether it reads every full-size operand (else only the data input)
    and whether it writes the output."""

    chain: tuple[str, ...] = ()
    reduce: str | None = None
    all_inputs: bool = False
    writes: bool = False


def _map(*chain: str) -> tuple[Pass, ...]:
    return (Pass(chain, None, True, True),)


_NORM = (Pass(("mul",), "add", True), Pass(("add", "mul", "mul", "add"), writes=True))
_SIGMOID = ("exp", "add", "div")
# Per-row scalar operators between passes (under the next row's first pass: depth only).
ROW_SCALARS = {"layernorm": ("rsqrt",), "groupnorm": ("rsqrt",), "rmsnorm": ("rsqrt",),
               "softmax": ("div",), "log_softmax": ("log",), "cosine": ("rsqrt", "mul")}

PROGRAMS: dict[str, tuple[Pass, ...]] = {
    # Statistics (sum and sum of squares, two accumulators), then normalise and scale.
    "layernorm": _NORM, "groupnorm": _NORM,
    "rmsnorm": (Pass(("mul",), "add", True), Pass(("mul", "mul"), writes=True)),
    # Max, then exp(x - max) summed, then scale by 1 / sum (log-softmax: subtract log sum).
    "softmax": (Pass((), "cmp", True), Pass(("add", "exp"), "add"), Pass(("mul",), writes=True)),
    "log_softmax": (Pass((), "cmp", True), Pass(("add", "exp"), "add"),
                    Pass(("add",), writes=True)),
    # MDLM's Gumbel-max: argmax of p / -log(u) in one pass with a running max and index.
    "gumbel_argmax": (Pass(("log", "log", "div"), "cmp", True),),
    "argmax": (Pass((), "cmp", True),), "rowmax": (Pass((), "cmp", True),),
    "topk": (Pass((), "cmp", True),),  # a running top-k insertion network
    "dist_argmin": (Pass(("mul", "add"), "cmp", True),),
    # dLLM-Cache's check: dot and squared norms (three sums) of two rows in one pass.
    "cosine": (Pass(("mul",), "add", True),),
    # SEDD: a row sum first, then the rate.
    "reverse_rate": (Pass((), "add", True), Pass(("mul", "add", "mul"), writes=True)),
    "staggered_score": (Pass((), "add", True), Pass(("mul", "add"), writes=True)),
    # Element-wise functions: one pass at II = 1.
    "modulate": _map("mul", "add"), "gelu": _map("mul", *_SIGMOID, "mul"),
    "silu": _map(*_SIGMOID, "mul"), "tanh": _map(*_SIGMOID),
    "swiglu": _map(*_SIGMOID, "mul", "mul"), "geglu": _map("mul", *_SIGMOID, "mul", "mul"),
    "rotary": _map("mul", "mul", "add"), "residual": _map("mul", "add"), "add": _map("add"),
    "mul": _map("mul"), "timestep_embedding": _map("mul", "exp"), "exp_scale": _map("exp", "mul"),
    "masked_update": _map("cmp"), "posterior_update": _map("mul", "mul", "add", "add"),
    "cfg_combine": _map("add", "mul", "add"), "ddim_step": _map("mul", "add", "mul", "mul", "add"),
    "score_scale": _map("add"), "exp": _map("exp"), "transp_transition": _map("mul"),
    "upsample": _map(),
    # Address patterns the DMA and the buffer banks absorb: no pass.
    "split_heads": (), "merge_heads": (), "transpose": (), "reshape": (), "concat": (),
    "slice": (), "take": (), "put": (), "cache_write": (),
}


def latency(op: str, bits, clock_mhz: float) -> int:
    """Cycles of one operator at the SFU's precision and the accelerator clock."""
    table = LATENCY_AT_300MHZ["fp32" if bits == "fp32" else "fixed"]
    return max(1, math.ceil(table[op] * clock_mhz / REFERENCE_MHZ - 1e-9))


@dataclass(frozen=True)
class SfuCost:
    cycles: float  # busy cycles of the SFU for the op
    ideal_cycles: float  # every pass at II = 1, no port limit, no depth (the roofline)
    port_bound: bool  # a pass is limited by the buffer port rather than the lanes


def streams(op) -> tuple[int, int]:
    """(full-size inputs, full-size outputs): operands as large as the data input."""
    if not op.inputs:
        return 0, 1
    n = op.elements
    ins = sum(1 for t in op.inputs if t.numel >= n and t.role not in ("weight", "const"))
    outs = sum(1 for t in op.outputs if t.numel >= n)
    return max(ins, 1), outs


def cost(op, arch, elem_bytes: float) -> SfuCost:
    """SFU cycles of one op on `arch` (see the module docstring)."""
    sfu = arch.sfu
    elements = op.elements
    if sfu.passes.get(op.fn) is not None:  # a user override: passes at II = 1
        work = sfu.passes[op.fn] * elements / sfu.elems_per_cycle
        return SfuCost(work + (sfu.pipeline_depth_cycles if work else 0), work, False)
    program = PROGRAMS[op.fn]
    if not program or elements == 0:
        return SfuCost(0.0, 0.0, False)
    data = op.outputs[0] if op.fn == "timestep_embedding" else op.inputs[0]
    n = max(1, data.shape[-1]) if data.shape else 1
    rows = elements / n
    ins, outs = streams(op)
    port = arch.buffer.bytes_per_cycle
    lat = {name: latency(name, sfu.bits, arch.clock_mhz) for name in LATENCY_AT_300MHZ["fp32"]}
    total = ideal = 0.0
    depth = sfu.pipeline_depth_cycles + sum(lat[s] for s in ROW_SCALARS.get(op.fn, ()))
    bound = False
    for p in program:
        ii = math.ceil(lat[p.reduce] / sfu.partial_sums) if p.reduce else 1
        per_row = math.ceil(n / sfu.elems_per_lane)
        compute = rows * per_row * ii / sfu.lanes
        moved = (ins if p.all_inputs else 1) + (outs if p.writes else 0)
        ports = elements * elem_bytes * moved / port
        bound = bound or ports > compute
        total += max(compute, ports)
        ideal += rows * per_row / sfu.lanes
        depth += sum(lat[c] for c in p.chain) + (lat[p.reduce] if p.reduce else 0)
    return SfuCost(total + depth, ideal, bound)
