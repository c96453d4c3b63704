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
    r = CliRunner().invoke(app, ["simulate", "--arch", "sda-style-2048-zcu102", *TINY])
    assert r.exit_code == 0, r.output
    for text in ("latency per sampling run", " ms", "tokens/s", "MHz", "cyc", "DSP",
                 "time by bound", "stall each", "dependency: a producer not done"):
        assert text in r.output
    # The run's DRAM footprint against every memory of the board (issue 10's done-when).
    for text in ("off-chip memory on Xilinx ZCU102", "ps_ddr (used)", "pl_ddr", "4 GiB",
                 "of usable"):
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
    assert set(ops.stall_cause) <= {"none", "dram", "capacity", "port", "dependency"}
    assert (ops[[f"stall_{k}_cycles" for k in ("dram", "capacity", "port", "dependency")]]
            >= 0).all().all()
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
        (["simulate", "-a", "int8-zcu102", *TINY, "--set", "memory.port_bits=512"],
         "memory.port_bits 512 is wider than zcu102's ps_ddr allows (128 bits"),
        (["simulate", "-a", "sda-zcu102", "-w", "llada-8b"],
         "sda-zcu102 cannot run llada-8b: DRAM footprint 3.79 GiB (weights 3.73 GiB"),
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


def _one_line(r) -> str:
    """The single stderr line of a failed in-process run (CliRunner keeps stderr apart)."""
    assert r.exit_code == 1, (r.exit_code, r.output, r.exception)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


def test_unwritable_outputs_fail_before_the_simulation(tmp_path, monkeypatch):
    """-o and --timeline are checked first: a bad path never costs a simulation."""
    import dlmsim

    def no_simulation(*a, **k):
        raise AssertionError("simulated although the output cannot be written")

    monkeypatch.setattr(dlmsim, "simulate", no_simulation)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for args, message in [
        (["-o", str(blocker)], f"cannot write into {blocker}: it is a file, not a directory"),
        (["--output", str(blocker / "d")], f"{blocker} is a file, not a directory"),
        (["-o", "/proc/dlmsim-out"], "cannot write /proc/dlmsim-out"),
        (["--timeline", str(blocker / "t.png")], f"{blocker} is a file, not a directory"),
        (["--timeline", str(tmp_path / "t.txt")], "use one of .png, .pdf, .svg"),
    ]:
        r = CliRunner().invoke(app, ["simulate", "-a", "int8-zcu102", *TINY, *args])
        assert message in _one_line(r), args


def test_output_long_form_and_top_range(tmp_path):
    r = CliRunner().invoke(app, ["simulate", "-a", "int8-zcu102", *TINY, "--output",
                                 str(tmp_path / "o"), "-f", "json"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "o" / "summary.json").is_file()
    r = CliRunner().invoke(app, ["simulate", "-a", "int8-zcu102", *TINY, "--top", "-1"])
    assert r.exit_code == 2  # a usage error, not a dropped row


def test_run_parameter_given_twice(tmp_path):
    """--workload-set batch=2 is --batch 2 (it used to be a TypeError); both is an error."""
    a = CliRunner().invoke(app, ["simulate", "-a", "int8-zcu102", "-w", "mdlm-tiny", "-l", "32",
                                 "-t", "4", "--workload-set", "batch=2", "-f", "json"])
    b = CliRunner().invoke(app, ["simulate", "-a", "int8-zcu102", "-w", "mdlm-tiny", "-l", "32",
                                 "-t", "4", "-b", "2", "-f", "json"])
    assert a.exit_code == b.exit_code == 0, a.output
    assert json.loads(a.output) == json.loads(b.output)
    r = CliRunner().invoke(app, ["simulate", "-a", "int8-zcu102", *TINY, "--workload-set",
                                 "run.batch=2"])
    assert "--workload-set run.batch and --batch both set batch; give one" in _one_line(r)


def test_silent_nonsense_is_refused():
    """Inputs that used to give exit 0 with a wrong figure."""
    for args, message in [
        (["--set", "clock_mhz=true"], "clock_mhz: Input should be a valid number (got true)"),
        (["--set", "calibration.clock_mhz=-5"], ("calibration.clock_mhz: Input should be "
                                                 "greater than 0")),
        (["--set", "calibration.clock_mhz=.nan"], "--set calibration.clock_mhz: nan is not"),
        (["--set", "device=../devices/zcu102"], "is not a device name"),
        (["--workload-set", "model.hidden=1e100"], "1e+100 is too large"),
        (["--steps", str(10**20)], "--steps: 100000000000000000000 is too large"),
    ]:
        r = CliRunner().invoke(app, ["simulate", "-a", "int8-zcu102", *TINY, *args])
        assert message in _one_line(r), args


def test_version_and_flag_help():
    r = CliRunner().invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output.strip() == f"dlmsim {__import__('dlmsim').__version__}"
    h = CliRunner().invoke(app, ["simulate", "--help"], env={"COLUMNS": "120"})
    assert "<bool>" not in h.output and "--no-cache" in h.output and "KEY=VALUE" in h.output
