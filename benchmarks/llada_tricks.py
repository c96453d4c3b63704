"""LLaDA-8B with and without each diffusion-LLM inference trick on FPGA designs.

One sampling run (batch 1, prompt 128 + 128 generated tokens in blocks of 32, 128 steps) per
trick and design: latency, DRAM traffic and FLOPs per run. Markdown on stdout:

    python benchmarks/llada_tricks.py                                   # int8-u280
    python benchmarks/llada_tricks.py --arch fp32-u280 --set memory.target=ddr
"""

from __future__ import annotations

import argparse

import dlmsim
from dlmsim.config import parse_sets

# Fast-dLLM's README: confidence-threshold (0.9) parallel decoding alone is 2.5x faster than
# LLaDA's one token per step on GSM8K at gen length 256: about 2.5 tokens per step.
RATE = 2.5
TRICKS = [
    ("LLaDA (one token per step, full forward)", {}),
    ("semi-AR truncation", {"semi_ar": True}),
    ("Fast-dLLM prefix KV cache", {"kv_cache": "prefix"}),
    ("Fast-dLLM dual KV cache", {"kv_cache": "dual"}),
    (f"parallel decoding ({RATE} tokens/step)", {"unmask_per_step": RATE}),
    ("dual cache + parallel (Fast-dLLM)", {"kv_cache": "dual", "unmask_per_step": RATE}),
    ("dLLM-Cache (100 / 7 / 0.25)", {"dllm_cache": True}),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="int8-u280")
    ap.add_argument("--set", action="append", default=[], help="arch override key=value")
    args = ap.parse_args()
    arch = dlmsim.load_arch(args.arch, **parse_sets(args.set))
    print(f"{arch.name}{''.join(f', {s}' for s in args.set)}\n")
    print("| trick | forward passes | latency per run | vs LLaDA | DRAM traffic per run "
          "| FLOPs per run | caches off chip |")
    print("|---|---|---|---|---|---|---|")
    base = None
    for name, run in TRICKS:
        t = dlmsim.load_workload("llada-8b", **run)
        res = dlmsim.simulate(arch, t)
        base = base or res.seconds
        s = res.summary()
        print(f"| {name} | {t.forward_passes:g} | {res.seconds:.4g} s | "
              f"{base / res.seconds:.2f}x | {s['dram_bytes_per_run'] / 1e9:.4g} GB | "
              f"{t.flops_per_run / 1e12:.4g} TFLOP | {t.cache_bytes / 1e6:.3g} MB |")


if __name__ == "__main__":
    main()
