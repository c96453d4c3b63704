"""Accuracy metrics of a quantized execution against the fp32 one."""

from __future__ import annotations

import numpy as np


def _flat(x) -> np.ndarray:
    """Flattened float32: sums of squares go through BLAS dot products (float32 accumulation,
    relative error ~1e-6 at a million elements: irrelevant on a dB scale, and exact zeros
    stay exact, so identical tensors still give +inf)."""
    return np.ascontiguousarray(x, np.float32).ravel()


def sqnr_db(ref: np.ndarray, x: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio, dB: 10 log10(sum ref^2 / sum (ref - x)^2).
    +inf when x equals ref; -inf when ref is all zeros and x is not."""
    ref = _flat(ref)
    d = ref - _flat(x)
    noise = float(d @ d)
    sig = float(ref @ ref)
    if noise == 0.0:
        return float("inf")
    if sig == 0.0:
        return float("-inf")
    return 10.0 * np.log10(sig / noise)


def cosine(ref: np.ndarray, x: np.ndarray) -> float:
    """Cosine similarity of the flattened tensors (1.0 if both are zero)."""
    a, b = _flat(ref), _flat(x)
    na, nb = float(np.sqrt(a @ a)), float(np.sqrt(b @ b))
    if na == 0.0 or nb == 0.0:
        return 1.0 if na == nb else 0.0
    return float(np.clip(float(a @ b) / (na * nb), -1.0, 1.0))


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def kl_divergence(ref_logits: np.ndarray, logits: np.ndarray, rows=None) -> float:
    """Mean over positions of KL(p_ref || p) in nats, p = softmax over the last dim.
    Logits or log-probabilities both work (log-softmax is applied). rows: boolean mask over
    the leading dims selecting the positions to average (default all)."""
    lp, lq = _log_softmax(ref_logits), _log_softmax(logits)
    kl = (np.exp(lp) * (lp - lq)).sum(-1)
    kl = kl[rows] if rows is not None else kl
    return float(max(kl.mean(), 0.0)) if kl.size else 0.0


def top1_agreement(ref_logits: np.ndarray, logits: np.ndarray, rows=None) -> float:
    """Fraction of positions whose argmax token is the same."""
    same = np.argmax(ref_logits, -1) == np.argmax(logits, -1)
    same = same[rows] if rows is not None else same
    return float(same.mean()) if same.size else 1.0
