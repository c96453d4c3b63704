"""The event-driven engine: exact event logs of tiny cases, and invariants of whole runs."""

from __future__ import annotations

import dataclasses
import functools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dlmsim
from dlmsim.config import bundled_names
from dlmsim.engine import run_segment, simulate
from dlmsim.mapping import OpPlan
from dlmsim.resources import dram_footprint, estimate
from dlmsim.workloads.ir import Op, Tensor


def _plan(op, unit, compute, reads, writes, chunks=2, on_chip=(), full=False, tile=0.0):
    return OpPlan(op=op, unit=unit, dataflow="os" if unit == "array" else "",
                  compute_cycles=compute, dram_read_bytes=reads, dram_write_bytes=writes,
                  chunks=chunks, loop_order="", roofline_cycles=0, full_dependency=full,
                  on_chip_inputs=on_chip, output_on_chip=not writes, tile_bytes=tile)


X = Tensor("x", (4, 8))
W = Tensor("w", (8, 8), role="weight")
Y = Tensor("y", (4, 8))
Z = Tensor("z", (4, 8))
GEMM = Op("gemm", "gemm", "linear", (X, W), (Y,))
SOFTMAX = Op("softmax", "sfu", "softmax", (Y,), (Z,))


def _log(run):
    return sorted((e[3], e[0], e[1], e[2], e[4]) for e in run.events)


def test_two_tile_gemm_overlaps_load_compute_store():
    """One GEMM in two chunks: 200 B in, 200 cycles of compute, 100 B out; 1 B/cycle, no
    latency. Chunk 0 loads 0-100; chunk 1 loads 100-200 while chunk 0 computes 100-200;
    chunk 0 stores 200-250 while chunk 1 computes 200-300; chunk 1 stores 300-350."""
    run = run_segment([_plan(GEMM, "array", 200, 200, 100)], bw_bytes_per_cycle=1.0, latency_cycles=0, record=True)
    assert _log(run) == [
        (0, "dma_in", "gemm", 0, 100),
        (100, "array", "gemm", 0, 200),
        (100, "dma_in", "gemm", 1, 200),
        (200, "array", "gemm", 1, 300),
        (200, "dma_out", "gemm", 0, 250),
        (300, "dma_out", "gemm", 1, 350),
    ]
    assert run.cycles == 350  # vs 200 + 200 + 100 = 500 without overlap


def test_sfu_consumes_array_rows_while_array_continues():
    """GEMM (2 chunks, 100 cycles each, loads 100 B each) hands its output on chip to a
    softmax (2 chunks, 50 cycles each, stores 50 B each). The SFU starts chunk 0 at 200, as
    soon as the array's chunk 0 is done, while the array computes chunk 1 (200-300)."""
    plans = [_plan(GEMM, "array", 200, 200, 0),
             _plan(SOFTMAX, "sfu", 100, 0, 100, on_chip=("y",))]
    run = run_segment(plans, bw_bytes_per_cycle=1.0, latency_cycles=0,
                      record=True)
    assert _log(run) == [
        (0, "dma_in", "gemm", 0, 100),
        (100, "array", "gemm", 0, 200),
        (100, "dma_in", "gemm", 1, 200),
        (200, "array", "gemm", 1, 300),
        (200, "sfu", "softmax", 0, 250),
        (250, "dma_out", "softmax", 0, 300),
        (300, "sfu", "softmax", 1, 350),
        (350, "dma_out", "softmax", 1, 400),
    ]


def test_full_dependency_waits_for_whole_producer():
    """A WS producer completes rows only at its end: the SFU's chunk 0 waits for chunk 1."""
    plans = [_plan(GEMM, "array", 200, 200, 0, full=True),
             _plan(SOFTMAX, "sfu", 100, 0, 0, on_chip=("y",))]
    run = run_segment(plans, bw_bytes_per_cycle=1.0, latency_cycles=0,
                      record=True)
    sfu = [e for e in _log(run) if e[1] == "sfu"]
    assert sfu[0][0] == 300


