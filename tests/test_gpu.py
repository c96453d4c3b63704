"""GPU roofline baseline: per-op roofline by hand, the efficiency from a measured time,
bad input, and `simulate --baseline`."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import dlmsim
from dlmsim import gpu
from dlmsim.cli import app
from dlmsim.errors import InputError
from dlmsim.workloads import Op, Tensor

A100 = gpu.load_gpu("a100")
TINY = ["--workload", "mdlm-tiny", "--batch", "1", "--seq-len", "32", "--steps", "4"]


def _linear(m, k, n):
    return Op("x", "gemm", "linear", (Tensor("a", (m, k)), Tensor("w", (k, n), role="weight")),
              (Tensor("y", (m, n)),))


def test_op_roofline_by_hand():
    """A100 at bf16: 312 TFLOP/s, 2039 GB/s.
    [1024 x 512] x [512 x 256]: 2 x 1024 x 512 x 256 = 268,435,456 FLOPs -> 0.860 us;
    bytes (1024 x 512 + 512 x 256 + 1024 x 256) x 2 = 1,835,008 B -> 0.900 us: memory-bound.
    [8192 x 4096] x [4096 x 4096]: 2.749e11 FLOPs -> 881 us; 167,772,160 B -> 82.3 us:
    compute-bound."""
    assert gpu.op_seconds(_linear(1024, 512, 256), A100, "bf16") == pytest.approx(
        1_835_008 / 2039e9)
    assert gpu.op_seconds(_linear(8192, 4096, 4096), A100, "bf16") == pytest.approx(
        2 * 8192 * 4096 * 4096 / 312e12)
    # int8 halves the bytes and doubles the peak
    assert gpu.op_seconds(_linear(1024, 512, 256), A100, "int8") == pytest.approx(
        1_835_008 / 2 / 2039e9)


def test_run_is_the_sum_over_the_schedule_and_efficiency_scales_it():
    tr = dlmsim.load_workload("mdlm-tiny", batch=1, seq_len=32, steps=4)
    e = gpu.estimate(tr, A100)
    by_hand = sum(gpu.op_seconds(op, A100, "bf16") for op in tr.phase_ops("once")) \
        + tr.steps * sum(gpu.op_seconds(op, A100, "bf16") for op in tr.phase_ops("step")) \
        + sum(p * sum(gpu.op_seconds(op, A100, "bf16") for op in ops)
              for _, p, ops in tr.forward_variants())
    assert e.roofline_s == pytest.approx(by_hand)
    assert e.efficiency == gpu.DEFAULT_EFFICIENCY and e.precision == "bf16"
    assert e.seconds == pytest.approx(by_hand / 0.5)
    assert e.energy_j == pytest.approx(400 * e.seconds)
    assert e.tokens_per_j == pytest.approx(32 / e.energy_j)
    m = gpu.estimate(tr, A100, measured_s=3 * by_hand)
    assert m.efficiency == pytest.approx(1 / 3) and m.seconds == pytest.approx(3 * by_hand)


@pytest.mark.parametrize(("kw", "msg"), [
    ({"measured_s": 1e-12}, "is faster than the a100 roofline"),
    ({"measured_s": float("nan")}, "not a run time"),
    ({"measured_s": float("inf")}, "not a run time"),
    ({"efficiency": 1.5}, "--gpu-efficiency 1.5 must be in (0, 1]"),
    ({"efficiency": 0.0}, "must be in (0, 1]"),
    ({"efficiency": 0.5, "measured_s": 1.0}, "not both"),
    ({"precision": "fp8"}, "a100 has no fp8 rate"),
])
def test_bad_baseline_input(kw, msg):
    tr = dlmsim.load_workload("mdlm-tiny", batch=1, seq_len=32, steps=4)
    with pytest.raises(InputError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        gpu.estimate(tr, A100, **kw)


def test_every_gpu_loads_with_a_source():
    names = gpu.gpu_names()
    assert {"a100", "h100", "rtx4090", "jetson-orin"} <= set(names)
    for n in names:
        g = gpu.load_gpu(n)
        assert g.source and g.tdp_w > 0 and "bf16" in g.peak_tflops
    with pytest.raises(InputError, match="unknown GPU 'v100'; known: a100"):
        gpu.load_gpu("v100")


def test_simulate_baseline_prints_both_ratios_and_writes_them(tmp_path):
    r = CliRunner().invoke(app, ["simulate", "-a", "sda-zcu102", *TINY, "--baseline", "a100",
                                 "-o", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    for text in ("not a measurement", "GPU baseline: NVIDIA A100", "tokens per joule",
                 "energy efficiency:", "slower than the a100 estimate", "power at TDP", "tokens/J"):
        assert text in r.output, text
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert s["baseline_gpu"] == "a100"
    assert s["speed_vs_baseline"] == pytest.approx(
        s["baseline_latency_run_s"] / s["latency_run_s"])
    assert s["tokens_per_j_vs_baseline"] == pytest.approx(
        s["tokens_per_j"] / s["baseline_tokens_per_j"])
    m = CliRunner().invoke(app, ["simulate", "-a", "sda-zcu102", *TINY, "--baseline", "a100",
                                 "--gpu-measured-s", "10", "-f", "json"])
    assert json.loads(m.output)["baseline_latency_run_s"] == pytest.approx(10)


@pytest.mark.parametrize(("args", "msg"), [
    (["--gpu-efficiency", "0.3"], "error: --gpu-efficiency needs --baseline GPU"),
    (["--baseline", "v100"], "error: unknown GPU 'v100'; known: a100, h100, jetson-orin"),
    (["--baseline", "a100", "--gpu-measured-s", "0"], "error: --gpu-measured-s 0 s is faster"),
])
def test_simulate_baseline_bad_input_is_one_line(args, msg):
    r = CliRunner().invoke(app, ["simulate", "-a", "sda-zcu102", *TINY, *args])
    assert r.exit_code == 1
    assert r.output.strip().startswith(msg) and len(r.output.strip().splitlines()) == 1


def test_an_efficiency_near_zero_is_refused():
    tr = dlmsim.load_workload("mdlm-tiny", batch=1, seq_len=32, steps=4)
    with pytest.raises(InputError, match="beyond what floats hold"):
        gpu.estimate(tr, A100, efficiency=1e-310)
