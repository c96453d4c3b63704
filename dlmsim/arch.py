"""Accelerator and device configs (arch/*.yaml, arch/devices/*.yaml), validated on load.

The accelerator template (after SDA): one hybrid systolic array of `rows x cols` processing
elements (PEs) that runs output-stationary (OS) or weight-stationary (WS), a special function
unit (SFU) for the non-linear ops, a shared on-chip tile buffer between them, and off-chip
memory behind DMA engines.

A PE performs one multiply-accumulate per cycle at the configured bit widths. DSP packing
sets how many PEs share one DSP (see `macs_per_dsp`): packing changes the DSP count, not
the cycle count.
"""

from __future__ import annotations

import functools
import math
import os
import re
from typing import Any, Literal

from pydantic import Field, PositiveFloat, PositiveInt, model_validator

from dlmsim.config import (
    Strict,
    Version,
    bundled_dir,
    bundled_names,
    config_hash,
    read_yaml,
    resolve,
    set_dotted,
    validate,
)
from dlmsim.errors import InputError

Bits = Literal[4, 8, 16, "fp32"]
Dataflow = Literal["os", "ws"]


# ------------------------------------------------------------------------------- devices
class _Range(Strict):
    min: PositiveFloat
    max: PositiveFloat

    @model_validator(mode="after")
    def _ordered(self):
        if self.min > self.max:
            raise ValueError(f"min {self.min:g} > max {self.max:g}")
        return self


PortBits = Literal[32, 64, 128, 256, 512, 1024]
GIB = 2**30
# Off-chip memory technologies with an energy per bit in dlmsim.power.
MemoryTechnology = Literal["DDR4", "LPDDR4", "HBM2", "HBM2e"]


class DeviceMemory(Strict):
    """One off-chip memory of a board, as the programmable logic reaches it."""

    kind: str  # technology and width, e.g. "DDR4 64-bit SODIMM"
    technology: MemoryTechnology  # what sets its energy per bit (dlmsim.power)
    capacity_gib: PositiveFloat
    # Held by the operating system (Zynq boards) or the platform; not for the design.
    reserved_gib: float = Field(0.0, ge=0)
    peak_gbps: PositiveFloat  # the memory's peak (all its channels)
    port_peak_gbps: PositiveFloat | None = None  # one port's ceiling (an HBM pseudo-channel)
    max_port_bits: PortBits  # widest AXI port the PL may use towards it
    max_ports: PositiveInt  # AXI ports the PL may use towards it
    source: str  # where the figures come from
    confirmed: bool = True  # False: some figure is unconfirmed (see `note`)
    note: str = ""

    @model_validator(mode="after")
    def _reserve(self):
        if self.reserved_gib >= self.capacity_gib:
            raise ValueError(f"reserved_gib {self.reserved_gib:g} leaves nothing of "
                             f"capacity_gib {self.capacity_gib:g}")
        return self

    @property
    def usable_bytes(self) -> float:
        return (self.capacity_gib - self.reserved_gib) * GIB


class _Shell(Strict):
    """Resources an Alveo shell reserves (not available to the kernel)."""

    dsp: int = 0
    bram36: int = 0
    uram: int = 0
    lut: int = 0
    ff: int = 0


class DevicePower(Strict):
    """What the device draws whatever the design does (dlmsim.power adds the design's part)."""

    static_w: float = Field(ge=0, allow_inf_nan=False)  # the PL's static (leakage) power
    # What runs beside the PL: a Zynq's PS; 0 on Alveo cards (the card is not counted).
    platform_w: float = Field(ge=0, allow_inf_nan=False)
    source: str = Field(min_length=1)
    confirmed: bool = True  # False: a typical or scaled figure, not from this part's report
    note: str = ""


class Device(Strict):
    version: Version
    name: str
    board: str
    part: str
    dsp: PositiveInt
    dsp_family: Literal["dsp48e2", "dsp58"]
    bram36: int = Field(ge=0)
    uram: int = Field(ge=0)
    lut: PositiveInt
    ff: PositiveInt
    # Off-chip memories by name (ps_ddr, pl_ddr, hbm, ...); the first is the default one.
    memories: dict[str, DeviceMemory] = Field(min_length=1)
    clock_mhz: _Range
    shell: _Shell = _Shell()
    power: DevicePower
    confirmed: bool = True

    def memory(self, name: str | None = None) -> tuple[str, DeviceMemory]:
        """(name, memory): the one named, or the default (first) one."""
        if name is None:
            name = next(iter(self.memories))
        if name not in self.memories:
            raise InputError(f"device {self.name} has no memory '{name}'; it has "
                             f"{', '.join(self.memories)}")
        return name, self.memories[name]

    def available(self) -> dict[str, int]:
        """Resources left for the accelerator after the shell."""
        return {
            "dsp": self.dsp - self.shell.dsp,
            "bram36": self.bram36 - self.shell.bram36,
            "uram": self.uram - self.shell.uram,
            "lut": self.lut - self.shell.lut,
            "ff": self.ff - self.shell.ff,
        }


_DEVICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


@functools.lru_cache(maxsize=64)
def load_device(name: str) -> Device:
    """A device of the database by name (cached: Device is immutable)."""
    d = bundled_dir("arch") / "devices"
    known = bundled_names(os.path.join("arch", "devices"))
    if not _DEVICE_NAME.fullmatch(name):
        raise InputError(f"device '{name}' is not a device name (a path is not one); "
                         f"known: {', '.join(known)}")
    path = d / f"{name}.yaml"
    if not path.is_file():
        raise InputError(f"unknown device '{name}'; known: {', '.join(known)}")
    return validate(Device, read_yaml(path), str(path))


# ------------------------------------------------------------------------------ packing
def macs_per_dsp(w_bits: Bits, a_bits: Bits, family: str) -> float:
    """Multiply-accumulates one DSP slice sustains per cycle (hardware.md's table).

    DSP48E2 (27x18): 16x16 -> 1, 8x8 -> 2 (one operand shared), W4A8 -> 2 (SDA's matmul
    mode), 4x4 -> 4 (with LUT correction), fp32 MAC -> 1/5 (3 DSPs multiply + 2 add).
    DSP58 (27x24): 16x16 -> 1, 8x8 / 8x4 / 4x4 -> 3, fp32 MAC -> 1.
    Mixed 16-bit cases (16x8, 16x4) take the 16-bit figure: one product per DSP.
    """
    if w_bits == "fp32" or a_bits == "fp32":
        return 1.0 if family == "dsp58" else 0.2
    widest = max(w_bits, a_bits)
    if widest == 16:
        return 1.0
    if family == "dsp58":
        return 3.0
    if widest == 8:
        return 2.0
    return 4.0  # 4 x 4


def array_dsps(arch: Accelerator, family: str) -> int:
    """DSP slices of the PE array: one per `macs_per_dsp` PEs."""
    return math.ceil(arch.pes / macs_per_dsp(arch.bits.weights, arch.bits.activations, family))


def bytes_of(bits: Bits) -> float:
    return 4.0 if bits == "fp32" else bits / 8


def stored_bytes(t, arch: Accelerator) -> float:
    """Bytes a tensor takes on this design: weights at the weight width, indices as int32,
    everything else at the activation width (re-quantised on the array's output path)."""
    if t.role == "weight":
        return t.numel * bytes_of(arch.bits.weights)
    if t.role == "index":
        return t.numel * 4.0
    return t.numel * bytes_of(arch.bits.activations)


# ---------------------------------------------------------------------------- the design
class ArraySpec(Strict):
    rows: PositiveInt
    cols: PositiveInt
    # lax: YAML gives a list
    dataflows: tuple[Dataflow, ...] = Field(("os", "ws"), strict=False)
    policy: Literal["os", "ws", "auto"] = "os"
    switch_cycles: int = Field(64, ge=0)  # cycles to switch dataflow between ops (auto)
    # How consecutive folds of a GEMM share the array (dlmsim.cost.systolic): "full" streams
    # the next fold right behind, as SDA's hand-written PE_wrapper; "drain" hides only the
    # drain/preload (double-buffered accumulators or weights); "none" runs folds back to
    # back, as Allo's systolic template and SCALE-Sim count.
    fold_overlap: Literal["none", "drain", "full"] = "full"

    @model_validator(mode="after")
    def _supported(self):
        if not self.dataflows:
            raise ValueError("dataflows: the array must support at least one of os, ws")
        if self.policy != "auto" and self.policy not in self.dataflows:
            raise ValueError(f"policy '{self.policy}' is a dataflow the array does not "
                             f"support (dataflows: {', '.join(self.dataflows)})")
        return self


class BitsSpec(Strict):
    weights: Bits = 8
    activations: Bits = 8
    accumulator: Literal[16, 24, 32, 36, "fp32"] = 32  # 36: SDA's ACC_BIT

    @model_validator(mode="after")
    def _consistent(self):
        fp = [self.weights == "fp32", self.activations == "fp32", self.accumulator == "fp32"]
        if any(fp) and not all(fp):
            raise ValueError("an fp32 array needs fp32 weights, activations and accumulator")
        if not any(fp):
            need = self.weights + self.activations
            if self.accumulator < need:
                raise ValueError(f"accumulator {self.accumulator} bits is narrower than one "
                                 f"{self.weights}x{self.activations}-bit product ({need} bits)")
        return self


