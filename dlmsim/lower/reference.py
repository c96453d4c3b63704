"""Test vectors: numpy execution of the lowered ops at the design's precision.

The op semantics are those of `dlmsim.functional` (the simulator's numeric twin); this module
only swaps its GEMM hooks for the integer arithmetic the generated program performs:

- activations entering a GEMM: per-tensor static scale s = max|x| / (2^(a-1) - 1) (max from
  an fp32 run of the same inputs, i.e. calibrated), codes = trunc(x/s +- 0.5) clamped to
  +-(2^(a-1) - 1) (round half away from zero: what a float->int cast that truncates toward
  zero gives after adding +-0.5, as the program does);
- weights: per output channel scale, same rounding; codes stored zero-padded to the tiles;
- products accumulate exactly in integers; the result is dequantized in float32 by one
  multiply with s_a * s_w[n] (x `scale` for attention scores: Q pre-scaled) plus the bias.
SFU functions run in float32 (the program's SFU datapath; see the lowering README).
"""

from __future__ import annotations

import types

import numpy as np

from dlmsim.functional import Numerics, execute
from dlmsim.quant.quantize import channel_scales, qmax, scale_for
from dlmsim.workloads.ir import Op, Trace


def quantize(x: np.ndarray, inv_scale: np.float32, bits) -> np.ndarray:
    """Codes as int64: the program's round-half-away-from-zero and clamp, in float32."""
    t = x.astype(np.float32) * np.float32(inv_scale)
    t = np.where(t >= 0, t + np.float32(0.5), t - np.float32(0.5)).astype(np.float32)
    q = np.float32(qmax(int(bits)))
    return np.trunc(np.clip(t, -q, q)).astype(np.int64)


def act_scale(max_abs: float, bits) -> tuple[np.float32, np.float32]:
    """(scale, inverse scale) in float32; a zero range gets scale 1."""
    s = np.float32(scale_for(max_abs, int(bits)))
    return s, np.float32(1.0) / s


def weight_codes(w: np.ndarray, bits) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel codes and scales of a [K, N] weight."""
    s = channel_scales(w, int(bits), axis=-1)[0]
    return quantize(w / s[None, :], np.float32(1.0), bits), s


class LoweredNumerics(Numerics):
    """The generated program's GEMM arithmetic for `functional.execute`."""

    def __init__(self, a_bits, w_bits, act_inv: dict[str, np.float32],
                 wq: dict[str, tuple[np.ndarray, np.ndarray]]):
        super().__init__()
        self.a_bits, self.w_bits = a_bits, w_bits
        self.act_inv = act_inv
        self.wq = wq
        self.acc_max = 0

    def _codes(self, name, x):
        return quantize(x, self.act_inv[name], self.a_bits)

    def _acc(self, acc):
        self.acc_max = max(self.acc_max, int(np.abs(acc).max()) if acc.size else 0)
        return acc.astype(np.float32)

    def linear(self, op: Op, a, w, bias):
        codes, sw = self.wq[op.inputs[1].name]
        x = self._codes(op.inputs[0].name, a)
        s_out = (np.float32(1.0) / self.act_inv[op.inputs[0].name]) * sw
        y = self._acc(x @ codes) * s_out.astype(np.float32)
        return y if bias is None else (y + bias).astype(np.float32)

    def matmul(self, op: Op, a, b):
        ia = self._codes(op.inputs[0].name, a)
        ib = self._codes(op.inputs[1].name, b)
        s = np.float32(np.float32(1.0) / self.act_inv[op.inputs[0].name]) * np.float32(
            np.float32(1.0) / self.act_inv[op.inputs[1].name])
        # functional applies `scale` after this hook; the program folds it into one factor.
        return self._acc(ia @ ib) * s


def external_inputs(ops: list[Op]) -> list:
    """Activation tensors the scope consumes but does not produce, in first-use order."""
    made = {t.name for op in ops for t in op.outputs}
    seen, out = set(), []
    for op in ops:
        for t in op.inputs:
            if t.role in ("activation", "cache", "index") and t.name not in made \
                    and t.name not in seen:
                seen.add(t.name)
                out.append(t)
    return out


def scope_weights(ops: list[Op], seed: int) -> dict[str, np.ndarray]:
    """Synthetic weights (dlmsim.quant's statistics) for the weights the scope uses."""
    from dlmsim.quant.weights import linear_weight_names, synthetic_weights

    ws = {}
    for op in ops:
        for t in op.inputs:
            if t.role == "weight":
                ws.setdefault(t.name, t)
    view = types.SimpleNamespace(ops=ops, weights=ws)
    assert linear_weight_names(view) is not None
    return synthetic_weights(view, seed)


def make_vectors(trace: Trace, ops: list[Op], arch_types, seed: int = 0) -> dict:
    """Inputs, weights (as the program takes them) and expected outputs of the scope.

    Returns {'inputs': {name: array}, 'weights': {...float...}, 'act_inv': {name: inv},
    'wq': {name: (codes, scales)}, 'env': every tensor of the quantized run,
    'fp32_env': the fp32 run, 'acc_max': largest |accumulator|}.
    """
    rng = np.random.default_rng(seed)
    inputs = {t.name: rng.standard_normal(t.shape).astype(np.float32)
              for t in external_inputs(ops)}
    weights = scope_weights(ops, seed)
    ref = execute(trace, weights, inputs, ops=ops)
    out = {"inputs": inputs, "weights": weights, "fp32_env": ref, "act_inv": {}, "wq": {},
           "acc_max": 0}
    if not arch_types.integer:
        out["env"] = ref
        return out
    act_inv = {}
    for op in ops:
        if op.kind != "gemm":
            continue
        for t in op.inputs[:2]:
            if t.role != "weight":
                act_inv[t.name] = act_scale(float(np.abs(ref[t.name]).max()),
                                            arch_types.a_bits)[1]
    wq = {}
    for op in ops:
        if op.kind == "gemm" and op.inputs[1].role == "weight":
            w = weights[op.inputs[1].name]
            w = w.T if op.attr("transpose_b") else w
            wq[op.inputs[1].name] = weight_codes(w, arch_types.w_bits)
    num = LoweredNumerics(arch_types.a_bits, arch_types.w_bits, act_inv, wq)
    out["env"] = execute(trace, weights, inputs, ops=ops, numerics=num)
    out.update(act_inv=act_inv, wq=wq, acc_max=num.acc_max)
    return out
