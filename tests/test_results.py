"""SimResult: a result is a sane figure or not a result at all."""

from __future__ import annotations

import pytest

import dlmsim
from dlmsim.workloads.tracefile import trace_from_data

GELU = {"version": 1, "trace": "gelu", "schedule": {"steps": 0, "forward_passes": 0},
        "inputs": [{"name": "x", "shape": [1, 16, 64]}],
        "ops": [{"name": "g", "kind": "sfu", "fn": "gelu",
                 "inputs": [{"name": "x", "shape": [1, 16, 64]}],
                 "outputs": [{"name": "y", "shape": [1, 16, 64]}]}]}


def test_a_run_that_does_nothing_is_no_result():
    """0 forward passes and 0 steps: zero seconds would print infinite tokens/s."""
    trace = trace_from_data(GELU, "gelu.yaml")
    with pytest.raises(dlmsim.InputError, match=r"gelu on int8-zcu102: the sampling run takes "
                       r"0 cycles \(0 forward passes, 0 steps\): nothing to simulate"):
        dlmsim.simulate(dlmsim.load_arch("int8-zcu102"), trace)
    one = trace_from_data({**GELU, "schedule": {"steps": 1, "forward_passes": 1}}, "g.yaml")
    res = dlmsim.simulate(dlmsim.load_arch("int8-zcu102"), one)
    assert res.total_cycles > 0 and 0 < res.tokens_per_s < float("inf")


def test_non_finite_figures_are_refused():
    """1e308 forward passes (possible from Python, not from a file) overflow the run's
    cycles to inf: refused, never printed as a latency."""
    from dataclasses import replace

    from dlmsim.workloads.ir import Schedule

    one = trace_from_data({**GELU, "schedule": {"steps": 1, "forward_passes": 1}}, "g.yaml")
    huge = replace(one, schedule=Schedule(1, 1e308))
    with pytest.raises(dlmsim.InputError, match="comes out as inf"):
        dlmsim.simulate(dlmsim.load_arch("int8-zcu102"), huge)
