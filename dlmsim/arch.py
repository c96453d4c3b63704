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
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, PositiveFloat, PositiveInt, model_validator

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


class Slr(Strict):
    """Resources of one super logic region (SLR) of a stacked-silicon device."""

    dsp: int = Field(ge=0)
    bram36: int = Field(ge=0)
    uram: int = Field(ge=0)
    lut: int = Field(ge=0)
    ff: int = Field(ge=0)


class SlrCrossing(Strict):
    """What a stream pays to cross from one SLR to the next (per boundary crossed)."""

    latency_cycles: int = Field(ge=0)  # registers at both sides of the super long lines
    sll_per_boundary: PositiveInt  # super long lines (wires) between two adjacent SLRs
    source: str
    confirmed: bool = True


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
    # Stacked-silicon devices: the resources of each SLR (SLR0 first; they add up to the
    # device's), the SLR the shell's reserve is taken from, and the cost of crossing.
    slrs: tuple[Slr, ...] = Field((), strict=False)
    shell_slr: int = Field(0, ge=0)
    slr_crossing: SlrCrossing | None = None
    slr_source: str = ""

    @model_validator(mode="after")
    def _slrs_add_up(self):
        if not self.slrs:
            return self
        for k in ("dsp", "bram36", "uram", "lut", "ff"):
            total = sum(getattr(r, k) for r in self.slrs)
            if total != getattr(self, k):
                raise ValueError(f"slrs: the SLRs' {k} add up to {total}, the device has "
                                 f"{getattr(self, k)}")
        if self.shell_slr >= len(self.slrs):
            raise ValueError(f"shell_slr {self.shell_slr}: the device has {len(self.slrs)} SLRs")
        if self.slr_crossing is None:
            raise ValueError("slrs: a device with SLRs needs slr_crossing")
        return self

    def slr_available(self, i: int) -> dict[str, int]:
        """Resources of SLR i left for the accelerator (the shell's reserve is in
        `shell_slr`)."""
        r = self.slrs[i]
        out = {k: getattr(r, k) for k in ("dsp", "bram36", "uram", "lut", "ff")}
        if i == self.shell_slr:
            out = {k: v - getattr(self.shell, k) for k, v in out.items()}
        return out

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
    """DSP slices of the PE arrays: one per `macs_per_dsp` PEs of each array."""
    return sum(unit_dsps(u, arch, family) for u in arch.compute_units() if u.kind == "array")


def unit_dsps(unit: Unit, arch: Accelerator, family: str) -> int:
    """DSP slices of one array unit."""
    return math.ceil(unit.pes / macs_per_dsp(unit.weights, arch.bits.activations, family))


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
    # Allo's systolic template, as HLS schedules it (dlmsim.cost.systolic.template_cycles):
    # `mac_ii`, cycles between a PE's successive MACs (its reduction loop's II: a float32
    # accumulator cannot take the next add before the last one is done); `tile_loads:
    # serial`, each fold first copies its weight tile (K cycles) and, at a new row of
    # folds, its A tile (K cycles) into the array's local buffers.
    mac_ii: PositiveInt = 1
    tile_loads: Literal["overlapped", "serial"] = "overlapped"

    @model_validator(mode="after")
    def _supported(self):
        if not self.dataflows:
            raise ValueError("dataflows: the array must support at least one of os, ws")
        if self.policy != "auto" and self.policy not in self.dataflows:
            raise ValueError(f"policy '{self.policy}' is a dataflow the array does not "
                             f"support (dataflows: {', '.join(self.dataflows)})")
        if (self.mac_ii > 1 or self.tile_loads == "serial") and (
                tuple(self.dataflows) != ("os",) or self.fold_overlap != "none"):
            raise ValueError("mac_ii and tile_loads: serial model Allo's systolic template: "
                             "an output-stationary array (dataflows: [os]) whose folds run "
                             "back to back (fold_overlap: none)")
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


# ------------------------------------------------------------------------- spatial designs
def _patterns(v: Any) -> Any:
    """`ops:` as a list of patterns or one string of them ("*.qkv *.attn_out", commas too)."""
    if isinstance(v, str):
        return tuple(p for p in re.split(r"[\s,]+", v) if p)
    return v


Patterns = Annotated[tuple[str, ...], BeforeValidator(_patterns), Field(strict=False)]


