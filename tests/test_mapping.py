"""Mapping: operand passes, weight panels, DRAM traffic and on-chip hand-off, by hand."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
    w4 = dlmsim.load_arch("sda-style-2048-zcu102")
    assert operand_passes(scores, w4) == 2
    assert operand_passes(LINEAR, w4) == 1
    assert operand_passes(scores, _arch()) == 1


def test_loop_order_takes_the_least_traffic():
    """4x4 int8 array, 64 KiB buffer, half resident -> 32768 B tile pool; A [64, 256] from
    DRAM (a graph input), W [256, 512].
    Weight panel: room 32768 - 2 x 4 x 256 (A rows, double-buffered) - 4 x 4 (output block)
    = 30704 B; a K=256 column of W is 256 B -> 119 columns, rounded down to the array's 4
    -> 116 -> ceil(512/116) = 5 panels: A x 5 + W = 16384 x 5 + 131072 = 212992 B.
    Output row: room 32768 - 2 x 256 x 4 (W panels) - 16 = 30704 B; a K=256 row of A is
    256 B -> 119 rows >= M = 64, one row block: A + W = 147456 B. The op is compute bound
    (524295 array cycles with full fold overlap vs 212992 B / 54.4 B per cycle), so the orders tie on time and
    the lesser traffic wins: output row. The output (64 x 512 B) is not used later in the
    segment, so it is written: 32768 B."""
    m = Mapper(_arch())
    fits = m.tilings(LINEAR)
    assert (fits["weight_panel"].a_reads, fits["weight_panel"].b_reads) == (5, 1)
    assert (fits["output_row"].a_reads, fits["output_row"].b_reads) == (1, 1)
    plan = m.plan([LINEAR])[0]
    assert plan.loop_order == "output_row"
    assert plan.dram_read_bytes == 147456
    assert plan.dram_write_bytes == 32768
    assert not plan.full_dependency  # row blocks complete in order
    assert plan.compute_cycles == gemm_cycles("os", 64, 256, 512, 4, 4, "full")
    assert plan.roofline_cycles == max(64 * 256 * 512 / 16, (147456 + 32768) / m.bw)


def test_forced_weight_panel_order():
    """buffer.loop_order: weight_panel keeps the 5-panel order of the test above: 212992 B
    read, and rows complete only at the last panel (a full dependency)."""
    plan = Mapper(_arch(**{"buffer.loop_order": "weight_panel"})).plan([LINEAR])[0]
    assert plan.loop_order == "weight_panel"
    assert plan.dram_read_bytes == 212992
    assert plan.full_dependency


def test_output_block_when_no_panel_fits():
    """4 KiB buffer -> 2048 B pool: a weight panel needs at least 256 x 4 + 2 x 4 x 256 + 16
    = 3088 B, an output row block 4 x 256 + 2 x 256 x 4 + 16 = 3088 B: neither fits. Both
    operands then stream in K chunks into one 4 x 4 output block (accumulators in the array):
    A is read ceil(512/4) = 128 times, W ceil(64/4) = 16 times:
    16384 x 128 + 131072 x 16 = 4194304 B, and no partial sums spill."""
    plan = Mapper(_arch(**{"buffer.kib": 4})).plan([LINEAR])[0]
    assert plan.loop_order == "output_block"
    assert plan.dram_read_bytes == 4194304
    assert plan.dram_write_bytes == 32768


@pytest.mark.parametrize("order", ["weight_panel", "auto"])
def test_multi_panel_producer_output_goes_to_dram(order):
    """Issue 10.1: a GEMM whose rows complete only at its last weight panel cannot hand its
    output to the next op on chip. 32 KiB buffer: resident share 16384 B < y (32768 B), so y
    is not resident. Forced weight panel: room 16384 - 2048 - 16 = 14320 B -> 55 columns ->
    52 -> 10 panels: no hand-off. Auto: output row, Mt = 52 rows (14320 // 256 = 55 -> 52),
    whose hand-off block 2 x 52 x 512 B = 53248 B exceeds the share: no hand-off either.
    Either way y is written (32768 B) and the softmax reads it back."""
    arch = _arch(**{"buffer.kib": 32, "buffer.loop_order": order})
    y = LINEAR.outputs[0]
    soft = Op("soft", "sfu", "softmax", (y,), (Tensor("p", y.shape),))
    fc, sm = Mapper(arch).plan([LINEAR, soft])
    assert not fc.output_on_chip and fc.dram_write_bytes == 32768
    assert sm.on_chip_inputs == () and sm.dram_read_bytes == 32768


def test_logits_of_sda_style_mdlm_small_go_to_dram():
    """Issue 10.1's case: MDLM-small (B16, L1024) on the SDA-style design; the logits of
    final.linear (16 x 1024 x 50258 at 8 bits = 785 MiB) cannot stay in a 1.5 MiB buffer."""
    arch = dlmsim.load_arch("sda-style-2048-zcu102")
    ops = list(dlmsim.load_workload("mdlm-small").phase_ops("forward"))
    plans = {p.op.name: p for p in Mapper(arch).plan(ops)}
    assert plans["final.linear"].dram_write_bytes == 16 * 1024 * 50258
    assert plans["blocks.0.qkv"].dram_write_bytes == 16 * 1024 * 2304


def test_fold_overlap_is_the_array_option():
    """The arch's array.fold_overlap picks the fold formula (default full, as SDA's array)."""
    for overlap in ("none", "drain", "full"):
        plan = Mapper(_arch(**{"array.fold_overlap": overlap})).plan([LINEAR])[0]
        assert plan.compute_cycles == gemm_cycles("os", 64, 256, 512, 4, 4, overlap)
    assert _arch().array.fold_overlap == "full"


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
    # >= N=16, so a single weight panel (A + W = 5120 B, against an output row block of
    # (2048 - 2 x 64 x 4 - 16) // 64 = 23 -> 20 rows, 4 row blocks: A + 4 W = 8192 B).
    # The hand-off reserves 2 x 4 rows x 64 B = 512 B of the 2048 B resident share.
    arch = _arch(**{"buffer.kib": 4, "buffer.resident_fraction": 0.5})
    m = Mapper(arch)
    plans = m.plan([norm, fc])
    assert plans[0].output_on_chip and plans[0].dram_write_bytes == 0
    assert plans[1].on_chip_inputs == ("h",)
    assert plans[1].loop_order == "weight_panel"
    assert plans[1].dram_read_bytes == 64 * 16  # the weights only
    (held,) = m.plan_segment([norm, fc])[1]
    assert held.handoff and held.bytes == 512


def _check_residency(arch, ops):
    """Every tensor the mapping keeps on chip fits what it reserves, and at no point do the
    reservations exceed the resident share."""
    m = Mapper(arch)
    plans, held = m.plan_segment(ops)
    live = [0.0] * (len(ops) + 1)
    for h in held:
        t = next(t for t in ops[h.producer].outputs if t.name == h.name)
        if h.handoff:
            assert h.last_use == h.producer + 1
            width = t.shape[-1]
            assert h.bytes >= 2 * width * m.ab  # at least two rows, double-buffered
        else:
            assert h.bytes == m.tensor_bytes(t) <= m.resident
        for j in range(h.producer, h.last_use + 1):
            live[j] += h.bytes
    assert max(live) <= m.resident * (1 + 1e-12)
    names = {(h.producer, h.name) for h in held}
    latest = {}
    for j, p in enumerate(plans):
        for name in p.on_chip_inputs:
            assert (latest[name], name) in names
        for t in p.op.outputs:
            latest[t.name] = j
            if m.tensor_bytes(t) > m.resident and (j, t.name) not in names:
                assert p.dram_write_bytes >= m.tensor_bytes(t) or j == len(ops) - 1


@settings(max_examples=25, deadline=None)
@given(kib=st.sampled_from([16, 24, 48, 96, 192, 384, 768, 1536, 4096]),
       frac=st.sampled_from([0.1, 0.25, 0.5, 0.75]),
       shape=st.sampled_from([(8, 8), (32, 64), (64, 32), (16, 128)]),
       wl=st.sampled_from(["mdlm-tiny", "diffusion-lm-e2e", "llada-8b"]))
def test_nothing_on_chip_beyond_the_resident_share(kib, frac, shape, wl):
    """Issue 10.1's property, over real traces, buffer sizes, shares and array shapes."""
    try:
        arch = dlmsim.load_arch("sda-style-2048-zcu102", **{
            "buffer.kib": kib, "buffer.resident_fraction": frac, "array.rows": shape[0],
            "array.cols": shape[1], "allow_overfull": True})
    except dlmsim.InputError:
        return  # a buffer too small for one tile is refused at load
    kw = {"batch": 1, "seq_len": 64, "steps": 2}
    if wl == "llada-8b":
        kw.update(gen_len=32, block_len=32, **{"model.layers": 2})
    trace = dlmsim.load_workload(wl, **kw)
    _check_residency(arch, list(trace.phase_ops("forward")))


