"""Mapping: operand passes, weight panels, DRAM traffic and on-chip hand-off, by hand."""

from __future__ import annotations

import math

import pytest

import dlmsim
from dlmsim.cost.systolic import gemm_cycles
from dlmsim.mapping import Mapper, operand_passes
from dlmsim.workloads.ir import Op, Tensor


def _arch(**sets):
    base = {"array.rows": 4, "array.cols": 4, "bits.weights": 8, "bits.activations": 8,
            "buffer.kib": 64, "buffer.resident_fraction": 0.5, "array.policy": "os"}
    return dlmsim.load_arch("int8-zcu102", **{**base, **sets})


A = Tensor("a", (64, 256), "bf16")
W = Tensor("w", (256, 512), "bf16", "weight")
LINEAR = Op("fc", "gemm", "linear", (A, W), (Tensor("y", (64, 512)),))


def test_operand_passes():
    """A W4 array multiplies two A8 activations in ceil(8/4) = 2 passes; weights: 1."""
    q = Tensor("q", (2, 8, 4))
    k = Tensor("k", (2, 8, 4))
    scores = Op("s", "gemm", "matmul", (q, k), (Tensor("s", (2, 8, 8)),),
                attrs=(("transpose_b", True),))
    w4 = dlmsim.load_arch("sda-w4a8-zcu102")
    assert operand_passes(scores, w4) == 2
    assert operand_passes(LINEAR, w4) == 1
    assert operand_passes(scores, _arch()) == 1


def test_linear_traffic_with_weight_panels():
    """4x4 int8 array, 64 KiB buffer, half resident -> 32768 B tile pool.
    A [64, 256] comes from DRAM (a graph input). Panel room: 32768 - 2 x 4 x 256 (activation
    rows, double-buffered) - 4 x 4 (output block) = 30704 B; a K=256 column of weights is
    256 B -> 119 columns fit, rounded down to the array's 4 -> 116 -> ceil(512/116) = 5
    panels. DRAM reads = A x 5 + W = 16384 x 5 + 131072 = 212992 B; the output (64 x 512 B)
    is not used later in the segment, so it is written: 32768 B."""
    plan = Mapper(_arch()).plan([LINEAR])[0]
    assert plan.weight_panels == 5
    assert plan.dram_read_bytes == 212992
    assert plan.dram_write_bytes == 32768
    assert plan.full_dependency  # several panels: rows complete at the last panel
    assert plan.compute_cycles == gemm_cycles("os", 64, 256, 512, 4, 4)
    bw = Mapper(_arch()).bw
    assert plan.roofline_cycles == max(64 * 256 * 512 / 16, (212992 + 32768) / bw)


def test_hand_off_keeps_activation_on_chip():
    """layernorm -> linear with a single weight panel: the normalised rows go straight from
    the SFU to the array (the linear is the next op and the only consumer), no DRAM."""
    x = Tensor("x", (64, 64))
    h = Tensor("h", (64, 64))
    w = Tensor("w2", (64, 16), role="weight")
    norm = Op("norm", "sfu", "layernorm", (x,), (h,))
    fc = Op("fc2", "gemm", "linear", (h, w), (Tensor("out", (64, 16)),))
    # A buffer so small that h (4 KiB) is not resident: only the hand-off keeps it on chip.
    # Tile pool 2048 B: panel room 2048 - 2 x 4 x 64 - 16 = 1520 B = 23 columns of K=64
    # >= N=16, so a single weight panel.
    arch = _arch(**{"buffer.kib": 4, "buffer.resident_fraction": 0.5})
    plans = Mapper(arch).plan([norm, fc])
    assert plans[0].output_on_chip and plans[0].dram_write_bytes == 0
    assert plans[1].on_chip_inputs == ("h",)
    assert plans[1].weight_panels == 1
    assert plans[1].dram_read_bytes == 64 * 16  # the weights only


def test_ws_partial_sums_limited_by_buffer_port():
    """WS on 4x4: K = 256 -> 64 K-folds, 63 partial-sum round trips per output of 4 B each
    way: 64 x 512 x 63 x 2 x 4 B = 16515072 B through a 1 B/cycle port -> 16515072 cycles,
    more than the array's own fold cycles."""
    arch = _arch(**{"array.policy": "ws", "buffer.bytes_per_cycle": 1})
    m = Mapper(arch)
    folds = gemm_cycles("ws", 64, 256, 512, 4, 4)
    psum = 64 * 512 * (math.ceil(256 / 4) - 1) * 2 * 4
    assert psum > folds
    assert m.array_cycles(LINEAR, "ws") == pytest.approx(psum)
