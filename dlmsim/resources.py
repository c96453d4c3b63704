"""FPGA resource estimate of a design: DSP, BRAM36, URAM, LUT, FF against its device.

Rules from ../shared/reference/hardware.md; constants marked (u) are unconfirmed defaults,
to be replaced by `dlmsim calibrate` factors fitted on synthesis reports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dlmsim.arch import Accelerator, Device, array_dsps

KINDS = ("dsp", "bram36", "uram", "lut", "ff")

# (u) Per-PE fabric around the DSP: operand registers, accumulator adder, control.
PE_CONTROL_LUT = 20
# (u) SFU per element-lane at 16-bit fixed point: exp/recip/poly datapath.
SFU_LUT_PER_ELEM = 1500
SFU_FF_PER_ELEM = 2000
SFU_DSP_PER_ELEM = {"fixed": 2, "fp32": 8}
# AXI master port (hardware.md): ~2 BRAM18, ~550 FF, ~700 LUT each.
AXI_BRAM18, AXI_FF, AXI_LUT = 2, 550, 700
# (u) Top-level control, DMA engines, instruction sequencing.
CONTROL_LUT, CONTROL_FF = 5000, 8000


def bram18_per_bank(width_bits: int, depth: int) -> int:
    """BRAM18s for one bank of `depth` words of `width_bits` (HLS mapping rule)."""
    if width_bits <= 18:
        return math.ceil(width_bits / 18) * math.ceil(depth / 1024)
    return math.ceil(width_bits / 36) * math.ceil(depth / 512)


def uram_per_bank(width_bits: int, depth: int) -> int:
    return math.ceil(width_bits / 72) * math.ceil(depth / 4096)


@dataclass(frozen=True)
class Resources:
    used: dict[str, float]
    available: dict[str, int]
    buffer_memory: str  # where the tile buffer went: "bram" or "uram"

    @property
    def fraction(self) -> dict[str, float]:
        return {k: (self.used[k] / self.available[k] if self.available[k] else
                    (math.inf if self.used[k] else 0.0)) for k in KINDS}

    @property
    def over(self) -> list[str]:
        """Resources the design needs more of than the device has."""
        return [k for k in KINDS if self.used[k] > self.available[k]]

    @property
    def fits(self) -> bool:
        return not self.over

    def describe_over(self) -> str:
        return ", ".join(f"{k.upper()} {self.used[k]:.0f} > {self.available[k]}"
                         for k in self.over)


def buffer_blocks(arch: Accelerator, kind: str) -> int:
    """BRAM18 (kind 'bram') or URAM (kind 'uram') blocks of the banked tile buffer."""
    b = arch.buffer
    width_bits = max(8, b.bytes_per_cycle * 8 // b.banks)
    depth = math.ceil(b.capacity_bytes / (b.banks * width_bits / 8))
    per = bram18_per_bank(width_bits, depth) if kind == "bram" else uram_per_bank(width_bits,
                                                                                  depth)
    return b.banks * per


def estimate(arch: Accelerator, device: Device | None = None) -> Resources:
    dev = device or arch.dev()
    w, a, acc = arch.bits.weights, arch.bits.activations, arch.bits.accumulator
    fp = w == "fp32"
    wbits = 32 if fp else w
    abits = 32 if fp else a
    accbits = 32 if acc == "fp32" else acc

    dsp = array_dsps(arch, dev.dsp_family)
    # Per PE: an adder tree of ~(W+A) LUTs (FINN-R) plus control; FFs hold the operands
    # passing through and the accumulator (OS) or the stationary weight and partial sum (WS).
    lut = arch.pes * (wbits + abits + PE_CONTROL_LUT)
    ff = arch.pes * (wbits + abits + accbits + (wbits if "ws" in arch.array.dataflows else 0))

    sfu_elems = arch.sfu.elems_per_cycle
    sfu_scale = (32 if arch.sfu.bits == "fp32" else arch.sfu.bits) / 16
    dsp += sfu_elems * SFU_DSP_PER_ELEM["fp32" if arch.sfu.bits == "fp32" else "fixed"]
    lut += sfu_elems * SFU_LUT_PER_ELEM * sfu_scale
    ff += sfu_elems * SFU_FF_PER_ELEM * sfu_scale

    bram18 = arch.memory.ports * AXI_BRAM18
    lut += arch.memory.ports * AXI_LUT + CONTROL_LUT
    ff += arch.memory.ports * AXI_FF + CONTROL_FF

    avail = dev.available()
    kind = arch.buffer.memory
    if kind == "auto":
        kind = "uram" if avail["uram"] and buffer_blocks(arch, "uram") <= avail["uram"] \
            else "bram"
    uram = 0
    if kind == "uram":
        uram = buffer_blocks(arch, "uram")
    else:
        bram18 += buffer_blocks(arch, "bram")

    used = {"dsp": dsp, "bram36": math.ceil(bram18 / 2), "uram": uram, "lut": lut, "ff": ff}
    return Resources(used=used, available=avail, buffer_memory=kind)


def calibrated(res: Resources, arch: Accelerator) -> Resources | None:
    """The estimate scaled by the arch's calibration factors (None without calibration)."""
    cal = arch.calibration
    if cal is None:
        return None
    used = {k: v * getattr(cal, k) for k, v in res.used.items()}
    return Resources(used=used, available=res.available, buffer_memory=res.buffer_memory)