class SfuSpec(Strict):
    """Special function unit; its cost per function and precision is dlmsim.sfu's."""

    lanes: PositiveInt = 5
    elems_per_lane: PositiveInt = 2  # elements per lane per cycle
    pipeline_depth_cycles: int = Field(32, ge=0)  # control overhead once per op
    bits: Literal[8, 16, 24, 32, "fp32"] = 16
    # Interleaved partial accumulators per lane: a floating-point reduction runs at
    # II = ceil(adder latency / partial_sums) (1: the plain HLS loop).
    partial_sums: PositiveInt = 1
    # Per-function override: passes at II = 1 over the data, replacing dlmsim.sfu's program.
    passes: dict[str, float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known(self):
        from dlmsim.sfu import PROGRAMS

        for fn, p in self.passes.items():
            if fn not in PROGRAMS:
                raise ValueError(f"passes: unknown SFU function '{fn}'")
            if p < 0:
                raise ValueError(f"passes.{fn}: must be >= 0")
        return self

    @property
    def elems_per_cycle(self) -> int:
        return self.lanes * self.elems_per_lane


class BufferSpec(Strict):
    kib: PositiveFloat
    banks: PositiveInt = 16
    bytes_per_cycle: PositiveInt = 128  # width of one buffer port seen by array and SFU
    # Ports the array, the SFU and the DMA share (each holds one while it works); 3: none
    # of them ever waits for another.
    ports: PositiveInt = 3
    memory: Literal["bram", "uram", "auto"] = "auto"
    # Share of the capacity that holds whole activation tensors between ops; the rest holds
    # the double-buffered tiles of the op in flight (a fixed split: a simplification).
    resident_fraction: float = Field(0.5, ge=0, lt=1)
    # Buffer-level loop order of every GEMM (rule and formulas: dlmsim.mapping).
    loop_order: Literal["auto", "weight_panel", "output_row"] = "auto"

    @property
    def capacity_bytes(self) -> float:
        return self.kib * 1024


class MemorySpec(Strict):
    target: str | None = None  # which device memory holds everything; default its first
    peak_gbps: PositiveFloat | None = None  # default: that memory's peak
    efficiency: float = Field(0.85, gt=0, le=1)  # of min(port peak, channel peak)
    latency_ns: float = Field(200.0, ge=0)  # first-byte latency per DMA transfer
    ports: PositiveInt = 1  # AXI master ports
    port_bits: PortBits | None = None  # default: the widest the memory allows


class Calibration(Strict):
    """Correction factors fitted by `dlmsim calibrate` (never applied silently)."""

    cycles: float = Field(1.0, gt=0)
    dsp: float = Field(1.0, gt=0)
    bram36: float = Field(1.0, gt=0)
    uram: float = Field(1.0, gt=0)
    lut: float = Field(1.0, gt=0)
    ff: float = Field(1.0, gt=0)
    clock_mhz: PositiveFloat | None = None  # the clock synthesis estimated
    source: str = ""


class Accelerator(Strict):
    version: Version
    name: str
    description: str = ""
    device: str
    clock_mhz: PositiveFloat
    array: ArraySpec
    bits: BitsSpec = BitsSpec()
    sfu: SfuSpec = SfuSpec()
    buffer: BufferSpec
    memory: MemorySpec = MemorySpec()
    allow_overfull: bool = False  # simulate a design that does not fit the device anyway
    calibration: Calibration | None = None

    # ---- derived ----------------------------------------------------------------------
    @property
    def pes(self) -> int:
        return self.array.rows * self.array.cols

    @property
    def period_s(self) -> float:
        return 1e-6 / self.clock_mhz

    def dev(self) -> Device:
        return load_device(self.device)

    @property
    def latency_cycles(self) -> float:
        """The memory's first-byte latency in accelerator cycles."""
        return self.memory.latency_ns * 1e-3 * self.clock_mhz

    def off_chip(self, device: Device | None = None) -> tuple[str, DeviceMemory]:
        """(name, memory) of the device memory this design uses."""
        return (device or self.dev()).memory(self.memory.target)

    def port_bits(self, device: Device | None = None) -> int:
        """Width of each AXI port: as configured, or the widest the memory allows."""
        return self.memory.port_bits or self.off_chip(device)[1].max_port_bits

    def bandwidth_bytes_per_cycle(self, device: Device | None = None) -> float:
        """Achieved off-chip bytes per cycle: min(ports x min(port width x clock, port peak),
        memory peak) x efficiency (hardware.md's rule, with a per-port ceiling for HBM)."""
        _, mem = self.off_chip(device)
        peak = self.memory.peak_gbps or mem.peak_gbps
        port_gbps = self.port_bits(device) / 8 * self.clock_mhz / 1e3
        if mem.port_peak_gbps:
            port_gbps = min(port_gbps, mem.port_peak_gbps)
        return min(self.memory.ports * port_gbps, peak) * self.memory.efficiency * 1e9 \
            * self.period_s

    def run_id(self) -> str:
        return config_hash(self.model_dump(mode="json"))


def smallest_tile_bytes(arch: Accelerator) -> float:
    """One R x 1 activation slice, a 1 x C weight slice, an R x C output block, doubled."""
    r, c = arch.array.rows, arch.array.cols
    ab, wb = bytes_of(arch.bits.activations), bytes_of(arch.bits.weights)
    return 2 * (r * ab + c * wb) + r * c * ab


def check_buffer(arch: Accelerator, source: str = "arch") -> None:
    """The tile share of the buffer must hold the smallest double-buffered tile."""
    pool = arch.buffer.capacity_bytes * (1 - arch.buffer.resident_fraction)
    need = smallest_tile_bytes(arch)
    if need > pool:
        raise InputError(
            f"{source}: buffer.kib {arch.buffer.kib:g} leaves {pool / 1024:.1f} KiB for tiles, "
            f"less than the smallest {arch.array.rows}x{arch.array.cols} tile "
            f"({need / 1024:.1f} KiB double-buffered)"
        )


def check_ports(arch: Accelerator, dev: Device, source: str = "arch") -> None:
    """The design's AXI ports must be buildable towards the memory it uses."""
    try:
        name, mem = arch.off_chip(dev)
    except InputError as e:
        raise InputError(f"{source}: memory.target: {e}") from None
    m = arch.memory
    if m.port_bits is not None and m.port_bits > mem.max_port_bits:
        raise InputError(f"{source}: memory.port_bits {m.port_bits} is wider than {dev.name}'s "
                         f"{name} allows ({mem.max_port_bits} bits; {mem.source})")
    if m.ports > mem.max_ports:
        raise InputError(f"{source}: memory.ports {m.ports} is more than {dev.name}'s {name} "
                         f"offers ({mem.max_ports}; {mem.source})")


def _check_design(arch: Accelerator, source: str) -> None:
    """Cross-field checks that need the device: the array must fit its DSPs."""
    try:
        dev = arch.dev()
    except InputError as e:
        raise InputError(f"{source}: device: {e}") from None
    dsps = array_dsps(arch, dev.dsp_family)
    avail = dev.available()["dsp"]
    if dsps > avail and not arch.allow_overfull:
        raise InputError(
            f"{source}: array {arch.array.rows}x{arch.array.cols} at W{arch.bits.weights}"
            f"A{arch.bits.activations} needs {dsps} DSPs, device {dev.name} has {avail}"
        )
    check_buffer(arch, source)
    check_ports(arch, dev, source)
    lo, hi = dev.clock_mhz.min, dev.clock_mhz.max
    if arch.clock_mhz > 2 * hi:
        raise InputError(f"{source}: clock_mhz {arch.clock_mhz} is far above what {dev.name} "
                         f"designs close at ({lo:g}-{hi:g} MHz)")


def arch_from_data(data: dict, source: str, overrides: dict[str, Any] | None = None
                   ) -> Accelerator:
    data = dict(data)
    for k, v in (overrides or {}).items():
        set_dotted(data, k, v, _defaults_tree(data))
    arch = validate(Accelerator, data, source)
    _check_design(arch, source)
    return arch


def _defaults_tree(data: dict) -> dict:
    """The full key tree of an arch (its keys plus every schema default), for --set hints."""
    tree = {}
    for name, field in Accelerator.model_fields.items():
        ann = field.annotation
        sub = getattr(ann, "model_fields", None)
        tree[name] = {k: None for k in sub} if sub else None
    from dlmsim.sfu import PROGRAMS

    tree["sfu"]["passes"] = {k: None for k in PROGRAMS}
    for k, v in data.items():
        if isinstance(v, dict) and isinstance(tree.get(k), dict):
            tree[k].update(v)
    return tree


def load_arch(name_or_path: str | os.PathLike, **overrides: Any) -> Accelerator:
    """A bundled arch name or a YAML path -> validated Accelerator.

    Overrides are dotted paths with '.' or '__' as separator:
    load_arch("int8-zcu102", **{"array.rows": 64}) or load_arch(..., array__rows=64).
    """
    path = resolve("arch", name_or_path, "arch")
    dotted = {k.replace("__", "."): v for k, v in overrides.items()}
    return arch_from_data(read_yaml(path), str(path), dotted)
