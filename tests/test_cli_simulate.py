"""`dlmsim simulate` from the command line: tables with units, JSON, files, bad input."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from dlmsim.cli import app
from dlmsim.config import bundled_dir

TINY = ["--workload", "mdlm-tiny", "--batch", "1", "--seq-len", "32", "--steps", "4"]


def test_table_output_has_units():
    r = CliRunner().invoke(app, ["simulate", "--arch", "sda-w4a8-zcu102", *TINY])
    assert r.exit_code == 0, r.output
    for text in ("latency per sampling run", " ms", "tokens/s", "MHz", "cyc", "DSP",
                 "time by bound"):
        assert text in r.output


def test_json_and_output_files(tmp_path):
    r = CliRunner().invoke(app, ["simulate", "-a", "int8-u280", *TINY, "--format", "json",
                                 "-o", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["latency_run_s"] > 0 and summary["arch"] == "int8-u280"
    ops = pd.read_csv(tmp_path / "out" / "ops.csv")
    assert ops.run_cycles.sum() == summary["total_cycles"] or abs(
        ops.run_cycles.sum() / summary["total_cycles"] - 1) < 1e-9
    tl = pd.read_csv(tmp_path / "out" / "timeline.csv")
    assert set(tl.unit) >= {"array", "sfu"}
    # The arch written beside the results loads back unchanged.
    r2 = CliRunner().invoke(app, ["simulate", "-a", str(tmp_path / "out" / "arch.yaml"), *TINY,
                                  "--format", "json"])
    assert r2.exit_code == 0, r2.output


def test_set_overrides_the_arch():
    r = CliRunner().invoke(app, ["simulate", "-a", "int8-zcu102", *TINY, "--format", "json",
                                 "--set", "array.rows=16", "--set", "array.policy=ws"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["dsp_used"] < 1100


def test_bad_input_is_one_line_exit_1(run_dlmsim):
    cases = [
        (["simulate", "-a", "nope", *TINY], "unknown arch 'nope'"),
        (["simulate", "-a", "int8-zcu102", *TINY, "--set", "array.rows=999"], "needs"),
        (["simulate", "-a", "int8-zcu102", *TINY, "--set", "memory.peak_gbps=0"],
         "memory.peak_gbps: Input should be greater than 0"),
        (["simulate", "-a", "int8-zcu102", *TINY, "--set", "clock_mhz=0"],
         "clock_mhz: Input should be greater than 0"),
        (["simulate", "-a", "int8-zcu102", *TINY, "--set", "buffer.kib=60000"],
         "does not fit zcu102"),
        (["simulate", "-a", "int8-zcu102", *TINY, "--set", "bits.activations=2"],
         "bits.activations"),
        (["simulate", "-a", "int8-zcu102", "--workload", "nope"], "unknown workload 'nope'"),
    ]
    for args, message in cases:
        r = run_dlmsim(*args)
        assert r.returncode == 1, (args, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, r.stderr)


def test_usage_error_is_exit_2(run_dlmsim):
    assert run_dlmsim("simulate", "--arch").returncode == 2


def test_calibrated_figures_beside_raw(tmp_path):
    """A calibration section with cycles x1.18 and a synthesised clock of 231 MHz (design
    250 MHz) gives calibrated time = raw x 1.18 x 250 / 231; raw figures stay as they were."""
    arch = tmp_path / "cal.yaml"
    arch.write_text((bundled_dir("arch") / "int8-zcu102.yaml").read_text()
                    + "calibration: {cycles: 1.18, clock_mhz: 231, dsp: 1.05}\n")
    raw = CliRunner().invoke(app, ["simulate", "-a", "int8-zcu102", *TINY, "-f", "json"])
    cal = CliRunner().invoke(app, ["simulate", "-a", str(arch), *TINY, "-f", "json"])
    raw, cal = json.loads(raw.output), json.loads(cal.output)
    assert cal["latency_run_s"] == raw["latency_run_s"]
    assert cal["latency_run_calibrated_s"] == pytest.approx(raw["latency_run_s"] * 1.18 * 250 / 231)
    assert cal["dsp_used_calibrated"] == pytest.approx(raw["dsp_used"] * 1.05)
    table = CliRunner().invoke(app, ["simulate", "-a", str(arch), *TINY])
    assert "calibrated (x1.18 cycles, 231 MHz)" in table.output
