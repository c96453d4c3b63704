"""Allo source text for a lowered scope: GEMM wrappers on the one array, SFU functions, top.

Conventions of the generated program (kernels.py):
- Every tensor of the trace becomes one array in a canonical layout with the same row-major
  element order: [B, L, D] -> [B*L, D], [B, H, L, X] -> [B*H, L, X], rank <= 2 as is.
- The design's array is ONE unlabelled `systolic[TyA, TyW, TyC, ROWS, KT, COLS, ROWS, COLS]`
  instance (identical parameters everywhere, so Allo makes one function: one array used in
  turn). Each GEMM has a wrapper `gemm_<op>` that walks its tiles in the order of the
  dataflow the simulator chose and calls that instance per tile. M and N are padded to
  multiples of ROWS and COLS, K to a multiple of KT (allo.md: nothing checks divisibility):
  weights are zero-padded on the host, activation tiles are zero-filled at the edges.
- SFU functions write into caller-allocated outputs (one per distinct function and shape,
  so two layer norms of one shape share one function, as they share the SFU).
"""

from __future__ import annotations

import math

from dlmsim.lower.design import GemmPlan, Types, ident
from dlmsim.workloads.ir import Op


def canon(shape: tuple[int, ...]) -> tuple[int, ...]:
    if len(shape) == 3:
        return (shape[0] * shape[1], shape[2])
    if len(shape) == 4:
        return (shape[0] * shape[1], shape[2], shape[3])
    return tuple(shape)


def dims(shape) -> str:
    return ", ".join(str(d) for d in shape)


def flt(x: float) -> str:
    return repr(float(x))


