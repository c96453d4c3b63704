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

import math
from dataclasses import dataclass, field

import numpy as np

from dlmsim.arch import Accelerator, macs_per_dsp
from dlmsim.errors import InputError
from dlmsim.lower.kernel import DESC, SFU_CODES, TWO_INPUT, KernelSpec
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
    """The design as lowered: output-stationary only. The kernel's array is OS (SDA's
    hybrid OS/WS PE is not generated yet), so a design whose policy may pick WS is lowered
    and predicted with `policy: os`."""
    if arch.array.policy == "os":
        return arch
    if "os" not in arch.array.dataflows:
        raise InputError(f"arch {arch.name}: the lowering generates an output-stationary "
                         "array; this design supports only "
                         f"{', '.join(arch.array.dataflows)}")
    return arch.model_copy(update={"array": arch.array.model_copy(update={"policy": "os"})})


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
    def __init__(self, arch: Accelerator, trace: Trace, ops: list[Op], seed: int):
        self.arch, self.trace, self.ops = arch, trace, ops
        self.fp32 = arch.bits.activations == "fp32"
        self.r, self.c = arch.array.rows, arch.array.cols
        self.pack = pack_of(arch)
        self.we = _beat(arch)
        self.qmax = 1.0 if self.fp32 else float(2 ** (int(arch.bits.activations) - 1) - 1)
        self.act_top = 0
        self.prm: list[float] = [1.0]
        self.wchunks: list[np.ndarray] = []
        self.wtop = 0
        self.places: dict[str, Place] = {}
        self.instrs: list[dict] = []
        self.seed = seed

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
        s = 1.0 if self.fp32 else (max_abs / self.qmax if max_abs > 0 else 1.0)
        s = float(np.float32(s))
        p.scale_at = self.prm_add([s])
        p.inv_at = self.prm_add([np.float32(1.0) / np.float32(s)])

    def wts_add(self, words: np.ndarray) -> tuple[int, int]:
        """Place a [K, NW] word matrix; returns (base, row stride) in words."""
        k, nw = words.shape
        rs = nw  # weight rows are read word by word (fetch_b); no beat alignment needed
        self.wchunks.append(words.reshape(-1))
        base = self.wtop
        self.wtop += k * rs
        return base, rs
