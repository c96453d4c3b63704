"""dlmsim.calibrate: factor fitting, bounds, the error table and the arch file's section."""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from dlmsim.arch import load_arch
from dlmsim.calibrate import (
    Pair,
    calibration_section,
    error_table,
    fit,
    pair_reports,
    write_calibration,
)
from dlmsim.cli import app
from dlmsim.config import bundled_dir
from dlmsim.errors import InputError
from dlmsim.hls_report import HlsReport
from dlmsim.lower.manifest import write_manifest

FIX = Path(__file__).parent / "fixtures" / "hls"
# The program hls4ml_vivadohls2020.1_xc7z020_myproject_csynth.xml was built from.
HLS4ML = {"top": "myproject", "part": "xc7z020clg400-1", "clock": 200.0}


def _manifest(cycles=1000.0, clock=250.0, design="abc", top="ddit_block",
              part="xczu9eg-ffvb1156-2-e"):
    return {"manifest_version": 1, "arch": {"name": "x", "design_hash": design, "source": ""},
            "workload": {}, "program": {"top": top}, "hls": {"part": part},
            "numerics": {}, "prediction": {"cycles": cycles, "clock_mhz": clock, "resources": {
                "dsp": 100.0, "bram36": 50.0, "uram": 0.0, "lut": 1000.0, "ff": 2000.0}}}


def _report(latency, est_ns=4.0, res=None, top="ddit_block"):
    return HlsReport(source="r", report_format="xml", top=top, tool="vitis_hls", version=None,
                     part=None, clock_target_ns=4.0, clock_estimated_ns=est_ns,
                     clock_uncertainty_ns=None, latency_best_cycles=latency,
                     latency_average_cycles=None, latency_worst_cycles=latency,
                     interval_min_cycles=None, interval_max_cycles=None, pipeline_type=None,
                     resources=res if res is not None else {"DSP": 200, "BRAM18": 100,
                                                            "LUT": 1500, "FF": 2000})


def _pair(m, r, name="r.xml"):
    return Pair(name, "m.json", m, r)


def test_factors_are_ratios_and_geometric_means():
    """cycles: reports 2000 and 500 against 1000 -> sqrt(2 * 0.5) = 1; DSP 200/100 = 2;
    BRAM18 100 -> 50 BRAM36, /50 = 1; URAM predicted 0 and not reported -> 1."""
    f = fit([_pair(_manifest(), _report(2000)), _pair(_manifest(), _report(500))])
    assert f.factors["cycles"] == pytest.approx(1.0)
    assert f.factors["dsp"] == pytest.approx(2.0)
    assert f.factors["bram36"] == pytest.approx(1.0)
    assert f.factors["lut"] == pytest.approx(1.5)
    assert f.factors["uram"] == 1.0
    assert f.clock_mhz == pytest.approx(250.0)
    assert not f.warnings


def test_bounds_clamp_with_a_warning_naming_it():
    f = fit([_pair(_manifest(cycles=100.0), _report(10_000, est_ns=2.0))])
    assert f.factors["cycles"] == 4.0
    assert any(w.startswith("cycles factor 100 clamped to 4") for w in f.warnings)
    assert f.clock_mhz == pytest.approx(500.0)  # 2 ns -> 500 MHz = 2x target, inside bounds
    f = fit([_pair(_manifest(), _report(1, res={"URAM": 3}))])
    assert f.factors["cycles"] == 0.25
    assert any("uram: predicted 0" in w for w in f.warnings)


def test_a_kernel_called_per_op_calibrates_resources_not_cycles():
    """dlmsim lower's kernel runs one op per call: a report's latency is one call's, not the
    block's, so the cycles factor stays 1 (with the reason) while resources still fit."""
    m = _manifest()
    m["program"]["per_op_calls"] = True
    f = fit([_pair(m, _report(50, res={"DSP": 20}))])
    assert f.factors["cycles"] == 1.0
    assert any("one op per call" in w for w in f.warnings)
    assert f.factors["dsp"] != 1.0


def test_error_table_before_and_after():
    pairs = [_pair(_manifest(), _report(1500))]
    f = fit(pairs)
    t = error_table(pairs, f).set_index("quantity")
    assert t.loc["cycles", "error_pct"] == pytest.approx(100 * (1000 - 1500) / 1500)
    assert t.loc["cycles", "calibrated_error_pct"] == pytest.approx(0.0)
    assert t.loc["dsp", "calibrated_error_pct"] == pytest.approx(0.0)
    assert not math.isnan(t.loc["clock_mhz", "reported"])


def test_one_design_at_a_time():
    with pytest.raises(InputError, match="different designs"):
        fit([_pair(_manifest(design="a"), _report(1)), _pair(_manifest(design="b"),
                                                              _report(1))])


def test_write_calibration_keeps_the_rest_and_replaces(tmp_path):
    src = bundled_dir("arch") / "int8-zcu102.yaml"
    p = tmp_path / "a.yaml"
    shutil.copy(src, p)
    before = p.read_text()
    f = fit([_pair(_manifest(), _report(1500))])
    write_calibration(p, calibration_section(f))
    text = p.read_text()
    assert text.startswith(before)
    arch = load_arch(p)
    assert arch.calibration.cycles == pytest.approx(1.5)
    assert arch.calibration.dsp == pytest.approx(2.0)
    write_calibration(p, {**calibration_section(f), "cycles": 2.0})
    assert p.read_text().count("calibration:") == 1
    assert load_arch(p).calibration.cycles == 2.0
    with pytest.raises(InputError):
        write_calibration(p, {"cycles": -1})


