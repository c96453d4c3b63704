"""Resource estimate: the HLS memory-mapping rules and a preset's totals, derived by hand."""

from __future__ import annotations

import pytest

import dlmsim
from dlmsim.resources import bram18_per_bank, buffer_blocks, estimate, uram_per_bank


def test_bram18_rule():
    """width <= 18: ceil(w/18) * ceil(depth/1024); else ceil(w/36) * ceil(depth/512)."""
    assert bram18_per_bank(16, 2048) == 1 * 2
    assert bram18_per_bank(18, 1025) == 1 * 2
    assert bram18_per_bank(32, 1024) == 1 * 2
    assert bram18_per_bank(64, 6144) == 2 * 12
    assert bram18_per_bank(72, 512) == 2 * 1


def test_uram_rule():
    """ceil(w/72) * ceil(depth/4096)."""
    assert uram_per_bank(72, 4096) == 1
    assert uram_per_bank(144, 8192) == 4
    assert uram_per_bank(64, 4097) == 2


def test_sda_preset_totals():
    """sda-w4a8-zcu102: 32x64 = 2048 PEs at W4A8, 2 MACs per DSP48E2 -> 1024 DSPs, plus the
    SFU's 5 lanes x 2 elements x 2 DSPs = 20 -> 1044 DSPs.
    Buffer: 1536 KiB in 32 banks, 256 B/cycle -> 64-bit banks of 1572864 / (32 x 8) = 6144
    words -> 2 x 12 = 24 BRAM18 per bank, 768 in all; + 2 for the one AXI port = 770 BRAM18
    = 385 BRAM36."""
    res = estimate(dlmsim.load_arch("sda-w4a8-zcu102"))
    assert res.used["dsp"] == 1044
    assert res.used["bram36"] == 385
    assert res.used["uram"] == 0
    assert res.fits
    assert res.fraction["dsp"] == pytest.approx(1044 / 2520)


def test_uram_buffer_and_shell():
    """int8-u280: 16384 KiB in 64 banks at 512 B/cycle -> 64-bit banks of 16777216 / (64 x 8)
    = 32768 words -> 1 x 8 URAM per bank = 512 URAM. U280's shell takes 195 BRAM36."""
    arch = dlmsim.load_arch("int8-u280")
    assert buffer_blocks(arch, "uram") == 512
    res = estimate(arch)
    assert res.buffer_memory == "uram" and res.used["uram"] == 512
    assert res.available["bram36"] == 2016 - 195


def test_bigger_designs_use_more():
    small = estimate(dlmsim.load_arch("int8-zcu102", **{"array.rows": 16}))
    big = estimate(dlmsim.load_arch("int8-zcu102"))
    assert all(big.used[k] >= small.used[k] for k in big.used)
    assert big.used["dsp"] - small.used["dsp"] == (32 - 16) * 64 / 2
