"""dlmsim.hls_report and `dlmsim hls-report` against real and synthetic HLS reports.

Fixtures live in tests/fixtures/hls/ (README.md there: origin, licence, what each exercises).
Expected values were read by hand from the files; each is annotated with the tag or table
row it comes from (XML line numbers where it helps).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dlmsim.cli import app
from dlmsim.errors import InputError
from dlmsim.hls_report import LoopRow, _span, parse_report

FIX = Path(__file__).parent / "fixtures" / "hls"
HLS4ML_2020 = "hls4ml_vivadohls2020.1_xc7z020_myproject_csynth"
HLS4ML_2018 = "hls4ml_vivadohls2018.2_xcku115_myproject_csynth"
KMEANS = FIX / "heterocl_vivadohls2019.1_kmeans_csynth.xml"
DIGITREC = FIX / "heterocl_vivadohls2019.1_digitrec_csynth.xml"
VITIS2022 = FIX / "synthetic_vitis2022.1_xcu250_gemm_csynth.xml"
UNDEF = FIX / "synthetic_vitis2020.2_xcvu9p_sampler_undef_csynth.xml"
SUMMARY = FIX / "synthetic_vitis2021.2_xcu280_gemm_summary_csynth.rpt"
SLR = FIX / "synthetic_vitis2020.1_xcu250_attn_slr_csynth.rpt"
DLMSIM = [sys.executable, "-m", "dlmsim"]  # the CLI of the running interpreter


def fields(r, *names):
    return {n: getattr(r, n) for n in names}


HEAD = ("top", "tool", "version", "part", "clock_target_ns", "clock_estimated_ns",
        "clock_uncertainty_ns", "latency_best_cycles", "latency_average_cycles",
        "latency_worst_cycles", "interval_min_cycles", "interval_max_cycles", "pipeline_type")


# ---- real reports ---------------------------------------------------------------------------

def test_hls4ml_2020_xml():
    r = parse_report(FIX / f"{HLS4ML_2020}.xml")
    assert fields(r, *HEAD) == {
        "top": "myproject",  # <TopModelName>, line 11
        "tool": "vivado_hls",  # <Version>2020.1 (line 4) with a <DSP48E> tag (line 39)
        "version": "2020.1",
        "part": "xc7z020-clg400-1",  # <Part>, line 10
        "clock_target_ns": 5.0,  # <TargetClockPeriod>5.00, line 12
        "clock_estimated_ns": 4.049,  # <EstimatedClockPeriod>, line 20
        "clock_uncertainty_ns": 0.62,  # <ClockUncertainty>, line 13
        "latency_best_cycles": 10, "latency_average_cycles": 10,  # lines 24-26
        "latency_worst_cycles": 10,
        "interval_min_cycles": 8, "interval_max_cycles": 8,  # <Interval-min/max>, lines 31-32
        "pipeline_type": "dataflow",  # <PipelineType>, line 17
    }
    assert r.loops == ()  # no <SummaryOfLoopLatency>
    # <Resources> lines 37-43 and <AvailableResources> lines 44-50; DSP48E -> DSP
    assert r.resources == {"BRAM18": 0, "DSP": 73, "FF": 7969, "LUT": 2532, "URAM": 0}
    assert r.available == {"BRAM18": 280, "DSP": 220, "FF": 106400, "LUT": 53200, "URAM": 0}
    assert r.report_format == "xml"
    assert r.estimated_mhz == pytest.approx(1e3 / 4.049)
    assert r.utilisation == pytest.approx({"BRAM18": 0.0, "DSP": 73 / 220, "FF": 7969 / 106400,
                                           "LUT": 2532 / 53200})  # URAM: 0 available, left out
    assert r.cycles_to_s(10) == pytest.approx(10 * 4.049e-9)


def test_hls4ml_2020_rpt():
    r = parse_report(FIX / f"{HLS4ML_2020}.rpt")
    assert fields(r, *HEAD) == {
        "top": "myproject",  # "== Vivado HLS Report for 'myproject'"
        "tool": "vivado_hls", "version": "2020.1",  # "* Version:        2020.1 (Build ...)"
        "part": "xc7z020-clg400-1",  # "* Target device:"
        # Timing row "|ap_clk  | 5.00 ns | 4.049 ns |   0.62 ns  |"
        "clock_target_ns": 5.0, "clock_estimated_ns": 4.049, "clock_uncertainty_ns": 0.62,
        # Latency row "|       10|       10| 50.000 ns | 50.000 ns |    8|    8| dataflow |"
        "latency_best_cycles": 10, "latency_average_cycles": None, "latency_worst_cycles": 10,
        "interval_min_cycles": 8, "interval_max_cycles": 8, "pipeline_type": "dataflow",
    }
    assert r.loops == ()  # "* Loop: N/A"
    # Utilization "Total" and "Available" rows (the Instance/FIFO rows above are parts)
    assert r.resources == {"BRAM18": 0, "DSP": 73, "FF": 7969, "LUT": 2532, "URAM": 0}
    assert r.available == {"BRAM18": 280, "DSP": 220, "FF": 106400, "LUT": 53200, "URAM": 0}
    assert r.available_slr == {}
    assert r.report_format == "rpt"


def test_hls4ml_2018_xml_function_pipeline_no_uram():
    r = parse_report(FIX / f"{HLS4ML_2018}.xml")
    assert fields(r, *HEAD) == {
        "top": "myproject", "tool": "vivado_hls", "version": "2018.2",  # lines 11, 4
        "part": "xcku115-flva1517-2-e",  # line 10
        "clock_target_ns": 5.0, "clock_estimated_ns": 4.168,  # lines 12, 21
        "clock_uncertainty_ns": 0.62,  # line 13
        "latency_best_cycles": 14, "latency_average_cycles": 14,  # lines 25-27
        "latency_worst_cycles": 14,
        "interval_min_cycles": 1, "interval_max_cycles": 1,  # lines 30-31
        "pipeline_type": "function",  # line 18
    }
    # lines 36-47: no <URAM> tag at all, so no URAM key (not a made-up 0)
    assert r.resources == {"BRAM18": 18, "DSP": 792, "FF": 43219, "LUT": 21809}
    assert r.available == {"BRAM18": 4320, "DSP": 5520, "FF": 1326720, "LUT": 663360}
    assert "URAM" not in r.utilisation


def test_hls4ml_2018_rpt_available_slr():
    r = parse_report(FIX / f"{HLS4ML_2018}.rpt")
    # Timing "|ap_clk  |   5.00|     4.168|        0.62|" (no "ns" in the cells in 2018.2)
    assert (r.clock_target_ns, r.clock_estimated_ns, r.clock_uncertainty_ns) == (5.0, 4.168, 0.62)
    # Latency "|   14|   14|    1|    1| function |"
    assert (r.latency_best_cycles, r.latency_worst_cycles) == (14, 14)
    assert (r.interval_min_cycles, r.interval_max_cycles, r.pipeline_type) == (1, 1, "function")
    assert r.resources == {"BRAM18": 18, "DSP": 792, "FF": 43219, "LUT": 21809}  # "Total"
    # "Available" is the device; "Available SLR" one of its SLRs, kept apart
    assert r.available == {"BRAM18": 4320, "DSP": 5520, "FF": 1326720, "LUT": 663360}
    assert r.available_slr == {"BRAM18": 2160, "DSP": 2760, "FF": 663360, "LUT": 331680}
    assert r.utilisation["DSP"] == pytest.approx(792 / 5520)


def test_heterocl_kmeans_nested_loops():
    r = parse_report(KMEANS)
    assert fields(r, *HEAD) == {
        "top": "test", "tool": "vivado_hls", "version": "2019.1.3",  # lines 14, 7
        "part": "xcu280-fsvh2892-2L-e",  # line 13
        "clock_target_ns": 3.33, "clock_estimated_ns": 2.433,  # lines 15, 24
        "clock_uncertainty_ns": 0.90,  # line 16
        "latency_best_cycles": 9192682, "latency_average_cycles": 9192682,  # lines 28-30
        "latency_worst_cycles": 9192682,
        "interval_min_cycles": 9192683, "interval_max_cycles": 9192683,  # lines 34-35
        "pipeline_type": "none",  # line 21
    }
    assert r.resources == {"BRAM18": 122, "DSP": 0, "FF": 305902, "LUT": 170965, "URAM": 0}
    assert r.available == {"BRAM18": 4032, "DSP": 9024, "FF": 2607360, "LUT": 1303680,
                           "URAM": 960}  # lines 97-110, <DSP> tag already in 2019.1.3
    assert r.loops == (
        LoopRow("means_burst_r0_means_burst_r1", "means_burst_r0_means_burst_r1",
                514, 514, 3, 1, 512, True),  # lines 38-44
        LoopRow("points_burst_r0_points_burst_r1", "points_burst_r0_points_burst_r1",
                10241, 10241, 3, 1, 10240, True),  # lines 45-51
        # lines 52-56: <IterationLatency>, no <PipelineII>: not pipelined; its own
        # <TripCount>/<Latency>/<AbsoluteTimeLatency> sit beside the sub-loops
        LoopRow("main_loop__1", "main_loop__1", 9181200, 9181200, 45906, None, 200, False),
        LoopRow("n", "main_loop__1/n", 45440, 45440, 143, 142, 320, True),  # lines 57-63
        LoopRow("sum_k_x5", "main_loop__1/sum_k_x5", 16, 16, 1, 1, 16, True),  # lines 64-70
        LoopRow("calc_sum_n1", "main_loop__1/calc_sum_n1", 322, 322, 3, 1, 320, True),
        LoopRow("update_mean_k", "main_loop__1/update_mean_k", 50, 50, 36, 1, 16, True),
        LoopRow("means_burst_s0_means_burst_s1", "means_burst_s0_means_burst_s1",
                513, 513, 3, 1, 512, True),  # lines 86-92
    )


def test_heterocl_digitrec():
    r = parse_report(DIGITREC)
    assert (r.clock_estimated_ns, r.latency_worst_cycles, r.interval_max_cycles) == \
        (2.744, 20080, 20081)  # lines 24, 30, 35
    # lines 70-76: <DSP> after <LUT>; tag order does not matter
    assert r.resources == {"BRAM18": 32, "FF": 7559, "LUT": 34172, "DSP": 0, "URAM": 0}
    assert [(lp.path, lp.latency_max_cycles, lp.trip_count) for lp in r.loops] == [
        ("train_images_burst_r0_train_images_burst_r1", 18002, 18000),  # lines 38-44
        ("knn_mat_burst_r0_knn_mat_burst_r1", 30, 30),  # lines 45-51
        ("knn_update_y1", 1803, 1800),  # lines 52-58
        ("knn_mat_burst_s0_knn_mat_burst_s1", 31, 30),  # lines 59-65
    ]


# ---- synthetic reports: one per variation in SOURCES.md ------------------------------------

def test_vitis2022_dsp_tag_range_latency_best_ne_worst_average_undef():
    r = parse_report(VITIS2022)
    assert fields(r, *HEAD) == {
        "top": "gemm_kernel", "tool": "vitis_hls", "version": "2022.1",
        "part": "xcu250-figd2104-2L-e", "clock_target_ns": 3.33,  # lines 13, 15
        "clock_estimated_ns": 2.433, "clock_uncertainty_ns": 0.90,  # lines 23, 16
        "latency_best_cycles": 2072,  # line 27
        "latency_average_cycles": None,  # line 28: undef while best/worst are numbers
        "latency_worst_cycles": 269060,  # line 29
        "interval_min_cycles": 2073, "interval_max_cycles": 269061,  # lines 33-34
        "pipeline_type": "no",  # line 20
    }
    # <DSP> tag (line 112) read as DSP; URAM present (line 115)
    assert r.resources == {"BRAM18": 64, "DSP": 160, "FF": 23412, "LUT": 31876, "URAM": 8}
    assert r.available == {"BRAM18": 5376, "DSP": 12288, "FF": 3456000, "LUT": 1728000,
                           "URAM": 1280}
    assert r.loops == (
        LoopRow("load_A", "load_A", 1025, 1025, 3, 1, 1024, True),
        # <Latency><range><min>20</min><max>267008</max>, <IterationLatency> range max 1043,
        # <TripCount> range max 256
        LoopRow("row_loop", "row_loop", 20, 267008, 1043, None, 256, False),
        LoopRow("col_loop", "row_loop/col_loop", 4, 1027, 4, 1, 1024, True),
        LoopRow("store_C", "store_C", 1025, 1025, 3, 1, 1024, True),
    )


def test_vitis2022_extra_sections_ignored():
    """ModuleInformation repeats PerformanceEstimates/AreaEstimates per module with decoy
    numbers (1.111 ns, 999 DSP, trip count 999); none may leak into the top's report."""
    r = parse_report(VITIS2022)
    assert r.clock_estimated_ns == 2.433
    assert 999 not in r.resources.values()
    assert all(lp.trip_count != 999 for lp in r.loops)
    assert len(r.loops) == 4


