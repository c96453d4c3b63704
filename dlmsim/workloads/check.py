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
    MOVE_FNS,
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


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _int_or_pair(v) -> bool:
    return _int(v) or (isinstance(v, tuple | list) and len(v) == 2 and all(map(_int, v)))


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
    **{k: ("an integer or an (h, w) pair of integers", lambda v: _int_or_pair(v))
       for k in ("stride", "padding", "dilation")},
    "groups": ("a positive integer", lambda v: _int(v) and v > 0),
    "axis": ("an integer", lambda v: _int(v)),
    "perm": ("a list of integers", lambda v: isinstance(v, tuple | list)
             and all(_int(x) for x in v)),
    **{k: ("a non-negative integer", lambda v: _int(v) and v >= 0) for k in ("start", "stop")},
}


def pair(v) -> tuple[int, int]:
    """A conv attr given as an int or an (h, w) pair -> (h, w)."""
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


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


def _conv_out(op, size: int, k: int, axis: int) -> int:
    """Output size along one spatial axis: floor((size + 2p - d(k - 1) - 1) / s) + 1."""
    s, p, d = (pair(op.attr(a, dflt))[axis] for a, dflt in
               (("stride", 1), ("padding", 0), ("dilation", 1)))
    if s < 1 or d < 1 or p < 0:
        raise TraceError(f"op '{op.name}': stride and dilation must be >= 1, padding >= 0")
    out = (size + 2 * p - d * (k - 1) - 1) // s + 1
    if out < 1:
        raise TraceError(f"op '{op.name}': a {k}-wide kernel does not fit an input of {size}")
    return out


def _check_conv(op) -> None:
    x, w = op.inputs[0].shape, op.inputs[1].shape
    if len(x) != 4 or len(w) != 4:
        raise TraceError(f"op '{op.name}': conv2d takes x[B,Cin,H,W] and W[Cout,Cin/groups,kh,kw]"
                         f", got {_shape(x)} and {_shape(w)}")
    g = op.attr("groups", 1)
    if x[1] % g or w[0] % g:
        raise TraceError(f"op '{op.name}': groups {g} must divide the input channels {x[1]} "
                         f"and the output channels {w[0]}")
    if w[1] * g != x[1]:
        raise TraceError(f"op '{op.name}': weight '{op.inputs[1].name}' {_shape(w)} expects "
                         f"{w[1] * g} input channels, x has {x[1]}")
    if len(op.inputs) == 3 and op.inputs[2].shape not in ((w[0],), (x[0], w[0])):
        raise TraceError(f"op '{op.name}': bias '{op.inputs[2].name}' must be [{w[0]}] or "
                         f"[{x[0]},{w[0]}], got {_shape(op.inputs[2].shape)}")
    want = (x[0], w[0], _conv_out(op, x[2], w[2], 0), _conv_out(op, x[3], w[3], 1))
    if op.outputs[0].shape != want:
        raise TraceError(f"op '{op.name}': output '{op.outputs[0].name}' is "
                         f"{_shape(op.outputs[0].shape)}, the convolution gives {_shape(want)}")


def _check_gemm(op) -> None:
    if op.fn not in ("linear", "matmul", "conv2d"):
        raise TraceError(f"op '{op.name}': gemm fn must be 'linear', 'matmul' or 'conv2d', "
                         f"not '{op.fn}'")
    if len(op.inputs) not in (2, 3) or len(op.outputs) != 1:
        raise TraceError(f"op '{op.name}': a gemm takes 2 or 3 inputs (A, B[, bias]) "
                         "and gives 1 output")
    if op.fn == "conv2d":
        return _check_conv(op)
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
    if op.fn in _SHAPE_RULES:
        _SHAPE_RULES[op.fn](op, data)
    elif op.fn in REDUCING_FNS:
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


def _want(op, ok: bool, rule: str) -> None:
    if not ok:
        ins = ", ".join(_shape(t.shape) for t in op.inputs)
        raise TraceError(f"op '{op.name}': {op.fn} of {ins} cannot give "
                         f"{_shape(op.outputs[0].shape)} ({rule})")


def _nchw(op, data) -> tuple[int, ...]:
    x = data[0].shape
    if len(x) != 4:
        raise TraceError(f"op '{op.name}': {op.fn} takes an NCHW tensor, got {_shape(x)}")
    return x


def _groupnorm(op, data) -> None:
    x = _nchw(op, data)
    g = op.attr("groups")
    if not isinstance(g, int) or g < 1 or x[1] % g:
        raise TraceError(f"op '{op.name}': groupnorm needs attr groups dividing the "
                         f"{x[1]} channels, got {g}")
    _want(op, op.outputs[0].shape == x, "the output has the input's shape")


def _upsample(op, data) -> None:
    b, c, h, w = _nchw(op, data)
    s = op.attr("scale", 2)
    _want(op, isinstance(s, int) and s >= 1 and op.outputs[0].shape == (b, c, h * s, w * s),
          f"nearest upsampling by an integer scale, attr scale {s}")


