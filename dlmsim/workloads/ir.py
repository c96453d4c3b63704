"""Operator IR: `Tensor`, `Op` and `Trace`.

A trace is the ops of one forward pass in dependency order plus the ops that run once per
sampling run and once per sampling step, and the sampler schedule (steps, forward passes).
Every number derived from shapes (FLOPs, MACs, bytes, parameters) is a property, never stored.

Shape conventions (the numeric executor and the simulator both rely on them):
- `gemm` / fn `linear`: inputs (A[..., K], W[K, N], optional bias[N]) -> out[..., N].
  M is the product of A's leading dims. With attr `transpose_b`, W is stored [N, K]
  (e.g. a tied embedding table used as an output head).
- `gemm` / fn `matmul`: inputs (A[b..., M, K], B[b..., K, N]) -> out[b..., M, N]; with attr
  `transpose_b`, B is [b..., N, K]. `batch` is the product of the b... dims. Attr `scale`
  multiplies the product (attention's 1/sqrt(dh), applied on the accumulator output).
- `gemm` / fn `conv2d`: inputs (x[B, Cin, H, W], W[Cout, Cin/groups, kh, kw], optional
  bias[Cout] or a per-sample bias[B, Cout]) -> out[B, Cout, Ho, Wo] (NCHW, PyTorch's and
  ONNX's layout); attrs `stride`, `padding`, `dilation` (an int or a (h, w) pair) and
  `groups`. It is costed as an implicit GEMM (im2col formed on the fly, never stored):
  `groups` independent products of M = B*Ho*Wo output pixels, K = Cin/groups*kh*kw,
  N = Cout/groups output channels; the operands read are the real tensors (x and W), not
  the kh*kw times larger im2col matrix.
- `sfu`: a non-linear or element-wise function (`vocab.SFU_FNS`); `gather`: rows of a table.
  `groupnorm` and `upsample` take NCHW tensors; `groupnorm` has attr `groups`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from dlmsim.workloads.check import TraceError, check_trace, pair
from dlmsim.workloads.vocab import DTYPE_BYTES, SFU_FNS


@dataclass(frozen=True)
class Tensor:
    """A named tensor: shape in elements, dtype name, and role in the op that uses it."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "bf16"
    role: Literal["weight", "activation", "cache", "index", "const"] = "activation"

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def bytes(self) -> float:
        return self.numel * DTYPE_BYTES[self.dtype]


