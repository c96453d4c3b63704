"""A GPU baseline: a roofline estimate of the same trace and sampler schedule on a GPU from
its datasheet (arch/gpus/*.yaml). An estimate, never a measurement.

Per op, at the chosen precision p (bytes b_p per element; indices int32):
  t_op = max(FLOPs / peak_p, bytes / bandwidth)
with FLOPs = 2 x MACs for a GEMM (on the tensor cores at peak_p) and bytes = every input and
output once from the GPU's memory (weights too: no fusion, no cache reuse, as eager PyTorch
runs a diffusion LM's ops). SFU ops (softmax, norms, sampling, element-wise) and gathers are
counted as memory-bound (their bytes only): on a GPU they are, at these sizes. The run is
  roofline_s = sum over ops of runs per run x t_op,   estimate_s = roofline_s / efficiency,
with one efficiency factor for everything (default DEFAULT_EFFICIENCY, or the one a measured
run time gives: roofline_s / measured_s). Energy is board power x time at the datasheet's
TDP (the board's power limit): an upper bound on the GPU's energy, so its tokens per joule is
a lower bound.
"""

from __future__ import annotations

import functools
import math
import os
import re
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import Field, FiniteFloat

from dlmsim.config import Strict, Version, bundled_dir, bundled_names, read_yaml, validate
from dlmsim.errors import InputError

Precision = Literal["fp32", "tf32", "bf16", "fp16", "fp8", "int8"]
PRECISION_BYTES = {"fp32": 4, "tf32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "int8": 1}
# (u) Achieved fraction of the roofline for an unfused eager run of a diffusion LM: an
# assumption, to be replaced by --gpu-measured-s when a run time is known.
DEFAULT_EFFICIENCY = 0.5


Positive = Annotated[FiniteFloat, Field(gt=0)]


class GpuMemory(Strict):
    kind: str
    bandwidth_gbps: Positive
    capacity_gib: Positive


class Gpu(Strict):
    version: Version
    name: str
    board: str
    peak_tflops: dict[Precision, Positive] = Field(min_length=1)  # dense, per precision
    memory: GpuMemory
    tdp_w: Positive
    source: str = Field(min_length=1)


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


@functools.lru_cache(maxsize=16)
def load_gpu(name: str) -> Gpu:
    """A GPU of arch/gpus/ by name."""
    known = bundled_names(os.path.join("arch", "gpus"))
    path = bundled_dir("arch") / "gpus" / f"{name}.yaml"
    if not _NAME.fullmatch(name) or not path.is_file():
        raise InputError(f"unknown GPU '{name}'; known: {', '.join(known)}")
    return validate(Gpu, read_yaml(path), str(path))


def gpu_names() -> list[str]:
    return bundled_names(os.path.join("arch", "gpus"))


@dataclass(frozen=True)
class GpuEstimate:
    gpu: Gpu
    precision: str
    roofline_s: float  # the sum of per-op rooflines
    efficiency: float
    tokens_per_run: int
    measured: bool  # efficiency set from a measured run time

    @property
    def seconds(self) -> float:
        return self.roofline_s / self.efficiency

    @property
    def power_w(self) -> float:
        return self.gpu.tdp_w

    @property
    def energy_j(self) -> float:
        return self.power_w * self.seconds

    @property
    def tokens_per_j(self) -> float:
        return self.tokens_per_run / self.energy_j

    def summary(self, fpga_seconds: float, fpga_tokens_per_j: float) -> dict:
        """Metrics keyed baseline_*, and the two ratios (FPGA against the GPU)."""
        return {"baseline_gpu": self.gpu.name, "baseline_precision": self.precision,
                "baseline_efficiency": self.efficiency,
                "baseline_roofline_s": self.roofline_s, "baseline_latency_run_s": self.seconds,
                "baseline_power_w": self.power_w, "baseline_energy_run_j": self.energy_j,
                "baseline_tokens_per_j": self.tokens_per_j,
                "speed_vs_baseline": self.seconds / fpga_seconds,
                "tokens_per_j_vs_baseline": fpga_tokens_per_j / self.tokens_per_j}


def default_precision(trace, gpu: Gpu) -> str:
    """The model's own precision (run.precision) when the GPU has it, else bf16, else fp16,
    else the GPU's first."""
    for p in (trace.run_param("precision"), "bf16", "fp16"):
        if p in gpu.peak_tflops:
            return p
    return next(iter(gpu.peak_tflops))


def op_seconds(op, gpu: Gpu, precision: str) -> float:
    """Roofline seconds of one op on the GPU (module docstring)."""
    b = PRECISION_BYTES[precision]

    def nbytes(ts):
        return sum(t.numel * (4 if t.role == "index" else b) for t in ts)

    if op.kind == "gather":
        moved = nbytes(op.inputs[1:]) + 2 * nbytes(op.outputs)  # only the gathered rows
    else:
        moved = nbytes(op.inputs) + nbytes(op.outputs)
    mem_s = moved / (gpu.memory.bandwidth_gbps * 1e9)
    if op.kind != "gemm":
        return mem_s
    return max(2.0 * op.macs / (gpu.peak_tflops[precision] * 1e12), mem_s)


def estimate(trace, gpu: Gpu, precision: str | None = None, efficiency: float | None = None,
             measured_s: float | None = None) -> GpuEstimate:
    """The GPU estimate of a sampling run of `trace`: at `efficiency`, or at the efficiency a
    measured run time `measured_s` gives (not both)."""
    if efficiency is not None and measured_s is not None:
        raise InputError("give --gpu-efficiency or --gpu-measured-s, not both")
    p = precision or default_precision(trace, gpu)
    if p not in gpu.peak_tflops:
        raise InputError(f"{gpu.name} has no {p} rate; it has "
                         f"{', '.join(gpu.peak_tflops)}")
    roof = sum(op_seconds(op, gpu, p) for op in trace.phase_ops("once"))
    roof += trace.steps * sum(op_seconds(op, gpu, p) for op in trace.phase_ops("step"))
    for _, passes, ops in trace.forward_variants():
        roof += passes * sum(op_seconds(op, gpu, p) for op in ops)
    if measured_s is not None:
        if not math.isfinite(measured_s):
            raise InputError(f"--gpu-measured-s {measured_s:g}: not a run time")
        if not measured_s >= roof:  # NaN too
            raise InputError(f"--gpu-measured-s {measured_s:g} s is faster than the "
                             f"{gpu.name} roofline of this run ({roof:.4g} s at {p}): not a "
                             "time it can reach")
        eff = roof / measured_s
    else:
        eff = DEFAULT_EFFICIENCY if efficiency is None else efficiency
        if not 0 < eff <= 1:
            raise InputError(f"--gpu-efficiency {eff:g} must be in (0, 1]")
    est = GpuEstimate(gpu, p, roof, eff, trace.tokens_per_run, measured_s is not None)
    if not (roof > 0 and math.isfinite(est.energy_j) and est.tokens_per_j > 0):
        raise InputError(f"the {gpu.name} estimate at efficiency {eff:g} is beyond what "
                         f"floats hold (run time {est.seconds:g} s)")
    return est