def test_groupnorm_starts_on_the_channels_a_ws_gemm_finishes_first():
    """The same two ops, GEMM -> GroupNorm (which needs whole channel groups): a WS producer
    (order "channels") lets GroupNorm's chunk 0 run at 200, as soon as the array's chunk 0
    (the first half of the channels, every pixel) is done, and chunk 1 at 300 after the
    array's chunk 1; an OS producer (order "rows") makes chunk 0 wait for the whole GEMM,
    until 300 (chunk 1 follows at 350)."""
    c, g = Tensor("c", (1, 8, 2, 2)), Tensor("g", (1, 8, 2, 2))
    conv = Op("conv", "gemm", "conv2d", (Tensor("x", (1, 8, 2, 2)),
                                          Tensor("wc", (8, 8, 1, 1), role="weight")), (c,))
    gn = Op("gn", "sfu", "groupnorm", (c,), (g,), attrs=(("groups", 4),))
    for order, starts in (("channels", [200, 300]), ("rows", [300, 350])):
        plans = [dataclasses.replace(_plan(conv, "array", 200, 200, 0, full=True), order=order),
                 _plan(gn, "sfu", 100, 0, 0, on_chip=("c",))]
        run = run_segment(plans, bw_bytes_per_cycle=1.0, latency_cycles=0, record=True)
        assert [e[0] for e in _log(run) if e[1] == "sfu"] == starts


def test_single_buffer_serialises_load_and_compute():
    """With one tile slot (no double buffering) chunk 1 loads only when chunk 0 is computed:
    load 0-100, compute 100-200; at 200 write-back 0 and load 1 both want the channel and the
    write-back goes first: store 200-250, load 250-350, compute 350-450, store 450-500."""
    run = run_segment([_plan(GEMM, "array", 200, 200, 100)], bw_bytes_per_cycle=1.0,
                      latency_cycles=0, record=True, prefetch=1)
    assert run.cycles == 500


def test_latency_is_paid_per_transfer():
    """Two 100 B loads and two 50 B stores at 1 B/cycle, 10 cycles latency each: the same
    schedule as the two-tile case, each transfer 10 cycles longer -> 350 + 30 (three
    transfers on the critical path: load 0, load 1, store 1) = 380."""
    run = run_segment([_plan(GEMM, "array", 200, 200, 100)], bw_bytes_per_cycle=1.0, latency_cycles=10)
    assert run.cycles == 380


def test_one_buffer_port_serialises_transfers_and_compute():
    """The two-tile GEMM above with one buffer port, which every load, compute and store
    holds; 100 cycles of compute per chunk. 0-100 load 0. At 100 compute 0 takes the port
    (its load just ended) before load 1 asks: compute 0 100-200, while load 1 holds the
    channel waiting for the port, so store 0 (the channel) waits too. Load 1 200-300; at 300
    store 0 gets the channel and the port before compute 1 asks: store 0 300-350, compute 1
    350-450, store 1 450-500 (350 with three ports).
    Stalls of the GEMM: waiting for loads 100 (chunk 0) + 100 (chunk 1, from 200 to 300),
    for the port 50 (chunk 1, 300-350)."""
    run = run_segment([_plan(GEMM, "array", 200, 200, 100)], bw_bytes_per_cycle=1.0,
                      latency_cycles=0, record=True, ports=1)
    assert _log(run) == [
        (0, "dma_in", "gemm", 0, 100),
        (100, "array", "gemm", 0, 200),
        (200, "dma_in", "gemm", 1, 300),
        (300, "dma_out", "gemm", 0, 350),
        (350, "array", "gemm", 1, 450),
        (450, "dma_out", "gemm", 1, 500),
    ]
    assert run.timings[0].stall == {"dram": 200, "capacity": 0, "port": 50, "dependency": 0,
                                    "fifo_empty": 0, "fifo_full": 0}
    three = run_segment([_plan(GEMM, "array", 200, 200, 100)], 1.0, 0, ports=3)
    assert three.cycles == 350 and three.timings[0].stall["port"] == 0


