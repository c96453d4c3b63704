"""What a design needs of its board: FPGA resources (DSP, BRAM36, URAM, LUT, FF) against the
device, and the off-chip memory a sampling run keeps (`dram_footprint`) against the memory
the design uses.

Rules from ../shared/reference/hardware.md; constants marked (u) are unconfirmed defaults,
to be replaced by `dlmsim calibrate` factors fitted on synthesis reports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from dlmsim.arch import GIB, Accelerator, Device, Unit, stored_bytes, unit_dsps
from dlmsim.errors import InputError

KINDS = ("dsp", "bram36", "uram", "lut", "ff")

# Per-PE fabric around the DSPs: LUT = PE_LUT_PER_BIT x (W + A) operand bits; FF = the
# operands passing through, the accumulator (OS) and the stationary weight (WS), one FF per
# bit (`pe_fabric`). Fitted to the one licensed synthesis report of an HLS systolic array found
# (tests/fixtures/hls, MIT: InputBlackBoxOutput/Systolic-Matrix-Multiplier, an 8 x 8 OS int32
# array, Vitis HLS 2022.2 on xck26): 12389 LUT / (64 PEs x 64 operand bits) = 3.025 LUT per
# bit; its 6172 FF = 64 x (32 + 32 + 32) + 28, the FF rule within 0.5%. One design is the
# whole fit: its error on other widths is unknown. Against hls4ml's fully unrolled 16-bit
# dense layers (Apache-2.0 fixtures: 17.8, 18.0 and 29.2 LUT per multiply, with no operand
# forwarding between PEs) it is 3.3x to 5.4x high, so it is a systolic-PE figure only. The
# former rule, (W + A) + 20 LUT, was 2.3x below the systolic report. `dlmsim calibrate` still
# scales every resource to the user's own reports.
PE_LUT_PER_BIT = 3.025
# (u) SFU per element-lane at 16-bit fixed point: exp/recip/poly datapath. Not fitted: no
# licensed report found gives an SFU with a known lane count (hls4ml's softmax has an unknown
# width), so these stay defaults for `dlmsim calibrate` to correct.
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
    # What each unit of the design uses (dsp, bram18, uram, lut, ff): every compute unit by
    # name ("array" and "sfu" in a temporal design), "buffer" (the tile buffer), "memory"
    # (the memory interface with the control logic) and "stream NAME" (a stream's FIFO).
    # The power model weighs each unit's resources by its activity. Empty for a calibrated
    # copy.
    by_unit: dict[str, dict[str, float]] = field(default_factory=dict)
    # Multi-SLR placement of a design with regions: region -> SLR, what each SLR holds and
    # has, and why the placement fails (a region beyond its SLR, a crossing too wide).
    placement: dict[str, int] = field(default_factory=dict)
    slr_used: tuple[dict[str, float], ...] = ()
    slr_available: tuple[dict[str, int], ...] = ()
    problems: tuple[str, ...] = ()
    region_used: dict[str, dict[str, float]] = field(default_factory=dict)  # by region

    @property
    def fraction(self) -> dict[str, float]:
        return {k: _frac(self.used[k], self.available[k]) for k in KINDS}

    @property
    def over(self) -> list[str]:
        """Resources the design needs more of than the device has."""
        return [k for k in KINDS if self.used[k] > self.available[k]]

    @property
    def fits(self) -> bool:
        return not self.over and not self.problems

    @property
    def worst_fraction(self) -> float:
        """The largest share of any resource of the device or of any SLR it uses."""
        worst = max(self.fraction.values())
        for used, avail in zip(self.slr_used, self.slr_available):
            worst = max(worst, *(_frac(used[k], avail[k]) for k in KINDS))
        return worst

    def describe_over(self) -> str:
        whole = ", ".join(f"{k.upper()} {self.used[k]:.0f} > {self.available[k]}"
                          for k in self.over)
        return "; ".join(([whole] if whole else []) + list(self.problems))


def _frac(used: float, avail: float) -> float:
    return used / avail if avail else (math.inf if used else 0.0)


def buffer_blocks(arch: Accelerator, kind: str) -> int:
    """BRAM18 (kind 'bram') or URAM (kind 'uram') blocks of the banked tile buffer."""
    b = arch.buffer
    width_bits = max(8, b.bytes_per_cycle * 8 // b.banks)
    depth = math.ceil(b.capacity_bytes / (b.banks * width_bits / 8))
    per = bram18_per_bank(width_bits, depth) if kind == "bram" else uram_per_bank(width_bits,
                                                                                  depth)
    return b.banks * per


def pe_fabric(w_bits: int, a_bits: int, acc_bits: int, ws: bool) -> tuple[float, float]:
    """(LUT, FF) of one PE beside its DSPs (the fit above): the operands passing through, the
    accumulator, and for an array that can run WS the stationary weight."""
    return PE_LUT_PER_BIT * (w_bits + a_bits), w_bits + a_bits + acc_bits + (w_bits if ws else 0)


def unit_parts(unit: Unit, arch: Accelerator, family: str) -> dict[str, float]:
    """DSP, LUT and FF of one compute unit: an array's PEs (its DSP packing and the
    per-PE fabric fit above), or an SFU's element lanes."""
    if unit.kind == "array":
        w, a, acc = unit.weights, arch.bits.activations, arch.bits.accumulator
        wbits, abits = (32, 32) if w == "fp32" else (w, a)
        accbits = 32 if acc == "fp32" else acc
        pe_lut, pe_ff = pe_fabric(wbits, abits, accbits, "ws" in unit.array.dataflows)
        return {"dsp": unit_dsps(unit, arch, family), "lut": unit.pes * pe_lut,
                "ff": unit.pes * pe_ff}
    sfu = unit.sfu
    elems = sfu.elems_per_cycle
    scale = (32 if sfu.bits == "fp32" else sfu.bits) / 16
    return {"dsp": elems * SFU_DSP_PER_ELEM["fp32" if sfu.bits == "fp32" else "fixed"],
            "lut": elems * SFU_LUT_PER_ELEM * scale, "ff": elems * SFU_FF_PER_ELEM * scale}


