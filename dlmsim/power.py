"""Power and energy of a simulated design: static power from the device file, dynamic energy
from the resources each unit uses and the cycles that unit was busy in the event model, and
off-chip energy per byte by memory technology.

The model, per sampling run (f the clock, t = cycles / f the run time):
- static: (device `power.static_w` + `power.platform_w`) x t, whatever the design does;
- clock: every flip-flop's clock load, E_CLOCK_FF x FF x cycles: the clock tree runs for the
  whole run, busy or not (no clock gating modelled);
- each unit u (array, SFU): busy_u x (DSP_u x E_DSP + LUT_u x E_LUT), busy_u its busy cycles in
  the simulation (`compute_cycles` of its ops x their count); an idle unit draws no dynamic
  power (its enables are low; a simplification: XPE would still count some clock-enable logic);
- the tile buffer: bytes through its ports x 8 x E_BUFFER_BIT[bram|uram], the bytes being each
  DRAM byte once (DMA in or out) plus, per busy cycle, what the unit streams through it: the
  array R activations and C weights, the SFU one element in and one out per lane-element;
- the memory interface (AXI masters, control): busy for DRAM bytes / bandwidth cycles;
- off-chip memory: DRAM bytes x 8 x E_DRAM_BIT[technology] (reads and writes alike).
So dynamic energy scales with the work and is zero for zero work; at fixed cycles, doubling
the clock doubles dynamic power (the same energy in half the time). Average power is energy
over run time; peak power is the design's ceiling: every unit busy at once and the channel
streaming at its achieved bandwidth (a bound a board power cap can be checked against).

Coefficients are per resource per cycle at full activity (1 pJ per cycle = 1 uW per MHz).
Where only typical (XPE-style) or scaled figures exist, `COEFFICIENTS` says so (confirmed
False); every figure names its source there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from dlmsim.arch import Accelerator, Device, bytes_of


@dataclass(frozen=True)
class Coefficient:
    name: str
    value: float
    unit: str
    source: str
    confirmed: bool = False


# A public Vivado post-implementation power report of a KV260 design (xck26-2LV, typical
# process, 25 C ambient, Vivado's default vectorless activity: 12.5% toggle) at 193.93 MHz
# with 31 DSP48E2, 21,419 LUT and 21,587 FF: DSPs 0.005 W, Signals 0.037 W, Clocks 0.071 W.
_KV260 = ("Vivado report_power of a public KV260 design (RISC-V GPGPU compute-unit sweep, "
          "NUM_CUS=2: 31 DSP48E2, 21,419 LUT, 21,587 FF at 193.93 MHz)")
COEFFICIENTS = {c.name: c for c in (
    Coefficient("dsp48e2", 2.5, "pJ/cycle per DSP busy",
                f"{_KV260}: DSPs 0.005 W / 31 / 193.93 MHz = 0.83 pJ at the 12.5% default "
                "toggle, x 3 for random operands (UG440: random data toggles ~38%)"),
    Coefficient("dsp58", 2.5, "pJ/cycle per DSP busy",
                "the DSP48E2 figure (no Versal DSP58 report found): a placeholder"),
    Coefficient("lut", 0.0089, "pJ/cycle per LUT busy",
                f"{_KV260}: Signals 0.037 W / 21,419 LUT / 193.93 MHz (nets and logic lumped "
                "on the LUT count, at the 12.5% default toggle UG440 recommends)"),
    Coefficient("ff_clock", 0.017, "pJ/cycle per FF, always",
                f"{_KV260}: Clocks 0.071 W / 21,587 FF / 193.93 MHz"),
    Coefficient("bram_bit", 0.15, "pJ per bit through a BRAM port",
                "CACTI 28 nm 4-8 KiB SRAM reads of 0.03-0.05 pJ/bit (Bitfusion's runs, "
                "tabulated in github Dongyunkam/DRAM_info) x 3 for the FPGA routing to and "
                "from the block; no FPGA BRAM energy figure found"),
    Coefficient("uram_bit", 0.3, "pJ per bit through a URAM port",
                "twice the BRAM figure for a block 8x the capacity (longer bit lines); no "
                "URAM energy figure found"),
    Coefficient("DDR4", 20.0, "pJ per bit off chip",
                "Horowitz, ISSCC 2014: a 32-bit DRAM access 640 pJ (as quoted by Han et al., "
                "NIPS 2015), i.e. 20 pJ/bit with the I/O; a DDR3-era figure used for DDR4"),
    Coefficient("LPDDR4", 13.0, "pJ per bit off chip",
                "H. Ha, Stanford PhD thesis: 4x8 Gb LPDDR4 13 pJ/bit by simulation (DramDSE), "
                "as tabulated in github Dongyunkam/DRAM_info"),
    Coefficient("HBM2", 3.9, "pJ per bit off chip",
                "O'Connor et al., Fine-Grained DRAM, MICRO 2017: the HBM2 baseline at about "
                "3.9 pJ/bit"),
    Coefficient("HBM2e", 3.9, "pJ per bit off chip",
                "the HBM2 figure (same interface); a vendor comparison page (kylolab.com, "
                "ultra-bandwidth solutions) quotes 6.0 pJ/bit average device power"),
)}



def _e(name: str) -> float:
    return COEFFICIENTS[name].value * 1e-12  # J


@dataclass(frozen=True)
class Power:
    """Energy of one sampling run by part, and what it means per second and per token.

    `by_unit` and `by_kind` are joules per run; `by_unit` splits the dynamic part by unit
    (array, sfu, buffer, memory interface, dram) beside clock and static, `by_kind` the
    whole energy by op kind (static and clock attributed by each op's share of run time).
    """

    seconds: float  # run time
    by_unit: dict[str, float]
    by_kind: dict[str, float]
    by_phase: dict[str, float]  # joules: once per run, mean forward pass, mean step
    peak_w: float
    tokens_per_run: int
    op_energy_j: list[float] = field(default_factory=list, repr=False)  # per ops row, per run

    @property
    def energy_j(self) -> float:
        return sum(self.by_unit.values())

    @property
    def average_w(self) -> float:
        return self.energy_j / self.seconds if self.seconds > 0 else 0.0

    @property
    def dynamic_w(self) -> float:
        """Average power beyond the static part (the clock tree included)."""
        return self.average_w - self.by_unit["static"] / self.seconds if self.seconds else 0.0

    @property
    def tokens_per_j(self) -> float:
        return self.tokens_per_run / self.energy_j if self.energy_j > 0 else math.inf

    def summary(self) -> dict[str, float]:
        return {"power_w": self.average_w, "power_peak_w": self.peak_w,
                "energy_run_j": self.energy_j, "energy_forward_j": self.by_phase["forward"],
                "energy_step_j": self.by_phase["step"],
                "energy_per_token_j": self.energy_j / max(self.tokens_per_run, 1),
                "tokens_per_j": self.tokens_per_j}


def unit_pj_per_cycle(res_unit: dict[str, float], dsp_family: str) -> float:
    """Dynamic pJ per busy cycle of one unit: its DSPs and LUTs at full activity."""
    return (res_unit.get("dsp", 0) * COEFFICIENTS[dsp_family].value
            + res_unit.get("lut", 0) * COEFFICIENTS["lut"].value)


def buffer_bytes_per_cycle(arch: Accelerator) -> dict[str, float]:
    """Bytes each busy compute unit moves through the tile buffer per cycle (capped by its
    ports): an array's row and column operands, an SFU's elements in and out."""
    cap = arch.buffer.ports * arch.buffer.bytes_per_cycle
    out = {}
    for u in arch.compute_units():
        view = arch.unit_view(u)
        ab, wb = bytes_of(view.bits.activations), bytes_of(view.bits.weights)
        out[u.name] = min(cap, u.array.rows * ab + u.array.cols * wb) if u.kind == "array" \
            else min(cap, 2 * u.sfu.elems_per_cycle * ab)
    return out


def estimate(arch: Accelerator, device: Device, resources, ops, total_cycles: float,
             bandwidth_bytes_per_cycle: float, tokens_per_run: int,
             phase_runs: dict[str, float]) -> Power:
    """Power of a run whose per-op rows are `ops` (engine's frame: unit, kind, phase, count,
    compute_cycles, run_cycles, dram_read_bytes, dram_write_bytes). `phase_runs` is how often
    each phase runs per sampling run (once 1, forward passes, steps)."""
    f = arch.clock_mhz * 1e6
    seconds = total_cycles / f
    units = resources.by_unit
    ff = sum(u.get("ff", 0) for u in units.values())
    # Compute units (the array and the SFU of a temporal design): their dynamic energy
    # follows their busy cycles.
    names = [u.name for u in arch.compute_units()]
    e_cycle = {u: unit_pj_per_cycle(units.get(u, {}), device.dsp_family) * 1e-12
               for u in names}
    e_buffer_byte = 8 * _e("uram_bit" if resources.buffer_memory == "uram" else "bram_bit")
    _, mem = arch.off_chip(device)
    e_dram_byte = 8 * _e(mem.technology)
    # The memory interface is busy one cycle per `bandwidth` bytes moved.
    e_iface_byte = unit_pj_per_cycle(units.get("memory", {}), device.dsp_family) * 1e-12 \
        / bandwidth_bytes_per_cycle
    per_cycle_bytes = buffer_bytes_per_cycle(arch)
    p_static = device.power.static_w + device.power.platform_w
    p_clock = ff * _e("ff_clock") * f

    by_unit = dict.fromkeys((*names, "buffer", "memory interface", "dram", "clock", "static"),
                            0.0)
    by_kind: dict[str, float] = {}
    by_phase = dict.fromkeys(("once", "forward", "step"), 0.0)
    op_energy = []
    for r in ops.itertuples(index=False):
        busy = r.count * r.compute_cycles
        dram = r.count * (r.dram_read_bytes + r.dram_write_bytes)
        parts = {
            "buffer": (busy * per_cycle_bytes.get(r.unit, 0.0) + dram) * e_buffer_byte,
            "memory interface": dram * e_iface_byte,
            "dram": dram * e_dram_byte,
            # static and clock follow the time the op adds to the run
            "clock": r.run_cycles / f * p_clock,
            "static": r.run_cycles / f * p_static,
        }
        if r.unit in e_cycle:
            parts[r.unit] = busy * e_cycle[r.unit]
        total = sum(parts.values())
        for k, v in parts.items():
            by_unit[k] += v
        by_kind[r.kind] = by_kind.get(r.kind, 0.0) + total
        by_phase[r.phase] = by_phase.get(r.phase, 0.0) + total
        op_energy.append(total)
    # Per execution: once per run, the mean forward pass, and the mean sampling step as
    # latency_step_s counts it (the run minus once-per-run work, over the steps).
    total = sum(by_unit.values())
    steps = phase_runs.get("step") or 1
    per_exec = {"once": by_phase["once"],
                "forward": by_phase["forward"] / phase_runs["forward"]
                if phase_runs.get("forward") else 0.0,
                "step": (total - by_phase["once"]) / steps}
    bw = bandwidth_bytes_per_cycle
    peak = p_static + p_clock + f * (
        sum(e_cycle.values())
        + (sum(per_cycle_bytes.values()) + bw) * e_buffer_byte
        + bw * (e_dram_byte + e_iface_byte))
    return Power(seconds=seconds, by_unit=by_unit, by_kind=by_kind, by_phase=per_exec,
                 peak_w=peak, tokens_per_run=tokens_per_run, op_energy_j=op_energy)