def test_small_tile_pool_delays_the_next_op():
    """Two such GEMMs, each holding 60 B of a 100 B tile pool. GEMM 1 runs as above (loads
    0-100, 100-200, computes 100-300, stores 200-250 and 300-350). GEMM 2's first load is
    due at 200 (chunk 0 of GEMM 1 done) but 40 B are free until GEMM 1's last store ends at
    350: load 350-450, compute 450-550 and 550-650 (load 450-550), stores 550-600, 650-700.
    The array is idle from 300 (GEMM 1 done) to 450: 50 cycles for capacity (until 350),
    100 for the load. With a 120 B pool GEMM 2 would not wait."""
    g2 = Op("gemm2", "gemm", "linear", (Tensor("x2", (4, 8)), W), (Tensor("y2", (4, 8)),))
    plans = [_plan(GEMM, "array", 200, 200, 100, tile=60),
             _plan(g2, "array", 200, 200, 100, tile=60)]
    run = run_segment(plans, 1.0, 0, record=True, pool_bytes=100)
    assert run.cycles == 700
    assert min(e[3] for e in run.events if e[1] == "gemm2") == 350
    assert run.timings[1].stall == {"dram": 100, "capacity": 50, "port": 0, "dependency": 0,
                                    "fifo_empty": 0, "fifo_full": 0}
    roomy = run_segment(plans, 1.0, 0, pool_bytes=120)
    assert roomy.cycles < 700 and roomy.timings[1].stall["capacity"] == 0


_chains = st.lists(st.tuples(st.sampled_from(["array", "sfu"]), st.integers(0, 300),
                             st.integers(0, 300), st.integers(0, 200), st.integers(1, 4),
                             st.integers(0, 120), st.booleans()), min_size=1, max_size=6)


def _chain(spec):
    """Op i reads op i-1's output (on chip when the flag says so), in program order."""
    plans, prev = [], Tensor("in", (4, 8))
    for i, (unit, comp, rd, wr, chunks, tile, chip) in enumerate(spec):
        out = Tensor(f"t{i}", (4, 8))
        kind, fn = ("gemm", "linear") if unit == "array" else ("sfu", "softmax")
        ins = (prev, W) if kind == "gemm" else (prev,)
        op = Op(f"op{i}", kind, fn, ins, (out,))
        plans.append(_plan(op, unit, comp, rd, wr, chunks, on_chip=(prev.name,) if chip and i
                           else (), tile=tile))
        prev = out
    return plans


@settings(max_examples=150, deadline=None)
@given(spec=_chains, ports=st.integers(1, 3), pool=st.sampled_from([120, 200, 1000]))
def test_more_buffer_ports_never_slower_and_never_deadlock(spec, ports, pool):
    """Any chain of array and SFU ops completes (no deadlock) whatever the pool and ports,
    and one more buffer port never makes it slower."""
    plans = _chain(spec)
    few = run_segment(plans, 1.0, 5, pool_bytes=pool, ports=ports)
    more = run_segment(plans, 1.0, 5, pool_bytes=pool, ports=ports + 1)
    assert more.cycles <= few.cycles + 1e-9


def test_zero_work_costs_zero_cycles():
    run = run_segment([_plan(GEMM, "array", 0, 0, 0)], 1.0, 10)
    assert run.cycles == 0
    assert run_segment([], 1.0, 10).cycles == 0


# ---------------------------------------------------------------------------- whole runs
@functools.cache
def _tiny_trace(name="mdlm-tiny"):
    return dlmsim.load_workload(name, batch=1, seq_len=32, steps=4)


def _arch(**sets):
    return dlmsim.load_arch("sda-style-2048-zcu102", **sets)


def test_rows_sum_to_total_and_spans_respect_roofline():
    res = simulate(_arch(), _tiny_trace())
    assert res.ops.run_cycles.sum() == pytest.approx(res.total_cycles, rel=1e-9)
    assert (res.ops.span_cycles >= res.ops.roofline_cycles * (1 - 1e-9)).all()
    assert res.total_cycles > 0 and res.seconds == pytest.approx(res.total_cycles / 300e6)


def test_blocks_are_simulated_once_and_scaled():
    """Scaling the steady block must match simulating every block: an 8-block model with
    scaling against all 8 blocks in one segment. The marginal block is constant for the first
    few blocks; seen here, the full run differs from the scaled one by 0.03%, so 0.1%."""
    t = _tiny_trace()
    scaled = simulate(_arch(), t).forward.cycles
    from dlmsim.engine import _block_groups

    pre, blocks, post = _block_groups(list(t.phase_ops("forward")))
    from dlmsim.engine import run_ops
    from dlmsim.mapping import Mapper

    full = run_ops(Mapper(_arch()), pre + [op for b in blocks for op in b] + post)[1].cycles
    assert scaled == pytest.approx(full, rel=1e-3)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scale=st.sampled_from([1.5, 2.0, 4.0]), key=st.sampled_from(
    ["memory.efficiency", "buffer.kib", "sfu.lanes", "memory.ports"]),
    name=st.sampled_from(["mdlm-tiny", "diffusion-lm-e2e"]))