class Emitter:
    """Collects functions (deduplicated by name) and the top function's body."""

    def __init__(self, types: Types, rows: int, cols: int, kt: int, strip: str):
        self.t = types
        self.rows, self.cols, self.kt = rows, cols, kt
        self.strip = strip
        self.functions: dict[str, str] = {}
        self.body: list[str] = []
        self.args: list[dict] = []  # top arguments: name, key, dtype, shape, what
        self.sfu_used: dict[str, str] = {}  # function -> fn
        self.var: dict[str, str] = {}  # tensor name -> identifier in the top

    # ---- helpers ------------------------------------------------------------------------
    def name(self, tensor_name: str) -> str:
        return self.var.setdefault(tensor_name, ident(tensor_name, self.strip))

    def arg(self, key: str, ty: str, shape, what: str, np_dtype: str) -> str:
        var = ident(key, self.strip)
        if all(a["name"] != var for a in self.args):
            self.args.append({"name": var, "key": key, "type": ty, "shape": list(shape),
                              "dtype": np_dtype, "what": what})
        return var

    def tensor_in(self, t) -> str:
        """The identifier of an input tensor; an argument if nothing in the scope made it."""
        if t.name in self.var:
            return self.var[t.name]
        what = {"weight": "weight", "const": "constant"}.get(t.role, "input activation")
        v = self.arg(t.name, "float32", canon(t.shape), what, "float32")
        self.var[t.name] = v
        return v

    def local(self, t, ty: str = "float32") -> str:
        v = self.name(t.name)
        self.body.append(f"    {v}: {ty}[{dims(canon(t.shape))}]")
        return v

    def fn(self, name: str, text: str) -> str:
        self.functions.setdefault(name, text)
        return name

    # ---- GEMMs ----------------------------------------------------------------------------
    def gemm(self, g: GemmPlan, op: Op) -> None:
        t = self.t
        r, c, kt = self.rows, self.cols, self.kt
        _, kp, np_ = g.padded(r, c, kt)
        a_t, b_t, y_t = op.inputs[0], op.inputs[1], op.outputs[0]
        a = self.tensor_in(a_t)
        short = g.function[len("gemm_"):]
        self.body.append(f"    # {short}: {op.dims} on the {r}x{c} array, "
                         f"{'output' if g.dataflow == 'os' else 'weight'}-stationary"
                         + (f", {g.passes} passes (8-bit operand on {t.w_bits}-bit lanes)"
                            if g.passes > 1 else ""))
        # Operands as the array takes them.
        if t.integer:
            a_q = self._quant(a_t, a)
            if g.b_is_weight:
                b = self.arg(b_t.name, "TyW", (kp, np_), "weight codes (per-channel, padded)",
                             "w")
            else:
                b = self._quant(b_t, self.tensor_in(b_t))
        else:
            a_q = a
            if g.b_is_weight:
                b = self.arg(b_t.name, "float32", (kp, np_), "weight (padded)", "float32")
            else:
                b = self.tensor_in(b_t)
            scale = op.attr("scale")
            if scale is not None:  # pre-scale Q (allo.md: the library does not scale)
                qs = f"{a}_scaled"
                shp = canon(a_t.shape)
                f = self.fn(f"prescale_{'x'.join(map(str, shp))}",
                            _prescale(shp))
                self.body.append(f"    {qs}: float32[{dims(shp)}]")
                self.body.append(f"    {f}({a}, {flt(scale)}, {qs})")
                a_q = qs
        acc = f"{short}_acc"
        ty_c = "TyC" if t.integer else "float32"
        yshape = canon(y_t.shape)
        self.body.append(f"    {acc}: {ty_c}[{dims(yshape)}] = 0")
        self.fn(g.function, self._gemm_text(g, canon(a_t.shape), canon(b_t.shape), yshape))
        self.body.append(f"    {g.function}({a_q}, {b}, {acc})")
        # Back to the SFU domain.
        y = self.name(y_t.name)
        bias = op.inputs[2] if len(op.inputs) > 2 else None
        if t.integer:
            s = self.arg(f"{op.name}.out_scale", "float32",
                         (g.n,) if g.b_is_weight else (1,),
                         "dequantization scale s_a*s_w[n] (x scale)", "float32")
            bvar = self.tensor_in(bias) if bias is not None else None
            f = self.fn(_dq_name(yshape, g.b_is_weight, bvar is not None),
                        _dequant(yshape, g.b_is_weight, bvar is not None))
            self.body.append(f"    {y}: float32[{dims(yshape)}]")
            self.body.append(f"    {f}({acc}, {s}{', ' + bvar if bvar else ''}, {y})")
        elif bias is not None:
            bvar = self.tensor_in(bias)
            f = self.fn(f"add_bias_{'x'.join(map(str, yshape))}", _add_bias(yshape))
            self.body.append(f"    {y}: float32[{dims(yshape)}]")
            self.body.append(f"    {f}({acc}, {bvar}, {y})")
        else:
            self.var[y_t.name] = acc

    def _quant(self, t, var: str) -> str:
        shp = canon(t.shape)
        inv = self.arg(f"{t.name}.inv_scale", "float32", (1,),
                       "1 / activation scale (static, calibrated)", "float32")
        f = self.fn(f"quantize_{'x'.join(map(str, shp))}", _quantize(shp, self.t))
        q = f"{var}_q"
        if f"{q}:" not in "\n".join(self.body):
            self.body.append(f"    {q}: TyA[{dims(shp)}]")
            self.body.append(f"    {f}({var}, {inv}, {q})")
        return q

    def _gemm_text(self, g: GemmPlan, ashape, bshape, yshape) -> str:
        t = self.t
        r, c, kt = self.rows, self.cols, self.kt
        mp, kp, np_ = g.padded(r, c, kt)
        mt, nt, kn = mp // r, np_ // c, kp // kt
        batched = g.batch > 1 or len(ashape) == 3
        bi = "bh, " if batched else ""
        zero = "0" if t.integer else "0.0"
        ta = "TyA" if t.integer else "float32"
        tb = ("TyW" if g.b_is_weight else "TyA") if t.integer else "float32"
        tc = "TyC" if t.integer else "float32"
        split = t.integer and not g.b_is_weight and g.passes > 1
        b_full = f"[{dims(bshape)}]" if not g.b_is_weight else f"[{kp}, {np_}]"
        doc = (f'    """{g.op.name}: {f"{g.batch} x " if g.batch > 1 else ""}[{g.m}, {g.k}] x '
               f'[{g.k}, {g.n}] -> [{g.m}, {g.n}], tiles of {r}x{kt} by {kt}x{c} '
               f'(padded to [{mp}, {kp}] x [{kp}, {np_}]).\n\n'
               + ("    Output-stationary: each ROWS x COLS output block is finished (all K\n"
                  "    tiles accumulated) before the next one starts, so output rows leave\n"
                  "    early for the SFU.\n" if g.dataflow == "os" else
                  "    Weight-stationary: a KT x COLS weight fold stays on the array while\n"
                  "    every row block streams through; partial sums of the K folds are kept\n"
                  "    in the `psum` buffer and the output is complete only at the end.\n")
               + ("    The B operand is an 8-bit activation on a 4-bit-weight array: two\n"
                  "    passes, b = 16*hi + (lo + 8) with hi, lo in [-8, 7], plus 8*rowsum(a).\n"
                  if split else "") + '    """')
        lines = [(f"def {g.function}(A: {ta}[{dims(ashape)}], B: {tb}{b_full}, "
                 f"Y: {tc}[{dims(yshape)}]):"), doc,
                 f"    a: {ta}[ROWS, KT]",
                 ("    w: TyW[KT, COLS]" if t.integer else "    w: float32[KT, COLS]"),
                 f"    c: {tc}[ROWS, COLS]"]
        if split:
            lines += ["    w2: TyW[KT, COLS]", f"    c2: {tc}[ROWS, COLS]", f"    rs: {tc}[ROWS]"]
        ind = "    "
        if batched:
            lines.append(f"    for bh in range({g.batch}):")
            ind += "    "

        def load_a(ind):
            cond = []
            if g.m % r:
                cond.append(f"mt * ROWS + i < {g.m}")
            if g.k % kt:
                cond.append(f"kt * KT + k < {g.k}")
            src = f"A[{bi}mt * ROWS + i, kt * KT + k]"
            out = [f"{ind}for i, k in allo.grid(ROWS, KT):"]
            if cond:
                out += [f"{ind}    if {' and '.join(cond)}:", f"{ind}        a[i, k] = {src}",
                        f"{ind}    else:", f"{ind}        a[i, k] = {zero}"]
            else:
                out.append(f"{ind}    a[i, k] = {src}")
            if split:
                out += [f"{ind}for i2 in range(ROWS):", f"{ind}    rs[i2] = 0",
                        f"{ind}    for k2 in range(KT):", f"{ind}        rs[i2] += a[i2, k2]"]
            return out

        def load_w(ind):
            if g.b_is_weight:
                src = "B[kt * KT + k, nt * COLS + j]"
                return [f"{ind}for k, j in allo.grid(KT, COLS):", f"{ind}    w[k, j] = {src}"]
            src = (f"B[{bi}nt * COLS + j, kt * KT + k]" if g.transpose_b
                   else f"B[{bi}kt * KT + k, nt * COLS + j]")
            cond = []
            if g.k % kt:
                cond.append(f"kt * KT + k < {g.k}")
            if g.n % c:
                cond.append(f"nt * COLS + j < {g.n}")
            body = ([f"{ind}        v: TyA = {src}", f"{ind}        w[k, j] = v >> 4",
                     f"{ind}        w2[k, j] = v - (v >> 4) * 16 - 8"] if split
                    else [f"{ind}        w[k, j] = {src}"])
            out = [f"{ind}for k, j in allo.grid(KT, COLS):"]
            if cond:
                out += [f"{ind}    if {' and '.join(cond)}:"] + body + [f"{ind}    else:",
                                                                        f"{ind}        w[k, j] = {zero}"]
                if split:
                    out.append(f"{ind}        w2[k, j] = -8")  # lo + 8 == 0: a zero operand
            else:
                out += [s[4:] for s in body]
            return out

        call = ["systolic[TyA, TyW, TyC, ROWS, KT, COLS, ROWS, COLS](a, w, c)" if t.integer
                else "systolic[float32, float32, float32, ROWS, KT, COLS, ROWS, COLS](a, w, c)"]
        if split:
            call.append("systolic[TyA, TyW, TyC, ROWS, KT, COLS, ROWS, COLS](a, w2, c2)")
        add = ("c[i, j] * 16 + c2[i, j] + rs[i] * 8" if split else "c[i, j]")

        def store(ind, src):
            cond = []
            if g.m % r:
                cond.append(f"mt * ROWS + i < {g.m}")
            if g.n % c:
                cond.append(f"nt * COLS + j < {g.n}")
            dst = f"Y[{bi}mt * ROWS + i, nt * COLS + j]"
            out = [f"{ind}for i, j in allo.grid(ROWS, COLS):"]
            if cond:
                out += [f"{ind}    if {' and '.join(cond)}:", f"{ind}        {dst} = {src}"]
            else:
                out.append(f"{ind}    {dst} = {src}")
            return out

        if g.dataflow == "os":
            lines.insert(5, f"    acc: {tc}[ROWS, COLS]")
            lines += [f"{ind}for mt in range({mt}):", f"{ind}    for nt in range({nt}):",
                      f"{ind}        for i, j in allo.grid(ROWS, COLS):",
                      f"{ind}            acc[i, j] = {zero}",
                      f"{ind}        for kt in range({kn}):"]
            i3 = ind + "            "
            lines += load_a(i3) + load_w(i3) + [f"{i3}{x}" for x in call]
            lines += [f"{i3}for i, j in allo.grid(ROWS, COLS):", f"{i3}    acc[i, j] += {add}"]
            lines += store(ind + "        ", "acc[i, j]")
        else:
            lines.insert(5, f"    psum: {tc}[{mp}, COLS]")
            lines += [f"{ind}for nt in range({nt}):",
                      f"{ind}    for p, j in allo.grid({mp}, COLS):",
                      f"{ind}        psum[p, j] = {zero}",
                      f"{ind}    for kt in range({kn}):"]
            i2 = ind + "        "
            lines += load_w(i2) + [f"{i2}for mt in range({mt}):"]
            i3 = i2 + "    "
            lines += load_a(i3) + [f"{i3}{x}" for x in call]
            lines += [f"{i3}for i, j in allo.grid(ROWS, COLS):",
                      f"{i3}    psum[mt * ROWS + i, j] += {add}"]
            lines += [f"{ind}    for mt in range({mt}):"]
            lines += store(ind + "        ", "psum[mt * ROWS + i, j]")
        return "\n".join(lines) + "\n"

    # ---- SFU ops ----------------------------------------------------------------------
    def sfu(self, op: Op, eps: float) -> None:
        fn = op.fn
        x_t = op.inputs[0]
        xs = canon(x_t.shape)
        ins = [self.tensor_in(t) for t in op.inputs]
        self.body.append(f"    # {ident(op.name, self.strip)}: {fn} on the SFU")
        outs = [self.local(t) for t in op.outputs]
        tag = "x".join(map(str, xs))
        if fn in ("layernorm", "rmsnorm"):
            has_b = len(op.inputs) > 2
            name = f"{fn}_{tag}" + ("_affine" if has_b else "")
            text = _norm(name, fn, xs, has_b, eps)
        elif fn == "modulate":
            b, seq, d = x_t.shape
            ch, sc, sh = (int(op.attr(k)) for k in ("chunks", "scale", "shift"))
            name = f"modulate_{tag}_c{ch}s{sc}h{sh}"
            text = _modulate(name, b, seq, d, ch, sc, sh)
        elif fn == "residual":
            if len(op.inputs) > 2:
                b, seq, d = x_t.shape
                ch, gate = int(op.attr("chunks")), int(op.attr("gate"))
                name = f"residual_gated_{tag}_c{ch}g{gate}"
                text = _residual_gated(name, b, seq, d, ch, gate)
            else:
                name = f"residual_{tag}"
                text = _elementwise(name, xs, 2, "X0[i, j] + X1[i, j]")
        elif fn == "gelu":
            form = str(op.attr("approx", "tanh"))
            name = f"gelu_{form}_{tag}"
            text = _gelu(name, xs, form)
        elif fn == "silu":
            name = f"silu_{tag}"
            text = _elementwise(name, xs, 1, "X0[i, j] / (1.0 + allo.exp(-X0[i, j]))")
        elif fn == "swiglu":
            name = f"swiglu_{tag}"
            text = _elementwise(name, xs, 2,
                                "X0[i, j] / (1.0 + allo.exp(-X0[i, j])) * X1[i, j]")
        elif fn == "softmax":
            name = f"softmax_{tag}"
            text = _softmax(name, xs)
        elif fn == "rotary":
            b, seq, _ = x_t.shape
            _, h, _, dh = op.outputs[0].shape
            nrot = len(str(op.attr("rotate", "qk" if len(op.outputs) > 1 else "q")))
            name = f"rotary_{tag}_{len(op.outputs)}p{nrot}r"
            text = _rotary(name, b, seq, h, dh, len(op.outputs), nrot)
        elif fn == "split_heads":
            b, h, seq, dh = op.outputs[0].shape
            name = f"split_heads_{tag}"
            text = _split_heads(name, b, seq, h, dh)
        elif fn == "merge_heads":
            b, h, seq, dh = x_t.shape
            name = f"merge_heads_{tag}"
            text = _merge_heads(name, b, seq, h, dh)
        else:  # design.scope_ops refuses these before we get here
            raise ValueError(f"no SFU lowering for {fn}")
        self.fn(name, text)
        self.sfu_used[name] = fn
        self.body.append(f"    {name}({', '.join(ins + outs)})")