def test_undef_everywhere():
    r = parse_report(UNDEF)
    # lines 27-34: every overall latency and interval is undef
    assert (r.latency_best_cycles, r.latency_average_cycles, r.latency_worst_cycles,
            r.interval_min_cycles, r.interval_max_cycles) == (None,) * 5
    assert r.cycles_to_s(r.latency_worst_cycles) is None
    assert r.loops == (
        LoopRow("scan_loop", "scan_loop", None, None, 6, 2, None, True),  # all undef but II
        # range with <max>undef</max>: min kept, max None; TripCount max undef -> None
        LoopRow("topk_loop", "topk_loop", 24, None, 3, None, None, False),
    )
    # <Resources> has no <URAM> although <AvailableResources> does
    assert "URAM" not in r.resources and r.available["URAM"] == 960
    assert r.utilisation["URAM"] == 0.0


def test_missing_average_and_realtime_fields(tmp_path):
    text = (FIX / f"{HLS4ML_2020}.xml").read_text()
    lines = [ln for ln in text.splitlines() if "Average" not in ln and "RealTime" not in ln]
    f = tmp_path / "csynth.xml"
    f.write_text("\n".join(lines))
    r = parse_report(f)
    assert r.latency_average_cycles is None
    assert (r.latency_best_cycles, r.latency_worst_cycles) == (10, 10)