def test_more_resources_never_slower(scale, key, name):
    base = _arch(**{"memory.efficiency": 0.2})
    value = {"memory.efficiency": 0.2, "buffer.kib": base.buffer.kib,
             "sfu.lanes": base.sfu.lanes, "memory.ports": base.memory.ports}[key]
    new = value * scale if key != "memory.efficiency" else min(1.0, value * scale)
    if key in ("sfu.lanes", "memory.ports"):
        new = int(new)
    try:
        more = _arch(**{"memory.efficiency": 0.2, key: new})
    except dlmsim.InputError:
        return  # more ports than the device offers: not buildable, not a slower design
    if not estimate(more).fits:
        return  # a design the device cannot hold is an error, not a slower design
    t = _tiny_trace(name)
    # A bigger buffer lets a GEMM take bigger tiles, which hold the shared tile pool longer
    # and can delay the next op's first load (capacity contention): within 1%, as issue 11's
    # buffer test allows.
    slack = 0.01 if key == "buffer.kib" else 1e-9
    assert simulate(more, t).total_cycles <= simulate(base, t).total_cycles * (1 + slack)


def test_every_preset_simulates_every_bundled_workload():
    from dlmsim.config import bundled_names

    for arch_name in bundled_names("arch"):
        arch = dlmsim.load_arch(arch_name)
        for wl in bundled_names("workloads"):
            kw = {"batch": 1, "steps": 2}
            if wl.startswith("sd15"):
                kw["image_size"] = 64  # an 8x8 latent
            else:
                kw["seq_len"] = 64 if wl.startswith("llada") else 16
            if wl.startswith("llada"):
                kw.update(gen_len=32, block_len=32)
            trace = dlmsim.load_workload(wl, **kw)
            if not dram_footprint(arch, trace).fits:  # weights beyond the board's DRAM
                with pytest.raises(dlmsim.InputError, match="cannot run .* exceeds"):
                    simulate(arch, trace)
                continue
            res = simulate(arch, trace)
            assert res.total_cycles > 0, (arch_name, wl)
            assert (res.ops.span_cycles >= res.ops.roofline_cycles * (1 - 1e-9)).all()


def test_ws_policy_and_auto_choose_per_op():
    t = _tiny_trace()
    os_ = simulate(_arch(**{"array.policy": "os"}), t)
    ws = simulate(_arch(**{"array.policy": "ws"}), t)
    auto = simulate(_arch(**{"array.policy": "auto", "array.switch_cycles": 0}), t)
    assert set(ws.ops[ws.ops.unit == "array"].dataflow) == {"ws"}
    assert set(auto.ops[auto.ops.unit == "array"].dataflow) <= {"os", "ws"}
    # Per-op array time under auto is the cheaper of the two.
    arr = lambda r: r.ops[r.ops.unit == "array"].set_index("name").compute_cycles
    assert (arr(auto) <= arr(os_).combine(arr(ws), min) + 1e-9).all()


def test_overfull_design_is_an_error_unless_allowed():
    arch = dlmsim.load_arch("sda-style-2048-zcu102", **{"buffer.kib": 60000})
    with pytest.raises(dlmsim.InputError, match="does not fit zcu102: BRAM36"):
        simulate(arch, _tiny_trace())
    arch = dlmsim.load_arch("sda-style-2048-zcu102", **{"buffer.kib": 60000, "allow_overfull": True})
    res = simulate(arch, _tiny_trace())
    assert not res.resources.fits


@functools.cache
def _issue11_trace():
    return dlmsim.load_workload("mdlm-tiny", batch=1, seq_len=256, steps=16)


@functools.cache
def _run(**sets):
    r = simulate(_arch(**dict(sets)), _issue11_trace())
    return r.seconds, r.run_cost.dram_bytes


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kib=st.sampled_from([16, 24, 32, 48, 64, 96, 128, 256, 512, 1024]),
       factor=st.sampled_from([1.25, 2.0, 4.0, 16.0]))