def _dq_name(shape, per_channel: bool, bias: bool) -> str:
    return (f"dequantize_{'x'.join(map(str, shape))}" + ("" if per_channel else "_scalar")
            + ("_bias" if bias else ""))


def _idx(shape, names=("i", "j", "k")) -> tuple[str, str]:
    n = names[:len(shape)]
    return ", ".join(n), f"allo.grid({dims(shape)})"


def _quantize(shape, t: Types) -> str:
    v, grid = _idx(shape)
    q = float(2 ** (int(t.a_bits) - 1) - 1)
    return (f"def quantize_{'x'.join(map(str, shape))}(X: float32[{dims(shape)}], "
            f"inv_s: float32[1], Q: TyA[{dims(shape)}]):\n"
            f'    """Activation codes: x / s rounded half away from zero (+-0.5, then the\n'
            f'    cast truncates toward zero), clamped to +-{q:g}."""\n'
            f"    for {v} in {grid}:\n"
            f"        u: float32 = X[{v}] * inv_s[0]\n"
            f"        if u >= 0.0:\n            u = u + 0.5\n        else:\n"
            f"            u = u - 0.5\n"
            f"        if u > {q}:\n            u = {q}\n"
            f"        if u < {-q}:\n            u = {-q}\n"
            f"        Q[{v}] = u\n")


