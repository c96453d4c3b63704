"""Codes and synthetic data of a lowered scope: the rounding the program performs, per-channel
weight codes, and the seeded weights and inputs (dlmsim.quant's statistics)."""

from __future__ import annotations

import types

import numpy as np

from dlmsim.quant.quantize import channel_scales, qmax, scale_for
from dlmsim.workloads.ir import Op


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
