"""Event-driven model (SimPy) of the array, the SFU, the tile buffer and off-chip memory.

SimPy processes: one DMA read queue per unit, one write-back per chunk, the array, the SFU;
the off-chip channel is a resource one transfer holds at a time. Each op is split into
`OpPlan.chunks` equal row blocks; an event is a chunk's transfer or a chunk's computation,
never a cycle.

A chunk's life: its unit's DMA queue waits until the unit's double buffer has a free slot
(the chunk `prefetch` places earlier on that unit is done) and until any DRAM producer has
written back what it reads, then reads its bytes; the unit computes it once it is loaded and
its on-chip producers' chunks are done; its write-back is queued on the channel as soon as
it is computed. So loads overlap compute, write-backs overlap the next chunks, and the SFU
works on row blocks an OS array has just produced while the array goes on.

The tile buffer: its resident share holds whole activations between ops (the mapping decides
which). Its tile share is a SimPy Container the units contend for: when a unit starts an op
(its first load) the op takes its tile bytes (`OpPlan.tile_bytes`, the double-buffered tiles
the mapping sized) from the pool and gives them back when its last chunk is computed and
written back. An op takes its bytes only if what stays free still covers every earlier op
that has not taken its own (a banker's check in program order): the earliest op without its
bytes can always get them, and it depends only on earlier ops, so nothing deadlocks (the
attempt that reserved in arrival order deadlocked when a GEMM took the space its SFU
producer needed), while a unit that runs ahead may still prefetch. A reservation larger than the pool is clamped
to the pool (the mapping never plans one). The buffer's ports (`buffer.ports`, each
`bytes_per_cycle` wide) are a SimPy Resource: a unit holds one port for the whole of a
chunk's computation, a DMA transfer one for the whole transfer; with fewer ports than busy
units some wait. Every cycle a unit waits before computing a chunk is charged to a stall
cause: `dram` (its inputs are still loading), `capacity` (its load waited for pool space),
`port` (no buffer port free), `dependency` (a producer's chunk is not done).

Units: every compute unit of the design (`Accelerator.compute_units`: the array and the SFU
of a temporal design, the named arrays and SFUs of a spatial one) is a SimPy process running
its ops in program order, with its own DMA read queue; units run concurrently, ordered only
by their data. A stream (`OpPlan.streamed_inputs`) hands row blocks from a producer unit to
a consumer unit through a FIFO: the consumer's chunk waits for the producer's (stall cause
`fifo_empty`, plus the SLR crossing cycles on the way), and the producer, once it has
computed chunk c, holds its unit until those rows fit the FIFO (its depth in rows of the
tensor) beside the row block the consumer works on, i.e. until the consumer has finished
the chunks before that block (stall cause `fifo_full`); each end holds the block it works
on. So a block's latency is a pipeline: its slowest stage plus the fill and drain of the
others. A design whose streams cannot drain (a unit
waits on a FIFO whose consumer waits behind it on its own unit) deadlocks: an InputError.

Simplifications:
- Chunk granularity: an op's work, bytes and cycles are spread evenly over its chunks; the
  pipeline fill/drain of an op is resolved to one chunk (error shrinks with max_chunks).
- Dependencies through an op's first (streamed) input map chunk to chunk proportionally
  when the consumer can start on what the producer completes first (rows, or channel groups
  for GroupNorm after a WS GEMM: `OpPlan.hands_off_to`); through any other input, or from a
  producer whose order does not suit the consumer, the consumer waits for the whole producer.
- Each DMA transfer pays the memory's first-byte latency once; reads and writes share the
  channel's achieved bandwidth, one transfer at a time, write-backs first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import simpy

from dlmsim.errors import InputError
from dlmsim.mapping import Mapper, OpPlan, assign, streamed_operand
from dlmsim.results import PhaseCost

STALL_CAUSES = ("dram", "capacity", "port", "dependency", "fifo_empty", "fifo_full")


@dataclass
class OpTiming:
    """When an op ran inside one simulated segment (cycles from the segment start), and the
    cycles its unit waited before computing its chunks, by cause."""

    start: float = math.inf
    end: float = 0.0
    stall: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STALL_CAUSES, 0.0))


@dataclass
class SegmentRun:
    cycles: float
    timings: list[OpTiming]
    events: list[tuple[str, str, int, float, float]] = field(default_factory=list)
    # (unit, op name, chunk, start cycle, end cycle) for timelines


def _overlap(a: float, b: float, span: tuple[float, float]) -> float:
    return max(0.0, min(b, span[1]) - max(a, span[0]))


def run_segment(plans: list[OpPlan], bw_bytes_per_cycle: float, latency_cycles: float,
                record: bool = False, prefetch: int = 2,
                pool_bytes: float | dict[str, float] = math.inf,
                ports: int | None = None) -> SegmentRun:
    """Simulate `plans` in order; return the makespan (cycles) and per-op timings.
    `pool_bytes` is the tile share of the buffer (or unit -> its own share, "" -> the share
    the other units have in common), `ports` its port count (None: no limit)."""
    env = simpy.Environment()
    # Write-backs go before queued reads (priority 0 < 1): consumers reading them back wait.
    mem = simpy.PriorityResource(env, capacity=1)
    # At most one holder per compute unit plus the one DMA transfer on the channel exist
    # (three in a temporal design): with that many ports nobody waits, and the resource is
    # left out (same result).
    holders = len({p.unit for p in plans if p.unit != "dma"}) + 1
    port = simpy.Resource(env, capacity=ports) if ports and ports < holders else None
    n = len(plans)
    timings = [OpTiming() for _ in plans]
    # When op j's first load waited for pool space, and each load for a buffer port.
    cap_wait = [(0.0, 0.0)] * n
    load_port_wait = [[(0.0, 0.0)] * p.chunks for p in plans]
    port_wait = [(0.0, 0.0)]
    events: list = []
    loaded = [[env.event() for _ in range(p.chunks)] for p in plans]
    done = [[env.event() for _ in range(p.chunks)] for p in plans]
    # Without a write-back a chunk's results are on chip (stored) as soon as computed.
    stored = [[env.event() if p.dram_write_bytes > 0 else d for d in done[j]]
              for j, p in enumerate(plans)]

    producer: dict[str, int] = {}
    deps_dram: list[list[tuple[int, bool]]] = [[] for _ in plans]  # wait at load
    deps_chip: list[list[tuple[int, bool]]] = [[] for _ in plans]  # wait at compute
    # Streams: a consumer's producers through a FIFO (producer, proportional, crossing
    # cycles), and a producer's FIFOs (consumer, producer chunks the FIFO holds).
    deps_fifo: list[list[tuple[int, bool, float]]] = [[] for _ in plans]
    fifo_out: list[list[tuple[int, float, float, float]]] = [[] for _ in plans]
    for j, p in enumerate(plans):
        through = {name: (rows, cross) for name, rows, cross in p.streamed_inputs}
        for pos, t in enumerate(p.op.inputs):
            i = producer.get(t.name)
            if i is None:
                continue
            proportional = ((pos == 0 or (t.name in through and streamed_operand(p.op, pos)))
                            and plans[i].hands_off_to(p.op)
                            and plans[i].op.outputs[0].shape == t.shape)
            if t.name in through:
                rows, cross = through[t.name]
                deps_fifo[j].append((i, proportional, cross))
                if proportional:  # else the FIFO is taken to hold what it must
                    total = max(t.numel // max(t.shape[-1], 1), 1)
                    fifo_out[i].append((j, rows, total / plans[i].chunks, total / p.chunks))
                continue
            target = deps_chip if t.name in p.on_chip_inputs else deps_dram
            target[j].append((i, proportional))
        for t in p.op.outputs:
            producer[t.name] = j
    done_at = [[0.0] * p.chunks for p in plans]
    blocked: dict[str, tuple[int, int]] = {}  # unit -> (op, consumer) it waits for

    def dep_index(i: int, proportional: bool, j: int, c: int) -> int:
        """The chunk of producer i that consumer j's chunk c waits for."""
        if proportional:
            return min(plans[i].chunks - 1,
                       math.ceil((c + 1) * plans[i].chunks / plans[j].chunks) - 1)
        return plans[i].chunks - 1

    def dep_event(table, i: int, proportional: bool, j: int, c: int):
        return table[i][dep_index(i, proportional, j, c)]

    def transfer(nbytes: float, priority: int):
        with mem.request(priority=priority) as req:
            yield req
            if port is None:
                t0 = env.now
                yield env.timeout(latency_cycles + nbytes / bw_bytes_per_cycle)
                return t0
            with port.request() as preq:
                t_ask = env.now
                yield preq
                t0 = env.now
                port_wait[0] = (t_ask, t0)
                yield env.timeout(latency_cycles + nbytes / bw_bytes_per_cycle)
                return t0

    # Tile pools: one shared by every unit, or (a spatial design whose units have their
    # own `tile_kib`) one per such unit beside the shared one ("").
    pools = dict(pool_bytes) if isinstance(pool_bytes, dict) else {"": pool_bytes}
    pool_of = [p.unit if p.unit in pools else "" for p in plans]
    members: dict[str, list[int]] = {}
    for j, key in enumerate(pool_of):
        members.setdefault(key, []).append(j)
    needs = [min(p.tile_bytes, pools[k]) if pools[k] < math.inf else 0.0
             for p, k in zip(plans, pool_of)]
    for key, js in members.items():
        if sum(needs[j] for j in js) <= pools[key]:
            for j in js:  # every op's tiles fit at once: nobody can wait (same result)
                needs[j] = 0.0
    rank = {j: r for js in members.values() for r, j in enumerate(js)}
    held = [False] * n
    free = dict(pools)
    changed = [env.event()]

    def notify():
        ev, changed[0] = changed[0], env.event()
        ev.succeed()

    first_unheld = dict.fromkeys(members, 0)

    def pending(j: int) -> float:
        """Bytes still owed to ops of j's pool before j that have not taken theirs."""
        key, js = pool_of[j], members[pool_of[j]]
        while first_unheld[key] < len(js) and held[js[first_unheld[key]]]:
            first_unheld[key] += 1
        return sum(needs[i] for i in js[first_unheld[key]:rank[j]] if not held[i])

    def reserve(j: int):
        """Op j takes its tile bytes once what stays free still covers every earlier op
        of its pool that has not taken its own (so an earlier op never waits on a later
        one)."""
        t0 = env.now
        while free[pool_of[j]] - needs[j] < pending(j) - 1e-9:
            yield changed[0]
        cap_wait[j] = (t0, env.now)
        free[pool_of[j]] -= needs[j]
        held[j] = True
        if needs[j] > 0:
            env.process(give_back(j))
        notify()

    def give_back(j: int):
        yield simpy.AllOf(env, stored[j])
        free[pool_of[j]] += needs[j]
        notify()

    def note(unit, j, c, t0):
        tm = timings[j]
        tm.start = min(tm.start, t0)
        tm.end = max(tm.end, env.now)
        if record:
            events.append((unit, plans[j].op.name, c, t0, env.now))

    # The tile share of the buffer holds a double buffer per unit (the mapping sized the
    # tiles to fit it): a chunk may load once the chunk its unit computed `prefetch` chunks
    # earlier is done (1 computing + 1 loading for prefetch 2).
    unit_done: dict[str, list] = {}
    for j, p in enumerate(plans):
        unit_done.setdefault(p.unit, []).extend(done[j])

    def dma_in(unit: str):
        """Loads of one unit's chunks in program order, through the shared channel."""
        k = 0
        for j, p in enumerate(plans):
            if p.unit != unit:
                continue
            per = p.dram_read_bytes / p.chunks
            for c in range(p.chunks):
                if k >= prefetch and unit != "dma":
                    yield unit_done[unit][k - prefetch]
                k += 1
                if c == 0 and needs[j] > 0:
                    yield env.process(reserve(j))
                elif c == 0:
                    held[j] = True
                for i, prop in deps_dram[j]:
                    yield dep_event(stored, i, prop, j, c)
                if per > 0:
                    port_wait[0] = (0.0, 0.0)
                    t0 = yield env.process(transfer(per, 1))
                    load_port_wait[j][c] = port_wait[0]
                    note("dma_in", j, c, t0)
                loaded[j][c].succeed()
                if p.unit == "dma":
                    done[j][c].succeed()

    def compute(unit: str):
        for j, p in enumerate(plans):
            if p.unit != unit:
                continue
            per = p.compute_cycles / p.chunks
            stall = timings[j].stall
            for c in range(p.chunks):
                t_wait = env.now
                yield loaded[j][c]
                waited = env.now - t_wait
                # The part of the wait the load spent queued for pool space or a port.
                cap = _overlap(t_wait, env.now, cap_wait[j]) if c == 0 else 0.0
                on_port = _overlap(t_wait, env.now, load_port_wait[j][c])
                stall["capacity"] += cap
                stall["port"] += on_port
                stall["dram"] += waited - cap - on_port
                t_wait = env.now
                for i, prop in deps_chip[j]:
                    yield dep_event(done, i, prop, j, c)
                stall["dependency"] += env.now - t_wait
                t_wait = env.now
                for i, prop, cross in deps_fifo[j]:
                    k = dep_index(i, prop, j, c)
                    yield done[i][k]
                    late = done_at[i][k] + cross - env.now  # crossing SLR boundaries
                    if cross and late > 0:
                        yield env.timeout(late)
                stall["fifo_empty"] += env.now - t_wait
                if per > 0 and port is not None:
                    t_wait = env.now
                    with port.request() as req:
                        yield req
                        stall["port"] += env.now - t_wait
                        t0 = env.now
                        yield env.timeout(per)
                else:
                    t0 = env.now
                    if per > 0:
                        yield env.timeout(per)
                note(unit, j, c, t0)
                done_at[j][c] = env.now
                done[j][c].succeed()
                # A full FIFO: the unit holds chunk c until its rows fit the FIFO beside
                # the block the consumer works on.
                t_wait = env.now
                for k, rows, rp, rc in fifo_out[j]:
                    d = room_after(c, rows, rp, rc, plans[k].chunks)
                    if d >= 0:
                        blocked[unit] = (j, k)
                        yield done[k][d]
                        blocked.pop(unit, None)
                stall["fifo_full"] += env.now - t_wait  # its span ends at its compute

    def room_after(c: int, fifo: float, rp: float, rc: float, nc: int) -> int:
        """The consumer chunk that must be done before a producer may push its chunk c
        (rows up to (c + 1) rp): the rows it has pushed may run `fifo` rows ahead of the
        end of the block the consumer works on, (d + 1) rc for its chunk d; -1: none."""
        d = math.ceil(((c + 1) * rp - fifo) / rc - 1e-9) - 1  # the block it must work on
        return min(d - 1, nc - 1)

    def store(j: int, c: int, nbytes: float):
        """The write-back of one chunk, issued as soon as it is computed."""
        yield done[j][c]
        t0 = yield env.process(transfer(nbytes, 0))
        note("dma_out", j, c, t0)
        stored[j][c].succeed()

    for j, p in enumerate(plans):
        if p.dram_write_bytes > 0:
            for c in range(p.chunks):
                env.process(store(j, c, p.dram_write_bytes / p.chunks))

    for unit in unit_done:
        env.process(dma_in(unit))
        if unit != "dma":
            env.process(compute(unit))
    env.run()
    if n and not all(ev.triggered for row in stored for ev in row):
        if blocked:
            u, (j, k) = next(iter(blocked.items()))
            raise InputError(
                f"the design deadlocks: unit {u} waits with {plans[j].op.name} for room in "
                f"its stream to unit {plans[k].unit} ({plans[k].op.name}), which waits for "
                "work queued behind it or for tile-pool space the blocked units hold; deepen "
                "that stream's FIFO (depth_bytes), give the units their own tile_kib, or "
                "their ops their own units")
        raise RuntimeError("engine deadlock: not every chunk completed")  # a bug, not input
    for tm in timings:
        if tm.start == math.inf:
            tm.start = tm.end
    return SegmentRun(env.now, timings, events)