# A FIFO of at most SRL_DEPTH words sits in shift-register LUTs (hardware.md: "FIFOs of
# depth <= 32 use no BRAM"), one LUT per bit of its word (an SRL32 per bit: an assumption);
# a deeper one in BRAM18 by the bank rule, as Vitis HLS implements a stream by default.
SRL_DEPTH = 32


def fifo_parts(st) -> dict[str, float]:
    """LUT and BRAM18 of one stream's FIFO (`StreamSpec`: depth_bytes of width_bits words)."""
    words = math.ceil(st.depth_bytes * 8 / st.width_bits)
    if words <= SRL_DEPTH:
        return {"lut": float(st.width_bits) if words else 0.0, "bram18": 0.0}
    return {"lut": 0.0, "bram18": float(bram18_per_bank(st.width_bits, words))}


def estimate(arch: Accelerator, device: Device | None = None) -> Resources:
    """The design's resources, in total and by unit (`Resources.by_unit`: each compute
    unit, the tile buffer, the memory interface with the control logic, each stream's
    FIFO); for a design with regions on a multi-SLR device, each region's SLR and each
    SLR's share (`_place`)."""
    dev = device or arch.dev()
    parts: dict[str, dict[str, float]] = {u.name: unit_parts(u, arch, dev.dsp_family)
                                          for u in arch.compute_units()}
    memory = {"bram18": arch.memory.ports * AXI_BRAM18,
              "lut": arch.memory.ports * AXI_LUT + CONTROL_LUT,
              "ff": arch.memory.ports * AXI_FF + CONTROL_FF}

    avail = dev.available()
    kind = arch.buffer.memory
    if kind == "auto":
        kind = "uram" if avail["uram"] and buffer_blocks(arch, "uram") <= avail["uram"] \
            else "bram"
    buffer = {"uram": buffer_blocks(arch, "uram")} if kind == "uram" else \
        {"bram18": buffer_blocks(arch, "bram")}

    parts["buffer"] = buffer
    parts["memory"] = memory
    for name, st in arch.streams.items():
        parts[f"stream {name}"] = fifo_parts(st)
    total = {k: sum(p.get(k, 0) for p in parts.values()) for k in ("dsp", "bram18", "uram",
                                                                    "lut", "ff")}
    used = {"dsp": total["dsp"], "bram36": math.ceil(total["bram18"] / 2),
            "uram": total["uram"], "lut": total["lut"], "ff": total["ff"]}
    by_unit = {u: {k: p.get(k, 0) for k in ("dsp", "bram18", "uram", "lut", "ff")}
               for u, p in parts.items()}
    res = Resources(used=used, available=avail, buffer_memory=kind, by_unit=by_unit)
    return _place(arch, dev, res) if arch.is_spatial else res