def test_bigger_buffer_never_much_slower_nor_more_traffic(kib, factor):
    """Issue 11: 16 KiB gave 21,993 s and 359 TB, 32 KiB 2.9 s (K-split partial sums spilled
    once per K chunk). With the same bandwidth, more buffer removes traffic; the time may
    move by the pipelining of a different loop order, never by more than 1%. Halving the
    buffer at most doubles the time (smooth, no cliffs)."""
    t_small, b_small = _run(**{"buffer.kib": kib, "allow_overfull": True})
    t_big, b_big = _run(**{"buffer.kib": kib * factor, "allow_overfull": True})
    assert t_big <= t_small * 1.01
    assert b_big <= b_small * (1 + 1e-9)
    if factor == 2.0:
        assert t_small <= 2 * t_big


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.sampled_from([32, 64, 128, 192, 256, 320, 384]),
       step=st.sampled_from([32, 64, 128]))
def test_bigger_array_never_much_slower(n, step):
    """Issue 11: with allow_overfull a 448x448 array gave 255,254 s against 0.53 s at 256x256
    (an output block larger than the tile pool made the K split divide by ~0). At equal
    bandwidth a bigger array is never much slower: only its fill and drain per fold grow
    (here by under 5%)."""
    small = {"array.rows": n, "array.cols": n, "allow_overfull": True}
    big = {"array.rows": n + step, "array.cols": n + step, "allow_overfull": True}
    assert _run(**big)[0] <= _run(**small)[0] * 1.05


@pytest.mark.parametrize("name", ["mdlm-tiny", "diffusion-lm-e2e"])
def test_memory_utilisation_never_above_one(name):
    """Issue 11's 101.7%: a scaled forward may never claim more channel time than it has.
    Each further block costs at least its own bytes / bandwidth (engine._forward), so
    DRAM bytes / (cycles x bytes per cycle) <= 1 on every preset, memory-bound or not."""
    from dlmsim.config import bundled_names

    t = _tiny_trace(name)
    for arch_name in bundled_names("arch"):
        for eff in (0.05, 0.85):
            res = simulate(dlmsim.load_arch(arch_name, **{"memory.efficiency": eff}), t)
            assert 0 < res.utilisation["memory"] <= 1 + 1e-9, (arch_name, eff)


# ----------------------------------------------------------------------- spatial designs
@pytest.mark.parametrize("name", ["fp32-u280", "int8-u280", "sda-zcu102"])
def test_spatial_design_of_one_array_and_one_sfu_is_the_temporal_design(name):
    """The temporal design is the one-unit case of the spatial one: the same arch with its
    array and SFU declared as units `mesh` and `vec` gives the same result to the last bit
    (summary, every op row, every timeline event) but for the units' names (and the
    per-unit utilisations a spatial summary adds)."""
    from dlmsim.arch import arch_from_data
    from dlmsim.config import bundled_dir, read_yaml

    data = read_yaml(bundled_dir("arch") / f"{name}.yaml")
    spatial = arch_from_data({**data, "units": {"mesh": {"kind": "array"},
                                                "vec": {"kind": "sfu"}}}, "spatial")
    trace = dlmsim.load_workload("mdlm-small", batch=2, seq_len=128, steps=4)
    a = simulate(dlmsim.load_arch(name), trace, timeline=True)
    b = simulate(spatial, trace, timeline=True)
    sa, sb = a.summary(), b.summary()
    assert sa == {k: sb[k] for k in sa}
    assert {k for k in sb if k not in sa} == {"util_unit_mesh", "util_unit_vec"}
    assert sb["util_unit_mesh"] == pytest.approx(a.run_cost.array_busy_cycles / a.total_cycles)
    rename = {"array": "mesh", "sfu": "vec"}
    assert a.ops.assign(unit=a.ops.unit.replace(rename)).equals(b.ops)
    assert [(rename.get(e[0], e[0]), *e[1:]) for e in a.timeline] == b.timeline