def run_ops(mapper: Mapper, ops, record: bool = False) -> tuple[list[OpPlan], SegmentRun]:
    """Map `ops` onto the mapper's accelerator and simulate them as one segment."""
    plans = mapper.plan(ops)
    return plans, run_segment(plans, mapper.bw, mapper.arch.latency_cycles, record,
                              pool_bytes=mapper.pools(), ports=mapper.arch.buffer.ports)


# ------------------------------------------------------------------------ whole sampling run
def _block_groups(ops):
    """Forward ops split into (pre, [block ops...], post) by their block number."""
    pre, post, blocks = [], [], {}
    for op in ops:
        if op.block is None:
            (post if blocks else pre).append(op)
        else:
            blocks.setdefault(op.block, []).append(op)
    return pre, [blocks[b] for b in sorted(blocks)], post


def _same_structure(a, b) -> bool:
    return len(a) == len(b) and all(x.signature() == y.signature() for x, y in zip(a, b))


def _rows(plans, seg: SegmentRun) -> list[dict]:
    """One dict per op; `cycles` attributed so that a segment's rows sum to its makespan:
    each op gets the time by which it moves the latest end seen so far."""
    rows, run_max = [], 0.0
    for p, tm in zip(plans, seg.timings):
        rows.append({"plan": p, "name": p.op.name, "n": 1, "span_cycles": tm.end - tm.start,
                     "cycles": max(0.0, tm.end - run_max), "stall": tm.stall})
        run_max = max(run_max, tm.end)
    return rows


