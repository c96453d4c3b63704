"""Accelerator and device configs: presets load, derived figures, and bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

import dlmsim
from dlmsim.arch import load_device, macs_per_dsp, smallest_tile_bytes
from dlmsim.config import bundled_dir, bundled_names


@pytest.mark.parametrize("name", bundled_names("arch"))
def test_every_arch_preset_loads(name):
    arch = dlmsim.load_arch(name)
    assert arch.name == name
    assert arch.bandwidth_bytes_per_cycle() > 0


@pytest.mark.parametrize("path", sorted((bundled_dir("arch") / "devices").glob("*.yaml")))
def test_every_device_loads(path):
    dev = load_device(path.stem)
    assert dev.dsp > 0
    for mem in dev.memories.values():
        assert mem.peak_gbps > 0 and 0 < mem.usable_bytes <= mem.capacity_gib * 2**30
        assert mem.source and mem.max_ports >= 1


def test_bandwidth_per_cycle():
    """sda-style-2048-zcu102: four 128-bit ports at 300 MHz = 4 x 16 B x 300e6 = 19.2 GB/s; the
    DDR4 channel peak is 19.2 GB/s; achieved = min(19.2, 19.2) x 0.85 = 16.32 GB/s, per
    300 MHz cycle 16.32e9 / 300e6 = 54.4 B/cycle. With 16 ports on U280 HBM at 225 MHz:
    each 64 B x 225e6 = 14.4 GB/s (a pseudo-channel's ceiling too), 16 x 14.4 = 230.4 GB/s
    < 460 GB/s peak, x 0.9 = 207.36 GB/s = 921.6 B/cycle. The same design on the U280's DDR4:
    min(230.4, 38.4) x 0.9 = 34.56 GB/s = 153.6 B/cycle."""
    sda = dlmsim.load_arch("sda-style-2048-zcu102")
    assert sda.bandwidth_bytes_per_cycle() == pytest.approx(54.4)
    assert dlmsim.load_arch("int8-u280").bandwidth_bytes_per_cycle() == pytest.approx(921.6)
    ddr = dlmsim.load_arch("int8-u280", **{"memory.target": "ddr"})
    assert ddr.bandwidth_bytes_per_cycle() == pytest.approx(153.6)


def test_port_width_defaults_to_the_widest_allowed():
    """Without memory.port_bits a ZCU102 design gets PG201's 128-bit HP ports."""
    data = dlmsim.load_arch("int8-zcu102").model_dump(mode="json")
    data["memory"].pop("port_bits")
    from dlmsim.arch import arch_from_data

    arch = arch_from_data(data, "test")
    assert arch.port_bits() == 128


@pytest.mark.parametrize(("sets", "message"), [
    ({"memory.port_bits": 512}, ("memory.port_bits 512 is wider than zcu102's ps_ddr allows "
                                 "(128 bits; UG1182")),
    ({"memory.ports": 7}, "memory.ports 7 is more than zcu102's ps_ddr offers (6;"),
    ({"memory.target": "hbm"}, ("memory.target: device zcu102 has no memory 'hbm'; it has "
                                "ps_ddr, pl_ddr")),
])
def test_unbuildable_ports_are_errors(sets, message):
    """Issue 10.3: Zynq UltraScale+ PL-to-PS ports are at most 128 bits wide (PG201)."""
    with pytest.raises(dlmsim.InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        dlmsim.load_arch("int8-zcu102", **sets)


def test_sda_preset_is_sda_as_released():
    """Issue 10.4, figures from github Michaela1224/SDA_code (cited in the preset): 4 x 2
    sub-arrays of 5 x 5 PEs, each PE 2 DSP48E2 doing 4 W4A8 MACs per cycle -> a 40 x 20
    output block, 800 MACs per cycle, 400 DSPs; ACC_BIT 36; 5-lane 16-bit SFU with two
    values per lane; five 128-bit m_axi bundles; a 3.3 ns clock target (303 MHz)."""
    from dlmsim.arch import array_dsps

    sda = dlmsim.load_arch("sda-zcu102")
    assert (sda.array.rows, sda.array.cols, sda.pes) == (40, 20, 800)
    assert array_dsps(sda, "dsp48e2") == 200 * 2
    assert (sda.bits.weights, sda.bits.activations, sda.bits.accumulator) == (4, 8, 36)
    assert (sda.sfu.lanes, sda.sfu.elems_per_lane, sda.sfu.bits) == (5, 2, 16)
    assert (sda.memory.ports, sda.port_bits()) == (5, 128)
    assert sda.clock_mhz == pytest.approx(1e3 / 3.3, rel=2e-3)
    assert sda.buffer.loop_order == "output_row" and sda.dev().part == "xczu9eg-ffvb1156-2-e"
    assert sda.array.fold_overlap == "full"  # PE_wrapper: one II=1 loop over all folds


def test_macs_per_dsp_table():
    """hardware.md: DSP48E2 16x16 1, 8x8 2, W4A8 2, 4x4 4, fp32 MAC 1/5; DSP58 8x8 3."""
    assert macs_per_dsp(16, 16, "dsp48e2") == 1
    assert macs_per_dsp(8, 8, "dsp48e2") == 2
    assert macs_per_dsp(4, 8, "dsp48e2") == 2
    assert macs_per_dsp(4, 4, "dsp48e2") == 4
    assert macs_per_dsp("fp32", "fp32", "dsp48e2") == pytest.approx(0.2)
    assert macs_per_dsp(8, 8, "dsp58") == 3
    assert macs_per_dsp("fp32", "fp32", "dsp58") == 1


def test_smallest_tile():
    """32x64 array at W4A8: 2 x (32 x 1 B + 64 x 0.5 B) + 32 x 64 x 1 B = 128 + 2048 B."""
    assert smallest_tile_bytes(dlmsim.load_arch("sda-style-2048-zcu102")) == 2176


def test_overrides_by_dotted_path():
    arch = dlmsim.load_arch("int8-zcu102", **{"array.rows": 16}, array__cols=16)
    assert (arch.array.rows, arch.array.cols) == (16, 16)
    assert arch.run_id() != dlmsim.load_arch("int8-zcu102").run_id()
    assert dlmsim.load_arch("int8-zcu102").run_id() == dlmsim.load_arch("int8-zcu102").run_id()


@pytest.mark.parametrize(("sets", "message"), [
    ({"array.rows": 128}, "array 128x64 at W8A8 needs 4096 DSPs, device zcu102 has 2520"),
    ({"buffer.kib": 1}, "buffer.kib 1 leaves 0.5 KiB for tiles, less than the smallest 32x64"),
    ({"memory.peak_gbps": 0}, "memory.peak_gbps: Input should be greater than 0"),
    ({"memory.efficiency": 0}, "memory.efficiency: Input should be greater than 0"),
    ({"clock_mhz": -5}, "clock_mhz: Input should be greater than 0"),
    ({"bits.weights": 3}, "bits.weights: Input should be 4, 8, 16 or 'fp32'"),
    ({"bits.weights": "fp32"}, "an fp32 array needs fp32 weights"),
    ({"array.policy": "ws", "array.dataflows": ["os"]}, "policy 'ws' is a dataflow the array"),
    ({"device": "zcu999"}, "unknown device 'zcu999'; known: kv260"),
    ({"array.rowz": 4}, "unknown key 'array.rowz'; nearest: array.rows"),
    ({"sfu.passes.softmaxx": 1}, "unknown key 'sfu.passes.softmaxx'; nearest: sfu.passes.softmax"),
    # strict numbers: a bool is not 1, a float is not an int, a string is not a number
    ({"clock_mhz": True}, "clock_mhz: Input should be a valid number (got true)"),
    ({"array.rows": 32.0}, "array.rows: Input should be a valid integer (got 32.0)"),
    ({"buffer.kib": "512"}, "buffer.kib: Input should be a valid number (got '512')"),
    ({"sfu.passes.softmax": False}, "sfu.passes.softmax: Input should be a valid number"),
    ({"version": True}, "version: expected the number 1, got true"),
    ({"device": "../devices/zcu102"}, "device: device '../devices/zcu102' is not a device name"),
    ({"calibration.clock_mhz": -5}, "calibration.clock_mhz: Input should be greater than 0"),
    ({"calibration.clock_mhz": 0}, "calibration.clock_mhz: Input should be greater than 0"),
])
def test_bad_arch_values(sets, message):
    with pytest.raises(dlmsim.InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        dlmsim.load_arch("int8-zcu102", **sets)


def test_bad_arch_files_give_one_line(tmp_path, run_dlmsim):
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nname: x\n  device: [zcu102\n")
    extra = tmp_path / "extra.yaml"
    extra.write_text(Path(bundled_dir("arch") / "int8-zcu102.yaml").read_text()
                     + "turbo: true\n")
    cases = [
        (bad, "malformed YAML"),
        (extra, "turbo: unknown key"),
        (tmp_path / "missing.yaml", "arch file not found"),
    ]
    for path, message in cases:
        r = run_dlmsim("simulate", "--arch", str(path), "--workload", "mdlm-tiny")
        assert r.returncode == 1, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], r.stderr
        assert "Traceback" not in r.stderr


def test_device_clock_range_must_be_ordered():
    from dlmsim.arch import Device
    from dlmsim.config import read_yaml, validate

    data = read_yaml(bundled_dir("arch") / "devices" / "zcu102.yaml")
    data["clock_mhz"] = {"min": 300, "max": 200}
    with pytest.raises(dlmsim.InputError, match=r"clock_mhz: min 300 > max 200"):
        validate(Device, data, "zcu102.yaml")


# ------------------------------------------------------------------------ spatial designs
def _spatial(units, base="fp32-u280", **extra):
    from dlmsim.arch import arch_from_data
    from dlmsim.config import read_yaml

    data = read_yaml(bundled_dir("arch") / f"{base}.yaml")
    return arch_from_data({**data, "units": units, **extra}, "spatial.yaml")


def test_units_take_the_template_and_add_up():
    """Two array units on fp32-u280's template (8x8, OS, fold_overlap none), one 16 rows
    high: 16 x 8 + 8 x 8 = 192 PEs; fp32 packs 1/5 MAC per DSP48E2, so 5 x 192 = 960 DSPs
    for the arrays. The SFU unit keeps the template's 4 fp32 lanes."""
    from dlmsim.arch import array_dsps

    arch = _spatial({"qkv": {"kind": "array", "rows": 16, "ops": "*.qkv  *.attn_out,x"},
                     "mlp": {"kind": "array"}, "vec": {"kind": "sfu"}})
    units = arch.compute_units()
    assert [u.name for u in units] == ["qkv", "mlp", "vec"]
    assert (units[0].array.rows, units[0].array.cols, units[0].array.fold_overlap) == \
        (16, 8, "none")
    assert units[0].ops == ("*.qkv", "*.attn_out", "x")
    assert units[2].sfu.lanes == 4 and units[2].region == "design"
    assert arch.pes == 192 and array_dsps(arch, "dsp48e2") == 960
    assert arch.unit_view(units[0]).array.rows == 16
    temporal = dlmsim.load_arch("fp32-u280")
    assert [u.name for u in temporal.compute_units()] == ["array", "sfu"]
    assert temporal.unit_view(temporal.compute_units()[0]) is temporal


def test_unit_keys_can_be_set_from_the_command_line():
    arch = _spatial({"qkv": {"kind": "array"}, "vec": {"kind": "sfu"}})
    data = arch.model_dump(mode="json")
    from dlmsim.arch import arch_from_data

    bigger = arch_from_data(data, "x", {"units.qkv.rows": 32, "units.vec.lanes": 8})
    assert bigger.compute_units()[0].array.rows == 32
    assert bigger.compute_units()[1].sfu.lanes == 8
    with pytest.raises(dlmsim.InputError, match=r"unknown key 'units.qkv.rowz'; nearest: "
                                                r"units.qkv.rows"):
        arch_from_data(data, "x", {"units.qkv.rowz": 32})


@pytest.mark.parametrize(("extra", "message"), [
    ({"units": {"a": {"kind": "array", "rowz": 8}}}, "units.a.rowz: unknown key"),
    ({"units": {"a": {"kind": "array", "policy": "ws"}}},
     "units.a: policy 'ws' is a dataflow the array does not support"),
    ({"units": {"a": {"kind": "array", "weights": 8}}},
     "units.a.weights: an fp32 array needs fp32 weights"),
    ({"units": {"a": {"kind": "sfu", "functions": ["foo"]}}},
     "functions: unknown SFU function 'foo'"),
    ({"units": {"a": {"kind": "array"}},
      "streams": {"s": {"producer": "a", "consumer": "b", "depth_bytes": 64}}},
     "streams.s.consumer: no unit 'b'; units: a"),
    ({"units": {"a": {"kind": "array"}, "b": {"kind": "sfu"}},
      "streams": {"s": {"producer": "a", "consumer": "b", "depth_bytes": 64},
                  "t": {"producer": "a", "consumer": "b", "depth_bytes": 64}}},
     "streams.t: 's' already joins a to b"),
    ({"units": {"a": {"kind": "array"}, "b": {"kind": "sfu"}},
      "regions": {"r": {"units": ["a"]}}}, "regions: unit b is in no region"),
    ({"units": {"a": {"kind": "array"}, "b": {"kind": "sfu"}},
      "regions": {"r": {"units": ["a", "b"]}, "q": {"units": ["b"]}}},
     "regions.q.units: 'b' is already in region 'r'"),
    ({"units": {"a": {"kind": "array"}}, "regions": {"r": {"units": ["a"], "slr": 3}}},
     r"regions.r.slr 3: u280 has 3 SLRs \(0-2\)"),
    ({"units": {"dma": {"kind": "array"}}}, "units: 'dma' is not a unit name"),
    ({"streams": {"s": {"producer": "a", "consumer": "b", "depth_bytes": 64}}},
     "streams and regions connect `units`; the design declares none"),
    ({"units": {"a": {"kind": "array", "rows": 8000, "cols": 8000}}},
     "1 array of 64000000 PEs in all at Wfp32Afp32 needs 320000000 DSPs"),
])
def test_bad_spatial_designs_name_the_key(extra, message):
    from dlmsim.arch import arch_from_data
    from dlmsim.config import read_yaml

    data = read_yaml(bundled_dir("arch") / "fp32-u280.yaml")
    with pytest.raises(dlmsim.InputError, match=message) as e:
        arch_from_data({**data, **extra}, "x.yaml")
    assert "\n" not in str(e.value) and "Value error" not in str(e.value)


def test_device_slrs_add_up_to_the_device():
    """U280: three SLRs of 3008 DSPs each = 9024; SLR0 carries the shell's 195 BRAM36
    (672 - 195 = 477 left). A device whose SLRs do not add up is refused."""
    from dlmsim.arch import Device
    from dlmsim.config import read_yaml, validate

    dev = load_device("u280")
    assert len(dev.slrs) == 3 and dev.slr_available(0)["bram36"] == 477
    assert dev.slr_available(1)["bram36"] == 672 and dev.slr_crossing.latency_cycles == 2
    data = read_yaml(bundled_dir("arch") / "devices" / "u280.yaml")
    data["slrs"][0]["dsp"] = 3000
    with pytest.raises(dlmsim.InputError, match="slrs: the SLRs' dsp add up to 9016, the "
                                                "device has 9024"):
        validate(Device, data, "u280.yaml")