def _chain(n: int) -> list[Op]:
    """n blocks of norm -> linear -> gelu -> residual add, each block reading the previous
    block's output and the first block's input (a long-lived residual)."""
    x0 = Tensor("x0", (16, 32))
    ops, x = [], x0
    for i in range(n):
        h = Tensor(f"h{i}", (16, 32))
        y = Tensor(f"y{i}", (16, 32))
        g = Tensor(f"g{i}", (16, 32))
        z = Tensor(f"z{i}", (16, 32))
        w = Tensor(f"w{i}", (32, 32), role="weight")
        ops += [Op(f"n{i}", "sfu", "layernorm", (x,), (h,)),
                Op(f"fc{i}", "gemm", "linear", (h, w), (y,)),
                Op(f"act{i}", "sfu", "gelu", (y,), (g,)),
                Op(f"res{i}", "sfu", "residual", (g, x0), (z,))]
        x = z
    return ops


def _mapping_lines(fn) -> int:
    """Python lines executed inside dlmsim/mapping.py while fn() runs (a deterministic
    measure of work, unlike wall time)."""
    import sys

    import dlmsim.mapping as mod

    count = 0

    def local(frame, event, arg):
        nonlocal count
        if event == "line":
            count += 1
        return local

    def glob(frame, event, arg):
        return local if frame.f_code.co_filename == mod.__file__ else None

    sys.settrace(glob)
    try:
        fn()
    finally:
        sys.settrace(None)
    return count