def _region_parts(arch: Accelerator, parts: dict) -> dict[str, dict[str, float]]:
    """What each region holds: its units, the FIFOs of the streams into them, its units'
    own tile shares of the buffer, and (the first region) the rest of the buffer, the AXI
    ports and the control -- a simplification: the buffer's ports reach the other regions
    across SLRs at no cost."""
    units = arch.compute_units()
    region = {u.name: u.region for u in units}
    out = {r: dict.fromkeys(KINDS, 0.0) for r in arch.regions}
    first = next(iter(arch.regions))

    def add(r: str, p: dict, share: float = 1.0) -> None:
        for k in KINDS:
            out[r][k] += share * (p.get("bram18", 0) / 2 if k == "bram36" else p.get(k, 0))

    for name, p in parts.items():
        if name == "buffer":
            # A unit's own tile share (tile_kib) sits with the unit; the resident share and
            # the tiles the other units share sit with the first region.
            rest = 1.0
            for u in units:
                if u.tile_bytes is not None:
                    share = u.tile_bytes / arch.buffer.capacity_bytes
                    add(u.region, p, share)
                    rest -= share
            add(first, p, rest)
        elif name == "memory":
            add(first, p)
        elif name.startswith("stream "):
            add(region[arch.streams[name.removeprefix("stream ")].consumer], p)
        else:
            add(region[name], p)
    return out


def placement(arch: Accelerator, device: Device | None = None) -> dict[str, int]:
    """Region -> SLR of a design with regions on a multi-SLR device (else {})."""
    return estimate(arch, device).placement


def _place(arch: Accelerator, dev: Device, res: Resources) -> Resources:
    """Regions onto SLRs: a region with `slr` goes there; the others, in order, to the
    first SLR with room for them (first fit). Each SLR must hold its regions' resources
    (its share of the device, the shell's reserve taken from `shell_slr`), and the streams
    crossing an SLR boundary must fit its wires (width_bits each). A design that declares
    no regions is left to the tools' placement: checked against the whole device only."""
    if not arch.regions:
        return res
    need = _region_parts(arch, res.by_unit)
    if not dev.slrs:
        return replace(res, region_used=need)
    avail = tuple(dev.slr_available(i) for i in range(len(dev.slrs)))
    used = [dict.fromkeys(KINDS, 0.0) for _ in dev.slrs]
    where: dict[str, int] = {}
    problems = []

    def room(i: int, r: str) -> bool:
        return all(used[i][k] + need[r][k] <= avail[i][k] for k in KINDS)

    def put(r: str, i: int) -> None:
        where[r] = i
        used[i] = {k: used[i][k] + need[r][k] for k in KINDS}

    for r, reg in arch.regions.items():  # pinned regions first, then first fit
        if reg.slr is not None:
            if not room(reg.slr, r):
                problems.append(_too_big(r, f"SLR{reg.slr}", need[r], used[reg.slr],
                                         avail[reg.slr]))
            put(r, reg.slr)
    for r, reg in arch.regions.items():
        if reg.slr is None:
            fit = next((i for i in range(len(avail)) if room(i, r)), None)
            if fit is None:
                fit = max(range(len(avail)), key=lambda i: avail[i]["dsp"] - used[i]["dsp"])
                problems.append(_too_big(r, "any SLR", need[r], used[fit], avail[fit]))
            put(r, fit)
    used = [{k: (math.ceil(v) if k in ("dsp", "bram36", "uram") else v) for k, v in u.items()}
            for u in used]
    region = {u.name: u.region for u in arch.compute_units()}
    wires = [0] * (len(dev.slrs) - 1)  # boundary b lies between SLR b and SLR b + 1
    for st in arch.streams.values():
        a, b = sorted((where[region[st.producer]], where[region[st.consumer]]))
        for x in range(a, b):
            wires[x] += st.width_bits
    cross = dev.slr_crossing
    for x, w in enumerate(wires):
        if w > cross.sll_per_boundary:
            problems.append(f"streams crossing SLR{x}-SLR{x + 1} take {w} wires > "
                            f"{cross.sll_per_boundary} ({cross.source})")
    return replace(res, placement=where, slr_used=tuple(used), slr_available=avail,
                   problems=tuple(problems), region_used=need)


def _too_big(region: str, where: str, need, used, avail) -> str:
    left = ", ".join(f"{k.upper()} {need[k]:.0f} > {avail[k] - used[k]:.0f} left"
                     for k in KINDS if used[k] + need[k] > avail[k])
    return f"region {region} does not fit {where}: {left}"


def calibrated(res: Resources, arch: Accelerator) -> Resources | None:
    """The estimate scaled by the arch's calibration factors (None without calibration)."""
    cal = arch.calibration
    if cal is None:
        return None
    used = {k: v * getattr(cal, k) for k, v in res.used.items()}
    return Resources(used=used, available=res.available, buffer_memory=res.buffer_memory)


# ------------------------------------------------------------------------- off-chip memory
def gib(nbytes: float) -> str:
    """Bytes as GiB, 3 significant digits: '3.79 GiB'."""
    return f"{nbytes / GIB:.3g} GiB"


