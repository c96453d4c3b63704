"""Functional execution of traces: numpy semantics for every op kind and function.

`execute` runs the ops of a trace one by one, in trace order, with the shapes the trace
states: the numeric twin of the timing model (a wrong op in a trace is wrong in both).
Numerics are pluggable: `Numerics` is fp32 (the reference); `dlmsim.quant` subclasses it to
quantize GEMM operands, saturate accumulators and round SFU values to fixed point.

Conventions follow ir.py (linear weights stored [in, out]; `transpose_b` means [N, K]) and
the public model code described in shared/reference/workloads.md:
- rotary: rotate-half convention (q*cos + rotate_half(q)*sin), base 1e4 for the DDiT
  (MDLM/SEDD) and 5e5 for LLaDA; an op attr `theta` overrides the family default.
- layernorm eps 1e-5 (MDLM's F.layer_norm default), 1e-12 for Diffusion-LM's BERT
  (HF BertConfig.layer_norm_eps); rmsnorm eps 1e-5 (LLaDA's rms_norm_eps). Attr `eps` wins.
- sampler ops are deterministic given `seed`; their time coefficients are those of the
  first sampling step (stated at each function below).
"""

from __future__ import annotations

import math
import os
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlmsim.errors import InputError
from dlmsim.workloads.ir import Op, Trace

LLADA_MASK_ID = 126336  # LLaDA's [MASK] token id (its generate.py)
SAMPLER_FNS = {"exp_scale", "gumbel_argmax", "argmax", "rowmax", "dist_argmin", "topk",
               "exp", "reverse_rate", "staggered_score", "transp_transition",
               "masked_update", "posterior_update"}
LAYOUT_FNS = {"split_heads", "merge_heads", "transpose", "reshape", "concat", "slice",
              "upsample", "take", "put", "cache_write"}


# ---- memory ----------------------------------------------------------------------------
def execution_bytes(trace: Trace, ops: Iterable[Op], runs_kept: int = 1,
                    weight_copies: int = 1) -> float:
    """Bytes an execution of `ops` holds at its peak, estimated before it starts: every
    tensor the ops make (float32) for each of `runs_kept` runs whose tensors are kept, the
    weights `weight_copies` times, and four temporaries the size of the largest tensor
    (a softmax or an accumulator). An estimate for refusing sizes no machine can run, not
    an account (numpy's own temporaries are not counted)."""
    made = [t.numel for op in ops for t in op.outputs] + [t.numel for t in trace.inputs]
    return 4.0 * (runs_kept * sum(made) + weight_copies * trace.params + 4 * max(made))


def available_memory_bytes() -> float:
    """Memory the kernel says a new allocation can get (MemAvailable), else physical."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return math.inf


def check_memory(need_bytes: float, what: str, smaller: str) -> None:
    """Refuse up front, with the figure, a run that needs more memory than is available
    (instead of a MemoryError, or a machine swapping, part-way through)."""
    have = available_memory_bytes()
    if need_bytes > have:
        raise InputError(f"{what} needs about {_binary(need_bytes)} of memory, "
                         f"{_binary(have)} is available; {smaller}")


def _binary(n: float) -> str:
    """Bytes with a binary prefix: 612_000_000_000 -> '570.0 GiB'."""
    for unit in ("TiB", "GiB", "MiB", "KiB"):
        scale = 2.0 ** (10 * ("KMGT".index(unit[0]) + 1))
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n:.0f} B"


# ---- model family ----------------------------------------------------------------------
def family_of(trace: Trace) -> str:
    """'mdlm' (also SEDD: same DDiT backbone), 'diffusion_lm' or 'llada'.

    Read from the run parameters each builder records (each family has a key of its own),
    else from the ops (RMSNorm -> LLaDA, a posterior update -> Diffusion-LM).
    """
    run = dict(trace.run)
    if "gen_len" in run:
        return "llada"
    if "rounding" in run:
        return "diffusion_lm"
    if "time_conditioning" in run:
        return "mdlm"
    fns = {op.fn for op in trace.ops}
    if "rmsnorm" in fns:
        return "llada"
    if "posterior_update" in fns:
        return "diffusion_lm"
    return "mdlm"


ROPE_THETA = {"mdlm": 1e4, "llada": 5e5, "diffusion_lm": 1e4}
LN_EPS = {"mdlm": 1e-5, "llada": 1e-5, "diffusion_lm": 1e-12}


def mask_id(trace: Trace) -> int:
    """The [MASK] token id: LLaDA's fixed id if the vocab holds it, else the last id (MDLM)."""
    vocab = max((t.shape[0] for t in trace.weights.values()
                 if len(t.shape) == 2 and t.name.endswith(("embedding", "wte.weight"))),
                default=1)
    return LLADA_MASK_ID if family_of(trace) == "llada" and vocab > LLADA_MASK_ID else vocab - 1