@dataclass(frozen=True)
class Op:
    """One operator instance. `attrs` is a tuple of (key, value) pairs (hashable)."""

    name: str
    kind: Literal["gemm", "sfu", "gather"]
    fn: str
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    phase: Literal["once", "forward", "step"] = "forward"
    block: int | None = None
    attrs: tuple[tuple[str, object], ...] = field(default=())
    variant: str = ""  # the forward variant a forward op belongs to (Schedule.variants)

    def attr(self, key: str, default=None):
        for k, v in self.attrs:
            if k == key:
                return v
        return default

    # ---- GEMM geometry -------------------------------------------------------------
    @property
    def gemm_dims(self) -> tuple[int, int, int, int]:
        """(batch, M, K, N) of a GEMM: `batch` independent [M,K] x [K,N] products."""
        if self.kind != "gemm":
            raise TraceError(f"op {self.name}: gemm_dims of a {self.kind} op")
        a, b = self.inputs[0].shape, self.inputs[1].shape
        if self.fn == "conv2d":
            out = self.outputs[0].shape
            g = int(self.attr("groups", 1))
            return g, out[0] * out[2] * out[3], b[1] * b[2] * b[3], b[0] // g
        k = a[-1]
        if self.fn == "linear":
            n = b[0] if self.attr("transpose_b") else b[-1]
            return 1, math.prod(a[:-1]), k, n
        n = b[-2] if self.attr("transpose_b") else b[-1]
        return math.prod(a[:-2]), a[-2], k, n

    @property
    def weight_operand(self) -> Tensor | None:
        """The operand read from off-chip memory once per forward pass, if any."""
        for t in self.inputs:
            if t.role == "weight":
                return t
        return None

    # ---- derived work ----------------------------------------------------------------
    @property
    def macs(self) -> int:
        if self.kind != "gemm":
            return 0
        b, m, k, n = self.gemm_dims
        return b * m * k * n

    @property
    def flops(self) -> float:
        """Model-level FLOPs: 2 per MAC (+ bias adds) for GEMMs, SFU_FNS per element."""
        if self.kind == "gemm":
            bias = self.inputs[2].numel if len(self.inputs) > 2 else 0
            b, m, _, n = self.gemm_dims
            return 2.0 * self.macs + (b * m * n if bias else 0)
        if self.kind == "sfu":
            per_elem = SFU_FNS[self.fn]
            if self.fn == "residual" and len(self.inputs) > 2:
                per_elem = 2.0  # gated: x + gate * y
            if self.fn == "add":
                per_elem = float(len(self.inputs) - 1)  # x + y + z: one add per extra operand
            if self.fn == "rotary" and self.attr("rotate") == "qk":
                # rotary on a fused qkv: only q and k (outputs 0, 1) rotate; v is only split.
                return per_elem * (self.outputs[0].numel + self.outputs[1].numel)
            return per_elem * self.elements
        return 0.0

    @property
    def elements(self) -> int:
        """Elements an SFU op streams through: its first (data) input; the output for ops
        that expand their input (a timestep embedding, an upsample) or select from it (a
        slice, a take); every data input for a concat."""
        if self.fn in ("timestep_embedding", "upsample", "slice", "take"):
            return self.outputs[0].numel
        if self.fn == "concat":
            return sum(t.numel for t in self.inputs)
        return self.inputs[0].numel if self.inputs else 0

    @property
    def input_bytes(self) -> float:
        return sum(t.bytes for t in self.inputs)

    @property
    def output_bytes(self) -> float:
        return sum(t.bytes for t in self.outputs)

    @property
    def bytes(self) -> float:
        """Bytes touched at the model's dtypes, every operand once (no reuse, no tiling)."""
        if self.kind == "gather":
            # Only the gathered rows of the table are read, not the whole table.
            idx = self.inputs[1]
            return idx.bytes + 2 * self.outputs[0].bytes
        return self.input_bytes + self.output_bytes

    @property
    def weight_bytes(self) -> float:
        """Weight bytes read; a gather reads only the rows it gathers."""
        if self.kind == "gather":
            table = self.inputs[0]
            return min(table.bytes, self.outputs[0].bytes) if table.role == "weight" else 0.0
        return sum(t.bytes for t in self.inputs if t.role == "weight")

    @property
    def dims(self) -> str:
        """Compact shape text: 'b x [M,K]x[K,N]' for GEMMs, the data input's shape else."""
        if self.kind == "gemm":
            b, m, k, n = self.gemm_dims
            dims = (f"{b}x " if b > 1 else "") + f"[{m},{k}]x[{k},{n}]"
            if self.fn == "conv2d":
                kh, kw = self.inputs[1].shape[2:]
                dims = f"{kh}x{kw}/{pair(self.attr('stride', 1))[0]} " + dims
            return dims
        if self.kind == "gather":
            idx, table = self.inputs[1].shape, self.inputs[0].shape
            return f"[{','.join(map(str, idx))}] rows of [{','.join(map(str, table))}]"
        return "[" + ",".join(map(str, self.inputs[0].shape)) + "]"

    def signature(self) -> tuple:
        """What makes two ops cost the same: kind, fn, shapes, dtypes, roles, attrs."""
        return (
            self.kind,
            self.fn,
            tuple((t.shape, t.dtype, t.role) for t in self.inputs),
            tuple((t.shape, t.dtype) for t in self.outputs),
            self.phase,
            self.attrs,
        )