def test_reports_pair_with_manifests(tmp_path):
    d = tmp_path / "lowered"
    (d / "hls_project" / "syn").mkdir(parents=True)
    m = _manifest(**HLS4ML)
    write_manifest(d / "manifest.json", m)
    rep = d / "hls_project" / "syn" / "csynth.xml"
    shutil.copy(FIX / "hls4ml_vivadohls2020.1_xc7z020_myproject_csynth.xml", rep)
    (pair,) = pair_reports([rep])
    assert pair.manifest == m
    lone = tmp_path / "lone.xml"
    shutil.copy(rep, lone)
    with pytest.raises(InputError, match="no manifest matches"):
        pair_reports([lone])
    (pair,) = pair_reports([lone], [d / "manifest.json"])
    assert pair.manifest["program"]["top"] == "myproject"


def test_cli_calibrate(tmp_path):
    d = tmp_path / "lowered"
    d.mkdir()
    arch = tmp_path / "arch.yaml"
    shutil.copy(bundled_dir("arch") / "int8-zcu102.yaml", arch)
    m = _manifest(**HLS4ML)
    m["arch"]["source"] = str(arch)
    write_manifest(d / "manifest.json", m)
    shutil.copy(FIX / "hls4ml_vivadohls2020.1_xc7z020_myproject_csynth.xml", d / "csynth.xml")
    r = CliRunner().invoke(app, ["calibrate", str(d / "csynth.xml"), "--format", "csv"])
    assert r.exit_code == 0, r.output
    assert "calibrated_error_pct" in r.output
    cal = load_arch(arch).calibration
    assert cal is not None and 0.25 <= cal.cycles <= 4
    assert yaml.safe_load(arch.read_text())["array"]["rows"] == 32
    r = CliRunner().invoke(app, ["calibrate", str(FIX / "synthetic_vitis2022.1_xcu250_gemm_"
                                                     "csynth.xml")])
    assert r.exit_code == 1


@pytest.mark.parametrize(("change", "message"), [
    ({"top": "ddit_block"}, "its top function is 'myproject', the program's is 'ddit_block'"),
    ({"part": "xczu9eg-ffvb1156-2-e"},
     "it was synthesised for xc7z020-clg400-1, the program for xczu9eg-ffvb1156-2-e"),
    ({"clock": 250.0}, "it targets 200 MHz, the program 250 MHz"),
])
def test_a_report_of_another_program_is_refused(tmp_path, change, message):
    """The one --manifest given, or the one beside the report: top, part, clock must agree."""
    rep = FIX / "hls4ml_vivadohls2020.1_xc7z020_myproject_csynth.xml"
    write_manifest(tmp_path / "manifest.json", _manifest(**{**HLS4ML, **change}))
    with pytest.raises(InputError, match=f"is not a report of the program of .*: {message}"):
        pair_reports([rep], [tmp_path / "manifest.json"])
    (tmp_path / "d").mkdir()
    shutil.copy(rep, tmp_path / "d" / "csynth.xml")
    shutil.copy(tmp_path / "manifest.json", tmp_path / "d" / "manifest.json")
    with pytest.raises(InputError, match=message):
        pair_reports([tmp_path / "d" / "csynth.xml"])


@pytest.mark.parametrize(("edit", "message"), [
    (lambda m: m.update(prediction={}), "prediction.cycles: required key is missing"),
    (lambda m: m.update(program={}), "program.top: required key is missing"),
    (lambda m: m["prediction"].update(clock_mhz=0), ("prediction.clock_mhz: Input should be "
                                                    "greater than 0")),
    (lambda m: m["prediction"]["resources"].update(dsp=True),
     "prediction.resources.dsp: Input should be a valid number"),
    (lambda m: m.update(arch=[]), "arch: Input should be a valid dictionary"),
])
def test_manifest_sections_are_checked(tmp_path, edit, message):
    """Empty or mistyped sections were a KeyError/TypeError in calibrate; now one line."""
    from dlmsim.lower.manifest import read_manifest

    m = _manifest()
    edit(m)
    write_manifest(tmp_path / "manifest.json", m)
    with pytest.raises(InputError, match=f"manifest.json: {message}"):
        read_manifest(tmp_path)


def test_cli_table_has_units(tmp_path):
    d = tmp_path / "lowered"
    d.mkdir()
    write_manifest(d / "manifest.json", _manifest(**HLS4ML))
    shutil.copy(FIX / "hls4ml_vivadohls2020.1_xc7z020_myproject_csynth.xml", d / "csynth.xml")
    r = CliRunner().invoke(app, ["calibrate", str(d / "csynth.xml"), "--dry-run"])
    assert r.exit_code == 0, r.output
    assert " cycles" in r.output and " MHz" in r.output and " %" in r.output
    assert not re.search(r"\d\.\d{6,}", r.output)  # no raw 17-digit floats
    assert "factors (not written): cycles x" in r.output