# ---- numerics --------------------------------------------------------------------------
@dataclass
class Numerics:
    """fp32 reference numerics. Subclasses override the hooks to model hardware.

    approx: use the hardware approximations (hard-swish-style GELU/SiLU, two-pass softmax
    with a fixed-point exp); exp_frac_bits: fraction bits of that exp's output.
    """

    approx: bool = False
    exp_frac_bits: int = 16

    def linear(self, op: Op, a: np.ndarray, w: np.ndarray, bias: np.ndarray | None):
        """a[..., K] x w[K, N] (+ bias[N]); `w` already oriented [K, N]."""
        y = a @ w
        return y if bias is None else y + bias

    def matmul(self, op: Op, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """a[..., M, K] x b[..., K, N]; `b` already oriented."""
        return a @ b

    def sfu_value(self, op: Op, name: str, x: np.ndarray) -> np.ndarray:
        """A value entering or leaving the SFU (identity in fp32)."""
        return x


FP32 = Numerics()


# ---- element-wise and row functions ------------------------------------------------------
def erf(x: np.ndarray) -> np.ndarray:
    """erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): numpy has no erf, scipy is
    not a dependency, and 1.5e-7 is far below any quantization error measured here."""
    s = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027
                                                                          + t * 1.061405429))))
    return s * (1.0 - poly * np.exp(-a * a))


def hard_sigmoid(z: np.ndarray) -> np.ndarray:
    """relu6(z + 3) / 6: the hard-swish building block (MobileNetV3), two compares, no exp."""
    return np.clip(z + 3.0, 0.0, 6.0) / 6.0


def gelu(x: np.ndarray, form: str = "tanh", approx: bool = False) -> np.ndarray:
    if approx:  # GELU(x) ~ x * sigmoid(1.702 x), sigmoid replaced by its hard version
        return x * hard_sigmoid(1.702 * x)
    if form == "erf":
        return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def silu(x: np.ndarray, approx: bool = False) -> np.ndarray:
    if approx:  # hard-swish
        return x * hard_sigmoid(x)
    return x / (1.0 + np.exp(-x))


def exp2_fixed(z: np.ndarray, frac_bits: int) -> np.ndarray:
    """2**z for z <= 0 as hardware does it: 2**floor(z) is a shift, 2**frac by the quadratic
    1 + f(0.6602 + 0.3398 f), exact at f = 0 and 1 (max relative error 2.7e-3 on [0, 1),
    about a 9-bit mantissa), result rounded to `frac_bits` fraction bits (unsigned, <= 1;
    small values flush to 0)."""
    n = np.floor(z)
    f = z - n
    y = (1.0 + f * (0.6602 + 0.3398 * f)) * np.exp2(n)
    q = 2.0**frac_bits
    return np.round(y * q) / q


