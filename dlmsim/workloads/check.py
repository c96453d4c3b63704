"""Validation of a trace: op kinds, per-op shape rules, and shape chaining between ops.

Every error is a `TraceError` whose message names the op and the tensor at fault, so the CLI
can print it as one line. The checks take `ir.Op`, `ir.Tensor` and `ir.Trace` objects but do
not import `ir`: `ir` imports this module (a Trace checks itself when it is made).
"""

from __future__ import annotations

import math

from dlmsim.errors import InputError
from dlmsim.workloads.vocab import (
    DTYPE_BYTES,
    KINDS,
    LAYOUT_FNS,
    PHASES,
    REDUCING_FNS,
    ROLES,
    SFU_FNS,
)


class TraceError(InputError):
    """A trace is malformed: shapes do not chain, an unknown kind or function, ..."""


# Largest dim a tensor may have: an int32 index (what an HLS loop bound or a DMA length
# holds); and largest element count, so that counts stay exact in float arithmetic.
MAX_DIM = 2**31 - 1
MAX_NUMEL = 2**53


def _number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


# Types of the attributes the simulator and the executors read (others are kept as given).
ATTRS = {
    "transpose_b": ("true or false", lambda v: isinstance(v, bool)),
    "scale": ("a finite number", _number),
    "eps": ("a positive number", lambda v: _number(v) and v > 0),
    "theta": ("a positive number", lambda v: _number(v) and v > 0),
    "rotate": ("'q', 'k' or 'qk'", lambda v: v in ("q", "k", "qk")),
    "approx": ("'tanh' or 'erf'", lambda v: v in ("tanh", "erf")),
    **{k: ("a non-negative integer", lambda v: isinstance(v, int) and not isinstance(v, bool)
           and v >= 0) for k in ("chunks", "gate", "shift", "k", "mask_index")},
}


def _shape(s) -> str:
    return "[" + ",".join(map(str, s)) + "]"


def _check_tensor(where: str, t) -> None:
    if not t.shape or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0
                              for d in t.shape):
        raise TraceError(f"{where}: tensor '{t.name}' has shape {list(t.shape)}; "
                         "every dim must be a positive integer")
    if max(t.shape) > MAX_DIM or math.prod(t.shape) > MAX_NUMEL:
        raise TraceError(f"{where}: tensor '{t.name}' of shape {_shape(t.shape)} is "
                         f"too large (at most {MAX_DIM} per dim and 2^53 elements)")
    if t.dtype not in DTYPE_BYTES:
        raise TraceError(f"{where}: tensor '{t.name}' has unknown dtype '{t.dtype}' "
                         f"(known: {', '.join(DTYPE_BYTES)})")
    if t.role not in ROLES:
        raise TraceError(f"{where}: tensor '{t.name}' has unknown role '{t.role}' "
                         f"(known: {', '.join(ROLES)})")


def _check_gemm(op) -> None:
    if op.fn not in ("linear", "matmul"):
        raise TraceError(f"op '{op.name}': gemm fn must be 'linear' or 'matmul', not '{op.fn}'")
    if len(op.inputs) not in (2, 3) or len(op.outputs) != 1:
        raise TraceError(f"op '{op.name}': a gemm takes 2 or 3 inputs (A, B[, bias]) "
                         "and gives 1 output")
    a, b = op.inputs[0].shape, op.inputs[1].shape
    tb = bool(op.attr("transpose_b"))
    if op.fn == "linear":
        if len(b) != 2:
            raise TraceError(f"op '{op.name}': linear weight '{op.inputs[1].name}' must be 2-D, "
                             f"got {_shape(b)}")
        k_b, n = (b[1], b[0]) if tb else (b[0], b[1])
        want = a[:-1] + (n,)
    else:
        if len(a) < 2 or len(b) != len(a) or a[:-2] != b[:-2]:
            raise TraceError(f"op '{op.name}': matmul operands {_shape(a)} and {_shape(b)} "
                             "must have the same batch dims")
        k_b, n = (b[-1], b[-2]) if tb else (b[-2], b[-1])
        want = a[:-1] + (n,)
    if a[-1] != k_b:
        raise TraceError(f"op '{op.name}': inner dims differ: '{op.inputs[0].name}' "
                         f"{_shape(a)} and '{op.inputs[1].name}' {_shape(b)}")
    if len(op.inputs) == 3 and op.inputs[2].shape != (n,):
        raise TraceError(f"op '{op.name}': bias '{op.inputs[2].name}' must be [{n}], "
                         f"got {_shape(op.inputs[2].shape)}")
    if op.outputs[0].shape != want:
        raise TraceError(f"op '{op.name}': output '{op.outputs[0].name}' is "
                         f"{_shape(op.outputs[0].shape)}, the operands give {_shape(want)}")