def test_plan_is_linear_in_the_ops():
    """Issue 11's hang: Mapper.plan was O(n^2) in a segment's ops (4000 blocks: 29 s). Ten
    times the ops must cost about ten times the lines executed (quadratic would be 100x)."""
    m = Mapper(_arch(**{"buffer.kib": 16}))
    small, big = _chain(50), _chain(500)
    ratio = _mapping_lines(lambda: m.plan(big)) / _mapping_lines(lambda: m.plan(small))
    assert 8 < ratio < 12


def test_ws_partial_sums_limited_by_buffer_port():
    """WS on 4x4: K = 256 -> 64 K-folds, 63 partial-sum round trips per output of 4 B each
    way: 64 x 512 x 63 x 2 x 4 B = 16515072 B through a 1 B/cycle port -> 16515072 cycles,
    more than the array's own fold cycles."""
    arch = _arch(**{"array.policy": "ws", "buffer.bytes_per_cycle": 1})
    m = Mapper(arch)
    folds = gemm_cycles("ws", 64, 256, 512, 4, 4, "full")
    psum = 64 * 512 * (math.ceil(256 / 4) - 1) * 2 * 4
    assert psum > folds
    assert m.array_cycles(LINEAR, "ws") == pytest.approx(psum)


# ---- output order: SDA's OS-for-matmul, WS-for-conv argument ------------------------------

X4 = Tensor("x", (1, 16, 16, 16))
CONV = Op("conv", "gemm", "conv2d",
          (X4, Tensor("wc", (32, 16, 3, 3), role="weight"), Tensor("bc", (32,), role="weight")),
          (Tensor("c", (1, 32, 16, 16)),), attrs=(("padding", 1),))
GN = Op("gn", "sfu", "groupnorm", (Tensor("c", (1, 32, 16, 16)),),
        (Tensor("g", (1, 32, 16, 16)),), attrs=(("groups", 8),))
SILU = Op("act", "sfu", "silu", (Tensor("g", (1, 32, 16, 16)),), (Tensor("s", (1, 32, 16, 16)),))
SOFT = Op("sm", "sfu", "softmax", (Tensor("c", (1, 32, 16, 16)),), (Tensor("p", (1, 32, 16, 16)),))


@pytest.mark.parametrize("policy, conv_order, gn_waits_whole", [("os", "rows", True),
                                                                ("ws", "channels", False)])
def test_output_order_and_groupnorm(policy, conv_order, gn_waits_whole):
    """OS completes output rows (pixels, every channel) first, WS (folds N-outer) output
    columns (channels, every pixel) first. GroupNorm needs whole channel groups: it can
    start on a WS convolution's first channels but must wait for an OS convolution to end;
    the SiLU after it streams in GroupNorm's (channel) order; a softmax (a row reduction)
    after a WS convolution waits for all of it."""
    m = Mapper(_arch(**{"array.policy": policy}))
    conv, gn, act = m.plan([CONV, GN, SILU])
    assert conv.dataflow == policy and conv.order == conv_order
    assert conv.hands_off_to(GN) is not gn_waits_whole
    assert gn.order == "channels" and act.order == "channels"
    assert m.plan([CONV, SOFT])[0].hands_off_to(SOFT) is (policy == "os")
    # The 8 KiB output fits a 32 KiB resident share; with 6.4 KiB it does not, and an OS
    # output GroupNorm would wait for whole is not streamed on chip either.
    assert gn.on_chip_inputs == ("c",)
    small = Mapper(_arch(**{"array.policy": policy, "buffer.resident_fraction": 0.1}))
    assert small.plan([CONV, GN, SILU])[1].on_chip_inputs == ()


