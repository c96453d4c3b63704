"""Quantization and the accuracy side of the bit-width search.

`accuracy_proxy(workload, w_bits, a_bits, ...)` is what the search calls; `evaluate` gives
the full report (per op, per step); `quantize` holds the quantizers and the quantized
numerics; `weights` the synthetic weights and the checkpoint loader; `metrics` SQNR,
cosine, KL and top-1 agreement.
"""

from dlmsim.quant.evaluate import QuantReport, accuracy_proxy, evaluate, reduced_config
from dlmsim.quant.metrics import cosine, kl_divergence, sqnr_db, top1_agreement
from dlmsim.quant.quantize import QuantNumerics, fake_quant, quantize_weights
from dlmsim.quant.weights import load_checkpoint, synthetic_weights, to_state_dict

__all__ = [
    "QuantNumerics",
    "QuantReport",
    "accuracy_proxy",
    "cosine",
    "evaluate",
    "fake_quant",
    "kl_divergence",
    "load_checkpoint",
    "quantize_weights",
    "reduced_config",
    "sqnr_db",
    "synthetic_weights",
    "to_state_dict",
    "top1_agreement",
]