def _dequant(shape, per_channel: bool, bias: bool) -> str:
    v, grid = _idx(shape)
    last = v.split(", ")[-1]
    s = f"s[{last}]" if per_channel else "s[0]"
    n = shape[-1]
    sig = (f"def {_dq_name(shape, per_channel, bias)}(Y: TyC[{dims(shape)}], "
           f"s: float32[{n if per_channel else 1}], "
           + (f"bias: float32[{n}], " if bias else "") + f"Z: float32[{dims(shape)}]):\n")
    expr = f"float(Y[{v}]) * {s}" + (f" + bias[{last}]" if bias else "")
    return sig + f"    for {v} in {grid}:\n        Z[{v}] = {expr}\n"


def _add_bias(shape) -> str:
    v, grid = _idx(shape)
    last = v.split(", ")[-1]
    return (f"def add_bias_{'x'.join(map(str, shape))}(Y: float32[{dims(shape)}], "
            f"bias: float32[{shape[-1]}], Z: float32[{dims(shape)}]):\n"
            f"    for {v} in {grid}:\n        Z[{v}] = Y[{v}] + bias[{last}]\n")


def _prescale(shape) -> str:
    v, grid = _idx(shape)
    return (f"def prescale_{'x'.join(map(str, shape))}(X: float32[{dims(shape)}], "
            f"scale: float32, Z: float32[{dims(shape)}]):\n"
            f"    for {v} in {grid}:\n        Z[{v}] = X[{v}] * scale\n")


