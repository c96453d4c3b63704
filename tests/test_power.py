"""Power model: hand-derived energy of a tiny case, zero work, monotone work, clock scaling,
and a source for every coefficient."""

from __future__ import annotations

import pandas as pd
import pytest

import dlmsim
from dlmsim import power
from dlmsim.arch import load_device
from dlmsim.config import bundled_dir
from dlmsim.resources import Resources

KV260 = load_device("kv260")
UNITS = {"array": {"dsp": 10, "lut": 1000, "ff": 2000},
         "sfu": {"dsp": 2, "lut": 100, "ff": 200},
         "buffer": {"uram": 4},
         "memory": {"lut": 700, "ff": 550}}
RES = Resources(used={}, available={}, buffer_memory="uram", by_unit=UNITS)
PHASES = {"once": 1, "forward": 2, "step": 1}


def _ops(array_count=2, array_cycles=1000.0, dram=1e4, sfu_cycles=500.0):
    """A forward GEMM run `array_count` times (1000 busy cycles and 10 kB of DRAM each) and
    one sampling-step SFU op (500 busy cycles); the run's cycles split 2500 + 500."""
    return pd.DataFrame([
        {"unit": "array", "kind": "gemm", "phase": "forward", "count": array_count,
         "compute_cycles": array_cycles, "run_cycles": 2500.0, "dram_read_bytes": dram,
         "dram_write_bytes": 0.0},
        {"unit": "sfu", "kind": "sfu", "phase": "step", "count": 1,
         "compute_cycles": sfu_cycles, "run_cycles": 500.0, "dram_read_bytes": 0.0,
         "dram_write_bytes": 0.0},
    ])


def _estimate(ops, arch=None, bw=54.4):
    arch = arch or dlmsim.load_arch("w4a8-kv260")
    return power.estimate(arch, KV260, RES, ops, float(ops.run_cycles.sum()), bw, 100, PHASES)


def test_tiny_case_by_hand():
    """w4a8-kv260 at 250 MHz (W4A8, a 32 x 32 array, 3 buffer ports of 128 B, 4 x 8 SFU
    elements), 3000 cycles = 12 us; bandwidth 54.4 B/cycle (4 x 128-bit ports at 250 MHz =
    16 GB/s < 19.2, x 0.85 = 13.6 GB/s).
    - array: 2 x 1000 busy cycles x (10 DSP x 2.5 + 1000 LUT x 0.0089) pJ = 2000 x 33.9 pJ
      = 67.8 nJ;
    - SFU: 500 x (2 x 2.5 + 100 x 0.0089) = 500 x 5.89 pJ = 2.945 nJ;
    - buffer (URAM, 0.3 pJ/bit): the array streams 32 x 1 B + 32 x 0.5 B = 48 B per busy
      cycle (under 3 x 128 B), the SFU 2 x 8 x 1 B = 16 B; bytes 2000 x 48 + 500 x 16 + the
      2 x 10 kB of DRAM = 124,000 B x 8 x 0.3 pJ = 297.6 nJ;
    - memory interface: 700 LUT x 0.0089 pJ = 6.23 pJ per busy cycle, one cycle per 54.4 B:
      20,000 B / 54.4 x 6.23 pJ = 2.2904 nJ;
    - DRAM (DDR4, 20 pJ/bit): 20,000 B x 8 x 20 pJ = 3.2 uJ;
    - clock: 2750 FF x 0.017 pJ x 3000 cycles = 140.25 nJ;
    - static: (0.301 + 2.215) W x 12 us = 30.192 uJ.
    The run is the sum of the parts; a forward pass is the GEMM row's energy (its parts and
    2500/3000 of the clock and static energy) over the 2 passes; peak = static + clock +
    f x (array + SFU energy per cycle + the buffer at 48 + 16 + 54.4 B per cycle + the
    channel's 54.4 B per cycle of DRAM and interface energy)."""
    p = _estimate(_ops())
    want = {"array": 67.8e-9, "sfu": 2.945e-9, "buffer": 297.6e-9,
            "memory interface": 20000 / 54.4 * 6.23e-12, "dram": 3.2e-6,
            "clock": 140.25e-9, "static": 30.192e-6}
    for k, v in want.items():
        assert p.by_unit[k] == pytest.approx(v, rel=1e-9), k
    assert p.energy_j == pytest.approx(sum(want.values()))
    assert p.seconds == pytest.approx(12e-6)
    assert p.average_w == pytest.approx(sum(want.values()) / 12e-6)
    assert p.tokens_per_j == pytest.approx(100 / sum(want.values()))
    f = 250e6
    peak = 2.516 + 2750 * 0.017e-12 * f + f * (
        33.9e-12 + 5.89e-12 + (48 + 16 + 54.4) * 8 * 0.3e-12 + 54.4 * 8 * 20e-12 + 6.23e-12)
    assert p.peak_w == pytest.approx(peak)
    assert p.peak_w > p.average_w
    # the per-op split adds up to the run, and per-phase figures follow from it
    assert sum(p.op_energy_j) == pytest.approx(p.energy_j)
    assert p.by_phase["forward"] == pytest.approx(p.op_energy_j[0] / 2)
    assert p.by_phase["step"] == pytest.approx(p.energy_j - p.by_phase["once"])
    assert set(p.by_kind) == {"gemm", "sfu"}


