"""The program of a spatial design: one Allo process per op, one labelled array per GEMM.

`build_spatial(arch, trace, ops, seed)` turns the scope's ops into the Allo text of
kernels.py for a design with `units:` (the original MDLM block in Allo: six labelled 8x8
fp32 arrays joined by SFU stages). The top function `block` calls one function per op, in
trace order; each is a process of the top's dataflow region:

- a GEMM's function drives its unit's array, Allo's `systolic[float32, float32, float32,
  M, K, N, R, C, "UNIT"]` (one labelled call site per array unit, so one C++ function
  `systolic_UNIT` and one mesh of R x C PEs `PE_kernel_UNIT_i_j`). A linear layer reads its
  input row block by row block (R rows: the array's height) into a local buffer once, in
  order, runs the array on it against the weight in DRAM and writes the outputs (plus the
  bias) row after row. Attention's two batched products loop over the heads, one array call
  per head, the head's operands copied from the buffer (q, k and v are read by columns: they
  cannot stream), the scores scaled on the way out.
- an SFU op's function is a row loop: it reads each input row once (into a row buffer when
  it needs the row more than once: layer norm's mean and variance, softmax's max and sum),
  and writes each output row once, in order. Its datapath is the op's float32 arithmetic.
- head split and merge are address patterns, not processes (as the simulator assumes):
  q, k, v and the attention output are [L, H*dh] matrices, head h in columns h*dh...
- a tensor becomes an `hls::stream` (`s.to(...)`, depth: the arch's stream bytes) exactly
  where the simulator streams it (`OpPlan.streamed_inputs`) and the consumer reads it once,
  in the order the producer writes it; a producer whose streamed output has other readers
  also writes a copy for them (a stream has one reader).

Scope: float32 designs, batch 1, the ops of a DDiT block (MDLM, SEDD); each array unit runs
at most one GEMM of the block. Anything else is refused in one line naming what. Modelling
statements: the arch's regions and SLRs are in the manifest, not in the C++ (placing a
region on an SLR is a Vitis link option, outside what Allo generates); the top is one
dataflow region over all processes, not one nested region per `regions:` entry: a stream
between regions (residual1 -> norm2) would cross two function boundaries, and `s.to`
retypes only the direct callee's parameter, not the process the region passes it on to.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from dlmsim.arch import Accelerator
from dlmsim.errors import InputError
from dlmsim.workloads.ir import Op, Trace

TOP = "block"
F32 = "float32"
MAX_PANEL_BEATS = 4  # a weight panel row: at most 4 port beats (64 float32 words at 512 bits)


@dataclass
class Tensor:
    """A tensor as the program holds it: a 2-D float32 array (or 1-D for vectors)."""

    name: str  # C identifier in kernels.py
    shape: tuple[int, ...]
    kind: str  # "input", "const", "weight", "local", "output"
    layout: str = "mat"  # "mat" [L, N]; "heads" [L, H*X]; "zmajor" [H*L, X]
    h: int = 1
    x: int = 0  # head width (heads) or row width (zmajor)
    value: np.ndarray | None = None  # reference value at `shape` (float32)

    @property
    def flat(self) -> bool:
        """A top argument: a 1-D array (a DRAM pointer in the HLS top), indexed row-major.
        (Allo's Vitis emitter, with wrap_io=False, linearises the top's arrays, and a
        nested function cannot then take them as 2-D.)"""
        return self.kind != "local"


@dataclass
class Process:
    fn: str  # the Allo function's name
    op: str  # trace op
    unit: str
    args: list[str]  # Tensor names in call order
    outputs: list[str]
    text: str
    label: str = ""  # systolic label (array units)
    store: str = "Y"  # the output parameter of its one store statement
    instantiate: list = field(default_factory=list)  # systolic's eight parameters


@dataclass
class SpatialProgram:
    tensors: dict[str, Tensor]
    processes: list[Process]
    top_args: list[str]
    streams: list[dict]  # tensor, producer and consumer functions, their units, depth (words)
    not_streamed: list[dict]  # simulated streams the program keeps in a buffer, and why
    output: str

    def kernel_text(self, header: str) -> str:
        t = self.tensors
        sig = ", ".join(f"{a}: {_ty(t[a])}" for a in self.top_args)
        body = [f"    {n}: {_ty(x)}" for n, x in t.items() if x.kind == "local"]
        body += [f"    {p.fn}({', '.join(p.args)})" for p in self.processes]
        comp = [f"    s.compose(systolic, instantiate=[{', '.join(map(str, p.instantiate))}], "
                f"id={p.label!r})" for p in self.processes if p.label]
        comp += [f"    s.partition(MockBuffer({p.fn!r}, 'w_pan'), dim=2)  # a beat a cycle"
                 for p in self.processes if "w_pan" in p.text]
        comp += [f"    s.to(s.{st['tensor']}, {st['consumer']!r}, depth={st['depth']})"
                 for st in self.streams]
        return "\n".join([
            header, "import allo", f"from allo.ir.types import {F32}",
            "from allo.ir.utils import MockBuffer",
            "from allo.library.systolic import systolic", "", "",
            *(p.text + "\n\n" for p in self.processes),
            f"def {TOP}({sig}):", *body, "", "",
            "def schedule_hls(s):",
            ('    """The hardware schedule: each array unit\'s systolic schedule composed by '
             "its label, the streams\n    between processes. (The llvm check runs the "
             'unscheduled program.)"""'),
            *(comp or ["    pass"]),
            f"    s.dataflow({TOP!r})", "    return s", ""])