@dataclass(frozen=True)
class Footprint:
    """Off-chip bytes a sampling run keeps in the design's memory, at the design's widths."""

    memory: str  # the device memory that holds it
    weights_bytes: float  # every distinct weight, once
    activations_bytes: float  # the peak of the activations live at once within a phase
    state_bytes: float  # tensors that live across phases: inputs, per-run and per-step state
    usable_bytes: float  # the memory's capacity minus its reserve
    capacity_bytes: float

    @property
    def total_bytes(self) -> float:
        return self.weights_bytes + self.activations_bytes + self.state_bytes

    @property
    def fits(self) -> bool:
        return self.total_bytes <= self.usable_bytes

    def describe(self) -> str:
        g = gib
        reserve = self.capacity_bytes - self.usable_bytes
        of = f"{g(self.usable_bytes)} usable" + (
            f" of {g(self.capacity_bytes)}, {g(reserve)} reserved" if reserve else "")
        return (f"DRAM footprint {g(self.total_bytes)} (weights {g(self.weights_bytes)} + "
                f"activations {g(self.activations_bytes)} + state {g(self.state_bytes)}) "
                f"{'fits' if self.fits else 'exceeds'} {self.memory}'s {of}")


def dram_footprint(arch: Accelerator, trace, device: Device | None = None) -> Footprint:
    """What a run of `trace` keeps in off-chip memory.

    Simplifications: every activation is counted as if it went to DRAM (an upper bound: the
    mapping keeps some on chip); an activation lives from its producer to its last consumer
    within its phase, and the phases never overlap, so activations are the largest live set
    of any phase; a tensor read in another phase than the one producing it (or a graph
    input, or a cache from an earlier pass) is state and lives for the whole run. Weights
    are stored once at the weight width.
    """
    name, mem = arch.off_chip(device)
    views = weight_views(arch, trace)
    weights = sum(stored_bytes(t, views.get(t.name, arch)) for t in trace.weights.values())
    # A run with several kinds of forward pass (a cache refresh, cached passes) runs each
    # with the once and step ops around it: the largest of them, and their state together.
    peak, state = 0.0, {}
    for kind, _, fwd in trace.forward_variants():
        ops = [op for op in trace.ops if op.phase != "forward" or op.variant == kind]
        p, s = _live_bytes(arch, trace.inputs, ops)
        peak = max(peak, p)
        for k, v in s.items():
            state[k] = max(state.get(k, 0.0), v)
    return Footprint(name, weights, peak, sum(state.values()), mem.usable_bytes,
                     mem.capacity_gib * GIB)


def _live_bytes(arch: Accelerator, inputs, ops) -> tuple[float, dict[str, float]]:
    """(largest live set of activations of any phase, state by name) of one op sequence."""
    produced: dict[str, tuple[str, object]] = {t.name: ("input", t) for t in inputs}
    last: dict[str, int] = {}
    state: dict[str, float] = {t.name: stored_bytes(t, arch) for t in inputs}
    for j, op in enumerate(ops):
        for t in op.inputs:
            if t.role in ("weight", "const"):
                continue
            src = produced.get(t.name)
            if src is None or src[0] != op.phase:
                state[t.name] = max(state.get(t.name, 0.0), stored_bytes(t, arch))
            last[t.name] = j
        for t in op.outputs:
            produced[t.name] = (op.phase, t)
    peak = 0.0
    for phase in ("once", "forward", "step"):
        live, ends = 0.0, {}
        for j, op in enumerate(ops):
            if op.phase != phase:
                continue
            for t in op.outputs:
                if t.name in state or last.get(t.name, -1) <= j:
                    continue
                size = stored_bytes(t, arch)
                live += size
                ends[last[t.name]] = ends.get(last[t.name], 0.0) + size
            peak = max(peak, live)
            live -= ends.pop(j, 0.0)
    return peak, state


def weight_views(arch: Accelerator, trace) -> dict[str, Accelerator]:
    """Weight name -> the unit view whose width stores it: a weight of a spatial design is
    stored at the width of the array that reads it (the first, if several do)."""
    if not arch.is_spatial:
        return {}
    from dlmsim.mapping import assign

    units = {u.name: u for u in arch.compute_units()}
    at = assign(arch, trace.ops)
    out: dict[str, Accelerator] = {}
    for op in trace.ops:
        unit = units.get(at[op.name])
        if op.kind == "gemm" and unit is not None:
            for t in op.inputs:
                if t.role == "weight":
                    out.setdefault(t.name, arch.unit_view(unit))
    return out


def check_dram(arch: Accelerator, trace, device: Device | None = None) -> Footprint:
    """The footprint, or an InputError naming the sizes when it does not fit (simulate and
    the explorer's points both call this)."""
    fp = dram_footprint(arch, trace, device)
    if not fp.fits:
        raise InputError(f"{arch.name} cannot run {trace.model}: {fp.describe()}")
    return fp