def test_summary_rpt_tree_with_percent_cells():
    r = parse_report(SUMMARY)
    assert fields(r, *HEAD) == {
        "top": "gemm_kernel",  # "== Synthesis Summary Report of 'gemm_kernel'"
        "tool": "vitis_hls", "version": "2021.2", "part": "xcu280-fsvh2892-2L-e",
        # the summary tree carries no clock
        "clock_target_ns": None, "clock_estimated_ns": None, "clock_uncertainty_ns": None,
        # row "|+ gemm_kernel ... |     4262|  1.419e+04|         -|     4263| ..."
        "latency_best_cycles": 4262, "latency_average_cycles": None,
        "latency_worst_cycles": 4262, "interval_min_cycles": 4263, "interval_max_cycles": 4263,
        "pipeline_type": "no",
    }
    assert r.report_format == "rpt-summary"
    # "64 (1%)", "160 (1%)", "23412 (~0%)", "31876 (2%)", "-" -> counts; no device totals
    assert r.resources == {"BRAM18": 64, "DSP": 160, "FF": 23412, "LUT": 31876, "URAM": 0}
    assert r.available == {} and r.utilisation == {}
    assert r.loops == (
        LoopRow("load_A", "load_A", 1025, 1025, 3, 1, 1024, True),
        LoopRow("row_loop", "row_loop", 2208, 2208, 69, None, 32, False),
        LoopRow("col_loop", "row_loop/col_loop", 67, 67, 5, 2, 32, True),
        LoopRow("store_C", "gemm_kernel_Pipeline_store_C/store_C", 1025, 1025, 3, 1, 1024, True),
    )