P_OUT = Tensor("p", (4, 8))
PRODUCER = Op("producer", "gemm", "linear", (X, W), (P_OUT,))
CONSUMER = Op("consumer", "sfu", "gelu", (P_OUT,), (Tensor("c", (4, 8)),))
LATER = Op("later", "gemm", "linear", (Tensor("x2", (4, 8)), W), (Tensor("y2", (4, 8)),))


def _pipeline(fifo_rows: float):
    """Unit `a` runs producer (4 chunks of 100 cycles) then `later` (1 chunk, 300 cycles);
    unit `s` runs consumer (4 chunks of 200 cycles), fed by a stream from the producer.
    No DRAM traffic, so only the stream orders them."""
    prod = dataclasses.replace(_plan(PRODUCER, "a", 400, 0, 0, chunks=4))
    cons = dataclasses.replace(_plan(CONSUMER, "s", 800, 0, 0, chunks=4, on_chip=("p",)),
                               streamed_inputs=(("p", fifo_rows, 0.0),))
    later = _plan(LATER, "a", 300, 0, 0, chunks=1)
    return run_segment([prod, cons, later], 1.0, 0, record=True)


def test_two_unit_pipeline_overlaps_stages_and_stalls_on_a_full_fifo():
    """The FIFO holds no row block beyond the one each end works on (4 rows of `p`, one a
    chunk; 0 rows of FIFO). Producer chunk c may go on once the consumer has finished
    chunk c - 1: P0 0-100; P1 100-200; C0 100-300 (waits for P0: fifo_empty 100); P holds
    P1 until C0 ends at 300 (fifo_full 100); P2 300-400, held to C1's end at 500; P3
    500-600, held to C2's end at 700 (fifo_full 3 x 100 = 300); C1 300-500, C2 500-700,
    C3 700-900; `later` on the producer's unit 700-1000. The stages overlap (the block is
    the consumer's 800 cycles plus one producer chunk of fill, 900), and the full FIFO
    delays the producer's next op: 1000 cycles."""
    run = _pipeline(0.0)
    assert _log(run) == [
        (0, "a", "producer", 0, 100),
        (100, "a", "producer", 1, 200),
        (100, "s", "consumer", 0, 300),
        (300, "a", "producer", 2, 400),
        (300, "s", "consumer", 1, 500),
        (500, "a", "producer", 3, 600),
        (500, "s", "consumer", 2, 700),
        (700, "a", "later", 0, 1000),
        (700, "s", "consumer", 3, 900),
    ]
    assert run.cycles == 1000
    # The held time is a stall of the producer; its span ends with its last computation.
    assert run.timings[0].stall["fifo_full"] == 300 and run.timings[0].end == 600
    assert run.timings[1].stall["fifo_empty"] == 100


def test_a_deeper_fifo_lets_the_producer_run_ahead():
    """One row (one producer chunk) of FIFO: chunk c waits for the consumer's chunk
    c - 2. P2 300 (C0 done at 300: no wait), P3 300-400 held to C1's end at 500 (100);
    `later` 500-800, the consumer ends at 900. Four rows: never held; `later` 400-700."""
    one = _pipeline(1.0)
    assert one.timings[0].stall["fifo_full"] == 100 and one.cycles == 900
    assert min(e[3] for e in one.events if e[1] == "later") == 500
    deep = _pipeline(4.0)
    assert deep.timings[0].stall["fifo_full"] == 0
    assert min(e[3] for e in deep.events if e[1] == "later") == 400 and deep.cycles == 900


@settings(max_examples=25, deadline=None)
@given(chunks=st.lists(st.integers(1, 6), min_size=3, max_size=3),
       cycles=st.lists(st.integers(1, 500), min_size=3, max_size=3),
       rows=st.integers(0, 4), extra=st.integers(1, 8))
def test_more_fifo_depth_is_never_slower(chunks, cycles, rows, extra):
    """A stream chain a -> s -> b (with `later` behind the producer on a), any chunking
    and cycles: a deeper FIFO only relaxes when a producer may go on."""
    def run(depth):
        y2 = Tensor("c2", (4, 8))
        last = Op("last", "gemm", "linear", (CONSUMER.outputs[0], W), (y2,))
        plans = [
            _plan(PRODUCER, "a", cycles[0], 0, 0, chunks=chunks[0]),
            dataclasses.replace(_plan(CONSUMER, "s", cycles[1], 0, 0, chunks=chunks[1],
                                      on_chip=("p",)), streamed_inputs=(("p", depth, 0.0),)),
            dataclasses.replace(_plan(last, "b", cycles[2], 0, 0, chunks=chunks[2],
                                      on_chip=("c",)), streamed_inputs=(("c", depth, 0.0),)),
            _plan(LATER, "a", 50, 0, 0, chunks=1),
        ]
        return run_segment(plans, 1.0, 0).cycles

    assert run(rows + extra) <= run(rows) + 1e-9