def _phase_cost(rows) -> PhaseCost:
    """Cost of one execution of a phase: every row times its instances `n` per execution."""
    total = PhaseCost()
    for r in rows:
        p = r["plan"]
        total = total + r["n"] * PhaseCost(
            cycles=r["cycles"], macs=p.op.macs,
            sfu_busy_cycles=p.compute_cycles if p.unit_kind == "sfu" else 0.0,
            array_busy_cycles=p.compute_cycles if p.unit_kind == "array" else 0.0,
            dram_bytes=p.dram_read_bytes + p.dram_write_bytes,
        )
    return total


def _forward(mapper: Mapper, ops, timeline: bool):
    """Rows of one forward pass (identical blocks merged into one row each) and the events
    of one block for the timeline.

    Identical blocks are simulated once alone and twice in a row; the difference is the
    marginal cost of a block in the steady state of the pipeline, so
    forward = sim(pre, b0, b1, post) + (n - 2) * (sim(pre, b0, b1, post) - sim(pre, b0, post)),
    exact when every further block adds the same time (a periodic steady state).
    """
    pre, blocks, post = _block_groups(ops)
    nb = len(blocks)
    if nb < 2 or not all(_same_structure(blocks[0], b) for b in blocks[1:]):
        plans, seg = run_ops(mapper, ops, timeline)
        return _rows(plans, seg), seg.events
    one = run_ops(mapper, pre + blocks[0] + post)[1].cycles
    plans, seg = run_ops(mapper, pre + blocks[0] + blocks[1] + post, timeline)
    a, b = len(pre), len(pre) + len(blocks[0])
    c = b + len(blocks[0])
    # A further block costs at least what its busiest resource needs: its DRAM bytes on the
    # channel, its array or SFU cycles. The difference of two runs can come out below that
    # when the second block fills idle channel time at the end of the first run; scaled by
    # n - 2 it then claimed more than 100% of the memory bandwidth (issue 11's 101.7%).
    steady_plans = plans[b:c]
    floor = max(sum(p.dram_read_bytes + p.dram_write_bytes for p in steady_plans) / mapper.bw,
                *(sum(p.compute_cycles for p in steady_plans if p.unit == u)
                  for u in {p.unit for p in steady_plans if p.unit != "dma"} or ("array",)))
    marginal = max(seg.cycles - one, floor)
    rows = _rows(plans, seg)
    first, steady = rows[a:b], rows[b:c]
    # The per-op split of the steady block comes from the simulated second block, scaled so
    # that the rows add up to sim(two blocks) + (n - 2) * marginal.
    s1 = sum(r["cycles"] for r in steady)
    f = (s1 + (nb - 2) * marginal) / ((nb - 1) * s1) if s1 > 0 else 0.0
    idx = blocks[1][0].block
    merged = []
    for r0, r1 in zip(first, steady):
        name = r1["name"]
        for prefix in ("blocks", "layers"):
            name = name.replace(f"{prefix}.{idx}.", f"{prefix}.*.")
        merged.append({**r1, "name": name, "n": nb,
                       "cycles": (r0["cycles"] + (nb - 1) * f * r1["cycles"]) / nb})
    names = {p.op.name for p in plans[b:c]}
    return rows[:a] + merged + rows[c:], [e for e in seg.events if e[1] in names]