def test_auto_compares_the_pair_in_each_order():
    """auto with a streaming consumer: max(GEMM, SFU) if the SFU can start on what the
    dataflow completes first, else GEMM + SFU. For conv -> GroupNorm that is
    OS: os + gn, WS: max(ws, gn); for conv -> softmax OS: max(os, sm), WS: ws + sm."""
    m = Mapper(_arch(**{"array.policy": "auto", "array.switch_cycles": 0}))
    os_, ws = m.array_cycles(CONV, "os"), m.array_cycles(CONV, "ws")
    gn, sm = m.sfu_cycles(GN), m.sfu_cycles(SOFT)
    want_gn = "ws" if max(ws, gn) < os_ + gn else "os"
    want_sm = "ws" if ws + sm < max(os_, sm) else "os"
    assert m.choose_dataflow(CONV, None, GN)[0] == want_gn
    assert m.choose_dataflow(CONV, None, SOFT)[0] == want_sm
    assert m.choose_dataflow(CONV, None)[0] == ("ws" if ws < os_ else "os")


# ---------------------------------------------------------------------- spatial designs
def _spatial(units, **extra):
    from dlmsim.arch import arch_from_data
    from dlmsim.config import bundled_dir, read_yaml

    data = read_yaml(bundled_dir("arch") / "fp32-u280.yaml")
    return arch_from_data({**data, "units": units, **extra}, "spatial.yaml")


def _fc(name, k, n, block=None):
    return Op(name, "gemm", "linear", (Tensor(f"{name}.x", (1, k)),
                                       Tensor(f"{name}.w", (k, n), role="weight")),
              (Tensor(name, (1, n)),), block=block)


def test_assignment_by_pattern_function_and_balanced_work():
    """Units: a1 8x8 (64 PEs, auto), a2 16x8 (128 PEs, auto), qk (ops *.scores), s1 (a
    softmax SFU claiming fn:softmax), s2 (auto SFU). GEMM groups by work (MACs = K x N):
    blocks.*.fc 2 x 500 = 1000, up 600, down 500. Longest first, each to the unit that then
    finishes soonest at its PE rate: fc -> a1 1000/64 = 15.6 or a2 1000/128 = 7.8: a2;
    up -> a1 600/64 = 9.4 or a2 7.8 + 4.7 = 12.5: a1; down -> a1 9.4 + 7.8 = 17.2 or
    a2 7.8 + 3.9 = 11.7: a2. The scores matmul goes to qk by name, the softmax to s1 by
    function, the GELU (s1 does not implement it) to s2; the embedding gather to the DMA."""
    from dlmsim.mapping import assign

    arch = _spatial({"a1": {"kind": "array"}, "a2": {"kind": "array", "rows": 16},
                     "qk": {"kind": "array", "ops": "*.scores"},
                     "s1": {"kind": "sfu", "functions": ["softmax"], "ops": "fn:softmax"},
                     "s2": {"kind": "sfu"}})
    q = Tensor("q", (1, 4, 8))
    ops = [_fc("blocks.0.fc", 10, 50, 0), _fc("blocks.1.fc", 10, 50, 1), _fc("up", 10, 60),
           _fc("down", 10, 50),
           Op("blocks.0.scores", "gemm", "matmul", (q, q), (Tensor("s", (1, 4, 4)),)),
           Op("blocks.0.softmax", "sfu", "softmax", (Tensor("s", (1, 4, 4)),),
              (Tensor("p", (1, 4, 4)),)),
           Op("gelu", "sfu", "gelu", (Tensor("g", (1, 8)),), (Tensor("h", (1, 8)),)),
           Op("embed", "gather", "embedding", (Tensor("e", (10, 8), role="weight"),
                                                Tensor("t", (1, 2), role="index")),
              (Tensor("x", (1, 2, 8)),))]
    assert assign(arch, ops) == {"blocks.0.fc": "a2", "blocks.1.fc": "a2", "up": "a1",
                                 "down": "a2", "blocks.0.scores": "qk",
                                 "blocks.0.softmax": "s1", "gelu": "s2", "embed": "dma"}
    narrow = _spatial({"a": {"kind": "array"}, "s": {"kind": "sfu", "functions": ["gelu"]}})
    with pytest.raises(dlmsim.InputError, match="no unit runs op blocks.0.softmax "
                                                r"\(softmax\): it needs an SFU implementing "
                                                "softmax"):
        assign(narrow, ops)
