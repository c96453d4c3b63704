"""SFU cost per function and precision (dlmsim.sfu), by hand."""

from __future__ import annotations

import pytest

import dlmsim
from dlmsim.sfu import PROGRAMS, cost, latency
from dlmsim.workloads.ir import Op, Tensor
from dlmsim.workloads.vocab import SFU_FNS

X = Tensor("x", (4, 64))
Y = Tensor("y", (4, 64))
SOFTMAX = Op("sm", "sfu", "softmax", (X,), (Tensor("p", (4, 64)),))
RESIDUAL = Op("res", "sfu", "residual", (X, Y), (Tensor("r", (4, 64)),))
GUMBEL = Op("g", "sfu", "gumbel_argmax", (X,), (Tensor("i", (4,), "idx", "index"),))


def _arch(bits="fp32", clock=300, **sets):
    base = {"sfu.lanes": 1, "sfu.elems_per_lane": 1, "sfu.pipeline_depth_cycles": 0,
            "sfu.bits": bits, "clock_mhz": clock, "buffer.bytes_per_cycle": 1024}
    return dlmsim.load_arch("int8-zcu102", **{**base, **sets})


def test_every_function_has_a_program():
    assert set(PROGRAMS) == set(SFU_FNS)


def test_fp32_softmax_reductions_run_at_the_adder_latency():
    """4 rows of 64, one lane of one element, fp32 at 300 MHz (fadd 4, fcmp 1, fexp 9,
    fmul 3, fdiv 15 cycles). Passes: max (II = fcmp 1): 4 x 64 = 256; exp(x - max) summed
    (II = fadd 4): 4 x 64 x 4 = 1024; x / sum (II 1): 256. Depth: fdiv (per-row scalar) 15
    + pass 1 (cmp 1) + pass 2 (add 4, exp 9, reduce add 4) + pass 3 (mul 3) = 36.
    Total 1536 + 36 = 1572; the roofline (every pass at II 1) 768."""
    c = cost(SOFTMAX, _arch(), 1.0)
    assert c.cycles == 1572 and c.ideal_cycles == 768


def test_fixed_point_softmax_reaches_ii_1():
    """Same in 16-bit fixed point: every pass at II 1 (add and compare in one cycle):
    3 x 256 = 768, depth div 3 + cmp 1 + (add 1, exp 3, add 1) + mul 2 = 11 -> 779."""
    assert cost(SOFTMAX, _arch(bits=16), 1.0).cycles == 779


def test_partial_sums_and_clock_set_the_ii():
    """Four interleaved partial sums hide the fadd latency: pass 2 at II ceil(4/4) = 1,
    1572 - 768 = 804. At 150 MHz every latency halves (rounded up, at least 1): fadd 2,
    fcmp 1, fexp 5, fmul 2, fdiv 8: pass 2 at II 2 -> 256 + 512 + 256 = 1024, depth 8 + 1
    + (2 + 5 + 2) + 2 = 20 -> 1044."""
    assert cost(SOFTMAX, _arch(**{"sfu.partial_sums": 4}), 1.0).cycles == 804
    assert latency("add", "fp32", 150) == 2 and latency("div", "fp32", 150) == 8
    assert cost(SOFTMAX, _arch(clock=150), 1.0).cycles == 1044


def test_residual_reads_two_operands_through_the_port():
    """x + y, 256 elements of 1 B: one pass reading x and y and writing r, 3 B per element.
    Fixed point, depth mul 2 + add 1 = 3. A 1024 B/cycle port: lane-bound, 256 + 3 = 259.
    A 2 B/cycle port: 256 x 3 / 2 = 384 cycles, the port binds: 387."""
    wide = cost(RESIDUAL, _arch(bits=16), 1.0)
    narrow = cost(RESIDUAL, _arch(bits=16, **{"buffer.bytes_per_cycle": 2}), 1.0)
    assert (wide.cycles, wide.port_bound) == (259, False)
    assert (narrow.cycles, narrow.port_bound) == (387, True)


def test_gumbel_max_is_one_pass_with_a_running_max():
    """argmax of p / -log(u): one pass, II = fcmp 1: 256 cycles; depth log 9 + log 9 +
    div 15 + cmp 1 = 34 -> 290 (two passes would be 512 + depth)."""
    assert len(PROGRAMS["gumbel_argmax"]) == 1
    assert cost(GUMBEL, _arch(), 1.0).cycles == 290


def test_passes_override_and_layout_functions():
    """An arch's sfu.passes replaces the program: 2 passes x 256 / 1 = 512 (+ depth 0);
    head split/merge have no pass."""
    arch = _arch(**{"sfu.passes": {"softmax": 2}})
    assert cost(SOFTMAX, arch, 1.0).cycles == 512
    split = Op("s", "sfu", "split_heads", (X,), (Tensor("h", (4, 2, 32)),))
    assert cost(split, _arch(), 1.0).cycles == 0


def test_unknown_override_is_an_error():
    with pytest.raises(dlmsim.InputError, match="unknown SFU function"):
        _arch(**{"sfu.passes": {"softmaxx": 2}})