def test_slr_rpt():
    r = parse_report(SLR)
    assert fields(r, *HEAD) == {
        "top": "attn_kernel", "tool": "vitis_hls",  # "== Vitis HLS Report for 'attn_kernel'"
        "version": "2020.1", "part": "xcu250-figd2104-2L-e",
        "clock_target_ns": 3.33, "clock_estimated_ns": 2.92, "clock_uncertainty_ns": 0.90,
        # Latency row "|     1090|        ?|  3.630 us |          ?|  1091|    ?|     none|"
        "latency_best_cycles": 1090, "latency_average_cycles": None,
        "latency_worst_cycles": None, "interval_min_cycles": 1091, "interval_max_cycles": None,
        "pipeline_type": "none",
    }
    assert r.resources == {"BRAM18": 18, "DSP": 48, "FF": 7408, "LUT": 9976, "URAM": 4}
    assert r.available == {"BRAM18": 5376, "DSP": 12288, "FF": 3456000, "LUT": 1728000,
                           "URAM": 1280}
    assert r.available_slr == {"BRAM18": 1344, "DSP": 3072, "FF": 864000, "LUT": 432000,
                               "URAM": 320}
    assert r.loops == (
        LoopRow("load_q", "load_q", 1025, 1025, 3, 1, 1024, True),
        # "|       64|        ?|   2 ~ 1026|          -|          -|     32 ~ ?|    no    |"
        LoopRow("score_loop", "score_loop", 64, None, 1026, None, None, False),
        LoopRow("dot_loop", "score_loop/dot_loop", 1, 1024, 4, 1, 1024, True),  # "| + dot_loop"
        LoopRow("softmax", "softmax", None, None, 12, 4, None, True),
    )