def test_zero_work_has_no_dynamic_energy():
    """No busy cycles and no bytes: only the clock tree and static power remain."""
    p = _estimate(_ops(array_count=0, sfu_cycles=0.0))
    for k in ("array", "sfu", "buffer", "memory interface", "dram"):
        assert p.by_unit[k] == 0.0
    assert p.by_unit["static"] == pytest.approx(2.516 * 12e-6)


@pytest.mark.parametrize("change", [{"array_count": 3}, {"array_cycles": 2000.0},
                                    {"dram": 5e4}, {"sfu_cycles": 900.0}])
def test_energy_is_monotone_in_the_work(change):
    assert _estimate(_ops(**change)).energy_j > _estimate(_ops()).energy_j


def test_doubling_the_clock_at_fixed_cycles_doubles_dynamic_power():
    """Same cycles and bytes at 2f: the same dynamic energy in half the time."""
    slow = _estimate(_ops(), dlmsim.load_arch("w4a8-kv260", clock_mhz=150))
    fast = _estimate(_ops(), dlmsim.load_arch("w4a8-kv260", clock_mhz=300))
    assert fast.dynamic_w == pytest.approx(2 * slow.dynamic_w)
    assert fast.energy_j - fast.by_unit["static"] == pytest.approx(
        slow.energy_j - slow.by_unit["static"])


def test_simulated_energy_grows_with_steps_and_batch():
    def energy(**run):
        tr = dlmsim.load_workload("mdlm-tiny", **{"seq_len": 32, **run})
        return dlmsim.simulate(dlmsim.load_arch("w4a8-kv260"), tr).power.energy_j

    base = energy(batch=1, steps=4)
    assert energy(batch=1, steps=8) > base
    assert energy(batch=2, steps=4) > base


def test_simulate_reports_power_everywhere():
    tr = dlmsim.load_workload("mdlm-tiny", batch=1, seq_len=32, steps=4)
    r = dlmsim.simulate(dlmsim.load_arch("sda-zcu102"), tr)
    s = r.summary()
    for k in ("power_w", "power_peak_w", "energy_run_j", "energy_forward_j", "energy_step_j",
              "energy_per_token_j", "tokens_per_j"):
        assert s[k] > 0, k
    assert r.ops.energy_j.sum() == pytest.approx(s["energy_run_j"])
    assert s["power_w"] == pytest.approx(s["energy_run_j"] / s["latency_run_s"])
    assert s["tokens_per_j"] == pytest.approx(32 / s["energy_run_j"])
    # the static floor: a board never draws less than its static power
    dev = load_device("zcu102")
    assert s["power_w"] > dev.power.static_w + dev.power.platform_w


def test_every_coefficient_and_device_names_its_source():
    for c in power.COEFFICIENTS.values():
        assert c.source and c.value > 0 and c.unit, c.name
    for path in sorted((bundled_dir("arch") / "devices").glob("*.yaml")):
        dev = load_device(path.stem)
        assert dev.power.source and dev.power.static_w > 0
        assert dev.dsp_family in power.COEFFICIENTS
        for mem in dev.memories.values():
            assert mem.technology in power.COEFFICIENTS  # an energy per bit for each
