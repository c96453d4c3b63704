"""Quantizers and the quantized numerics the functional executor runs with.

- Weights: symmetric, per output channel, n bits (4, 8, 16) or fp32 (32).
- Activations (every GEMM operand that is not a weight): symmetric, per tensor, n bits
  (8, 16) or fp32 (32), scale from calibration (max |x| over sample activations), optionally
  one scale set per sampling step. A tensor that calibration saw only non-negative (softmax
  probabilities) gets the unsigned grid [0, 2^n - 1] (zero point still 0), as hardware
  stores probabilities: one more bit of resolution.
- Accumulators: integer products summed at `acc_bits` and saturated.
- SFU: inputs and outputs on a fixed-point grid of `sfu_bits` (binary point placed per
  tensor from calibration), plus the hardware approximations when `approx` is set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from dlmsim.errors import InputError
from dlmsim.functional import Numerics
from dlmsim.workloads.ir import Op, Trace

W_BITS = (4, 8, 16, 32)  # 32 means fp32 (not quantized)
A_BITS = (8, 16, 32)
SFU_BITS = range(8, 33)
ACC_BITS = range(16, 65)
SENTINEL = 1e5  # |x| beyond this is MDLM's -1e6 "log 0": a flag, not a value to give range to
DEFAULT_ACC_BITS = 48  # a DSP48E2 P register: a 16x16-bit GEMM over K <= 65536 never saturates


def check_bits(what: str, bits, allowed) -> int | None:
    """An allowed bit width (None passes for an optional one), else one-line InputError."""
    if bits is None and what == "sfu bits":
        return None
    if isinstance(bits, str) and bits.lower() == "fp32":
        bits = 32
    if isinstance(bits, bool) or not isinstance(bits, int | np.integer) or bits not in allowed:
        shown = (f"{allowed.start}..{allowed.stop - 1}" if isinstance(allowed, range)
                 else ", ".join(map(str, allowed)))
        raise InputError(f"unknown {what} {bits!r}; allowed: {shown} (32 = fp32)")
    return int(bits)


def qmax(bits: int) -> int:
    """Largest magnitude of a symmetric signed n-bit code: 2^(n-1) - 1 (-2^(n-1) unused, so
    the grid is symmetric and zero is exact)."""
    return 2 ** (bits - 1) - 1


def scale_for(max_abs, bits: int, unsigned: bool = False):
    """Scale (float32) so that max|x| maps to the largest code; a zero range gets scale 1
    (any positive scale represents all-zeros exactly), so scales are always positive."""
    m = np.asarray(max_abs, dtype=np.float64)
    top = 2**bits - 1 if unsigned else qmax(bits)
    return np.where(m > 0, m / top, 1.0).astype(np.float32)


def to_codes(x: np.ndarray, scale, bits: int, unsigned: bool = False) -> np.ndarray:
    """Integer codes (as floats): clip(round(x / scale), -qmax, qmax), or [0, 2^n - 1]
    unsigned. Rounds half to even."""
    lo, hi = (0, 2**bits - 1) if unsigned else (-qmax(bits), qmax(bits))
    return np.clip(np.round(x / scale), lo, hi)


def fake_quant(x: np.ndarray, scale, bits: int, unsigned: bool = False) -> np.ndarray:
    """Quantize then dequantize. Idempotent: codes * scale maps back to the same codes."""
    return (to_codes(x, scale, bits, unsigned) * scale).astype(x.dtype, copy=False)


def channel_scales(w: np.ndarray, bits: int, axis: int) -> np.ndarray:
    """Per-channel scales of a weight: max |w| over every dim but `axis` (kept for broadcast)."""
    red = tuple(i for i in range(w.ndim) if i != axis % w.ndim)
    return scale_for(np.abs(w).max(axis=red, keepdims=True), bits)


def fixed_point(x: np.ndarray, bits: int, max_abs: float) -> np.ndarray:
    """Round to signed fixed point with `bits` bits, the binary point placed so max_abs fits:
    frac = bits - 1 - ceil(log2(max_abs)); step 2^-frac; saturate at +-(2^(bits-1)-1) steps."""
    ib = math.ceil(math.log2(max_abs)) if max_abs > 0 else 0
    step = 2.0 ** (ib - (bits - 1))
    q = qmax(bits)
    return (np.clip(np.round(x / step), -q, q) * step).astype(x.dtype, copy=False)


def quantize_weights(trace: Trace, weights: dict[str, np.ndarray], bits: int) -> dict:
    """Weights fake-quantized per output channel: the N axis of a linear weight (columns of
    [K, N], rows of a transpose_b [N, K]) and the rows of a gather table. 1-D weights (biases,
    norm gains) stay fp32: hardware keeps them at accumulator / SFU width."""
    if bits == 32:
        return dict(weights)
    axis: dict[str, int] = {}
    for op in trace.ops:
        for i, t in enumerate(op.inputs):
            if t.role != "weight" or len(t.shape) != 2:
                continue
            if op.kind == "gather" or (op.kind == "gemm" and op.attr("transpose_b")):
                axis.setdefault(t.name, 0)
            elif op.kind == "gemm" and i == 1:
                axis.setdefault(t.name, 1)
    out = dict(weights)
    for name, ax in axis.items():
        w = weights[name]
        out[name] = fake_quant(w, channel_scales(w, bits, ax), bits)
    return out


@dataclass
class QuantNumerics(Numerics):
    """Quantized numerics for `dlmsim.functional.execute`.

    act_max: calibrated max |x| per activation tensor name (one step's scale set); a tensor
    missing from it is scaled by its own max (dynamic quantization). nonneg: names that
    calibration saw only >= 0 (unsigned grid). weight_codes: shared cache of weight codes.
    Weights are expected already fake-quantized (`quantize_weights`); their codes are
    recovered exactly (the per-channel max survives fake quantization, so the scale does).
    """

    w_bits: int = 32
    a_bits: int = 32
    acc_bits: int = DEFAULT_ACC_BITS
    sfu_bits: int | None = None
    act_max: dict[str, float] = field(default_factory=dict)
    nonneg: frozenset = frozenset()
    weight_codes: dict = field(default_factory=dict, repr=False)
    saturated: int = 0  # accumulator outputs clipped so far

    def _act(self, name: str, x: np.ndarray):
        m = self.act_max.get(name)
        m = float(np.abs(x).max()) if m is None else m
        u = name in self.nonneg
        s = float(scale_for(m, self.a_bits, u))
        return to_codes(x, s, self.a_bits, u).astype(np.float32, copy=False), s

    def _weight(self, op: Op, w: np.ndarray):
        key = (op.inputs[1].name, self.w_bits)
        if key not in self.weight_codes:
            s = channel_scales(w, self.w_bits, -1)  # w is [K, N]: one scale per column
            self.weight_codes[key] = (to_codes(w, s, self.w_bits).astype(np.float32), s)
        return self.weight_codes[key]

    def _accumulate(self, acc: np.ndarray) -> np.ndarray:
        """Saturate the integer sum at acc_bits. The GEMM runs in float32 on integer codes:
        exact while partial sums stay below 2^24, relative error ~1e-7 beyond (far below the
        quantization error measured). Clipping the final sum only is exact for a wrap-around
        accumulator whose result fits, and approximates per-add saturation otherwise."""
        lim = float(qmax(self.acc_bits))
        over = np.abs(acc) > lim
        if over.any():
            self.saturated += int(over.sum())
            acc = np.clip(acc, -lim, lim)
        return acc

    def linear(self, op, a, w, bias):
        if self.a_bits == 32 or self.w_bits == 32:  # a float operand: float accumulation
            if self.a_bits != 32:
                ia, sa = self._act(op.inputs[0].name, a)
                a = ia * np.float32(sa)
            return super().linear(op, a, w, bias)
        ia, sa = self._act(op.inputs[0].name, a)
        iw, sw = self._weight(op, w)
        y = self._accumulate(ia @ iw) * (sa * sw)
        return y if bias is None else y + bias  # bias added at full precision

    def matmul(self, op, a, b):
        if self.a_bits == 32:
            return a @ b
        ia, sa = self._act(op.inputs[0].name, a)
        ib, sb = self._act(op.inputs[1].name, b)
        return self._accumulate(ia @ ib) * (sa * sb)

    def sfu_value(self, op, name, x):
        if self.sfu_bits is None:
            return x
        m = self.act_max.get(name)
        y = fixed_point(x, self.sfu_bits, float(np.abs(x).max()) if m is None else m)
        if op.fn == "log_softmax":  # the "log 0" flag passes as is (a flag bit in hardware)
            y = np.where(x <= -SENTINEL, x, y)
        return y
