"""What gets lowered: the scope's ops, and the simulator's prediction for them.

Scope `block`: the forward-phase ops of the first block (one DDiT block for MDLM/SEDD, one
BERT layer for Diffusion-LM, one LLaMA block for LLaDA). Ops of the block that run once per
sampling run (MDLM's adaLN without time conditioning) are not lowered: their outputs are
inputs of the program, as they are inputs of the simulated forward pass. Scope `forward`: the
forward-phase ops of every block (the block stack); the embedding, conditioning and output
head stay on the host.

"Predicted cycles" of a lowered program (stored in its manifest): the makespan of the
simulator's event-driven run of exactly the lowered ops at the lowered shapes, as one segment
(inputs and weights from DRAM, as the simulator plans them), at the arch clock. The lowered
program runs the same ops as one kernel call each; its loop-nest estimate is compared with
this figure by `dlmsim lower --check`.
"""

from __future__ import annotations

from dlmsim.arch import Accelerator
from dlmsim.config import config_hash
from dlmsim.errors import InputError
from dlmsim.workloads.ir import Op, Trace

SUPPORTED_SFU = {"layernorm", "rmsnorm", "modulate", "residual", "gelu", "silu", "swiglu",
                 "softmax", "rotary", "split_heads", "merge_heads"}

# Devices Allo knows by name (allo.md); others get the nearest family member and their part
# written into the project files by the driver.
ALLO_DEVICES = {"zcu102", "zcu104", "u200", "u250", "u280", "vck190", "ultra96v2"}
ALLO_FALLBACK = {"kv260": "zcu104", "u50": "u280", "u55c": "u280", "v80": "u280"}

BIG_PES = 1024  # vhls generation time grows with the PE functions the schedule unrolls
BIG_MACS = 2**33  # the llvm check runs every MAC of the scope on the CPU, twice


def family(trace: Trace) -> str:
    from dlmsim.functional import family_of

    return family_of(trace)


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
    if arch.pes > BIG_PES:
        out.append(f"the array has {arch.pes} MACs: Allo's schedule time grows with the PE "
                   "functions it unfolds; expect the vhls step to take minutes")
    macs = sum(op.macs for op in ops)
    if macs > BIG_MACS:
        out.append(f"the scope has {macs / 1e9:.1f} G MACs: the llvm check runs every MAC "
                   "on the CPU; use --seq-len/--batch to lower a smaller instance")
    return out