class ArrayUnit(Strict):
    """A named systolic array of a spatial design. A field left out takes the value of the
    `array:` section (the template every array unit starts from); `weights` sets the unit's
    own weight width (default `bits.weights`). `ops` lists the ops it runs (see
    `Accelerator.compute_units`). `tile_kib`: the unit's own share of the buffer's tile
    pool (its local tile buffers, as each kernel of an Allo dataflow design has); units
    without one share the rest of the pool."""

    kind: Literal["array"]
    rows: PositiveInt | None = None
    cols: PositiveInt | None = None
    dataflows: tuple[Dataflow, ...] | None = Field(None, strict=False)
    policy: Literal["os", "ws", "auto"] | None = None
    switch_cycles: int | None = Field(None, ge=0)
    fold_overlap: Literal["none", "drain", "full"] | None = None
    mac_ii: PositiveInt | None = None
    tile_loads: Literal["overlapped", "serial"] | None = None
    weights: Bits | None = None
    tile_kib: PositiveFloat | None = None
    ops: Patterns = ()


class SfuUnit(Strict):
    """A named SFU of a spatial design; a field left out takes the `sfu:` section's value.
    `functions` are the SFU functions it implements (dlmsim.sfu.PROGRAMS; empty: all);
    `tile_kib` as for an array unit."""

    kind: Literal["sfu"]
    lanes: PositiveInt | None = None
    elems_per_lane: PositiveInt | None = None
    pipeline_depth_cycles: int | None = Field(None, ge=0)
    bits: Literal[8, 16, 24, 32, "fp32"] | None = None
    partial_sums: PositiveInt | None = None
    passes: dict[str, float] | None = None
    functions: tuple[str, ...] = Field((), strict=False)
    tile_kib: PositiveFloat | None = None
    ops: Patterns = ()

    @model_validator(mode="after")
    def _known(self):
        from dlmsim.sfu import PROGRAMS

        for fn in self.functions:
            if fn not in PROGRAMS:
                raise ValueError(f"functions: unknown SFU function '{fn}'")
        return self


UnitSpec = Annotated[ArrayUnit | SfuUnit, Field(discriminator="kind")]


class StreamSpec(Strict):
    """A FIFO from one unit to another: row blocks of a tensor the producer unit computes
    go straight to the consumer unit (no buffer, no DRAM). `depth_bytes` is what the FIFO
    holds beyond the row block each end works on; `width_bits` its word (its memory's width,
    and the wires it takes across an SLR boundary)."""

    producer: str
    consumer: str
    depth_bytes: float = Field(ge=0)
    width_bits: PortBits = 512

    @model_validator(mode="after")
    def _two_units(self):
        if self.producer == self.consumer:
            raise ValueError(f"a stream from '{self.producer}' to itself")
        return self


class RegionSpec(Strict):
    """A dataflow region: units placed together, on one SLR of a multi-SLR device (`slr`,
    or the first that fits when left out)."""

    units: tuple[str, ...] = Field(min_length=1, strict=False)
    slr: int | None = Field(None, ge=0)


@dataclass(frozen=True)
class Unit:
    """One compute unit of a design, its spec resolved (what the mapping and engine use)."""

    name: str
    kind: str  # "array" or "sfu"
    array: ArraySpec | None  # the array's spec (kind "array")
    sfu: SfuSpec | None  # the SFU's spec (kind "sfu")
    weights: Bits | None  # an array's weight width
    ops: tuple[str, ...]  # op name patterns, "fn:NAME" for an op function; () = auto
    functions: tuple[str, ...]  # SFU functions it implements; () = all
    region: str
    tile_bytes: float | None = None  # its own share of the tile pool; None: the shared rest

    @property
    def pes(self) -> int:
        return self.array.rows * self.array.cols if self.array else 0


