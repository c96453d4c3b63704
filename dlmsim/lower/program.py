"""The lowered program: the scope's ops as descriptors for `accel`, and the DRAM it runs on.

`build_program(arch, trace, ops, seed)` places every tensor of the scope in the design's
three DRAM buffers and turns every op into one call of the kernel (kernel.py):

- `act` (activation codes, or float32 for fp32 designs): every activation as a row-major
  matrix [rows, cols] whose base and row stride are whole port beats (WE elements), so every
  row is read in full-width bursts. A [B, L, D] tensor is the matrix [B*L, D]. Head tensors
  [B, H, L, X] are views of a [B*L, H*X] matrix (q/k/v after split_heads or rotary, the
  attention output before merge_heads): split_heads and merge_heads are address patterns,
  not ops, as the simulator assumes. Attention scores and probabilities [B, H, L, L] are
  matrices [B*H*L, L] (z-major).
- `wts`: each linear weight as codes [K, N] packed PACK adjacent columns per word.
- `prm` (float32): scales, biases, norm gains, rotary tables, adaLN vectors.

Activation scales are static, per tensor: max |x| of an fp32 run of the same inputs over the
largest code (calibrated quantization). Weights are per output channel. A view shares the
scale of the matrix it views.

Each GEMM follows the simulator's mapping of the scope: its loop order and panel or row-block
size (`Mapper.tilings`), on an OS array (WS GEMMs are not lowered: see `lowered_arch`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dlmsim.arch import Accelerator, macs_per_dsp
from dlmsim.errors import InputError
from dlmsim.lower.kernel import DESC, SFU_CODES, KernelSpec
from dlmsim.lower.reference import act_scale, external_inputs, quantize, scope_weights, weight_codes
from dlmsim.workloads.ir import Op, Trace
from dlmsim.workloads.vocab import LAYOUT_FNS

PRM_ONE = 0  # prm[0] = 1.0: the unit scale


@dataclass
class Place:
    """A tensor in `act`: element (row, col) at base + row * rs + col0 + col."""

    base: int
    rows: int
    cols: int
    rs: int
    col0: int = 0
    kind: str = "mat"  # "mat", "heads" (a [B*L, H*X] matrix seen as [B, H, L, X]), "zmajor"
    b: int = 1
    h: int = 1
    seq: int = 1
    x: int = 0  # head width
    scale_at: int = PRM_ONE  # prm index of the scale
    inv_at: int = PRM_ONE  # prm index of 1 / scale

    def zstrides(self) -> tuple[int, int, int]:
        """(base + col0, stride per batch, stride per head) of a batched operand, z = b*H+h."""
        if self.kind == "heads":
            return self.base + self.col0, self.seq * self.rs, self.x
        if self.kind == "zmajor":
            return self.base, self.h * self.seq * self.rs, self.seq * self.rs
        return self.base + self.col0, 0, 0


@dataclass
class Program:
    spec: KernelSpec
    instrs: list[dict]  # descriptor values by DESC name, plus "name" (the op) and "out"
    act: np.ndarray  # initial contents: inputs placed, the rest zero
    wts: np.ndarray
    prm: np.ndarray
    places: dict[str, Place]
    output: str  # the scope's output tensor
    fp32_env: dict[str, np.ndarray]  # the fp32 reference run (tensor name -> array)
    notes: list[str] = field(default_factory=list)


def lowered_arch(arch: Accelerator) -> Accelerator:
    """The design as lowered: an output-stationary array (SDA's hybrid OS/WS PE is not
    generated yet, so a design whose policy may pick WS is lowered and predicted with
    `policy: os`) whose PEs run one tile after another without a gap (`fold_overlap:
    full`: the next tile's operands follow the last ones into the PE)."""
    if arch.is_spatial:
        raise InputError(f"arch {arch.name} is a spatial design: it is lowered by "
                         "dlmsim.lower.spatial, not as the temporal accelerator")
    if "os" not in arch.array.dataflows:
        raise InputError(f"arch {arch.name}: the lowering generates an output-stationary "
                         "array; this design supports only "
                         f"{', '.join(arch.array.dataflows)}")
    if arch.array.policy == "os" and arch.array.fold_overlap == "full":
        return arch
    array = arch.array.model_copy(update={"policy": "os", "fold_overlap": "full"})
    return arch.model_copy(update={"array": array})


def pack_of(arch: Accelerator) -> int:
    """Products per PE: 2 where the design packs two products into one DSP (8x8 with a
    shared operand, W4A8; arch.macs_per_dsp), else 1."""
    b = arch.bits
    if b.weights == "fp32":
        return 1
    fam = arch.dev().dsp_family
    return 2 if macs_per_dsp(b.weights, b.activations, fam) >= 2 and arch.array.cols % 2 == 0 \
        else 1


def _beat(arch: Accelerator) -> int:
    bits = 32 if arch.bits.activations == "fp32" else int(arch.bits.activations)
    return max(1, arch.memory.port_bits // bits)


class _Builder:
    def __init__(self, arch: Accelerator, trace: Trace, ops: list[Op]):
        self.arch, self.trace, self.ops = arch, trace, ops
        self.fp32 = arch.bits.activations == "fp32"
        self.r, self.c = arch.array.rows, arch.array.cols
        self.pack = pack_of(arch)
        self.we = _beat(arch)
        self.act_top = 0
        self.prm: list[float] = [1.0]
        self.wchunks: list[np.ndarray] = []
        self.wtop = 0
        self.places: dict[str, Place] = {}
        self.instrs: list[dict] = []
        self.inputs: list[tuple[Place, np.ndarray]] = []
        self.prm_at: dict[str, int] = {}
        self.fns: set[str] = set()
        self.env: dict[str, np.ndarray] = {}
        self.weights: dict[str, np.ndarray] = {}

    # ---- memory ----------------------------------------------------------------------------
    def _align(self, n: int) -> int:
        return -(-n // self.we) * self.we

    def alloc(self, rows: int, cols: int, **kw) -> Place:
        rs = self._align(cols)
        p = Place(base=self.act_top, rows=rows, cols=cols, rs=rs, **kw)
        self.act_top += self._align(rows * rs)
        return p

    def prm_add(self, values) -> int:
        at = len(self.prm)
        self.prm.extend(float(v) for v in np.ravel(values))
        return at

    def set_scale(self, p: Place, max_abs: float) -> None:
        s, inv = (1.0, 1.0) if self.fp32 else act_scale(max_abs, self.arch.bits.activations)
        p.scale_at = self.prm_add([s])
        p.inv_at = self.prm_add([inv])

    def wts_add(self, words: np.ndarray) -> int:
        """Append words to `wts`; returns their base."""
        self.wchunks.append(words.reshape(-1))
        base = self.wtop
        self.wtop += words.size
        return base

    def tile_words(self, words: np.ndarray, pw: int) -> np.ndarray:
        """[K, N/PACK] words in the order fetch_b streams them on a panel's first use: per
        panel of pw columns, per column group of C, per k, the C/PACK words of the group
        (panels padded with zero words to full width)."""
        k, nw = words.shape
        pwp, cp = pw // self.pack, self.c // self.pack
        npan = -(-nw // pwp)
        full = np.zeros((k, npan * pwp), words.dtype)
        full[:, :nw] = words
        return full.reshape(k, npan, pwp // cp, cp).transpose(1, 2, 0, 3)

    # ---- tensors -------------------------------------------------------------------------
    def place_input(self, t, value: np.ndarray) -> Place:
        """An activation the scope reads but does not produce: codes in `act`."""
        p = self.mat_for(t)
        self.set_scale(p, float(np.abs(value).max()) if value.size else 0.0)
        self.inputs.append((p, value))
        self.places[t.name] = p
        return p

    def mat_for(self, t) -> Place:
        """A fresh matrix for tensor t: [..., L, D] as [rows, D]; 4-D head tensors as the
        [B*L, H*X] matrix they view."""
        if len(t.shape) == 4:
            b, h, seq, x = t.shape
            return self.alloc(b * seq, h * x, kind="heads", b=b, h=h, seq=seq, x=x)
        cols = t.shape[-1]
        return self.alloc(t.numel // cols, cols)

    def get(self, t) -> Place:
        if t.name not in self.places:
            if t.role not in ("activation", "cache"):
                raise InputError(f"tensor {t.name} ({t.role}) cannot be an array operand")
            self.place_input(t, self.env[t.name])
        return self.places[t.name]

    def vector(self, t) -> int:
        """A tensor the SFU reads as parameters (norm gains, adaLN vectors, rotary tables):
        float32 in `prm`."""
        key = "prm:" + t.name
        if key not in self.prm_at:
            src = self.weights.get(t.name)
            if src is None:
                src = self.env[t.name]
            self.prm_at[key] = self.prm_add(np.asarray(src, np.float32))
        return self.prm_at[key]

    def half_table(self, op: Op, t, dh: int) -> int:
        """A rotary table [L, dh] in `prm` as its first halves [L, dh/2]: rotate-half pairs
        element d with d + dh/2 at one angle (functional.rotary_tables), so the halves are
        equal and sfu_c reads half the bytes."""
        key = "prm-half:" + t.name
        if key not in self.prm_at:
            src = self.weights.get(t.name)
            v = np.asarray(self.env[t.name] if src is None else src, np.float32).reshape(-1, dh)
            if not np.array_equal(v[:, :dh // 2], v[:, dh // 2:]):
                raise InputError(f"op {op.name}: rotary table {t.name} has halves that "
                                 "differ (not rotate-half's repeated angles): no lowering")
            self.prm_at[key] = self.prm_add(v[:, :dh // 2])
        return self.prm_at[key]

    def out(self, t, place: Place) -> Place:
        v = self.env[t.name]
        self.set_scale(place, float(np.abs(v).max()) if v.size else 0.0)
        self.places[t.name] = place
        return place

    # ---- ops -----------------------------------------------------------------------------
    def desc(self, name: str, out: str, **kw) -> None:
        d = dict.fromkeys(DESC, 0)
        d.update(Z=1, H=1, nout=1, nin=1, mtr=self.r, pw=self.c, passes=1, bias=-1, p1=-1,
                 seq=1, dh=1, sa=PRM_ONE, sb=PRM_ONE, sy=PRM_ONE)
        d.update(kw)
        d["name"], d["out"] = name, out
        self.instrs.append(d)

    def gemm(self, op: Op, plan, tiling) -> None:
        a_t, b_t, y_t = op.inputs[0], op.inputs[1], op.outputs[0]
        z, m, k, n = op.gemm_dims
        a = self.get(a_t)
        a0, a_zb, a_zh = a.zstrides()
        # Loop order and tile sizes: the simulator's (mapping.Tiling), with panels (row
        # groups) of equal width, at most the mapping's: the same count, and no panel of
        # padding columns at the end.
        up = lambda x, q: -(-x // q) * q
        if tiling.order == "weight_panel":
            npan = -(-n // max(1, tiling.cols))
            pw = up(-(-n // npan), self.c)
            order, mtr = 0, self.r
            nout, nin = -(-n // pw), -(-m // self.r)
        else:  # output_row; output_block = output_row with one row block
            ngrp = -(-m // max(1, tiling.rows))
            pw, mtr = self.c, up(-(-m // ngrp), self.r)
            order, nout, nin = 1, -(-m // mtr), -(-n // self.c)
        kw = {}
        if b_t.role == "weight":
            w = np.asarray(self.weights[b_t.name], np.float32)
            w = w.T if op.attr("transpose_b") else w  # [K, N]
            words, scales = self.weight_words(w)
            wb = self.wts_add(self.tile_words(words, pw))
            kw.update(b0=wb, b_rs=self.c // self.pack, b_src=0, sb=self.prm_add(scales),
                      bstep=1)
            if len(op.inputs) > 2:
                kw["bias"] = self.vector(op.inputs[2])
        else:
            b = self.get(b_t)
            b0, b_zb, b_zh = b.zstrides()
            trans = bool(op.attr("transpose_b"))
            factor = np.float32(self.prm[b.scale_at]) * np.float32(op.attr("scale", 1.0))
            kw.update(b0=b0, b_zb=b_zb, b_zh=b_zh, b_rs=b.rs, b_src=1, b_t=int(trans),
                      sb=self.prm_add([factor]), bstep=0,
                      passes=1 if self.fp32 or self.pack == 1 or self.arch.bits.weights != 4
                      else 2)
        if z > 1:  # attention: z = b * H + h over the head views
            bsz, heads = y_t.shape[0], y_t.shape[1]
            if kw["b_src"] == 1 and kw["b_t"]:
                y = self.alloc(z * m, n, kind="zmajor", b=bsz, h=heads, seq=m, x=n)
            else:
                y = self.alloc(bsz * m, heads * n, kind="heads", b=bsz, h=heads, seq=m, x=n)
            kw["H"] = heads
        else:
            y = self.mat_for(y_t)
        self.out(y_t, y)
        y0, y_zb, y_zh = y.zstrides()
        self.desc(op.name, y_t.name, op=0, M=m, K=k, N=n, Z=z, order=order, nout=nout,
                  nin=nin, mtr=mtr, pw=pw, a0=a0, a_zb=a_zb, a_zh=a_zh, a_rs=a.rs, y0=y0,
                  y_zb=y_zb, y_zh=y_zh, y_rs=y.rs, sa=a.scale_at, sy=y.inv_at, **kw)

    def weight_words(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-output-channel codes of w [K, N], packed PACK adjacent columns per word;
        and the channel scales."""
        k, n = w.shape
        if self.fp32:
            return w.astype(np.float32), np.ones(n, np.float32)
        codes, scales = weight_codes(w, self.arch.bits.weights)
        if self.pack == 1:
            dt = np.int8 if int(self.arch.bits.weights) <= 8 else np.int16
            return codes.astype(dt), scales
        wb = int(self.arch.bits.weights)
        if n % 2:
            codes = np.concatenate([codes, np.zeros((k, 1), codes.dtype)], axis=1)
        lo, hi = codes[:, 0::2].astype(np.int64), codes[:, 1::2].astype(np.int64)
        word = (hi << wb) | (lo & ((1 << wb) - 1))
        bits = 2 * wb
        word = np.where(word >= 1 << (bits - 1), word - (1 << bits), word)  # signed word
        return word.astype(np.int8 if bits == 8 else np.int16), scales

    def sfu(self, op: Op) -> None:
        fn = op.fn
        if fn == "rotary":
            self.rotary(op)
            return
        if fn in LAYOUT_FNS:
            self.layout(op)
            return
        x_t, y_t = op.inputs[0], op.outputs[0]
        x = self.get(x_t)
        if x.kind != "mat" and fn != "softmax":
            raise InputError(f"op {op.name}: {fn} on a head view has no lowering")
        rows, n = x.rows, x.cols
        if x.kind == "zmajor":
            rows, n = x.b * x.h * x.seq, x.x
        kw: dict = {"a0": x.base + x.col0, "a_rs": x.rs, "sa": x.scale_at}
        code = fn
        if fn in ("layernorm", "rmsnorm"):
            from dlmsim.functional import LN_EPS, family_of

            kw["p0"] = self.vector(op.inputs[1])
            if len(op.inputs) > 2:
                kw["p1"] = self.vector(op.inputs[2])
            kw["pe"] = self.prm_add([op.attr("eps", LN_EPS[family_of(self.trace)])])
        elif fn == "gelu":
            code = "gelu_erf" if str(op.attr("approx", "tanh")) == "erf" else "gelu_tanh"
        elif fn == "modulate":
            mod = op.inputs[1]
            base = self.vector(mod)
            d = x_t.shape[-1]
            kw.update(p0=base + int(op.attr("scale")) * d, p1=base + int(op.attr("shift")) * d,
                      prs=mod.shape[-1], seq=x_t.shape[-2] if len(x_t.shape) == 3 else rows)
        elif fn == "residual":
            x1 = self.get(op.inputs[1])
            kw.update(b0=x1.base + x1.col0, b_rs=x1.rs, sb=x1.scale_at)
            if len(op.inputs) > 2:
                code = "gated"
                mod = op.inputs[2]
                d = x_t.shape[-1]
                kw.update(p0=self.vector(mod) + int(op.attr("gate")) * d, prs=mod.shape[-1],
                          seq=x_t.shape[-2] if len(x_t.shape) == 3 else rows)
            else:
                code = "add"
        elif fn == "swiglu":
            x1 = self.get(op.inputs[1])
            kw.update(b0=x1.base + x1.col0, b_rs=x1.rs, sb=x1.scale_at)
        elif fn not in ("softmax", "silu"):
            raise InputError(f"op {op.name}: SFU function {fn} has no lowering")
        if x.kind == "zmajor":
            y = self.alloc(rows, n, kind="zmajor", b=x.b, h=x.h, seq=x.seq, x=x.x)
        else:
            y = self.mat_for(y_t)
        self.out(y_t, y)
        self.fns.add(code)
        self.desc(op.name, y_t.name, op=SFU_CODES[code], M=rows, N=n, Z=0, y0=y.base + y.col0,
                  y_rs=y.rs, sy=y.inv_at, **kw)

    def layout(self, op: Op) -> None:
        """split_heads / merge_heads are views: no data moves (module docstring)."""
        x = self.get(op.inputs[0])
        y_t = op.outputs[0]
        if op.fn == "split_heads":
            b, h, seq, dh = y_t.shape
            v = Place(base=x.base, rows=x.rows, cols=x.cols, rs=x.rs, col0=x.col0,
                      kind="heads", b=b, h=h, seq=seq, x=dh, scale_at=x.scale_at,
                      inv_at=x.inv_at)
        else:
            if x.kind != "heads":
                raise InputError(f"op {op.name}: merge_heads of a tensor that is not a head "
                                 "view has no lowering")
            v = Place(base=x.base, rows=x.rows, cols=x.h * x.x, rs=x.rs, col0=x.col0,
                      scale_at=x.scale_at, inv_at=x.inv_at)
        self.places[y_t.name] = v

    def finish(self, output: str) -> Program:
        fp32, k = self.fp32, self.arch
        adt = np.float32 if fp32 else np.int8
        act = np.zeros(max(self.act_top, self.we), adt)
        for p, v in self.inputs:
            rows = v.reshape(p.rows, p.cols) if p.kind == "mat" else _heads_to_mat(v, p)
            inv = self.prm[p.inv_at]
            codes = rows.astype(np.float32) if fp32 else \
                quantize(rows, inv, k.bits.activations).astype(adt)
            for r in range(p.rows):
                act[p.base + r * p.rs + p.col0: p.base + r * p.rs + p.col0 + p.cols] = codes[r]
        wdt = np.float32 if fp32 else (self.wchunks[0].dtype if self.wchunks else np.int8)
        wts = np.concatenate(self.wchunks).astype(wdt) if self.wchunks else np.zeros(0, wdt)
        cp = self.c // self.pack  # whole rows of CP words: each weight port takes its share
        wts = np.concatenate([wts, np.zeros(-len(wts) % cp if len(wts) else cp, wdt)])
        prm = np.asarray(self.prm, np.float32)
        gemms = [d for d in self.instrs if d["op"] == 0]
        sfus = [d for d in self.instrs if d["op"] != 0]
        lanes = k.sfu.lanes * k.sfu.elems_per_lane

        def tiles(d):
            nrb = 1 if d["order"] == 0 else d["mtr"] // self.r
            return d["Z"] * d["nout"] * d["nin"] * nrb * (d["pw"] // self.c) * d["passes"]

        def x_len(d):
            return d["M"] * -(-d["N"] // lanes)

        mx = lambda f, xs, lo=1: max([lo] + [f(d) for d in xs])
        spec = KernelSpec(
            rows=self.r, cols=self.c, pack=self.pack,
            a_bits="fp32" if fp32 else int(k.bits.activations),
            w_bits="fp32" if fp32 else int(k.bits.weights),
            acc_bits="fp32" if fp32 else int(k.bits.accumulator),
            sfu_lanes=lanes, we=self.we,
            # Whole port beats: the fetches zero-fill a row of a tile up to its last beat.
            k_max=_beats(mx(lambda d: d["K"], gemms), self.we),
            pw_max=mx(lambda d: d["pw"], gemms, self.c),
            mt_max=mx(lambda d: d["mtr"], gemms, self.r),
            wpan_words=mx(lambda d: d["passes"] * d["K"] * d["pw"] // self.pack, gemms),
            bt_rows=mx(lambda d: d["pw"] if d["b_src"] else 1, gemms),
            bt_cols=_beats(mx(lambda d: d["K"] if d["b_src"] else 1, gemms), self.we),
            n_max=-(-mx(lambda d: d["N"], sfus) // lanes) * lanes,
            passes_max=mx(lambda d: d["passes"], gemms), act_words=int(act.size),
            wts_words=int(wts.size), prm_words=int(prm.size), t_max=mx(tiles, gemms),
            tk_max=mx(lambda d: tiles(d) * d["K"], gemms),
            y_stream=mx(lambda d: tiles(d) // d["passes"] * self.r, gemms),
            x_stream=mx(x_len, sfus), sfu_rows=mx(lambda d: d["M"], sfus),
            fns=tuple(sorted(self.fns, key=list(SFU_CODES).index)),
            rot_dh=mx(lambda d: d["dh"], [d for d in sfus if d["op"] == SFU_CODES["rotary"]],
                      0),
            v_max=mx(_vector_span, sfus), wp=max(1, k.memory.port_bits // 32),
            wports=weight_ports(k, self.pack),
            aports=2 if k.memory.ports >= 2 and self.r % 2 == 0 else 1)
        return Program(spec, self.instrs, act, wts, prm, self.places, output, self.env)

    def rotary(self, op: Op) -> None:
        x_t, cos_t, sin_t = op.inputs[:3]
        x = self.get(x_t)
        outs = op.outputs
        rot = str(op.attr("rotate", "qk" if len(outs) > 1 else "q"))
        b, h, seq, dh = outs[0].shape
        d = h * dh
        p0, p1 = self.half_table(op, cos_t, dh), self.half_table(op, sin_t, dh)
        for i, t in enumerate(outs):
            if i >= len(rot):  # not rotated: a view of its columns of x
                self.places[t.name] = Place(base=x.base, rows=x.rows, cols=d, rs=x.rs,
                                            col0=x.col0 + i * d, kind="heads", b=b, h=h,
                                            seq=seq, x=dh, scale_at=x.scale_at,
                                            inv_at=x.inv_at)
                continue
            y = self.out(t, self.alloc(b * seq, d, kind="heads", b=b, h=h, seq=seq, x=dh))
            self.fns.add("rotary")
            self.desc(f"{op.name}[{i}]", t.name, op=SFU_CODES["rotary"], M=b * seq, N=d, Z=0,
                      a0=x.base + x.col0 + i * d, a_rs=x.rs, sa=x.scale_at, y0=y.base,
                      y_rs=y.rs, sy=y.inv_at, p0=p0, p1=p1, seq=seq, dh=dh)


def build_program(arch: Accelerator, trace: Trace, ops: list[Op], seed: int = 0) -> Program:
    """The program of `ops` on the design (module docstring); synthetic weights and inputs
    from `seed`, and the fp32 reference run they give."""
    from dlmsim.functional import execute
    from dlmsim.mapping import Mapper

    arch = lowered_arch(arch)
    bld = _Builder(arch, trace, ops)
    rng = np.random.default_rng(seed)
    inputs = {t.name: rng.standard_normal(t.shape).astype(np.float32)
              for t in external_inputs(ops)}
    bld.weights = scope_weights(ops, seed)
    bld.env = execute(trace, bld.weights, inputs, ops=ops)
    mapper = Mapper(arch)
    for op, plan in zip(ops, mapper.plan(ops)):
        if op.kind == "gemm":
            bld.gemm(op, plan, mapper.tilings(op)[plan.loop_order])
        elif op.kind == "sfu":
            bld.sfu(op)
        else:
            raise InputError(f"op {op.name}: {op.kind} {op.fn} has no lowering")
    return bld.finish(ops[-1].outputs[0].name)


def weight_ports(arch: Accelerator, pack: int) -> int:
    """m_axi bundles the weights stream through: enough for the CP words a cycle the array
    takes (CP x word bits over the port width), a divisor of CP (each takes CP / ports words
    of a row), at most the arch's ports."""
    cp = arch.array.cols // pack
    if arch.bits.weights == "fp32":
        bits = 32
    else:
        w = int(arch.bits.weights)
        bits = 8 * -(-max(8, 2 * w if pack == 2 else w) // 8)
    need = -(-cp * bits // arch.memory.port_bits)
    divs = [d for d in range(1, cp + 1) if cp % d == 0]
    return min([d for d in divs if d >= need and d <= arch.memory.ports]
               or [max(d for d in divs if d <= arch.memory.ports)])


def _vector_span(d: dict) -> int:
    """prm floats an SFU op's parameter vectors span (kernel.py, sfu_c's `vl`)."""
    fn = next(f for f, c in SFU_CODES.items() if c == d["op"])
    if fn in ("layernorm", "rmsnorm"):
        return d["N"]
    if fn in ("gated", "modulate"):
        return (d["M"] // d["seq"] - 1) * d["prs"] + d["N"]
    return d["seq"] * (d["dh"] // 2) if fn == "rotary" else 1


def _beats(k: int, we: int) -> int:
    """K rounded up to whole port beats of `we` elements (1 stays 1: no such buffer)."""
    return k if k <= 1 else -(-k // we) * we


def _heads_to_mat(v: np.ndarray, p: Place) -> np.ndarray:
    """[B, H, L, X] -> the [B*L, H*X] rows of its matrix."""
    b, h, seq, x = v.shape
    return v.transpose(0, 2, 1, 3).reshape(b * seq, h * x)


def read_tensor(prog: Program, act: np.ndarray, name: str) -> np.ndarray:
    """Tensor `name` (dequantized, float32) from an `act` buffer, at its trace shape."""
    p = prog.places[name]
    rows = np.stack([act[p.base + r * p.rs + p.col0: p.base + r * p.rs + p.col0 + p.cols]
                     for r in range(p.rows)]).astype(np.float32) * prog.prm[p.scale_at]
    if p.kind == "heads":
        return rows.reshape(p.b, p.seq, p.h, p.x).transpose(0, 2, 1, 3)
    if p.kind == "zmajor":
        return rows.reshape(p.b, p.h, p.seq, p.x)
    return rows
