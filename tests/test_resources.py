"""Resource estimate: the HLS memory-mapping rules and a preset's totals, derived by hand."""

from __future__ import annotations

import pytest

import dlmsim
from dlmsim.resources import (
    bram18_per_bank,
    buffer_blocks,
    check_dram,
    dram_footprint,
    estimate,
    uram_per_bank,
)
from dlmsim.workloads import Op, Schedule, Tensor, Trace


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
    """sda-style-2048-zcu102: 32x64 = 2048 PEs at W4A8, 2 MACs per DSP48E2 -> 1024 DSPs, plus the
    SFU's 5 lanes x 2 elements x 2 DSPs = 20 -> 1044 DSPs.
    Buffer: 1536 KiB in 32 banks, 256 B/cycle -> 64-bit banks of 1572864 / (32 x 8) = 6144
    words -> 2 x 12 = 24 BRAM18 per bank, 768 in all; + 2 for each of the four AXI ports
    = 776 BRAM18 = 388 BRAM36."""
    res = estimate(dlmsim.load_arch("sda-style-2048-zcu102"))
    assert res.used["dsp"] == 1044
    assert res.used["bram36"] == 388
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


def _toy_trace():
    """tokens [1, 8] -> embed (table [16, 4]) -> x -> layernorm -> h -> fc (w [4, 4]) -> y
    (forward); argmax(y) -> new tokens (step)."""
    tok = Tensor("tokens", (1, 8), "idx", "index")
    x, h, y = (Tensor(n, (1, 8, 4)) for n in ("x", "h", "y"))
    ops = (
        Op("embed", "gather", "embedding", (Tensor("table", (16, 4), role="weight"), tok), (x,)),
        Op("norm", "sfu", "layernorm", (x,), (h,)),
        Op("fc", "gemm", "linear", (h, Tensor("w", (4, 4), role="weight")), (y,)),
        Op("pick", "sfu", "argmax", (y,), (Tensor("new", (1, 8), "idx", "index"),),
           phase="step"),
    )
    return Trace("toy", ops, Schedule(steps=2, forward_passes=2), inputs=(tok,))


def test_dram_footprint_by_hand():
    """W8A8: weights 16 x 4 + 4 x 4 = 80 B. State: the graph input tokens (8 x 4 B = 32 B)
    and y, produced by the forward and read by the step's argmax (32 x 1 B): 64 B.
    Activations within the forward: x (32 B) lives from embed to norm, h (32 B) from norm
    to fc: 64 B at norm, the peak; the step's output is read by nothing."""
    arch = dlmsim.load_arch("int8-zcu102")
    fp = dram_footprint(arch, _toy_trace())
    assert (fp.weights_bytes, fp.state_bytes, fp.activations_bytes) == (80, 64, 64)
    assert fp.memory == "ps_ddr" and fp.usable_bytes == 3 * 2**30 and fp.fits


def test_weights_that_do_not_fit_are_infeasible():
    """Issue 10.2: LLaDA-8B at W4 is 3.73 GiB of weights, more than the 3 GiB a ZCU102 leaves
    after the OS; fp32 LLaDA (29.9 GiB) does not fit the U280's 8 GiB of HBM but fits its
    32 GiB of DDR4."""
    llada = dlmsim.load_workload("llada-8b")
    with pytest.raises(dlmsim.InputError, match=r"cannot run llada-8b: DRAM footprint 3\.79 "
                       r"GiB \(weights 3\.73 GiB .* exceeds ps_ddr's 3 GiB usable of 4 GiB"):
        check_dram(dlmsim.load_arch("sda-style-2048-zcu102"), llada)
    with pytest.raises(dlmsim.InputError, match="exceeds hbm's 8 GiB usable"):
        dlmsim.simulate(dlmsim.load_arch("fp32-u280"), llada)
    ddr = dlmsim.load_arch("fp32-u280", **{"memory.target": "ddr"})
    assert check_dram(ddr, llada).fits


def test_pe_fabric_fits_the_licensed_systolic_report():
    """The fit of resources.PE_LUT_PER_BIT, from the MIT 8 x 8 OS int32 array's pipelined
    loop (tests/fixtures/hls): 64 PEs x 3.025 x (32 + 32) = 12390 LUT against 12389; FF:
    64 x (32 + 32 + 32) = 6144 against 6172 (28 of loop control), 0.5%."""
    from pathlib import Path

    from dlmsim.hls_report import parse_report
    from dlmsim.resources import pe_fabric

    rep = parse_report(Path(__file__).parent / "fixtures" / "hls" /
                       "mit_systolic8x8_int32_vitis2022.2_xck26_systolic1_csynth.xml")
    lut, ff = pe_fabric(32, 32, 32, ws=False)
    assert rep.resources["DSP"] == 64 * 3  # three DSP48E2 per 32 x 32 multiply
    assert 64 * lut == pytest.approx(rep.resources["LUT"], rel=1e-3)
    assert 64 * ff == pytest.approx(rep.resources["FF"], rel=5e-3)


@pytest.mark.parametrize(("name", "module_lut", "macs"), [
    ("hls4ml_vivadohls2018.2_xcku115_myproject_csynth.rpt", 5129, 288),  # compute_layer
    ("hls4ml_vivadohls2018.2_xcku115_myproject_csynth.rpt", 9051, 504),  # conv_1d
    ("hls4ml_vivadohls2020.1_xc7z020_myproject_csynth.rpt", 2134, 73),   # dense
])
def test_pe_fabric_against_unrolled_dense_layers(name, module_lut, macs):
    """The stated error bound of the fit on hls4ml's 16-bit (ap_fixed<16,6>) dense layers,
    one DSP48 per multiply, no systolic forwarding (module rows of the reports' instance
    tables): 3.025 x 32 = 96.8 LUT per MAC against 17.8 to 29.2, 3.3x to 5.4x high."""
    from pathlib import Path

    from dlmsim.resources import pe_fabric

    text = (Path(__file__).parent / "fixtures" / "hls" / name).read_text()
    assert any(f"|{macs}|" in row.replace(" ", "") and f"|{module_lut}|" in row.replace(" ", "")
               for row in text.splitlines())  # the module's row of the instance table
    ratio = pe_fabric(16, 16, 16, ws=False)[0] / (module_lut / macs)
    assert 3.3 <= ratio <= 5.5