def _ty(t: Tensor) -> str:
    dims = [int(np.prod(t.shape))] if t.flat else t.shape
    return f"{F32}[{', '.join(map(str, dims))}]"


_PARAM = re.compile(r"(\w+): float32\[([\d, ]+)\]")


def _flatten(p: Process, tensors: dict[str, Tensor]) -> None:
    """Rewrite a process for its flat (top argument) tensors: a 2-D parameter bound to one
    becomes 1-D, and its accesses P[a, b] become P[(a) * cols + b]."""
    head, _, body = p.text.partition("):\n")
    names = [m.group(1) for m in _PARAM.finditer(head)]
    for name, arg in zip(names, p.args):
        t = tensors[arg]
        if not t.flat or len(t.shape) != 2:
            continue
        cols = t.shape[1]
        head = re.sub(rf"\b{name}: float32\[[\d, ]+\]", f"{name}: {_ty(t)}", head)
        body = re.sub(rf"\b{name}\[([^\[\],]+), ([^\[\]]+)\]",
                      rf"{name}[(\1) * {cols} + \2]", body)
    p.text = head + "):\n" + body


def _ident(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)


class _Gen:
    def __init__(self, arch: Accelerator, trace: Trace, ops: list[Op], env: dict, weights: dict):
        from dlmsim.functional import LN_EPS, ROPE_THETA, family_of
        from dlmsim.mapping import Mapper

        self.arch, self.trace, self.ops, self.env, self.weights = arch, trace, ops, env, weights
        self.family = family_of(trace)
        self.ln_eps, self.theta = LN_EPS[self.family], ROPE_THETA[self.family]
        self.plans = {p.op.name: p for p in Mapper(arch).plan(ops)}
        self.units = {u.name: u for u in arch.compute_units()}
        self.t: dict[str, Tensor] = {}
        self.alias: dict[str, str] = {}  # trace tensor -> program tensor
        self.procs: list[Process] = []
        self.made = {o.name for op in ops for o in op.outputs}
        self.readers: dict[str, list[str]] = {}
        for op in ops:
            for i in op.inputs:
                self.readers.setdefault(i.name, []).append(op.name)

    # ---- tensors -----------------------------------------------------------------------
    def tensor(self, tt) -> Tensor:
        """The program tensor of a trace tensor (inputs, weights and constants are made
        on first use)."""
        name = self.alias.get(tt.name, tt.name)
        if name in self.t:
            return self.t[name]
        if tt.role == "weight":
            v = self.weights[tt.name]
            return self._add(Tensor("w_" + _ident(tt.name), v.shape, "weight", value=v),
                             tt.name)
        if tt.role == "const":
            raise InputError(f"constant {tt.name} has no lowering")
        if tt.name in self.made:
            raise InputError(f"tensor {tt.name} is read before it is made")
        v = self.env[tt.name]
        if v.ndim in (2, 3) and v.shape[0] == 1:
            v = v[0]
        else:
            raise InputError(f"input {tt.name} {tuple(v.shape)}: the spatial lowering takes "
                             "[1, L, D] activations and [1, N] vectors")
        return self._add(Tensor("in_" + _ident(tt.name), v.shape, "input", value=v),
                         tt.name)

    def _add(self, t: Tensor, trace_name: str) -> Tensor:
        self.t[t.name] = t
        self.alias[trace_name] = t.name
        return t

    def result(self, tt, shape, layout="mat", h=1, x=0) -> Tensor:
        v = np.asarray(self.env[tt.name], np.float32)
        if layout == "heads":  # [1, H, L, X] -> [L, H*X]
            v = v[0].transpose(1, 0, 2).reshape(shape)
        else:
            v = v.reshape(shape)
        return self._add(Tensor("t_" + _ident(tt.name), tuple(shape), "local", layout, h, x,
                                v), tt.name)

    # ---- ops ---------------------------------------------------------------------------
    def run(self) -> None:
        for op in self.ops:
            shape = op.outputs[0].shape
            if len(shape) >= 3 and shape[0] != 1:
                raise InputError(f"op {op.name}: batch {shape[0]}; the spatial lowering takes "
                                 "batch 1 (--batch 1)")
            if op.kind == "gemm":
                self.gemm(op)
            elif op.kind == "sfu":
                self.sfu(op)
            else:
                raise InputError(f"op {op.name}: {op.kind} {op.fn} has no spatial lowering")

    def _proc(self, op: Op, fn: str, args: list[str], outs: list[str], text: str, **kw):
        unit = self.plans[op.name].unit
        if any(p.unit == unit for p in self.procs):
            other = next(p.op for p in self.procs if p.unit == unit)
            raise InputError(f"unit {unit} runs two ops of the block ({other}, {op.name}); the "
                             "spatial lowering gives each unit one op (one process)")
        self.procs.append(Process(fn, op.name, unit, args, outs, text, **kw))

    def _array(self, op: Op) -> tuple[str, int, int]:
        u = self.units[self.plans[op.name].unit]
        if u.kind != "array":
            raise InputError(f"op {op.name} runs on {u.name}, not an array")
        return u.name, u.array.rows, u.array.cols

    def gemm(self, op: Op) -> None:
        unit, r, c = self._array(op)
        if op.fn == "linear":
            self.linear(op, unit, r, c)
        elif op.fn == "matmul" and len(op.inputs[0].shape) == 4:
            self.batched(op, unit, r, c)
        else:
            raise InputError(f"op {op.name}: GEMM {op.fn} {op.inputs[0].shape} has no spatial "
                             "lowering")

    def linear(self, op: Op, unit: str, r: int, c: int) -> None:
        if op.attr("transpose_b") or op.attr("scale") is not None:
            raise InputError(f"op {op.name}: a transposed or scaled linear has no spatial "
                             "lowering")
        a = self.tensor(op.inputs[0])
        if len(a.shape) != 2:
            raise InputError(f"op {op.name}: a GEMM of one vector {tuple(op.inputs[0].shape)} "
                             "(per-forward conditioning) has no spatial lowering")
        w = self.tensor(op.inputs[1])
        bias = self.tensor(op.inputs[2]) if len(op.inputs) > 2 else None
        m, k = a.shape
        n = w.shape[1]
        _divides(op, m, r, "rows (tokens)", "array rows")
        _divides(op, n, c, "output columns", "array columns")
        y = self.result(op.outputs[0], (m, n))
        beat = max(1, self.arch.memory.port_bits // 32)
        npan = _panel(n, k, c, beat, self.units[unit].tile_bytes)
        if npan % beat == 0 and npan > beat:  # one beat a cycle, row after row of the panel
            q = npan // beat
            load = (f"            for t in range({k * q}):\n"
                    f"                for u in range({beat}):\n"
                    f"                    w_pan[t // {q}, (t % {q}) * {beat} + u] = "
                    f"W[t // {q}, pn * {npan} + (t % {q}) * {beat} + u]")
        else:
            load = (f"            for kk in range({k}):\n"
                    f"                for jj in range({npan}):\n"
                    f"                    w_pan[kk, jj] = W[kk, pn * {npan} + jj]")
        fn = f"gemm_{unit}"
        args = [a.name, w.name] + ([bias.name] if bias else []) + [y.name]
        params = [f"A: {F32}[{m}, {k}]", f"W: {F32}[{k}, {n}]"] + \
            ([f"bias: {F32}[{n}]"] if bias else []) + [f"C: {F32}[{m}, {n}]"]
        add = " + bias[j]" if bias else ""
        text = f'''def {fn}({", ".join(params)}):
    """{op.name}: [{m}, {k}] x [{k}, {n}] on array {unit} ({r} x {c}): {r} rows at a time
    (read once, in order), against weight panels of {npan} columns from DRAM (a port beat a
    cycle); each row block's outputs written in order."""
    a_blk: {F32}[{r}, {k}]
    w_pan: {F32}[{k}, {npan}]
    c_pan: {F32}[{r}, {npan}]
    c_rows: {F32}[{r}, {n}]
    for mb in range({m // r}):
        for i, kk in allo.grid({r}, {k}):
            a_blk[i, kk] = A[mb * {r} + i, kk]
        for pn in range({n // npan}):
{load}
            systolic[{F32}, {F32}, {F32}, {r}, {k}, {npan}, {r}, {c}, "{unit}"](a_blk, w_pan, c_pan)
            for i, jj in allo.grid({r}, {npan}):
                c_rows[i, pn * {npan} + jj] = c_pan[i, jj]
        for i, j in allo.grid({r}, {n}):
            C[mb * {r} + i, j] = c_rows[i, j]{add}'''
        self._proc(op, fn, args, [y.name], text, label=unit, store="C",
                   instantiate=[F32, F32, F32, r, k, npan, r, c])

    def batched(self, op: Op, unit: str, r: int, c: int) -> None:
        """Attention's per-head products: A [H, L, Ka] x B [H, Ka, N] (B^T given with
        transpose_b), one array call per head."""
        a, b = self.tensor(op.inputs[0]), self.tensor(op.inputs[1])
        _, h, seq, ka = op.inputs[0].shape
        tb = bool(op.attr("transpose_b"))
        n = op.inputs[1].shape[2] if tb else op.inputs[1].shape[3]
        for t in (a, b):
            if t.layout == "mat":
                raise InputError(f"op {op.name}: operand {t.name} is not a head tensor")
        _divides(op, seq, r, "rows (tokens)", "array rows")
        _divides(op, n, c, "output columns", "array columns")
        merged = any(self._op(x).fn == "merge_heads" for x in self.readers.get(
            op.outputs[0].name, []))
        if merged:
            y = self.result(op.outputs[0], (seq, h * n), "heads", h, n)
            store = f"C[i, hh * {n} + j]"
        else:
            y = self.result(op.outputs[0], (h * seq, n), "zmajor", h, n)
            store = f"C[hh * {seq} + i, j]"
        scale = op.attr("scale")
        sc = "" if scale is None else f" * {float(scale)!r}"

        def load(t: Tensor, i: str, j: str) -> str:
            if t.layout == "heads":
                return f"{'A' if t is a else 'B'}[{i}, hh * {t.x} + {j}]"
            return f"{'A' if t is a else 'B'}[hh * {seq} + {i}, {j}]"

        b_load = (f"        for kk, j in allo.grid({ka}, {n}):\n"
                  f"            b_h[kk, j] = {load(b, 'j', 'kk')}" if tb else
                  f"        for kk, j in allo.grid({ka}, {n}):\n"
                  f"            b_h[kk, j] = {load(b, 'kk', 'j')}")
        fn = f"gemm_{unit}"
        text = f'''def {fn}(A: {_ty(a)}, B: {_ty(b)}, C: {_ty(y)}):
    """{op.name}: {h} heads of [{seq}, {ka}] x [{ka}, {n}] on array {unit} ({r} x {c})."""
    a_h: {F32}[{seq}, {ka}]
    b_h: {F32}[{ka}, {n}]
    c_h: {F32}[{seq}, {n}]
    for hh in range({h}):
        for i, kk in allo.grid({seq}, {ka}):
            a_h[i, kk] = {load(a, 'i', 'kk')}
{b_load}
        systolic[{F32}, {F32}, {F32}, {seq}, {ka}, {n}, {r}, {c}, "{unit}"](a_h, b_h, c_h)
        for i, j in allo.grid({seq}, {n}):
            {store} = c_h[i, j]{sc}'''
        self._proc(op, fn, [a.name, b.name, y.name], [y.name], text, label=unit, store="C",
                   instantiate=[F32, F32, F32, seq, ka, n, r, c])

    def _op(self, name: str) -> Op:
        return next(o for o in self.ops if o.name == name)

    def sfu(self, op: Op) -> None:
        fn = op.fn
        if fn in ("split_heads", "merge_heads"):
            x = self.tensor(op.inputs[0])
            want = "mat" if fn == "split_heads" else "heads"
            if x.layout != want:
                raise InputError(f"op {op.name}: {fn} of a {x.layout} tensor has no lowering")
            if fn == "split_heads":
                _, h, _, dh = op.outputs[0].shape
                x.layout, x.h, x.x = "heads", h, dh
            self.alias[op.outputs[0].name] = x.name  # an address pattern: no process
            return
        if fn == "rotary":
            self.rotary(op)
            return
        x = self.tensor(op.inputs[0])
        if fn == "softmax":
            if x.layout == "heads":
                raise InputError(f"op {op.name}: softmax of a head view has no lowering")
            rows, n = x.shape
            y = self.result(op.outputs[0], x.shape, x.layout, x.h, x.x)
            self._row(op, [x], [], y, n, rows, _softmax_body)
            return
        if x.layout != "mat":
            raise InputError(f"op {op.name}: {fn} on a head view has no lowering")
        rows, n = x.shape
        y = self.result(op.outputs[0], x.shape)
        if fn == "layernorm":
            vecs = [self.tensor(t) for t in op.inputs[1:3]]
            eps = float(op.attr("eps", self.ln_eps))
            self._row(op, [x], vecs, y, n, rows, _layernorm(len(vecs), eps))
        elif fn == "modulate":
            mod = self.tensor(op.inputs[1])
            d = n
            self._row(op, [x], [mod], y, n, rows,
                      f"Y[i, j] = X0[i, j] * (1.0 + V0[{int(op.attr('scale')) * d} + j]) + "
                      f"V0[{int(op.attr('shift')) * d} + j]")
        elif fn == "residual":
            x1 = self.tensor(op.inputs[1])
            if len(op.inputs) > 2:
                mod = self.tensor(op.inputs[2])
                expr = f"Y[i, j] = X0[i, j] + V0[{int(op.attr('gate')) * n} + j] * X1[i, j]"
                self._row(op, [x, x1], [mod], y, n, rows, expr)
            else:
                self._row(op, [x, x1], [], y, n, rows, "Y[i, j] = X0[i, j] + X1[i, j]")
        elif fn == "gelu":
            if str(op.attr("approx", "tanh")) != "tanh":
                raise InputError(f"op {op.name}: GELU ({op.attr('approx')}) has no spatial "
                                 "lowering (tanh only)")
            self._row(op, [x], [], y, n, rows,
                      "v: float32 = X0[i, j]\n"
                      "Y[i, j] = 0.5 * v * (1.0 + allo.tanh(0.7978845608028654 * "
                      "(v + 0.044715 * v * v * v)))")
        else:
            raise InputError(f"op {op.name}: SFU function {fn} has no spatial lowering")

    def _row(self, op: Op, xs: list[Tensor], vecs: list[Tensor], y: Tensor, n: int, rows: int,
             body: str) -> None:
        """An SFU process: for each row i, `body` (a template over X0.., V0.., Y; a plain
        expression is wrapped in `for j in range(n)`)."""
        unit = self.plans[op.name].unit
        fn = f"sfu_{unit}"
        params = [f"X{k}: {_ty(x)}" for k, x in enumerate(xs)] + \
            [f"V{k}: {_ty(v)}" for k, v in enumerate(vecs)] + [f"Y: {_ty(y)}"]
        if callable(body):
            inner = body(n)
        else:
            inner = "\n".join([f"        for j in range({n}):"] +
                              [" " * 12 + ln for ln in body.splitlines()])
        text = _sfu_def(fn, params, f"{op.name}: {op.fn} of {rows} rows of {n} on SFU {unit}.",
                        rows, inner, _row_buffers(inner, n))
        self._proc(op, fn, [x.name for x in xs] + [v.name for v in vecs] + [y.name], [y.name],
                   text)

    def rotary(self, op: Op) -> None:
        x = self.tensor(op.inputs[0])
        outs = op.outputs
        rot = str(op.attr("rotate", "qk" if len(outs) > 1 else "q"))
        _, h, seq, dh = outs[0].shape
        d, half = h * dh, dh // 2
        if x.layout != "mat" or x.shape != (seq, len(outs) * d) or dh % 2:
            raise InputError(f"op {op.name}: rotary of {x.shape} has no spatial lowering")
        from dlmsim.functional import rotary_tables

        theta = float(op.attr("theta", self.theta))
        cos, sin = (v.astype(np.float32) for v in rotary_tables(seq, dh, theta))
        ct = self._add(Tensor("c_rotary_cos", cos.shape, "const", value=cos), "rotary.cos")
        st = self._add(Tensor("c_rotary_sin", sin.shape, "const", value=sin), "rotary.sin")
        ys = [self.result(t, (seq, d), "heads", h, dh) for t in outs]
        lines = [f"        for j in range({len(outs) * d}):", "            xr[j] = X0[i, j]"]
        for k in range(len(outs)):
            o = f"{k * d} + hh * {dh}"
            if k < len(rot):
                lines += [f"        for hh, dd in allo.grid({h}, {half}):",
                          f"            a{k}: float32 = xr[{o} + dd]",
                          f"            b{k}: float32 = xr[{o} + {half} + dd]",
                          f"            Y{k}[i, hh * {dh} + dd] = a{k} * C[i, dd] - b{k} * S[i, dd]",
                          (f"            Y{k}[i, hh * {dh} + {half} + dd] = "
                           f"b{k} * C[i, {half} + dd] + a{k} * S[i, {half} + dd]")]
            else:
                lines += [f"        for j in range({d}):", f"            Y{k}[i, j] = xr[{k * d} + j]"]
        unit = self.plans[op.name].unit
        fn = f"sfu_{unit}"
        params = [f"X0: {_ty(x)}", f"C: {_ty(ct)}", f"S: {_ty(st)}"] + \
            [f"Y{k}: {_ty(y)}" for k, y in enumerate(ys)]
        text = _sfu_def(fn, params, f"{op.name}: rotary (rotate-half) of {rot} over {h} heads "
                        f"of {dh}, the rest copied, on SFU {unit}.", seq, "\n".join(lines),
                        f"    xr: {F32}[{len(outs) * d}]\n")
        self._proc(op, fn, [x.name, ct.name, st.name] + [y.name for y in ys],
                   [y.name for y in ys], text)


def _panel(n: int, k: int, c: int, beat: int, tile_bytes: float | None) -> int:
    """Columns of a weight panel: the widest multiple of the port beat (float32 words per
    beat: 16 on a 512-bit port) and of the array's width, at most MAX_PANEL_BEATS beats,
    that divides N and whose float32 [K, panel] takes at most half the unit's tile share
    (the rest: the row block and the outputs). Each panel is one array call, which reloads
    the row block's A tile: wider panels pay that less often. The array's width where no
    beat multiple fits."""
    cap = (tile_bytes or 2**19) / 2 / (4 * k)
    step = beat * c // math.gcd(beat, c)
    best = 0
    for p in range(step, min(n, MAX_PANEL_BEATS * beat) + 1, step):
        if n % p == 0 and p <= cap:
            best = p
    return best or c


def _sfu_def(fn: str, params: list[str], doc: str, rows: int, inner: str, buffers: str) -> str:
    """An SFU process's text: its buffers, then `inner` (indented for the row loop) for
    each of `rows` rows."""
    return (f"def {fn}({', '.join(params)}):\n    \"\"\"{doc}\"\"\"\n{buffers}"
            f"    for i in range({rows}):\n{inner}")


def _row_buffers(inner: str, n: int) -> str:
    return f"    xr: {F32}[{n}]\n" if "xr[" in inner else ""


def _layernorm(nvec: int, eps: float):
    def body(n: int) -> str:
        aff = " * V0[j]" if nvec >= 1 else ""
        aff += " + V1[j]" if nvec >= 2 else ""
        return f"""        s: float32 = 0.0
        for j in range({n}):
            v: float32 = X0[i, j]
            xr[j] = v
            s += v
        mean: float32 = s / {float(n)!r}
        q: float32 = 0.0
        for j in range({n}):
            dv: float32 = xr[j] - mean
            q += dv * dv
        rstd: float32 = 1.0 / allo.sqrt(q / {float(n)!r} + {eps!r})
        for j in range({n}):
            Y[i, j] = (xr[j] - mean) * rstd{aff}"""
    return body


def _softmax_body(n: int) -> str:
    return f"""        mx: float32 = -3.0e38
        for j in range({n}):
            v: float32 = X0[i, j]
            xr[j] = v
            if v > mx:
                mx = v
        s: float32 = 0.0
        for j in range({n}):
            e: float32 = allo.exp(xr[j] - mx)
            xr[j] = e
            s += e
        for j in range({n}):
            Y[i, j] = xr[j] / s"""


def _divides(op: Op, n: int, d: int, what: str, by: str) -> None:
    if n % d:
        raise InputError(f"op {op.name}: {n} {what} are not a multiple of the {d} {by} "
                         "(Allo's systolic template leaves the rest unwritten); choose "
                         "--seq-len or the array shape so they divide")


def _streams(g: _Gen) -> tuple[list[dict], list[dict]]:
    """The simulator's streams that the program can make hls::streams (module docstring),
    and those it keeps in a buffer with the reason. Duplicates a streamed output that other
    processes also read (adds a copy output to its producer)."""
    maker = {o: p for p in g.procs for o in p.outputs}
    done, kept = [], []
    depth = {(s.producer, s.consumer): s.depth_bytes for s in g.arch.streams.values()}
    by_op = {p.op: p for p in g.procs}
    for op in g.ops:
        p = by_op.get(op.name)
        for name, _rows, _slr in g.plans[op.name].streamed_inputs:
            t = g.alias.get(name, name)
            src = maker.get(t)
            why = ""
            if p is None:
                why = f"its consumer {op.name} is an address pattern, not a process"
            elif src is None:
                why = "its producer is not a process (an address pattern)"
            elif g.t[t].layout == "heads":
                why = "a head tensor: written and read head by head, by columns"
            elif p.label and p.args.index(t) == 1:
                why = "the array reads it as its second operand, whole per head"
            elif p.args.count(t) != 1:
                why = "the consumer reads it twice"
            if why:
                kept.append({"tensor": name, "producer": g.plans[src.op].unit if src else "",
                             "consumer": g.plans[op.name].unit, "reason": why})
                continue
            others = [q for q in g.procs if q is not p and t in q.args and q is not src]
            if others:
                _copy_output(g, src, t, others)
            d = depth.get((src.unit, p.unit), 0.0)
            done.append({"tensor": t, "producer": src.fn, "consumer": p.fn,
                         "units": [src.unit, p.unit], "depth": max(2, int(d // 4))})
    return done, kept


def _copy_output(g: _Gen, src: Process, t: str, readers: list[Process]) -> None:
    """The producer also writes `t` to `t`_copy, which `readers` read instead: its one
    store `OUT[...] = value` becomes `o = value; OUT[...] = o; OUT2[...] = o`."""
    orig = g.t[t]
    cp = Tensor(t + "_copy", orig.shape, "local", orig.layout, orig.h, orig.x, orig.value)
    g.t[cp.name] = cp
    out = src.store
    lines = src.text.splitlines()
    at = [i for i, ln in enumerate(lines) if ln.lstrip().startswith(out + "[")]
    if len(at) != 1 or len(src.outputs) != 1:
        raise InputError(f"op {src.op}: its streamed output {t} has other readers, and the "
                         "process cannot write a copy for them")
    ln = lines[at[0]]
    pad = ln[:len(ln) - len(ln.lstrip())]
    target, value = ln.lstrip().split(" = ", 1)
    lines[at[0]:at[0] + 1] = [f"{pad}o_: {F32} = {value}", f"{pad}{target} = o_",
                              f"{pad}{out}2{target[len(out):]} = o_"]
    lines[0] = lines[0].replace("):", f", {out}2: {_ty(cp)}):", 1)
    src.text = "\n".join(lines)
    src.args.insert(src.args.index(t) + 1, cp.name)
    src.outputs.append(cp.name)
    for q in readers:
        q.args = [cp.name if a == t else a for a in q.args]


def build_spatial(arch: Accelerator, trace: Trace, ops: list[Op], seed: int = 0
                  ) -> SpatialProgram:
    """The spatial program of `ops` (module docstring), with synthetic weights and inputs
    from `seed` and the fp32 reference value of every tensor."""
    from dlmsim.functional import execute
    from dlmsim.lower.reference import external_inputs, scope_weights

    if arch.bits.activations != "fp32" or arch.bits.weights != "fp32":
        raise InputError(f"arch {arch.name}: the spatial lowering generates float32 designs "
                         f"(this one is W{arch.bits.weights}A{arch.bits.activations})")
    rng = np.random.default_rng(seed)
    inputs = {t.name: rng.standard_normal(t.shape).astype(np.float32)
              for t in external_inputs(ops)}
    weights = scope_weights(ops, seed)
    env = execute(trace, weights, inputs, ops=ops)
    g = _Gen(arch, trace, ops, env, weights)
    g.run()
    out = g.t[g.alias[ops[-1].outputs[0].name]]
    out.kind = "output"
    streams, kept = _streams(g)
    for p in g.procs:
        _flatten(p, g.t)
    args = [n for n, t in g.t.items() if t.kind in ("input", "const", "weight")] + [out.name]
    return SpatialProgram(g.t, g.procs, args, streams, kept, out.name)


def spatial_ports(arch: Accelerator, prog: SpatialProgram) -> dict[str, list[str]]:
    """m_axi bundles of the top's pointers within the arch's ports: the activations in and
    out with the small parameters (norm gains, adaLN, rotary tables) on gmem0, each array
    unit's weights (and bias) on a port of their own, round robin over what is left."""
    n = max(1, arch.memory.ports)
    ports: dict[str, list[str]] = {"gmem0": []}
    own = {}
    for p in prog.processes:
        if p.label:
            for a in p.args:
                if prog.tensors[a].kind == "weight":
                    own[a] = p.unit
    units = list(dict.fromkeys(own.values()))
    for a in prog.top_args:
        if a in own and n > 1:
            b = f"gmem{1 + units.index(own[a]) % (n - 1)}"
            ports.setdefault(b, []).append(a)
        else:
            ports["gmem0"].append(a)
    return ports


def llvm_bytes(prog: SpatialProgram) -> int:
    """Memory the llvm check takes: on the CPU each array fold (tile) of a `systolic` call
    allocates its operand FIFOs, A_fifo [R, C+1, K] and B_fifo [C, R+1, K] of float32;
    Allo's CPU backend frees none of them, and run.py runs every process twice (alone, then
    in the top). Measured on mdlm-original-u280-fp32, MDLM-tiny: 2.2 GB at L 32 and 8.1 GB
    at L 128; this gives 2.2 and 7.97 GB."""
    from dlmsim.lower.lowering import LLVM_BASE_BYTES

    total = 0
    for p in prog.processes:
        if not p.label:
            continue
        m, k, n, r, c = (int(v) for v in p.instantiate[3:])
        calls = 1
        for loop in re.findall(r"for (?:mb|hh|pn) in range\((\d+)\)", p.text):
            calls *= int(loop)
        folds = calls * (m // r) * (n // c)
        total += folds * (r * (c + 1) + c * (r + 1)) * k * 4
    return LLVM_BASE_BYTES + 2 * total


def lower_spatial(arch: Accelerator, trace: Trace, ops: list[Op], out_dir, *, scope: str,
                  arch_source: str, workload_source: str, seed: int):
    """`dlmsim lower` of a spatial design: kernels.py (the processes, the top `block` and
    its schedule), run.py, vectors.npz (every tensor's expected value, `t.NAME`),
    manifest.json and README.md."""
    from dlmsim.lower.design import predict, warnings_for
    from dlmsim.lower.lowering import (
        DRIVER,
        TOLERANCE,
        Lowered,
        manifest_head,
        output_dir,
        write_lowered,
    )

    prog = build_spatial(arch, trace, ops, seed)
    manifest = manifest_head(arch, trace, scope, ops, arch_source, workload_source,
                             arch.array.policy)
    arrays = {f"t.{n}": (t.value.ravel() if t.flat else t.value).astype(np.float32)
              for n, t in prog.tensors.items()}
    regions = {u.name: u.region for u in arch.compute_units()}
    manifest.update({
        "program": {
            "kind": "spatial", "top": TOP, "kernels": "kernels.py", "driver": "run.py",
            "vectors": "vectors.npz",
            "design": "spatial: one process per op in one dataflow top, one labelled "
                      "systolic array per GEMM unit",
            "per_op_calls": False,
            "processes": [{"fn": p.fn, "op": p.op, "unit": p.unit, "region": regions[p.unit],
                           "args": p.args, "outputs": p.outputs, "label": p.label,
                           "instantiate": [str(v) for v in p.instantiate]}
                          for p in prog.processes],
            "arrays": {p.label: {"rows": int(p.instantiate[6]), "cols": int(p.instantiate[7]),
                                 "op": p.op} for p in prog.processes if p.label},
            "top_args": prog.top_args, "pointers": prog.top_args,
            "output": prog.output,
            "tensors": {n: {"shape": list(t.shape), "kind": t.kind, "layout": t.layout,
                            "flat": t.flat} for n, t in prog.tensors.items()},
            "streams": prog.streams, "not_streamed": prog.not_streamed,
            "regions": {n: {"units": list(r.units), "slr": r.slr}
                        for n, r in arch.regions.items()},
            "ports": spatial_ports(arch, prog), "port_bits": arch.memory.port_bits,
            "llvm_bytes": llvm_bytes(prog),
        },
        "numerics": {"activations": "float32", "weights": "float32", "gemm": "float32",
                     "sfu": "float32", "tolerance": TOLERANCE["fp32"], "seed": seed},
        "prediction": predict(arch, ops),
    })
    out = output_dir(out_dir)
    files = {"kernels.py": prog.kernel_text(_header(arch, trace, scope, prog)),
             "run.py": DRIVER.read_text(), "README.md": _readme(manifest)}
    lines = write_lowered(out, files, arrays, manifest)
    return Lowered(out, manifest, lines, warnings_for(arch, ops))


def _header(arch: Accelerator, trace: Trace, scope: str, prog: SpatialProgram) -> str:
    arrays = [p for p in prog.processes if p.label]
    desc = " ".join(arch.description.split())
    dev = arch.dev()
    return f'''"""Allo program of spatial design {arch.name} on {dev.name} ({dev.part}, \
{arch.clock_mhz:g} MHz), generated by `dlmsim lower`.

{desc}

Design: the top `{TOP}` runs {trace.model} ({scope}) as one dataflow region of
{len(prog.processes)} processes, one per op; {len(arrays)} labelled systolic arrays
({', '.join(f"{p.label} {p.instantiate[6]}x{p.instantiate[7]}" for p in arrays)}),
{len(prog.streams)} streams. See dlmsim/lower/spatial.py for its structure; run it with
run.py (README.md).
"""
'''


def _readme(m: dict) -> str:
    p, pred = m["program"], m["prediction"]
    rows = "\n".join(f"| `{x['fn']}` | `{x['op']}` | {x['unit']} | {x['region']} | "
                     f"{x['label'] or '-'} |" for x in p["processes"])
    st = "\n".join(f"- `{s['tensor']}`: {s['producer']} -> {s['consumer']}, depth "
                   f"{s['depth']} words" for s in p["streams"]) or "- none"
    kept = "\n".join(f"- `{s['tensor']}` ({s['producer']} -> {s['consumer']}): {s['reason']}"
                     for s in p["not_streamed"]) or "- none"
    return f"""# {m['workload']['name']} ({m['workload']['scope']}) on {m['arch']['name']} (spatial)

Generated by `dlmsim lower`. Allo needs Python >= 3.12 and an MLIR build; run these in that
environment (or let dlmsim do it: `dlmsim lower ... --run llvm,vhls --allo-python PATH`).

```sh
python run.py llvm   # CPU build of every process against its expected output, then the top
python run.py vhls   # compose the labelled arrays, streams, dataflow: hls/{p['top']}.cpp and the Vitis project
python run.py csyn   # Vitis HLS synthesis of that project (needs vitis_hls on PATH)
```

## Processes of `{p['top']}` (one dataflow region)

| function | op | unit | region | systolic label |
|---|---|---|---|---|
{rows}

Streams (`s.to`):
{st}

Streams of the simulated design kept in a buffer here:
{kept}

Regions and SLRs are the arch's ({', '.join(f"{n}: SLR {r['slr']}" for n, r in p['regions'].items())});
placing a region on an SLR is a Vitis link option, not in the HLS C++.
Memory ports (m_axi bundles, {p['port_bits']} bits): {'; '.join(f"{b}: {', '.join(a)}" for b, a in p['ports'].items())}.

Predicted by the simulator for exactly these ops: {pred['cycles']:.0f} cycles at
{pred['clock_mhz']:g} MHz ({pred['seconds'] * 1e6:.1f} us): {pred['definition']}.
"""