def softmax(x: np.ndarray, approx: bool = False, frac_bits: int = 16) -> np.ndarray:
    """Softmax over the last dim. approx: two passes (max; then fixed-point exp and sum),
    then a divide, as SDA's SFU does."""
    z = x - x.max(axis=-1, keepdims=True)
    e = exp2_fixed(z * math.log2(math.e), frac_bits) if approx else np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def log_softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def layernorm(x, weight=None, bias=None, eps=1e-5):
    mu = x.mean(axis=-1, keepdims=True)
    xc = x - mu
    y = xc / np.sqrt((xc * xc).mean(axis=-1, keepdims=True) + eps)
    if weight is not None:
        y = y * weight
    return y if bias is None else y + bias


def groupnorm(x, groups: int, weight=None, bias=None, eps=1e-5):
    """GroupNorm over (C/groups, H, W) per sample of an NCHW tensor, affine per channel."""
    b, c = x.shape[:2]
    g = x.reshape(b, groups, -1)
    g = (g - g.mean(-1, keepdims=True)) / np.sqrt(g.var(-1, keepdims=True) + eps)
    y = g.reshape(x.shape)
    shape = (1, c) + (1,) * (x.ndim - 2)
    if weight is not None:
        y = y * weight.reshape(shape)
    if bias is not None:
        y = y + bias.reshape(shape)
    return y