TEMPORAL_REGION = "design"  # the one region of a design that declares none


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
    # Spatial designs (absent: the temporal design, one `array` and one `sfu`).
    units: dict[str, UnitSpec] = Field(default_factory=dict)
    streams: dict[str, StreamSpec] = Field(default_factory=dict)
    regions: dict[str, RegionSpec] = Field(default_factory=dict)
    allow_overfull: bool = False  # simulate a design that does not fit the device anyway
    calibration: Calibration | None = None

    @model_validator(mode="after")
    def _spatial(self):
        if not self.units and (self.streams or self.regions):
            raise ValueError("streams and regions connect `units`; the design declares none")
        for name in self.units:
            if not _UNIT_NAME.fullmatch(name) or name in ("dma", "dma_in", "dma_out"):
                raise ValueError(f"units: '{name}' is not a unit name (letters, digits, '_'; "
                                 "not dma)")
        for name, st in self.streams.items():
            for end in ("producer", "consumer"):
                if getattr(st, end) not in self.units:
                    raise ValueError(f"streams.{name}.{end}: no unit '{getattr(st, end)}'; "
                                     f"units: {', '.join(self.units)}")
        pairs: dict[tuple[str, str], str] = {}
        for name, st in self.streams.items():
            other = pairs.setdefault((st.producer, st.consumer), name)
            if other != name:
                raise ValueError(f"streams.{name}: '{other}' already joins {st.producer} to "
                                 f"{st.consumer}")
        seen: dict[str, str] = {}
        for name, reg in self.regions.items():
            for u in reg.units:
                if u not in self.units:
                    raise ValueError(f"regions.{name}.units: no unit '{u}'; units: "
                                     f"{', '.join(self.units)}")
                if u in seen:
                    raise ValueError(f"regions.{name}.units: '{u}' is already in region "
                                     f"'{seen[u]}'")
                seen[u] = name
        if self.regions and len(seen) < len(self.units):
            left = [u for u in self.units if u not in seen]
            raise ValueError(f"regions: unit {', '.join(left)} is in no region")
        self.compute_units()  # every unit's resolved spec is valid
        return self

    # ---- units -------------------------------------------------------------------------
    @property
    def is_spatial(self) -> bool:
        return bool(self.units)

    def compute_units(self) -> tuple[Unit, ...]:
        """The design's compute units in declaration order. A temporal design has two:
        "array" (the `array:` section) and "sfu" (the `sfu:` section), in one region.

        Assignment of the trace's ops (dlmsim.mapping.assign): a GEMM runs on an array, an
        SFU op on an SFU that implements its function (layout ops, which cost no pass, on
        any SFU), a gather on the DMA engine. Among those, the first unit whose `ops` has a
        pattern matching the op's name (fnmatch: `*.attn.qkv`, `blocks.*.mlp*`) or its
        function (`fn:softmax`) takes it; an op no pattern matches goes to the auto units
        (no `ops`, or `auto` among them), balanced by work (`dlmsim.mapping.assign`).
        """
        return _units(self)

    def unit_view(self, unit: Unit) -> Accelerator:
        """The design as one unit sees it: its array or SFU spec in `array`/`sfu`, its
        weight width in `bits` (the mapping and cost models take one array and one SFU)."""
        if not self.is_spatial:
            return self
        upd: dict[str, Any] = {"array": unit.array} if unit.array else {"sfu": unit.sfu}
        if unit.weights is not None and unit.weights != self.bits.weights:
            upd["bits"] = self.bits.model_copy(update={"weights": unit.weights})
        return self.model_copy(update=upd)


    # ---- derived ----------------------------------------------------------------------
    @property
    def pes(self) -> int:
        """Processing elements over every array of the design."""
        if not self.is_spatial:
            return self.array.rows * self.array.cols
        return sum(u.pes for u in self.compute_units())

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


_UNIT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")


def _units(arch: Accelerator) -> tuple[Unit, ...]:
    if not arch.is_spatial:
        return (Unit("array", "array", arch.array, None, arch.bits.weights, (), (),
                     TEMPORAL_REGION),
                Unit("sfu", "sfu", None, arch.sfu, None, (), (), TEMPORAL_REGION))
    region = {u: r for r, reg in arch.regions.items() for u in reg.units}
    out = []
    for name, spec in arch.units.items():
        own = spec.model_dump(exclude={"kind", "ops", "functions", "weights", "tile_kib"},
                              exclude_none=True)
        base = arch.array if spec.kind == "array" else arch.sfu
        try:
            full = type(base).model_validate({**base.model_dump(), **own})
        except ValueError as e:  # pydantic's ValidationError: the first message, one line
            msg = e.errors()[0]["msg"].removeprefix("Value error, ") if hasattr(e, "errors") \
                else str(e)
            raise ValueError(f"units.{name}: {msg}") from None
        weights = None
        if spec.kind == "array":
            weights = spec.weights if spec.weights is not None else arch.bits.weights
            try:
                BitsSpec(weights=weights, activations=arch.bits.activations,
                         accumulator=arch.bits.accumulator)
            except ValueError as e:
                raise ValueError(f"units.{name}.weights: "
                                 f"{e.errors()[0]['msg'].removeprefix('Value error, ')}") from None
        out.append(Unit(name, spec.kind, full if spec.kind == "array" else None,
                        full if spec.kind == "sfu" else None, weights, tuple(spec.ops),
                        tuple(getattr(spec, "functions", ())),
                        region.get(name, TEMPORAL_REGION),
                        spec.tile_kib * 1024 if spec.tile_kib is not None else None))
    return tuple(out)