def _geglu(op, data) -> None:
    x = data[0].shape
    _want(op, x[-1] % 2 == 0 and op.outputs[0].shape == x[:-1] + (x[-1] // 2,),
          "the last dim halves")


def _cfg(op, data) -> None:
    x = data[0].shape
    _want(op, x[0] % 2 == 0 and op.outputs[0].shape == (x[0] // 2,) + x[1:],
          "the batch holds unconditional and conditional halves")


def _concat(op, data) -> None:
    shapes = [t.shape for t in data]
    nd = len(shapes[0])
    axis = op.attr("axis", -1)
    if not -nd <= axis < nd or any(len(s) != nd for s in shapes):
        raise TraceError(f"op '{op.name}': concat along axis {axis} of {len(shapes)} tensors "
                         f"{', '.join(map(_shape, shapes))}")
    axis %= nd
    rest = {s[:axis] + s[axis + 1:] for s in shapes}
    want = shapes[0][:axis] + (sum(s[axis] for s in shapes),) + shapes[0][axis + 1:]
    _want(op, len(rest) == 1 and op.outputs[0].shape == want, f"joined along axis {axis}")


def _transpose(op, data) -> None:
    perm = op.attr("perm")
    nd = len(data[0].shape)
    if perm is None or sorted(perm) != list(range(nd)):
        raise TraceError(f"op '{op.name}': transpose needs attr perm, a permutation of "
                         f"0..{nd - 1}, got {perm}")
    _want(op, op.outputs[0].numel == data[0].numel, "the element count is kept")


def _slice(op, data) -> None:
    x = data[0].shape
    axis, start, stop = op.attr("axis", -2), op.attr("start", 0), op.attr("stop")
    if not -len(x) <= axis < len(x) or stop is None or not start < stop <= x[axis]:
        raise TraceError(f"op '{op.name}': slice needs attrs axis, start < stop within "
                         f"{_shape(x)}, got axis {axis}, start {start}, stop {stop}")
    axis %= len(x)
    _want(op, op.outputs[0].shape == x[:axis] + (stop - start,) + x[axis + 1:],
          f"rows {start}:{stop} along axis {axis}")


def _rows(op, data) -> None:
    """take: x[B, N, D], idx[B, S] -> [B, S, D]; put: x[B, N, D], y[B, S, D], idx -> x."""
    x, idx = data[0].shape, op.inputs[-1]
    if len(x) != 3 or idx.role != "index" or len(idx.shape) != 2 or idx.shape[0] != x[0]:
        raise TraceError(f"op '{op.name}': {op.fn} takes x[B,N,D] ... and indices[B,S] last, "
                         f"got {', '.join(_shape(t.shape) for t in op.inputs)}")
    s = idx.shape[1]
    if op.fn == "take":
        _want(op, s <= x[1] and op.outputs[0].shape == (x[0], s, x[2]), "S of the N rows")
    else:
        ok = len(op.inputs) == 3 and op.inputs[1].shape == (x[0], s, x[2]) and s <= x[1]
        _want(op, ok and op.outputs[0].shape == x, "S rows written into x")


def _same_count(op, data) -> None:
    _want(op, op.outputs[0].numel == data[0].numel, "the element count is kept")


# Per-function shape rules beyond the generic element-wise / reducing / layout ones.
_SHAPE_RULES = {
    "groupnorm": _groupnorm, "upsample": _upsample, "geglu": _geglu, "cfg_combine": _cfg,
    "concat": _concat, "transpose": _transpose, "reshape": _same_count, "slice": _slice,
    "take": _rows, "put": _rows, "cache_write": _same_count,
}
assert set(_SHAPE_RULES) >= MOVE_FNS


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
    _check_variants(trace)
    # Shapes chain within each forward variant: the once ops, its forward ops, the step ops.
    for v in _variant_names(trace):
        _check_chain([op for op in trace.ops if op.phase != "forward" or op.variant == v],
                     dict(produced))
    if trace.schedule.steps < 0 or trace.schedule.forward_passes < 0:
        raise TraceError("schedule: steps and forward passes must be >= 0")
    if not math.isfinite(trace.schedule.forward_passes):
        raise TraceError("schedule: forward passes must be finite")


def _variant_names(trace) -> list[str]:
    return [name for name, _ in trace.schedule.variants] or [""]


def _check_variants(trace) -> None:
    """Forward variants: every forward op names one the schedule lists (or none when the
    schedule lists none), each has ops, and their passes add up to the forward passes."""
    sched = trace.schedule
    names = _variant_names(trace)
    for op in trace.ops:
        if op.variant and op.phase != "forward":
            raise TraceError(f"op '{op.name}': only forward ops belong to a variant")
        if op.phase == "forward" and op.variant not in names:
            raise TraceError(f"op '{op.name}': variant '{op.variant}' is not in the schedule "
                             f"(variants: {', '.join(repr(n) for n in names)})")
    if not sched.variants:
        return
    for name, passes in sched.variants:
        if not (math.isfinite(passes) and passes >= 0):
            raise TraceError(f"schedule: variant '{name}' has {passes} passes")
        if not any(op.variant == name for op in trace.ops):
            raise TraceError(f"schedule: variant '{name}' has no ops")
    total = sum(p for _, p in sched.variants)
    if abs(total - sched.forward_passes) > 1e-9 * max(1.0, total):
        raise TraceError(f"schedule: the variants' passes add up to {total:g}, not the "
                         f"{sched.forward_passes:g} forward passes")


def _check_chain(ops, produced: dict) -> None:
    for op in ops:
        for t in op.inputs:
            if t.role in ("weight", "const"):
                continue
            if t.name not in produced:
                if t.role in ("index", "cache"):
                    continue  # token ids from the sampler, caches from earlier passes
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