def conv2d(op: Op, x: np.ndarray, w: np.ndarray, bias, num) -> np.ndarray:
    """The convolution as the implicit GEMM the simulator costs: im2col rows of
    (Cin/groups) kh kw, one product per group through the numerics' linear hook, then the
    bias ([Cout], or [B, Cout] per sample)."""
    from dlmsim.workloads.check import pair

    b, cin = x.shape[:2]
    cout, cg, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = (pair(op.attr(k, d)) for k, d in
                                    (("stride", 1), ("padding", 0), ("dilation", 1)))
    g = int(op.attr("groups", 1))
    _, _, ho, wo = op.outputs[0].shape
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    cols = np.empty((b, cin, kh, kw, ho, wo), x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, i, j] = xp[:, :, i * dh: i * dh + sh * (ho - 1) + 1: sh,
                                  j * dw: j * dw + sw * (wo - 1) + 1: sw]
    out = []
    for k in range(g):
        a = cols[:, k * cg:(k + 1) * cg].reshape(b, cg * kh * kw, ho * wo).transpose(0, 2, 1)
        wk = w[k * (cout // g):(k + 1) * (cout // g)].reshape(cout // g, -1).T
        out.append(num.linear(op, a, wk, None))
    y = np.concatenate(out, axis=-1).transpose(0, 2, 1).reshape(b, cout, ho, wo)
    if bias is not None:
        y = y + (bias[None, :, None, None] if bias.ndim == 1 else bias[:, :, None, None])
    return y


def rmsnorm(x, weight, eps=1e-5):
    return x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps) * weight


def rotate_half(x: np.ndarray) -> np.ndarray:
    h = x.shape[-1] // 2
    return np.concatenate([-x[..., h:], x[..., :h]], axis=-1)


def rotary_tables(seq_len: int, dim: int, theta: float) -> tuple[np.ndarray, np.ndarray]:
    """cos, sin [L, dim]: angle(p, i) = p * theta**(-2i/dim), the dim/2 angles repeated
    twice (cat(freqs, freqs)), as in MDLM's and LLaDA's Rotary."""
    inv = theta ** (-np.arange(0, dim, 2, dtype=np.float64) / dim)
    ang = np.outer(np.arange(seq_len, dtype=np.float64), inv)
    ang = np.concatenate([ang, ang], axis=-1)
    return np.cos(ang), np.sin(ang)


def timestep_embedding(t: np.ndarray, dim: int, max_period: float = 10000.0) -> np.ndarray:
    """[B] -> [B, dim]: cat(cos(t f), sin(t f)), f_i = max_period**(-i/half) (MDLM's
    TimestepEmbedder and improved-diffusion's timestep_embedding); zero pad if dim is odd."""
    half = dim // 2
    f = np.exp(-math.log(max_period) * np.arange(half, dtype=np.float64) / half)
    args = t.astype(np.float64)[:, None] * f[None]
    emb = np.concatenate([np.cos(args), np.sin(args)], axis=-1)
    if dim % 2:
        emb = np.concatenate([emb, np.zeros_like(emb[:, :1])], axis=-1)
    return emb


def chunk(mod: np.ndarray, chunks: int, i: int, like: np.ndarray) -> np.ndarray:
    """Chunk i of `chunks` along the last dim of an adaLN output [B, chunks*D], broadcast
    over the sequence dims of `like` [B, ..., D]."""
    d = mod.shape[-1] // chunks
    c = mod[..., i * d:(i + 1) * d]
    return c.reshape(c.shape[:1] + (1,) * (like.ndim - c.ndim) + c.shape[1:])


# ---- sampler semantics (deterministic given the seed) ------------------------------------
def rng_for(seed: int, name: str) -> np.random.Generator:
    """A generator per (seed, op name): stable whatever else the trace contains."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def sqrt_schedule(steps: int) -> np.ndarray:
    """Diffusion-LM's 'sqrt' alpha-bar(t) = 1 - sqrt(t/T + 1e-4), as cumulative alphas with
    betas clipped at 0.999 (improved-diffusion's betas_for_alpha_bar)."""
    ab = lambda s: 1.0 - np.sqrt(s + 1e-4)
    t = np.arange(steps)
    betas = np.minimum(1.0 - ab((t + 1) / steps) / ab(t / steps), 0.999)
    return np.cumprod(1.0 - betas)


# ---- the executor -----------------------------------------------------------------------
class _Ctx:
    def __init__(self, trace, weights, numerics, seed, family, dtype):
        self.trace, self.weights, self.num, self.seed = trace, weights, numerics, seed
        self.family, self.dtype = family, dtype
        self.producer = {t.name: op for op in trace.ops for t in op.outputs}
        self.mask = mask_id(trace)


def _const(ctx: _Ctx, op: Op, t) -> np.ndarray:
    if t.name in ("rotary.cos", "rotary.sin"):
        theta = float(op.attr("theta", ROPE_THETA[ctx.family]))
        cos, sin = rotary_tables(t.shape[0], t.shape[1], theta)
        return (cos if t.name.endswith("cos") else sin).astype(ctx.dtype)
    raise InputError(f"op '{op.name}': no value for constant '{t.name}'")


def _gemm(ctx: _Ctx, op: Op, args: list[np.ndarray]) -> np.ndarray:
    a, b = args[0], args[1]
    tb = bool(op.attr("transpose_b"))
    if op.fn == "conv2d":
        return conv2d(op, a, b, args[2] if len(args) > 2 else None, ctx.num)
    if op.fn == "linear":
        w = b.T if tb else b
        y = ctx.num.linear(op, a, w, args[2] if len(args) > 2 else None)
        scale = op.attr("scale")  # an ONNX Gemm's alpha
        return y if scale is None else y * scale
    # A contiguous copy of a transposed operand keeps numpy's batched matmul on BLAS.
    y = ctx.num.matmul(op, a, np.ascontiguousarray(np.swapaxes(b, -1, -2)) if tb else b)
    scale = op.attr("scale")
    return y if scale is None else y * scale


def _add(ctx: _Ctx, op: Op, args: list[np.ndarray]) -> np.ndarray:
    """Sum with broadcasting to the output [B, L, D]. A 2-D [n, D] operand is positional
    ([L, D], broadcast over the batch) if a gather made it, else per batch ([B, D]); the
    trace does not say which, so the producer decides (see the report's builder note)."""
    out_shape = op.outputs[0].shape
    y = np.zeros(out_shape, ctx.dtype)
    for t, v in zip(op.inputs, args):
        if v.ndim == 2 and len(out_shape) == 3 and t.role != "weight":
            by_pos = getattr(ctx.producer.get(t.name), "kind", None) == "gather"
            v = v[None] if by_pos else v[:, None]
        y = y + v
    return y


def _rotary(ctx: _Ctx, op: Op, args: list[np.ndarray]) -> list[np.ndarray]:
    x, cos, sin = args
    outs = op.outputs
    b, h, seq, dh = outs[0].shape
    # [B, L, n*D] -> n tensors [B, H, L, dh]; columns ordered (n, h, d) as in
    # rearrange('b s (three h d) -> b s three h d').
    parts = x.reshape(b, seq, len(outs), h, dh).transpose(2, 0, 3, 1, 4)
    rot = str(op.attr("rotate", "qk" if len(outs) > 1 else "q"))
    res = []
    for i, p in enumerate(parts):
        res.append(p * cos + rotate_half(p) * sin if i < len(rot) else np.ascontiguousarray(p))
    return res


def _sfu(ctx: _Ctx, op: Op, args: list[np.ndarray]):
    fn, num = op.fn, ctx.num
    x = args[0]
    out0 = op.outputs[0].shape
    eps = op.attr("eps")
    if fn == "layernorm":
        return layernorm(x, *(args[1:] + [None, None])[:2],
                         eps=eps if eps is not None else LN_EPS[ctx.family])
    if fn == "rmsnorm":
        return rmsnorm(x, args[1], eps if eps is not None else 1e-5)
    if fn == "modulate":
        c = int(op.attr("chunks"))
        m = args[1]
        scale, shift = chunk(m, c, int(op.attr("scale")), x), chunk(m, c, int(op.attr("shift")), x)
        return x * (1.0 + scale) + shift
    if fn == "residual":
        if len(args) == 2:
            return x + args[1]
        return x + chunk(args[2], int(op.attr("chunks")), int(op.attr("gate")), x) * args[1]
    if fn == "add":
        return _add(ctx, op, args)
    if fn == "gelu":
        return gelu(x, str(op.attr("approx", "tanh")), num.approx)
    if fn == "silu":
        return silu(x, num.approx)
    if fn == "swiglu":
        return silu(x, num.approx) * args[1]
    if fn == "tanh":
        return np.tanh(x)
    if fn == "softmax":
        return softmax(x, num.approx, num.exp_frac_bits)
    if fn == "log_softmax":
        return _mdlm_log_probs(op, x, args[1] if len(args) > 1 else None)
    if fn == "score_scale":
        return _sedd_log_score(x, args[1], args[2])
    if fn == "timestep_embedding":
        return timestep_embedding(x, out0[-1])
    if fn == "rotary":
        return _rotary(ctx, op, args)
    if fn == "split_heads":
        b, h, seq, dh = out0
        return np.ascontiguousarray(x.reshape(b, seq, h, dh).transpose(0, 2, 1, 3))
    if fn == "merge_heads":
        return x.transpose(0, 2, 1, 3).reshape(out0)
    if fn in ("transpose", "reshape", "cache_write"):
        perm = op.attr("perm")
        return (x.transpose(perm) if fn == "transpose" else x).reshape(out0)
    if fn == "mul":
        return x * args[1]
    if fn == "concat":
        return np.concatenate(args, axis=int(op.attr("axis", -1)))
    if fn == "slice":
        axis = int(op.attr("axis", -2)) % x.ndim
        index = [slice(None)] * x.ndim
        index[axis] = slice(int(op.attr("start", 0)), int(op.attr("stop")))
        return x[tuple(index)]
    if fn == "groupnorm":
        return groupnorm(x, int(op.attr("groups")), *args[1:3], eps=eps or 1e-5)
    if fn == "geglu":
        h, gate = np.split(x, 2, axis=-1)
        return h * gelu(gate, "erf", num.approx)
    if fn == "upsample":
        k = int(op.attr("scale", 2))
        return x.repeat(k, axis=2).repeat(k, axis=3)
    if fn == "take":
        return np.take_along_axis(x, args[-1].astype(np.int64)[..., None], axis=1)
    if fn == "put":
        out = x.copy()
        np.put_along_axis(out, args[-1].astype(np.int64)[..., None], args[1], axis=1)
        return out
    if fn == "cosine":
        y = args[1]
        return (x * y).sum(-1) / np.maximum(
            np.linalg.norm(x, axis=-1) * np.linalg.norm(y, axis=-1), 1e-12)
    return _sampler(ctx, op, args)


def _mdlm_log_probs(op: Op, logits: np.ndarray, tokens: np.ndarray | None) -> np.ndarray:
    """MDLM's SUBS parameterisation: the [MASK] logit gets -1e6, log-softmax over V, and an
    unmasked position is forced to a one-hot (0 at its token, -1e6 elsewhere)."""
    neg = -1e6
    mask = op.attr("mask_index")
    z = logits.copy()
    if mask is not None:
        z[..., int(mask)] += neg
    z = log_softmax(z)
    if tokens is not None and mask is not None:
        keep = tokens != int(mask)
        if keep.any():
            rows = z[keep]
            rows[:] = neg
            rows[np.arange(len(rows)), tokens[keep]] = 0.0
            z[keep] = rows
    return z


def _sampler(ctx: _Ctx, op: Op, args: list[np.ndarray]):
    fn, x = op.fn, args[0]
    steps = int(ctx.trace.steps) or 1
    if fn == "exp_scale":
        # MDLM ddpm step from t=1 to s=1-1/T (log-linear noise, move chance = t, eps
        # ignored): q_xs = p_x0 * (t - s), and the [MASK] column = s.
        q = np.exp(x) * (1.0 / steps)
        q[..., ctx.mask] = 1.0 - 1.0 / steps
        return q
    if fn == "gumbel_argmax":
        # MDLM's _sample_categorical: argmax(p / (1e-10 - log(u + 1e-10))), u ~ U(0, 1).
        u = rng_for(ctx.seed, op.name).random(x.shape)
        return np.argmax(x / (1e-10 - np.log(u + 1e-10)), axis=-1)
    if fn == "argmax":
        return np.argmax(x, axis=-1)
    if fn == "rowmax":
        return x.max(axis=-1)
    if fn == "topk":
        k = int(op.attr("k", op.outputs[0].shape[-1]))
        return np.argsort(-x, axis=-1, kind="stable")[..., :k]
    if fn == "masked_update":
        # Keep unmasked tokens, write the new ones where the token is [MASK]. (LLaDA writes
        # only its top-k positions; the trace gives no selection input: builder note.)
        return np.where(x != ctx.mask, x, args[1])
    if fn == "dist_argmin":
        return _dist_argmin(ctx, op, args)
    if fn == "posterior_update":
        return _posterior(ctx, op, args)
    if fn in ("exp", "reverse_rate", "staggered_score", "transp_transition"):
        return _sedd_step(ctx, op, args)
    raise InputError(f"op '{op.name}': no numeric semantics for sfu fn '{fn}'")


def _dist_argmin(ctx: _Ctx, op: Op, args: list[np.ndarray]) -> np.ndarray:
    """argmin_v ||E_v||^2 + ||x||^2 - 2 x.E_v given the dots x.E^T. The table E is a third
    input if the trace gives one, else the weight of the GEMM that produced the dots."""
    dots, x = args[0], args[1]
    if len(args) > 2:
        table = args[2]
    else:
        prod = ctx.producer.get(op.inputs[0].name)
        w = prod.weight_operand if prod is not None else None
        if w is None:
            raise InputError(f"op '{op.name}': cannot find the embedding table of the dots")
        table = ctx.weights[w.name]
    e2 = (table.astype(np.float64) ** 2).sum(-1)
    x2 = (x * x).sum(-1, keepdims=True)
    return np.argmin(e2 + x2 - 2.0 * dots, axis=-1)


def _posterior(ctx: _Ctx, op: Op, args: list[np.ndarray]) -> np.ndarray:
    """x_{t-1} = c1 x0 + c2 x_t + sigma z at the first sampling step (t = T-1) of the sqrt
    schedule: c1 = beta sqrt(ab_prev)/(1-ab), c2 = (1-ab_prev) sqrt(alpha)/(1-ab),
    sigma^2 = beta (1-ab_prev)/(1-ab) (improved-diffusion's q_posterior)."""
    x0, xt = args[0], args[1]
    ab = sqrt_schedule(int(ctx.trace.steps) or 1)
    t = len(ab) - 1
    ab_t, ab_p = ab[t], (ab[t - 1] if t > 0 else 1.0)
    alpha = ab_t / ab_p
    beta = 1.0 - alpha
    c1 = beta * math.sqrt(ab_p) / (1.0 - ab_t)
    c2 = (1.0 - ab_p) * math.sqrt(alpha) / (1.0 - ab_t)
    sigma = math.sqrt(beta * (1.0 - ab_p) / (1.0 - ab_t))
    z = rng_for(ctx.seed, op.name).standard_normal(x0.shape)
    return c1 * x0 + c2 * xt + sigma * z


def _sedd_log_score(x: np.ndarray, sigma: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """SEDD's SEDD.forward with scale_by_sigma (absorbing): x - log(e^sigma - 1) - log(V - 1),
    then 0 at each position's current token."""
    esigm1 = np.where(sigma < 0.5, np.expm1(sigma), np.exp(sigma) - 1.0)
    out = x - np.log(esigm1)[:, None, None] - math.log(x.shape[-1] - 1)
    np.put_along_axis(out, tokens[..., None].astype(np.int64), 0.0, axis=-1)
    return out


SEDD_EPS = 1e-5  # sampling eps of SEDD's get_pc_sampler (time runs from 1 to eps)
SEDD_NOISE_EPS = 1e-3  # LogLinearNoise eps (noise_lib.py)


def _sedd_sigma(t: float) -> tuple[float, float]:
    """SEDD's log-linear noise: total noise sigma(t) = -log(1 - (1 - eps) t) and its rate."""
    e = SEDD_NOISE_EPS
    return -math.log1p(-(1 - e) * t), (1 - e) / (1 - (1 - e) * t)


def _sedd_step(ctx: _Ctx, op: Op, args: list[np.ndarray]) -> np.ndarray:
    """SEDD's absorbing-graph sampler functions (graph_lib.Absorbing, sampling.py) at the
    first step, t = 1 to 1 - dt, dt = (1 - eps) / T; the noise removal (phase once) uses
    the last time, sigma(eps). The [MASK] state is the last column."""
    x = args[0]
    if op.fn == "exp":
        return np.exp(x)
    steps = int(ctx.trace.steps) or 1
    dt = (1 - SEDD_EPS) / steps
    if op.phase == "once":
        dsigma = _sedd_sigma(SEDD_EPS)[0]
    else:
        dsigma = _sedd_sigma(1.0)[0] - _sedd_sigma(1.0 - dt)[0]
    mask = x.shape[-1] - 1
    if op.fn == "staggered_score":
        extra = (1 - math.exp(dsigma)) * x.sum(axis=-1)
        out = x * math.exp(dsigma)
        out[..., mask] += extra
        return out
    tok = args[1].astype(np.int64)
    onehot = np.zeros_like(x)
    np.put_along_axis(onehot, tok[..., None], 1.0, axis=-1)
    masked = (tok == mask)[..., None]
    if op.fn == "transp_transition":
        return x * (math.exp(-dsigma) * onehot + masked * (1 - math.exp(-dsigma)))
    # reverse_rate (Euler): transp_rate(x) * score, the diagonal set to minus the row sum,
    # times dt * dsigma(t), plus one-hot(x) (sample_rate's argument).
    rate = (masked - onehot) * x
    np.put_along_axis(rate, tok[..., None], 0.0, axis=-1)
    np.put_along_axis(rate, tok[..., None], -rate.sum(axis=-1, keepdims=True), axis=-1)
    return onehot + dt * _sedd_sigma(1.0)[1] * rate


def _last_uses(ops: Iterable[Op]) -> dict[str, int]:
    last: dict[str, int] = {}
    for i, op in enumerate(ops):
        for t in op.inputs:
            last[t.name] = i
    return last


def execute(
    trace: Trace,
    weights: dict[str, np.ndarray],
    inputs: dict[str, np.ndarray],
    *,
    numerics: Numerics = FP32,
    ops: Iterable[Op] | None = None,
    seed: int = 0,
    keep: bool | Callable[[str], bool] = True,
    observe: Callable[[Op, list[np.ndarray]], None] | None = None,
    dtype=np.float32,
) -> dict[str, np.ndarray]:
    """Run `ops` (default: every op of the trace, all phases, in trace order) numerically.

    weights: arrays by weight name, at the trace's shapes ([in, out] for linear weights);
    inputs: the trace inputs and any tensor no executed op produces (token ids, positions,
    or a block's input when `ops` is a slice). Returns the tensors by name: all of them if
    keep is True, those keep(name) accepts otherwise (others are freed after their last use
    to bound memory). observe(op, outputs) is called after each op.
    """
    ops = list(trace.ops if ops is None else ops)
    ctx = _Ctx(trace, weights, numerics, seed, family_of(trace), dtype)
    env: dict[str, np.ndarray] = {}
    for k, v in inputs.items():
        v = np.asarray(v)
        env[k] = v.astype(dtype) if v.dtype.kind == "f" else v
    last = _last_uses(ops)
    for i, op in enumerate(ops):
        args = []
        for t in op.inputs:
            if t.role == "weight":
                if t.name not in weights:
                    raise InputError(f"op '{op.name}': no value for weight '{t.name}'")
                v = weights[t.name]
            elif t.name in env:
                v = env[t.name]
            elif t.role == "const":
                v = env[t.name] = _const(ctx, op, t)
            else:
                raise InputError(f"op '{op.name}': no value for input '{t.name}' "
                                 "(not produced by an executed op and not given)")
            if tuple(v.shape) != t.shape:
                raise InputError(f"op '{op.name}': '{t.name}' is {list(v.shape)}, the trace "
                                 f"says {list(t.shape)}")
            if op.kind == "sfu" and op.fn not in SAMPLER_FNS and t.role == "activation":
                v = numerics.sfu_value(op, t.name, v)
            args.append(v)
        if op.kind == "gemm":
            outs = [_gemm(ctx, op, args)]
        elif op.kind == "gather":
            outs = [args[0][args[1]]]
        else:
            res = _sfu(ctx, op, args)
            outs = res if isinstance(res, list) else [res]
        done = []
        for t, v in zip(op.outputs, outs):
            if tuple(v.shape) != t.shape:  # the semantics disagree with the trace's shapes
                raise InputError(f"op '{op.name}': computed '{t.name}' as {list(v.shape)}, "
                                 f"the trace says {list(t.shape)}")
            if v.dtype.kind == "f":
                v = v.astype(dtype, copy=False)
                if op.kind == "sfu" and op.fn not in SAMPLER_FNS | LAYOUT_FNS:
                    v = numerics.sfu_value(op, t.name, v)
            env[t.name] = v
            done.append(v)
        if observe is not None:
            observe(op, done)
        if keep is not True:
            for t in op.inputs:
                if last.get(t.name) == i and t.name in env and not (keep and keep(t.name)):
                    del env[t.name]
    return env