def _check_gather(op) -> None:
    if len(op.inputs) != 2 or len(op.outputs) != 1:
        raise TraceError(f"op '{op.name}': a gather takes (table, indices) and gives 1 output")
    table, idx = op.inputs
    if len(table.shape) != 2:
        raise TraceError(f"op '{op.name}': table '{table.name}' must be 2-D")
    want = idx.shape + (table.shape[1],)
    if op.outputs[0].shape != want:
        raise TraceError(f"op '{op.name}': output '{op.outputs[0].name}' is "
                         f"{_shape(op.outputs[0].shape)}, gathering gives {_shape(want)}")


def _check_sfu(op) -> None:
    if op.fn not in SFU_FNS:
        raise TraceError(f"op '{op.name}': unknown sfu fn '{op.fn}' "
                         f"(known: {', '.join(sorted(SFU_FNS))})")
    if not op.inputs or not op.outputs:
        raise TraceError(f"op '{op.name}': an sfu op needs inputs and outputs")
    data = [t for t in op.inputs if t.role not in ("const", "weight")]
    if not data:
        raise TraceError(f"op '{op.name}': an sfu op needs an activation input")
    if op.inputs[0] is not data[0]:
        raise TraceError(f"op '{op.name}': the first input of an sfu op must be its data")
    first_in = data[0].numel
    if op.fn in REDUCING_FNS:
        x = data[0].shape
        out = op.outputs[0].shape
        if op.fn == "topk":
            ok = out[:-1] == x[:-1] and out[-1] <= x[-1]
        else:
            ok = out == x[:-1]
        if not ok:
            raise TraceError(f"op '{op.name}': {op.fn} over the last dim of {_shape(x)} "
                             f"cannot give {_shape(out)}")
    elif op.fn in LAYOUT_FNS:
        out_n = sum(t.numel for t in op.outputs)
        if out_n != first_in:
            raise TraceError(f"op '{op.name}': {op.fn} must keep the element count "
                             f"({first_in} in, {out_n} out)")
    elif op.fn != "timestep_embedding" and op.outputs[0].numel != first_in:
        raise TraceError(f"op '{op.name}': element-wise {op.fn} gives "
                         f"{_shape(op.outputs[0].shape)} from an input of {first_in} elements")


def _check_attrs(op) -> None:
    for k, v in op.attrs:
        want = ATTRS.get(k)
        if want and not want[1](v):
            raise TraceError(f"op '{op.name}': attr {k} must be {want[0]}, got {v!r}")


def check_trace(trace) -> None:
    """Raise TraceError on the first problem found."""
    if not trace.ops:
        raise TraceError("the trace has no ops")
    produced: dict[str, tuple[tuple[int, ...], str]] = {}
    for t in trace.inputs:
        _check_tensor("trace inputs", t)
        produced[t.name] = (t.shape, "the trace inputs")
    weights: dict[str, tuple] = {}  # name -> (shape, dtype, first op)
    names: set[str] = set()
    for op in trace.ops:
        if op.name in names:
            raise TraceError(f"op name '{op.name}' appears twice")
        names.add(op.name)
        if op.kind not in KINDS:
            raise TraceError(f"op '{op.name}': unknown kind '{op.kind}' "
                             f"(known: {', '.join(KINDS)})")
        if op.phase not in PHASES:
            raise TraceError(f"op '{op.name}': unknown phase '{op.phase}' "
                             f"(known: {', '.join(PHASES)})")
        for t in op.inputs + op.outputs:
            _check_tensor(f"op '{op.name}'", t)
        _check_attrs(op)
        for t in op.inputs:
            if t.role == "weight":
                seen = weights.setdefault(t.name, (t.shape, t.dtype, op.name))
                if seen[:2] != (t.shape, t.dtype):
                    raise TraceError(
                        f"op '{op.name}': weight '{t.name}' is {_shape(t.shape)} {t.dtype} "
                        f"but op '{seen[2]}' uses a {_shape(seen[0])} {seen[1]} weight of "
                        "that name; one name, one tensor")
        {"gemm": _check_gemm, "gather": _check_gather, "sfu": _check_sfu}[op.kind](op)
        for t in op.inputs:
            if t.role in ("weight", "const"):
                continue
            if t.name not in produced:
                if t.role == "index":
                    continue  # token ids and positions come from the sampler
                raise TraceError(f"op '{op.name}': input '{t.name}' is produced by no earlier "
                                 "op and is not a trace input")
            shape, where = produced[t.name]
            if shape != t.shape:
                raise TraceError(f"op '{op.name}': input '{t.name}' is {_shape(t.shape)} but "
                                 f"{where} made it {_shape(shape)}")
        for t in op.outputs:
            if t.name in produced and produced[t.name][1] != "the trace inputs":
                raise TraceError(f"op '{op.name}': output '{t.name}' was already produced by "
                                 f"{produced[t.name][1]}")
            produced[t.name] = (t.shape, f"op '{op.name}'")
    if trace.schedule.steps < 0 or trace.schedule.forward_passes < 0:
        raise TraceError("schedule: steps and forward passes must be >= 0")
    if not math.isfinite(trace.schedule.forward_passes):
        raise TraceError("schedule: forward passes must be finite")