def _original(**sets):
    return dlmsim.load_arch("mdlm-original-u280-fp32", **sets)


@pytest.mark.parametrize("scale", [4.0, 64.0])
def test_deeper_streams_never_slow_a_spatial_design(scale):
    """The whole original MDLM design on MDLM-tiny with every FIFO deeper (64 x is more
    BRAM than the device has: simulated anyway)."""
    trace = _tiny_trace()
    base = simulate(_original(), trace).total_cycles
    arch = _original()
    deeper = {f"streams.{n}.depth_bytes": s.depth_bytes * scale
              for n, s in arch.streams.items()} | {"allow_overfull": True}
    assert simulate(_original(**deeper), trace).total_cycles <= base * (1 + 1e-9)


def test_spatial_units_overlap_in_a_block():
    """In the original MDLM design the six arrays work at the same time within a block:
    mlp1 and mlp2 (joined through the GELU SFU by streams) overlap, and each busy unit is
    a lane of its own in the timeline."""
    res = simulate(_original(), _tiny_trace(), timeline=True)
    lanes = {e[0] for e in res.timeline}
    assert {"qkv", "scores", "pv", "attn_out", "mlp1", "mlp2"} <= lanes

    def span(unit):
        ts = [(e[3], e[4]) for e in res.timeline if e[0] == unit]
        return min(t[0] for t in ts), max(t[1] for t in ts)

    (a0, a1), (b0, b1) = span("mlp1"), span("mlp2")
    assert b0 < a1 and a0 < b1  # the two spans overlap
    assert res.ops.run_cycles.sum() == pytest.approx(res.total_cycles, rel=1e-9)
    assert (res.ops.span_cycles >= res.ops.roofline_cycles * (1 - 1e-9)).all()


SPATIAL_PRESETS = [n for n in bundled_names("arch") if dlmsim.load_arch(n).is_spatial]


def _small(name: str):
    """A bundled workload at a small size: batch 1, two steps, at most 64 tokens."""
    run = dict(dlmsim.load_workload(name, batch=1).run)
    kw = {"batch": 1, "steps": 2}
    if "seq_len" in run:
        kw["seq_len"] = min(64, run["seq_len"])
    if "gen_len" in run:
        kw["gen_len"] = min(32, kw["seq_len"])
    return dlmsim.load_workload(name, **kw)


def test_there_are_spatial_presets():
    assert {"mdlm-original-u280-fp32", "spatial-int8-u280"} <= set(SPATIAL_PRESETS)


@pytest.mark.parametrize("arch_name", SPATIAL_PRESETS)
@pytest.mark.parametrize("workload", bundled_names("workloads"))
def test_every_spatial_preset_simulates_every_bundled_workload(arch_name, workload):
    """Every op finds a unit, no stream deadlocks, rows add up to the run, no op beats its
    roofline. A model whose weights exceed the design's HBM (LLaDA-8B in fp32: 29.9 GiB)
    runs from the U280's DDR4 instead."""
    arch = dlmsim.load_arch(arch_name)
    trace = _small(workload)
    if dram_footprint(arch, trace).total_bytes > dram_footprint(arch, trace).usable_bytes:
        arch = dlmsim.load_arch(arch_name, **{"memory.target": "ddr"})
    res = simulate(arch, trace)
    assert res.total_cycles > 0
    assert res.ops.run_cycles.sum() == pytest.approx(res.total_cycles, rel=1e-9)
    assert (res.ops.span_cycles >= res.ops.roofline_cycles * (1 - 1e-9)).all()
    units = res.unit_table()
    assert set(res.ops.unit) - {"dma"} <= set(units.unit)
    assert ((units.util >= 0) & (units.util <= 1 + 1e-9)).all()
    assert res.summary()["util_sfu"] <= 1 + 1e-9