def simulate(arch, trace, max_chunks: int = 16, timeline: bool = False,
             memory_trace: bool = False):
    """Simulate a whole sampling run of `trace` on `arch` -> SimResult.

    Once-per-run, forward and per-step ops are separate segments (no overlap between them);
    the run is once + forward passes x forward + steps x step. `timeline` keeps the events
    of one block (or of the whole forward pass when its blocks differ). `memory_trace`
    also simulates every segment whole (each block, not one scaled) and keeps its DMA
    transfers with byte addresses (dlmsim.memtrace).
    """
    from dlmsim import power
    from dlmsim.arch import check_buffer
    from dlmsim.errors import InputError
    from dlmsim.resources import calibrated, check_dram, estimate
    from dlmsim.results import SimResult

    check_buffer(arch, arch.name)
    device = arch.dev()
    res = estimate(arch, device)
    if not res.fits and not arch.allow_overfull:
        raise InputError(f"{arch.name} does not fit {device.name}: {res.describe_over()} "
                         "(set allow_overfull: true to simulate it anyway)")
    footprint = check_dram(arch, trace, device)  # weights that do not fit never run
    mapper = Mapper(arch, max_chunks=max_chunks, assignment=assign(arch, trace.ops))

    # Each kind of forward pass (one, or a cache refresh and the cached steps, ...) is
    # simulated alone and counted its passes per run; `forward` is their mean pass.
    segments, events, fwd = [], [], PhaseCost()
    for name, passes, ops in trace.forward_variants():
        rows, ev = _forward(mapper, list(ops), timeline and not events)
        events = events or ev
        segments.append((rows, passes))
        fwd = fwd + passes * _phase_cost(rows)
    if trace.forward_passes:
        fwd = fwd * (1.0 / trace.forward_passes)
    costs = {"forward": fwd}
    for phase, per_run in (("step", trace.steps), ("once", 1)):
        rows = _rows(*run_ops(mapper, list(trace.phase_ops(phase))))
        segments.append((rows, per_run))
        costs[phase] = _phase_cost(rows)
    df = _frame([{**r, "count": r["n"] * per_run}
                 for rows, per_run in segments for r in rows], mapper.bw)

    run_params = dict(trace.run)
    tokens = trace.tokens_per_run
    pw = power.estimate(arch, device, res, df, float(df["run_cycles"].sum()), mapper.bw,
                        tokens, {"once": 1, "forward": trace.forward_passes,
                                 "step": trace.steps})
    df["energy_j"] = pw.op_energy_j  # per run
    cal = arch.calibration
    return SimResult(
        arch=arch.name, workload=trace.model, run=run_params, clock_mhz=arch.clock_mhz,
        pes=arch.pes, bandwidth_bytes_per_cycle=mapper.bw, once=costs["once"],
        forward=costs["forward"], step=costs["step"], forward_passes=trace.forward_passes,
        steps=trace.steps, tokens_per_run=tokens, ops=df, resources=res, dram=footprint,
        calibrated_resources=calibrated(res, arch),
        cycle_factor=cal.cycles if cal is not None else None,
        calibrated_clock_mhz=cal.clock_mhz if cal is not None else None, timeline=events,
        memory_trace=_memory_trace(mapper, trace) if memory_trace else [], power=pw,
        units=_unit_infos(arch, res) if arch.is_spatial else (),
    )