def _elementwise(name, shape, n_in, expr) -> str:
    ins = ", ".join(f"X{i}: float32[{dims(shape)}]" for i in range(n_in))
    v, grid = _idx(shape, ("i", "j", "k")) if len(shape) == 2 else _idx(shape)
    return (f"def {name}({ins}, Z: float32[{dims(shape)}]):\n"
            f"    for {v} in {grid}:\n        Z[{v}] = {expr}\n")


def _norm(name, fn, shape, has_b, eps) -> str:
    m, d = shape
    sig = (f"def {name}(X: float32[{m}, {d}], g: float32[{d}], "
           + (f"b: float32[{d}], " if has_b else "") + f"Z: float32[{m}, {d}]):\n")
    lines = [sig.rstrip("\n"), f"    for i in range({m}):"]
    if fn == "layernorm":
        lines += ["        mu: float32 = 0.0", f"        for j0 in range({d}):",
                  "            mu += X[i, j0]", f"        mu = mu / {float(d)}",
                  "        var: float32 = 0.0", f"        for j1 in range({d}):",
                  "            dv: float32 = X[i, j1] - mu", "            var += dv * dv",
                  f"        var = var / {float(d)}",
                  f"        den: float32 = allo.sqrt(var + {flt(eps)})",
                  f"        for j2 in range({d}):",
                  "            Z[i, j2] = (X[i, j2] - mu) / den * g[j2]"
                  + (" + b[j2]" if has_b else "")]
    else:
        lines += ["        ms: float32 = 0.0", f"        for j0 in range({d}):",
                  "            ms += X[i, j0] * X[i, j0]", f"        ms = ms / {float(d)}",
                  f"        den: float32 = allo.sqrt(ms + {flt(eps)})",
                  f"        for j2 in range({d}):", "            Z[i, j2] = X[i, j2] / den * g[j2]"]
    return "\n".join(lines) + "\n"