def tile_pools(arch: Accelerator) -> dict[str, float]:
    """Bytes of the tile pool each unit uses: its own `tile_kib`, or the rest of the pool
    that the units without one share (key "")."""
    pool = arch.buffer.capacity_bytes * (1 - arch.buffer.resident_fraction)
    own = {u.name: u.tile_bytes for u in arch.compute_units() if u.tile_bytes is not None}
    return {**own, "": pool - sum(own.values())}


def smallest_tile_bytes(arch: Accelerator) -> float:
    """One R x 1 activation slice, a 1 x C weight slice, an R x C output block, doubled
    (of the largest array of a spatial design)."""
    return max(_smallest_tile(arch.unit_view(u))
               for u in arch.compute_units() if u.kind == "array")


def _smallest_tile(view: Accelerator) -> float:
    r, c = view.array.rows, view.array.cols
    ab, wb = bytes_of(view.bits.activations), bytes_of(view.bits.weights)
    return 2 * (r * ab + c * wb) + r * c * ab


def check_buffer(arch: Accelerator, source: str = "arch") -> None:
    """The tile share of the buffer must hold the smallest double-buffered tile of each
    array."""
    pools = tile_pools(arch)
    if pools[""] < 0:
        own = sum(pools.values()) - pools[""]
        raise InputError(f"{source}: the units' tile_kib add up to {own / 1024:g} KiB, more "
                         f"than the buffer's tile share ({(own + pools['']) / 1024:g} KiB)")
    for u in arch.compute_units():
        if u.kind != "array":
            continue
        need = _smallest_tile(arch.unit_view(u))
        pool = pools.get(u.name, pools[""])
        if need > pool:
            what = f" of unit {u.name}" if arch.is_spatial else ""
            where = f"units.{u.name}.tile_kib {u.tile_bytes / 1024:g}" if u.name in pools \
                else f"buffer.kib {arch.buffer.kib:g}"
            raise InputError(
                f"{source}: {where} leaves {pool / 1024:.1f} KiB for "
                f"tiles, less than the smallest {u.array.rows}x{u.array.cols} tile{what} "
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
        arrays = sum(u.kind == "array" for u in arch.compute_units())
        what = (f"{arrays} array{'s' * (arrays > 1)} of {arch.pes} PEs in all"
                if arch.is_spatial else f"array {arch.array.rows}x{arch.array.cols}")
        raise InputError(
            f"{source}: {what} at W{arch.bits.weights}"
            f"A{arch.bits.activations} needs {dsps} DSPs, device {dev.name} has {avail}"
        )
    for name, reg in arch.regions.items():
        if reg.slr is not None and reg.slr >= max(len(dev.slrs), 1):
            raise InputError(f"{source}: regions.{name}.slr {reg.slr}: {dev.name} has "
                             f"{len(dev.slrs) or 'no'} SLRs" + (
                                 f" (0-{len(dev.slrs) - 1})" if dev.slrs else ""))
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
    arch = validate(Accelerator, data, source, nested_tags=("array", "sfu"))
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
    # Named units, streams and regions: their own fields (units.qkv.rows, ...).
    for key, schema in (("units", None), ("streams", StreamSpec), ("regions", RegionSpec)):
        named = data.get(key)
        if not isinstance(named, dict):
            continue
        tree[key] = {}
        for n, spec in named.items():
            kind = spec.get("kind") if isinstance(spec, dict) else None
            sch = schema or {"array": ArrayUnit, "sfu": SfuUnit}.get(kind)
            tree[key][n] = {f: None for f in sch.model_fields} if sch else {}
    return tree


def load_arch(name_or_path: str | os.PathLike, **overrides: Any) -> Accelerator:
    """A bundled arch name or a YAML path -> validated Accelerator.

    Overrides are dotted paths with '.' or '__' as separator:
    load_arch("int8-zcu102", **{"array.rows": 64}) or load_arch(..., array__rows=64).
    """
    path = resolve("arch", name_or_path, "arch")
    dotted = {k.replace("__", "."): v for k, v in overrides.items()}
    return arch_from_data(read_yaml(path), str(path), dotted)