def _unit_infos(arch, res) -> tuple:
    from dlmsim.results import UnitInfo

    return tuple(UnitInfo(u.name, u.kind, u.region,
                          float(u.pes if u.kind == "array" else u.sfu.elems_per_cycle),
                          res.placement.get(u.region))
                 for u in arch.compute_units())


def _memory_trace(mapper: Mapper, trace) -> list[tuple]:
    """DMA transfers of every segment, simulated whole, with byte addresses."""
    from dlmsim import memtrace

    segments = [("once", 1, *run_ops(mapper, list(trace.phase_ops("once")), True))]
    for name, passes, ops in trace.forward_variants():
        label = f"forward:{name}" if name else "forward"
        segments.append((label, passes, *run_ops(mapper, list(ops), True)))
    segments.append(("step", trace.steps, *run_ops(mapper, list(trace.phase_ops("step")), True)))
    return memtrace.rows(segments, mapper)


def _frame(rows, bw):
    import pandas as pd

    out = []
    for r in rows:
        p = r["plan"]
        mem = (p.dram_read_bytes + p.dram_write_bytes) / bw
        if p.unit == "dma" or mem > p.compute_cycles:
            bound = "memory"
        else:
            bound = "compute" if p.unit_kind == "array" else "sfu"
        out.append({
            "name": r["name"],
            "kind": p.op.kind,
            "fn": p.op.fn,
            "phase": p.op.phase,
            "unit": p.unit,
            "dataflow": p.dataflow,
            "count": r["count"],
            "cycles": r["cycles"],
            "span_cycles": r["span_cycles"],
            "compute_cycles": p.compute_cycles,
            "memory_cycles": mem,
            "stall_cycles": max(0.0, r["span_cycles"] - max(p.compute_cycles, 0.0)),
            **{f"stall_{k}_cycles": v for k, v in r["stall"].items()},
            "stall_cause": max(r["stall"], key=r["stall"].get) if max(r["stall"].values()) > 0
            else "none",
            "roofline_cycles": p.roofline_cycles,
            "dram_read_bytes": p.dram_read_bytes,
            "dram_write_bytes": p.dram_write_bytes,
            "macs": p.op.macs,
            "bound": bound,
            "run_cycles": r["count"] * r["cycles"],
        })
    return pd.DataFrame(out)