def _modulate(name, b, seq, d, ch, sc, sh) -> str:
    return (f"def {name}(X: float32[{b * seq}, {d}], mod: float32[{b}, {ch * d}], "
            f"Z: float32[{b * seq}, {d}]):\n"
            f'    """x * (1 + scale) + shift, scale/shift = adaLN chunks {sc}/{sh} of {ch}."""\n'
            f"    for bi, li, j in allo.grid({b}, {seq}, {d}):\n"
            f"        Z[bi * {seq} + li, j] = X[bi * {seq} + li, j] * (1.0 + mod[bi, {sc * d} + j])"
            f" + mod[bi, {sh * d} + j]\n")


def _residual_gated(name, b, seq, d, ch, gate) -> str:
    return (f"def {name}(X: float32[{b * seq}, {d}], Y: float32[{b * seq}, {d}], "
            f"mod: float32[{b}, {ch * d}], Z: float32[{b * seq}, {d}]):\n"
            f'    """x + gate * y, gate = adaLN chunk {gate} of {ch}."""\n'
            f"    for bi, li, j in allo.grid({b}, {seq}, {d}):\n"
            f"        Z[bi * {seq} + li, j] = X[bi * {seq} + li, j] + mod[bi, {gate * d} + j]"
            f" * Y[bi * {seq} + li, j]\n")


def _gelu(name, shape, form) -> str:
    m, n = shape
    head = f"def {name}(X: float32[{m}, {n}], Z: float32[{m}, {n}]):\n"
    if form == "erf":
        return head + (
            '    """0.5 x (1 + erf(x / sqrt 2)), erf by Abramowitz & Stegun 7.1.26."""\n'
            f"    for i, j in allo.grid({m}, {n}):\n"
            f"        u: float32 = X[i, j] * {flt(1 / math.sqrt(2))}\n"
            "        a: float32 = u\n        if u < 0.0:\n            a = -u\n"
            "        t: float32 = 1.0 / (1.0 + 0.3275911 * a)\n"
            "        p: float32 = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t"
            " * (-1.453152027 + t * 1.061405429))))\n"
            "        e: float32 = 1.0 - p * allo.exp(-a * a)\n"
            "        if u < 0.0:\n            e = -e\n"
            "        Z[i, j] = 0.5 * X[i, j] * (1.0 + e)\n")
    return head + (
        '    """0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""\n'
        f"    for i, j in allo.grid({m}, {n}):\n"
        "        x: float32 = X[i, j]\n"
        f"        Z[i, j] = 0.5 * x * (1.0 + allo.tanh({flt(math.sqrt(2 / math.pi))} * "
        "(x + 0.044715 * x * x * x)))\n")