@pytest.mark.parametrize("cell, expected", [
    ("12", (12, 12)), ("  1 ~ 1024 ", (1, 1024)), ("32 ~ ?", (32, None)),
    ("64 (2%)", (64, 64)), ("23412 (~0%)", (23412, 23412)),
    ("undef", (None, None)), ("?", (None, None)), ("-", (None, None)), ("~0", (None, None)),
    ("", (None, None)), (None, (None, None)),
    ("²", (None, None)), ("١٢", (None, None)), ("12²", (None, None)),  # ASCII digits only
    ("9" * 18, (10**18 - 1, 10**18 - 1)),
])
def test_span_cells(cell, expected):
    assert _span(cell) == expected


# ---- directories ---------------------------------------------------------------------------

def _report_dir(tmp_path: Path) -> Path:
    d = tmp_path / "proj" / "solution1" / "syn" / "report"
    d.mkdir(parents=True)
    return d


def test_directory_prefers_xml(tmp_path):
    d = _report_dir(tmp_path)
    shutil.copy(FIX / f"{HLS4ML_2020}.rpt", d / "myproject_csynth.rpt")
    shutil.copy(FIX / f"{HLS4ML_2020}.xml", d / "myproject_csynth.xml")
    assert parse_report(tmp_path / "proj").report_format == "xml"


def test_directory_falls_back_to_rpt(tmp_path):
    d = _report_dir(tmp_path)
    shutil.copy(SUMMARY, d / "csynth.rpt")
    r = parse_report(tmp_path)
    assert (r.report_format, r.top) == ("rpt-summary", "gemm_kernel")


def test_directory_whole_design_csynth_xml_wins(tmp_path):
    d = _report_dir(tmp_path)
    shutil.copy(VITIS2022, d / "csynth.xml")
    shutil.copy(FIX / f"{HLS4ML_2018}.xml", d / "submodule_csynth.xml")
    assert parse_report(d).top == "gemm_kernel"


def test_directory_per_module_reports_use_project_top(tmp_path):
    d = _report_dir(tmp_path)
    shutil.copy(FIX / f"{HLS4ML_2018}.xml", d / "myproject_csynth.xml")
    shutil.copy(KMEANS, d / "kmeans_csynth.xml")
    with pytest.raises(InputError, match="per-module"):
        parse_report(tmp_path / "proj")
    (tmp_path / "proj" / "vivado_hls.app").write_text(
        '<project xmlns="com.autoesl.autopilot.project" name="proj" top="myproject">'
        "</project>")
    assert parse_report(tmp_path / "proj").top == "myproject"


# ---- bad input -----------------------------------------------------------------------------

@pytest.mark.parametrize("name, content, match", [
    ("nope.xml", None, "not found"),
    ("empty_dir", "DIR", "no csynth.xml"),
    ("other.xml", "<project><top>x</top></project>", "not an HLS csynth report"),
    ("broken.xml", "<profile><UserAssignments>", "not well-formed XML"),
    ("notop.xml", "<profile><UserAssignments/><PerformanceEstimates/></profile>",
     "no <TopModelName>"),
    ("notes.rpt", "hello\nthis is not a report\n", "not an HLS synthesis report"),
    ("headless.rpt", "== Vivado HLS Report for 'x'\nnothing else\n", "no Timing"),
    ("summary.rpt", "== Synthesis Summary Report of 'k'\n", "no row for the top module"),
])
def test_bad_input_is_one_line_input_error(tmp_path, name, content, match):
    p = tmp_path / name
    if content == "DIR":
        p.mkdir()
    elif content is not None:
        p.write_text(content)
    with pytest.raises(InputError, match=match) as e:
        parse_report(p)
    assert "\n" not in str(e.value)