@dataclass(frozen=True)
class Schedule:
    """The sampler around the forward pass.

    steps: sampling steps T (per-step ops run this many times).
    forward_passes: expected forward passes per run (may be fractional: an expectation).
    variants: (name, passes) of forward passes of different kinds (a cache refresh and the
      cached steps between, ...): each forward op belongs to one (`Op.variant`), the passes
      add up to forward_passes. Empty: one kind, every forward op in it.
    """

    steps: int
    forward_passes: float
    variants: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Trace:
    """Ops of one model at one run setting, plus the sampler schedule."""

    model: str
    ops: tuple[Op, ...]
    schedule: Schedule
    run: tuple[tuple[str, object], ...] = ()  # the resolved run parameters, for reports
    inputs: tuple[Tensor, ...] = ()  # graph inputs (tokens, noise, sigma, ...)

    def __post_init__(self):
        check_trace(self)

    def run_param(self, key: str, default=None):
        return dict(self.run).get(key, default)

    def phase_ops(self, phase: str) -> tuple[Op, ...]:
        return tuple(op for op in self.ops if op.phase == phase)

    @property
    def forward_passes(self) -> float:
        return self.schedule.forward_passes

    def forward_variants(self) -> list[tuple[str, float, tuple[Op, ...]]]:
        """(name, passes per run, forward ops) of every kind of forward pass."""
        kinds = self.schedule.variants or (("", self.forward_passes),)
        fwd = self.phase_ops("forward")
        return [(name, passes, tuple(op for op in fwd if op.variant == name))
                for name, passes in kinds]

    @property
    def steps(self) -> int:
        return self.schedule.steps

    @property
    def tokens_per_run(self) -> int:
        """Tokens one sampling run generates: batch x gen_len (or seq_len); images for an
        image model, which has neither."""
        return int(self.run_param("batch", 1)
                   * self.run_param("gen_len", self.run_param("seq_len", 1)))

    @property
    def n_blocks(self) -> int:
        blocks = {op.block for op in self.ops if op.block is not None}
        return len(blocks)

    def _flops(self, phase: str) -> float:
        return sum(op.flops for op in self.ops if op.phase == phase)

    @property
    def flops_per_forward(self) -> float:
        """FLOPs of one forward pass (the mean over the passes of a run when the forward
        passes are of several kinds)."""
        if not self.schedule.variants:
            return self._flops("forward")
        return self.flops_forward_per_run / self.forward_passes if self.forward_passes else 0.0

    @property
    def flops_forward_per_run(self) -> float:
        return sum(passes * sum(op.flops for op in ops)
                   for _, passes, ops in self.forward_variants())

    @property
    def flops_per_step(self) -> float:
        """FLOPs of the ops that run every sampling step, forward pass or not."""
        return self._flops("step")

    @property
    def flops_once(self) -> float:
        return self._flops("once")

    @property
    def flops_per_run(self) -> float:
        return (
            self.flops_once
            + self.flops_forward_per_run
            + self.steps * self.flops_per_step
        )

    @property
    def weights(self) -> dict[str, Tensor]:
        """Every distinct weight tensor, by name."""
        out: dict[str, Tensor] = {}
        for op in self.ops:
            for t in op.inputs:
                if t.role == "weight":
                    out.setdefault(t.name, t)
        return out

    @property
    def cache_bytes(self) -> float:
        """Off-chip caches kept between forward passes (K/V, features) at the model dtype:
        the largest view of every cache tensor, by name (reads of role `cache`, and what
        `cache_write` ops store)."""
        size: dict[str, float] = {}
        for op in self.ops:
            kept = [t for t in op.inputs if t.role == "cache"]
            kept += list(op.outputs) if op.fn == "cache_write" else []
            for t in kept:
                size[t.name] = max(size.get(t.name, 0.0), t.bytes)
        return sum(size.values())

    @property
    def params(self) -> int:
        """Parameter count: elements of the distinct weight tensors."""
        return sum(t.numel for t in self.weights.values())

    def to_dataframe(self):
        """One row per op: name, kind, fn, phase, block, shapes, MACs, FLOPs, bytes."""
        import pandas as pd

        rows = []
        for op in self.ops:
            rows.append(
                {
                    "name": op.name,
                    "kind": op.kind,
                    "fn": op.fn,
                    "phase": op.phase,
                    "block": op.block,
                    "dims": op.dims,
                    "inputs": " ".join(_fmt_tensor(t) for t in op.inputs),
                    "outputs": " ".join(_fmt_tensor(t) for t in op.outputs),
                    "macs": op.macs,
                    "flops": op.flops,
                    "bytes": op.bytes,
                    "weight_bytes": op.weight_bytes,
                }
            )
        return pd.DataFrame(rows)


def _fmt_tensor(t: Tensor) -> str:
    tag = {"weight": "W:", "cache": "C:", "index": "I:", "const": "K:"}.get(t.role, "")
    return f"{tag}{t.name}[{'x'.join(map(str, t.shape))}]"