def _softmax(name, shape) -> str:
    *lead, n = shape
    grid = ", ".join(str(d) for d in lead)
    v = ", ".join(["bh", "i"][-len(lead):]) if len(lead) <= 2 else None
    return (f"def {name}(X: float32[{dims(shape)}], Z: float32[{dims(shape)}]):\n"
            '    """Row softmax in explicit loops: max, exp and sum, divide (the two-pass\n'
            '    SFU form; a fixed-point design swaps allo.exp for its table/polynomial)."""\n'
            f"    for {v} in allo.grid({grid}):\n"
            "        mx: float32 = -3.0e38\n"
            f"        for j0 in range({n}):\n"
            f"            if X[{v}, j0] > mx:\n                mx = X[{v}, j0]\n"
            "        sm: float32 = 0.0\n"
            f"        for j1 in range({n}):\n"
            f"            e: float32 = allo.exp(X[{v}, j1] - mx)\n"
            f"            Z[{v}, j1] = e\n            sm += e\n"
            f"        for j2 in range({n}):\n"
            f"            Z[{v}, j2] = Z[{v}, j2] / sm\n")


def _rotary(name, b, seq, h, dh, parts, nrot) -> str:
    d = h * dh
    half = dh // 2
    outs = ", ".join(f"O{p}: float32[{b * h}, {seq}, {dh}]" for p in range(parts))
    lines = [(f"def {name}(X: float32[{b * seq}, {parts * d}], cos: float32[{seq}, {dh}], "
              f"sin: float32[{seq}, {dh}], {outs}):"),
             (f'    """Split [B*L, {parts}*D] into {parts} x [B*H, L, dh] (columns ordered part,'
             f' head, d);\n    rotate the first {nrot} (rotate-half: x cos + rotate_half(x)'
             ' sin)."""'),
             f"    for bi, hi, li, di in allo.grid({b}, {h}, {seq}, {dh}):"]
    src = f"X[bi * {seq} + li, {{p}} * {d} + hi * {dh} + "
    for p in range(parts):
        dst = f"O{p}[bi * {h} + hi, li, di]"
        x = src.format(p=p) + "di]"
        if p < nrot:
            lines += [f"        r{p}: float32 = 0.0",
                      f"        if di < {half}:",
                      f"            r{p} = -{src.format(p=p)}di + {half}]",
                      "        else:", f"            r{p} = {src.format(p=p)}di - {half}]",
                      f"        {dst} = {x} * cos[li, di] + r{p} * sin[li, di]"]
        else:
            lines.append(f"        {dst} = {x}")
    return "\n".join(lines) + "\n"


def _split_heads(name, b, seq, h, dh) -> str:
    return (f"def {name}(X: float32[{b * seq}, {h * dh}], Z: float32[{b * h}, {seq}, {dh}]):\n"
            f"    for bi, hi, li, di in allo.grid({b}, {h}, {seq}, {dh}):\n"
            f"        Z[bi * {h} + hi, li, di] = X[bi * {seq} + li, hi * {dh} + di]\n")


def _merge_heads(name, b, seq, h, dh) -> str:
    return (f"def {name}(X: float32[{b * h}, {seq}, {dh}], Z: float32[{b * seq}, {h * dh}]):\n"
            f"    for bi, hi, li, di in allo.grid({b}, {h}, {seq}, {dh}):\n"
            f"        Z[bi * {seq} + li, hi * {dh} + di] = X[bi * {h} + hi, li, di]\n")