# ---- CLI -----------------------------------------------------------------------------------

runner = CliRunner()


def test_cli_table():
    res = runner.invoke(app, ["hls-report", str(VITIS2022)])
    assert res.exit_code == 0, res.output
    out = res.output
    assert "2.433 ns (411.0 MHz)" in out  # clock with ns and MHz
    assert "269060 cycles (655 us)" in out  # 269060 x 2.433 ns = 654.6 us
    assert "row_loop/col_loop" in out and "267008" in out
    assert "160 DSP slices" in out and "12288 DSP slices" in out and "1.3 %" in out


def test_cli_table_without_clock_or_loops():
    res = runner.invoke(app, ["hls-report", str(SUMMARY)])
    assert res.exit_code == 0, res.output
    assert "4262 cycles (no clock in report)" in res.output
    res = runner.invoke(app, ["hls-report", str(FIX / f"{HLS4ML_2018}.xml")])
    assert res.exit_code == 0 and "loops" not in res.output


def test_cli_json():
    res = runner.invoke(app, ["hls-report", str(KMEANS), "--format", "json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["latency_worst_cycles"] == 9192682 and d["resources"]["FF"] == 305902
    assert d["loops"][3] == {"name": "n", "path": "main_loop__1/n", "latency_min_cycles": 45440,
                             "latency_max_cycles": 45440, "iteration_latency_cycles": 143,
                             "ii": 142, "trip_count": 320, "pipelined": True}
    assert d["estimated_mhz"] == pytest.approx(1e3 / 2.433)


def test_cli_bad_input_exit_1(tmp_path):
    bad = tmp_path / "other.xml"
    bad.write_text("<project/>")
    res = runner.invoke(app, ["hls-report", str(bad)])
    assert res.exit_code == 1
    assert res.output.strip().startswith("error:") and len(res.output.strip().splitlines()) == 1


def test_cli_subprocess_missing_file(tmp_path):
    missing = tmp_path / "nope" / "csynth.xml"
    proc = subprocess.run([*DLMSIM, "hls-report", str(missing)], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path, check=False)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [f"error: HLS report not found: {missing}"]


def _mutated(tmp_path: Path, old: str, new: str) -> Path:
    text = KMEANS.read_text()
    assert old in text
    p = tmp_path / "m.xml"
    p.write_text(text.replace(old, new, 1))
    return p


@pytest.mark.parametrize("old, new, match", [
    ("<TargetClockPeriod>3.33<", "<TargetClockPeriod>0<", "clock target 0 ns is not a clock"),
    ("<EstimatedClockPeriod>2.433<", "<EstimatedClockPeriod>0.000<", "clock estimated 0 ns"),
    ("<Best-caseLatency>9192682<", "<Best-caseLatency>" + "9" * 5000 + "<",
     r"a count of 5000 digits \(999999999999...\) is no synthesis result"),
    ("<TargetClockPeriod>3.33<", "<TargetClockPeriod>" + "9" * 400 + "<",
     "a time of 400 digits is no clock period"),
    ("<SummaryOfLoopLatency>", "<SummaryOfLoopLatency>" + "".join(
        f"<L{i}><Latency>1</Latency>" for i in range(3000)) + "".join(
        f"</L{i}>" for i in reversed(range(3000))), "loops nested deeper than 64 levels"),
])
def test_numbers_no_report_holds(tmp_path, old, new, match):
    """Were a ValueError (int() of 5000 digits), inf, a ZeroDivisionError in the table, a
    RecursionError; now one line naming the file."""
    p = _mutated(tmp_path, old, new)
    with pytest.raises(InputError, match=f"^{p}: {match}"):
        parse_report(p)


def test_non_ascii_digits_are_undef(tmp_path):
    p = _mutated(tmp_path, "<Best-caseLatency>9192682<", "<Best-caseLatency>²<")
    assert parse_report(p).latency_best_cycles is None
    r = runner.invoke(app, ["hls-report", str(p)])
    assert r.exit_code == 0 and "undef" in r.output
