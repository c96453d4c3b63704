"""Latency of one call of an Allo-emitted HLS top, estimated from its loop nests.

`estimate(cpp, top, scalars)` -> (cycles, breakdown). A model of what Vitis HLS would
schedule, with no Vitis HLS run; the rules:

- Trip counts: loop bounds evaluated from constants, the top's scalar arguments given in
  `scalars` (by C++ name, e.g. "v515", or by 0-based position; `parameters()` lists
  them), a callee's scalar parameters bound from the caller's arguments, and the integer
  assignments Allo emits (`int v9 = v5;`, `int64_t v525 = v524 * 32;`). A bound that
  depends on an enclosing loop's variable (a triangular nest) is evaluated at that
  variable's mean, exact for affine bounds. An unresolved bound is an InputError naming
  the loop and the variables it needs.
- A pipelined loop (`#pragma HLS pipeline II=n`) costs (trip - 1) x II + depth, where
  depth is the latency of one iteration (below; loops nested in it are fully unrolled,
  UG1399, so each contributes its body once). A loop-carried floating-point accumulation
  (`v = v + ...` on a float scalar declared outside the loop) cannot start an iteration
  before the previous add is done: II = max(II, the fadd latency).
- Loops without pragmas are pipelined as Vitis HLS does by default (UG1399 2020.2,
  config_compile -pipeline_loops, threshold 64 = `auto_pipeline`): an innermost loop
  with more than 64 iterations is pipelined at II=1; one with at most 64 has its parent
  pipelined instead (the inner loops unrolled), and is pipelined itself when it has no
  such parent (no parent loop, or a parent holding calls, pragmas or deeper nests). A
  loop holding a call is not pipelined. `auto_pipeline=None` turns this off.
- An unpipelined loop costs trip x (body + 1): one cycle per iteration for the exit test.
  `#pragma HLS unroll` (full) runs all iterations in parallel: the body once; `unroll
  factor=f` runs ceil(trip / f) iterations (of the body once each).
- A straight run of statements costs its critical path: each statement starts when its
  operands are ready and takes the latency of its operator (OP_CYCLES: array loads and
  stores, stream reads and writes, integer multiplies and divides, floating-point
  operators and math functions); copies, casts, bit slices and integer add/sub/compare/
  logic cost 0 (HLS chains them within a cycle at these clocks). Loads from completely
  partitioned arrays (registers) cost 0.
- A call costs CALL_CYCLES (the ap_start/ap_done handshake) plus the callee's latency.
  An if whose condition resolves takes its branch; otherwise the slower branch.
- A dataflow region (`#pragma HLS dataflow` in a function or a loop) runs its processes
  (the calls and loops at its top level) concurrently. Each process has a latency L and
  a first-output latency F (a pipelined loop: its depth; an unpipelined loop: one
  iteration of its body; a call: the callee's). A process reading a stream written by
  an earlier process starts F after that producer starts and cannot finish before F
  after the producer finishes: finish = max(start + L, producer finish + F); a process
  reading an array (ping-pong buffer) written by an earlier one starts when that
  producer finishes. The region costs the latest finish: for a chain of streaming
  stages, the slowest stage plus the others' fill. A dataflow loop overlaps iterations
  at the interval of its slowest process: (trip - 1) x max L + one iteration.
- m_axi: with `axi_latency_cycles` = A (the top's `interface m_axi` ports, kernel.cpp),
  a pipelined loop touching a port pays A once per execution (one burst), and an access
  outside a pipelined loop pays A itself (a single-beat transaction).
- m_axi rate: a bundle moves one beat per cycle, of its `max_widen_bitwidth` bits (the
  element's width without that option: no widening). A pipelined loop whose iteration
  reads or writes B bytes through a bundle of W bits (its unrolled accesses counted, an if
  resolved as above, else its busier branch) runs at II >= ceil(8 B / W) (UG1399: a
  pipelined loop's accesses to one m_axi port share its one read and one write channel).
  Reads and writes are counted apart (AXI's read and write channels are independent).
- A bundle shared by the processes of a dataflow region still moves one beat a cycle
  each way: the region takes at least the beats all its processes move through its
  busiest bundle channel (`bundle_beats` in the breakdown), and a dataflow loop's
  iteration interval at least that per iteration.

Ignored (so the estimate can be optimistic): memory port conflicts (two accesses to one
unpartitioned BRAM in one cycle: the II the pragma asks for is taken as met), II
violations other than float accumulation and m_axi rate (array-carried dependences,
resource limits), when within a region the processes on one bundle move their beats (only
their sum is held to the region's length), burst lengths beyond the per-burst latency (a
loop's accesses are taken as widened into whole beats), DRAM's own bandwidth (the
bundle's beat per cycle is taken as met), FIFO depth stalls (streams are taken as deep
enough), the overlap of successive calls of a dataflow function, and any operator latency
change with the clock.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from dlmsim.errors import InputError
from dlmsim.lower.cpp import (
    Call,
    Function,
    If,
    Loop,
    Program,
    Stmt,
    While,
    effects,
    evaluate,
    node_name,
    overlaps,
    parse,
    resolve,
    trip,
    walk,
)

__all__ = ["CALL_CYCLES", "OP_CYCLES", "estimate", "parameters"]

# Operator latencies in cycles. Vitis HLS names each operator core it instantiates after
# its pipeline stages (fadd_32ns_32ns_32_5_full_dsp_1: 5 stages) and records its LATENCY in
# the project's SynModuleInfo; the figures are those cores as found in public Vitis HLS
# projects (mostly Alveo kernels at the 300 MHz default). The tool picks fewer stages at a
# lower clock and more at a higher one: override with `op_cycles` (e.g. from csynth).
OP_CYCLES = {
    "fadd": 4,    # fadd_32ns_32ns_32_5_full_dsp_1, LATENCY 4 (also fsub)
    "fmul": 3,    # fmul_32ns_32ns_32_4_max_dsp_1, LATENCY 3
    "fdiv": 15,   # fdiv_32ns_32ns_32_16_1
    "fcmp": 1,    # fcmp_32ns_32ns_1_2_no_dsp_1, LATENCY 1
    "fexp": 9,    # fexp_32ns_32ns_32_10_full_dsp_1, LATENCY 9
    "flog": 5,    # flog_32ns_32ns_32_6_full_dsp_1, LATENCY 5
    "fmath": 9,   # other math functions (sqrt, tanh, pow, ...): no core collected, as fexp
    "fconv": 4,   # sitofp, LATENCY 4 (int <-> float conversions)
    "imul": 1,    # a registered DSP48 multiply (mul_..._2_1 cores, 2 stages)
    "idiv": 35,   # srem_32ns_18ns_32_36_seq_1, LATENCY 35 (divide/remainder by a variable)
    "load": 2,    # RAM_AUTO_1R1W storage core, LATENCY 2 (BRAM/LUTRAM read)
    "store": 1,   # one cycle to write
    "stream": 1,  # one FIFO handshake state per read or write
}
CALL_CYCLES = 1  # ap_start -> ap_done of a sub-function call
_IDENT = re.compile(r"[A-Za-z_]\w*")


def parameters(cpp, top: str | None = None) -> list[dict]:
    """The top's parameters in order: name, kind (scalar, array, pointer, stream), type.
    Use it to map a positional scalar argument to the C++ name estimate() wants."""
    prog = cpp if isinstance(cpp, Program) else parse(cpp)
    return [{"name": p.name, "type": p.type.name, "kind": p.kind}
            for p in prog.function(top).params]


def estimate(cpp, top: str | None = None, scalars: dict | None = None, *,
             axi_latency_cycles: float = 0.0, op_cycles: dict | None = None,
             auto_pipeline: int | None = 64) -> tuple[float, dict]:
    """Cycles of one call of `top` (default: the function Allo marks as top) and a
    breakdown: {"top": cycles, "functions": {name: cycles per call}, "loops": [...] (each
    with its trip, kind, II, and port_ii: the least II its m_axi traffic allows),
    "dataflow": [...]}. `scalars` gives the top's scalar arguments by C++ name or
    position; `auto_pipeline` is Vitis HLS's automatic pipelining threshold (None: off).
    See the module docstring for the rules."""
    prog = cpp if isinstance(cpp, Program) else parse(cpp)
    fn = prog.function(top)
    names = [p.name for p in fn.params]
    env: dict[str, float] = {}
    for k, v in (scalars or {}).items():
        name = names[k] if isinstance(k, int) and 0 <= k < len(names) else k
        if name not in names:
            raise InputError(f"scalar {k!r}: the top {fn.name} has no such parameter "
                             f"(parameters: {', '.join(names)})")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise InputError(f"scalar {name}: expected a finite number, got {v!r}")
        env[name] = float(v)
    if axi_latency_cycles < 0:
        raise InputError(f"axi_latency_cycles must be >= 0, got {axi_latency_cycles}")
    costs = dict(OP_CYCLES)
    for k, v in (op_cycles or {}).items():
        if k not in OP_CYCLES or v < 0:
            raise InputError(f"op_cycles: unknown operator {k!r} or negative latency "
                             f"(operators: {', '.join(OP_CYCLES)})")
        costs[k] = v
    if auto_pipeline is not None and auto_pipeline < 0:
        raise InputError(f"auto_pipeline must be >= 0 or None, got {auto_pipeline}")
    m = _Model(prog, costs, axi_latency_cycles, auto_pipeline, fn.name)
    m.axi[fn.name] = {p.args.get("port"): (p.args.get("bundle", p.args.get("port")),
                                          int(p.args.get("max_widen_bitwidth", 0)))
                      for p in fn.pragmas if p.kind == "interface" and "m_axi" in p.flags}
    cycles = m.function(fn, env, frozenset())
    return cycles, {"top": cycles, "functions": m.per_function, "loops": m.loops,
                    "dataflow": m.regions}


@dataclass
class _Ctx:
    fn: Function
    env: dict[str, float]
    approx: set[str]  # names whose value depends on a loop variable (taken at its mean)
    pipelined: bool = False


@dataclass
class _Model:
    prog: Program
    costs: dict
    axi_cycles: float
    auto: int | None  # automatic pipelining threshold (None: off)
    top: str = ""
    # function -> its m_axi parameters: name -> (bundle, widened bits or 0)
    axi: dict[str, dict[str, tuple[str, int]]] = field(default_factory=dict)
    memo: dict = field(default_factory=dict)
    per_function: dict[str, float] = field(default_factory=dict)
    loops: list[dict] = field(default_factory=list)
    regions: list[dict] = field(default_factory=list)

    # ------------------------------------------------------------------ functions
    def function(self, fn: Function, env: dict, approx: frozenset) -> float:
        return self._function(fn, env, approx)[0]

    def _function(self, fn: Function, env: dict, approx: frozenset) -> tuple[float, float]:
        """(latency, first-output latency) of one call of `fn` with its scalars bound."""
        scal = {p.name for p in fn.params if not p.is_array and not p.stream}
        key = (fn.name, tuple(sorted((k, v, k in approx) for k, v in env.items()
                                     if k in scal)),
               frozenset(self.axi.get(fn.name, {}).items()))
        if key in self.memo:
            return self.memo[key]
        self.memo[key] = (0.0, 0.0)  # a recursive call graph would end here
        ctx = _Ctx(fn, {k: v for k, v in env.items() if k in scal},
                   {k for k in approx if k in scal})
        if fn.dataflow:
            lat, first = self.dataflow(ctx, fn.body, fn.name)
        else:
            lat, first = self.block(ctx, fn.body)
        self.memo[key] = (lat, first)
        self.per_function.setdefault(fn.name, lat)
        return lat, first

    # --------------------------------------------------------------------- blocks
    def block(self, ctx: _Ctx, body: list) -> tuple[float, float]:
        """(latency, first-output latency) of a statement list run in order."""
        total, first, run = 0.0, None, []
        for node in body:
            if isinstance(node, Stmt):
                run.append(node)
                continue
            if run:
                total += self.straight(ctx, run)
                run = []
            lat, f = self.node(ctx, node)
            if first is None:
                first = total + f
            total += lat
        if run:
            total += self.straight(ctx, run)
        return total, total if first is None else first

    def node(self, ctx: _Ctx, node) -> tuple[float, float]:
        if isinstance(node, Loop):
            return self.loop(ctx, node)
        if isinstance(node, Call):
            return self.call(ctx, node)
        if isinstance(node, If):
            cond = self.value(ctx, node.cond)
            if cond is not None:
                return self.block(ctx, node.then if cond else node.orelse)
            a, b = self.block(ctx, node.then), self.block(ctx, node.orelse)
            return max(a[0], b[0]), max(a[1], b[1])
        if isinstance(node, While):
            raise InputError(f"{ctx.fn.name}: while loop at line {node.line} has no trip "
                             "count the estimate can read")
        raise AssertionError(node)

    def call(self, ctx: _Ctx, node: Call) -> tuple[float, float]:
        callee = self.prog.functions.get(node.callee)
        if callee is None:  # an external function (not defined in the C++): one cycle
            return 1.0, 1.0
        env, approx, ports = self.call_args(ctx, node, callee, self.axi.get(ctx.fn.name, {}))
        prev = self.axi.get(callee.name)
        self.axi[callee.name] = ports
        lat, first = self._function(callee, env, frozenset(approx))
        if prev is not None:
            self.axi[callee.name] = prev
        return CALL_CYCLES + lat, CALL_CYCLES + first

    def call_args(self, ctx: _Ctx, node: Call, callee: Function, caller_ports: dict):
        """The callee's scalar values, which of them are approximate (loop means), and its
        m_axi parameters (name -> the caller's (bundle, bits)) for the call `node`."""
        env, approx, ports = {}, set(), {}
        for p, arg in zip(callee.params, node.args):
            if p.is_array or p.stream:
                ch = resolve(ctx.fn, arg)
                if ch and ch[0] in caller_ports:
                    ports[p.name] = caller_ports[ch[0]]
                continue
            v = self.value(ctx, arg)
            if v is not None:
                env[p.name] = v
                if self.is_approx(ctx, arg):
                    approx.add(p.name)
        return env, approx, ports

    # ---------------------------------------------------------------------- loops
    def loop(self, ctx: _Ctx, loop: Loop) -> tuple[float, float]:
        n = trip(loop, ctx.env)
        if n is None:
            need = sorted({x for e in (loop.lo, loop.hi) for x in _idents(e)
                           if x not in ctx.env})
            top = self.prog.functions[self.top]
            args = ", ".join(f"{p.name} (position {i})" for i, p in enumerate(top.params)
                             if not p.is_array and not p.stream) or "none"
            raise InputError(f"{ctx.fn.name}: the trip count of loop {loop.name} (line "
                             f"{loop.line}) depends on {', '.join(need) or loop.hi}, which "
                             f"is not known: give the top's scalar arguments as scalars="
                             f"{{name or position: value}} (scalars of {self.top}: {args})")
        inner = _inside(ctx, loop, n)
        ii, unroll = loop.ii, loop.unroll
        port_ii = None  # the least II the m_axi rate allows (pipelined loops)
        auto = ii is None and unroll is None and not loop.dataflow and not ctx.pipelined \
            and self.auto is not None and self.auto_pipelined(loop, inner.env)
        if auto:
            ii = 1
        if ctx.pipelined:  # inside a pipelined loop: fully unrolled
            lat, first = self.body(inner, loop)
            ii_used, kind = None, "unrolled in pipeline"
        elif loop.dataflow:
            one, first = self.dataflow(inner, loop.body, f"{ctx.fn.name}/{loop.name}")
            slowest = self.regions[-1]["slowest"] if self.regions else one
            lat = max(n - 1, 0) * slowest + one if n else 0.0
            ii_used, kind = None, "dataflow"
        elif ii is not None:
            inner.pipelined = True
            depth, first = self.body(inner, loop)
            depth = max(1.0, depth)
            ii_used = max(ii, self.costs["fadd"]) if _float_carried(ctx.fn, loop) else ii
            port_ii = self.port_ii(inner, loop)
            ii_used = max(ii_used, port_ii)
            iters = -(-n // unroll) if unroll else n
            lat = (max(iters - 1, 0) * ii_used + depth) if iters else 0.0
            if self.touches_axi(ctx, loop):
                lat += self.axi_cycles
            first, kind = depth, "auto-pipelined" if auto else "pipelined"
        elif unroll == 0:
            lat, first = self.body(inner, loop)
            ii_used, kind = None, "unrolled"
        else:
            body, first = self.body(inner, loop)
            iters = -(-n // unroll) if unroll else n
            lat, ii_used, kind = iters * (body + 1), None, "sequential"
            first = first + 1
        self.loops.append({"function": ctx.fn.name, "loop": loop.name, "line": loop.line,
                           "trip": n, "kind": kind, "ii": ii_used, "port_ii": port_ii,
                           "cycles": lat})
        return lat, min(first, lat) if lat else 0.0

    def auto_pipelined(self, loop: Loop, env: dict) -> bool:
        """Vitis HLS's automatic pipelining of a loop without pragmas (see `estimate`)."""
        nodes = [n for n, _ in walk(loop.body)]
        if any(isinstance(n, (Call, While)) for n in nodes):
            return False
        inner = [n for n in nodes if isinstance(n, Loop)]
        if not inner:  # innermost (had its parent qualified, it would be pipelined instead)
            return True
        if any(x.pragmas or any(isinstance(y, Loop) for y, _ in walk(x.body)) for x in inner):
            return False
        return all((trip(x, env) or float("inf")) <= self.auto for x in inner)

    def body(self, ctx: _Ctx, loop: Loop) -> tuple[float, float]:
        return self.block(ctx, loop.body)

    def port_ii(self, ctx: _Ctx, loop: Loop) -> int:
        """The least II the m_axi rate allows one iteration of `loop` (module docstring)."""
        ports = self.axi.get(ctx.fn.name)
        if not ports:
            return 1
        ii = 1
        own = _Ctx(ctx.fn, dict(ctx.env), set(ctx.approx), True)
        for (bundle, _), b in self.port_bytes(own, loop.body, ports).items():
            ii = max(ii, math.ceil(8 * b / _beat_bits(ctx.fn, ports, bundle) - 1e-9))
        return ii

    def port_bytes(self, ctx: _Ctx, body: list, ports: dict) -> dict:
        """{(bundle, "r" or "w"): bytes} one pass of `body` moves through m_axi ports (its
        loops and the functions it calls included)."""
        out: dict[tuple[str, str], float] = {}

        def add(d, k=1.0):
            for key, b in d.items():
                out[key] = out.get(key, 0.0) + k * b
        for node in body:
            if isinstance(node, Stmt):
                name = node.src if node.op == "load" else node.target
                if node.op in ("load", "store") and name in ports:
                    bits = ctx.fn.vars[name].type.bits
                    add({(ports[name][0], "r" if node.op == "load" else "w"):
                         max(bits, 8) / 8})
                if node.target is not None and node.op not in ("store", "write"):
                    self.bind(ctx, node)  # the conditions of the ifs below
            elif isinstance(node, Loop):
                n = trip(node, ctx.env)
                add(self.port_bytes(_inside(ctx, node, n), node.body, ports), n or 1)
            elif isinstance(node, Call):
                callee = self.prog.functions.get(node.callee)
                if callee is not None:
                    env, approx, cports = self.call_args(ctx, node, callee, ports)
                    if cports:
                        add(self.port_bytes(_Ctx(callee, env, approx, ctx.pipelined),
                                            callee.body, cports))
            elif isinstance(node, If):
                cond = self.value(ctx, node.cond)
                if cond is not None:
                    add(self.port_bytes(ctx, node.then if cond else node.orelse, ports))
                else:
                    a = self.port_bytes(ctx, node.then, ports)
                    b = self.port_bytes(ctx, node.orelse, ports)
                    add({k: max(a.get(k, 0.0), b.get(k, 0.0)) for k in {*a, *b}})
        return out

    def touches_axi(self, ctx: _Ctx, loop: Loop) -> bool:
        ports = self.axi.get(ctx.fn.name)
        if not ports or not self.axi_cycles:
            return False
        return any(isinstance(s, Stmt) and s.op in ("load", "store") and
                   (s.src if s.op == "load" else s.target) in ports
                   for s, _ in walk(loop.body))

    # ------------------------------------------------------------------- dataflow
    def dataflow(self, ctx: _Ctx, body: list, where: str) -> tuple[float, float]:
        # The region's own statements (scalar copies such as `int v9 = v5;` that loop
        # bounds read) are evaluated first; they cost no process time.
        for node in body:
            if isinstance(node, Stmt):
                self.bind(ctx, node)
        procs = [n for n in body if isinstance(n, (Call, Loop, If, While))]
        exact: dict[tuple, list] = {}  # (variable, constant subscripts) -> writers
        wild: dict[str, list] = {}  # variable -> writers with a variable subscript
        rows, finish_all, first_all = [], 0.0, 0.0
        for i, node in enumerate(procs):
            lat, first = self.node(ctx, node)
            reads, writes = effects(self.prog, ctx.fn, [node])
            start, after = 0.0, 0.0
            for ch in reads:
                if None in ch[1]:
                    cands = wild.get(ch[0], []) + [w for k, ws in exact.items()
                                                   if k[0] == ch[0] for w in ws]
                else:
                    cands = exact.get(ch, []) + wild.get(ch[0], [])
                for j, wch in cands:
                    if not overlaps(ch, wch):
                        continue
                    p = rows[j]
                    var = ctx.fn.vars.get(ch[0])
                    if var is not None and var.stream:
                        start = max(start, p["start"] + p["first"])
                        after = max(after, p["finish"])
                    else:  # a ping-pong buffer: the whole array first
                        start = max(start, p["finish"])
            finish = max(start + lat, after + first)
            rows.append({"process": node_name(node), "start": start, "latency": lat,
                         "first": first, "finish": finish})
            finish_all = max(finish_all, finish)
            first_all = max(first_all, start + first)
            for ch in writes:
                if None in ch[1]:
                    wild.setdefault(ch[0], []).append((i, ch))
                else:
                    exact.setdefault(ch, []).append((i, ch))
        slowest = max((r["latency"] for r in rows), default=0.0)
        beats = self.bundle_beats(ctx, procs)
        busiest = max(beats.values(), default=0.0)
        finish_all, slowest = max(finish_all, busiest), max(slowest, busiest)
        self.regions.append({"region": where, "cycles": finish_all, "slowest": slowest,
                             "processes": rows, "bundle_beats": beats})
        return finish_all, min(first_all, finish_all)

    def bundle_beats(self, ctx: _Ctx, procs: list) -> dict[str, float]:
        """{"bundle r" or "bundle w": beats} all processes of a dataflow region move through
        each bundle and channel: one beat a cycle at most, however many processes share it."""
        ports = self.axi.get(ctx.fn.name)
        if not ports:
            return {}
        total: dict[tuple[str, str], float] = {}
        for node in procs:
            own = _Ctx(ctx.fn, dict(ctx.env), set(ctx.approx))
            for k, b in self.port_bytes(own, [node], ports).items():
                total[k] = total.get(k, 0.0) + b
        return {f"{bd} {rw}": 8 * b / _beat_bits(ctx.fn, ports, bd)
                for (bd, rw), b in sorted(total.items())}

    # ------------------------------------------------------------------ statements
    def straight(self, ctx: _Ctx, run: list[Stmt]) -> float:
        """Critical path of a run of statements; also binds integer scalars they set."""
        ready: dict[str, float] = {}
        mem: dict[str, float] = {}
        end = 0.0
        for st in run:
            start = max((ready.get(o, 0.0) for o in st.operands), default=0.0)
            base = st.src if st.op in ("load", "read") else \
                st.target if st.op in ("store", "write") else None
            if base is not None:
                start = max(start, mem.get(base, 0.0))
            t = start + self.cost(ctx, st)
            if base is not None and (st.op in ("store", "write", "read")):
                mem[base] = t
            if st.target is not None and st.op not in ("store", "write"):
                ready[st.target] = t
                self.bind(ctx, st)
            end = max(end, t)
        return end

    def cost(self, ctx: _Ctx, st: Stmt) -> float:
        op, c, fn = st.op, self.costs, ctx.fn
        if op in ("load", "store"):
            name = st.src if op == "load" else st.target
            var = fn.vars.get(name)
            if not ctx.pipelined and self.axi_cycles and name in self.axi.get(fn.name, ()):
                return self.axi_cycles
            if var is not None and var.registers:
                return 0.0
            return c["load"] if op == "load" else c["store"]
        if op in ("read", "write"):
            return c["stream"]
        target = fn.vars.get(st.target) if st.target else None
        is_float = (st.decl or (target.type if target else None))
        is_float = bool(is_float and is_float.is_float) or any(
            fn.vars[o].type.is_float for o in st.operands if o in fn.vars)
        if op == "binop":
            b = st.binop
            if is_float:
                if b in ("+", "-"):
                    return c["fadd"]
                if b == "*":
                    return c["fmul"]
                if b == "/":
                    return c["fdiv"]
                return c["fcmp"] if b in ("<", ">", "<=", ">=", "==", "!=") else 0.0
            if b == "*" and len(st.operands) == 2:
                return c["imul"]
            if b in ("/", "%") and len(st.operands) == 2:
                return c["idiv"]
            return 0.0
        if op == "call":
            f = st.func.lower()
            if f in ("abs", "fabs", "min", "max", "fmin", "fmax"):
                return 0.0
            return c["fexp"] if f in ("exp", "expf") else c["flog"] if f in ("log", "logf") \
                else c["fmath"]
        if op == "copy" and st.src in fn.vars and target is not None and \
                fn.vars[st.src].type.is_float != (st.decl or target.type).is_float:
            return c["fconv"]
        return 0.0

    # --------------------------------------------------------------------- values
    def bind(self, ctx: _Ctx, st: Stmt):
        t = st.target
        ty = st.decl or (ctx.fn.vars[t].type if t in ctx.fn.vars else None)
        if ty is None or ty.is_float or st.op not in ("copy", "const", "binop", "select",
                                                       "other"):
            ctx.env.pop(t, None)
            return
        if not all(o in ctx.env for o in st.operands):
            ctx.env.pop(t, None)
            return
        v = evaluate(st.rhs, ctx.env)
        if v is None:
            ctx.env.pop(t, None)
            return
        ctx.env[t] = v
        if any(o in ctx.approx for o in st.operands):
            ctx.approx.add(t)
        else:
            ctx.approx.discard(t)

    def value(self, ctx: _Ctx, expr: str) -> float | None:
        """An expression's value, None if unknown or dependent on a loop variable."""
        if self.is_approx(ctx, expr):
            return None
        return evaluate(expr, ctx.env)

    @staticmethod
    def is_approx(ctx: _Ctx, expr: str) -> bool:
        return any(x in ctx.approx for x in _idents(expr))


def _inside(ctx: _Ctx, loop: Loop, n: float | None) -> _Ctx:
    """The context of `loop`'s body: its variable at its mean over the `n` trips (so nested
    bounds evaluate), marked approximate (so no if is resolved on it)."""
    inner = _Ctx(ctx.fn, dict(ctx.env), set(ctx.approx), ctx.pipelined)
    lo = evaluate(loop.lo, ctx.env) or 0.0
    inner.env[loop.var] = lo + max((n or 1) - 1, 0) * loop.step / 2.0
    inner.approx.add(loop.var)
    return inner


def _beat_bits(fn: Function, ports: dict, bundle: str) -> int:
    """Bits a beat of `bundle` carries: its max_widen_bitwidth, else its element width."""
    bits = max(w for bd, w in ports.values() if bd == bundle) or \
        min(fn.vars[n].type.bits for n, (bd, _) in ports.items() if bd == bundle)
    return max(bits, 1)


def _idents(expr: str) -> list[str]:
    return [w for w in _IDENT.findall(expr) if w not in ("min", "max", "true", "false")]


def _float_carried(fn: Function, loop: Loop) -> bool:
    """A float scalar declared outside `loop` updated inside it through a float add/sub of
    its own previous value (`v = v + x`): the add is on the loop-carried path."""
    inside = {s.target for s, _ in walk(loop.body) if isinstance(s, Stmt) and s.decl}
    src: dict[str, set[str]] = {}
    fadd: dict[str, bool] = {}

    def outer(name):
        v = fn.vars.get(name)
        return name not in inside and v is not None and not v.is_array and not v.stream

    for st, _ in walk(loop.body):
        if not isinstance(st, Stmt) or st.target is None or st.op in ("store", "write"):
            continue
        s = set().union(*(src.get(o, set()) | ({o} if outer(o) else set())
                          for o in st.operands)) if st.operands else set()
        via = any(fadd.get(o, False) for o in st.operands)
        ty = st.decl or (fn.vars[st.target].type if st.target in fn.vars else None)
        if st.op == "binop" and st.binop in ("+", "-") and ty is not None and ty.is_float:
            via = True
        if outer(st.target) and st.target in s and via and ty is not None and ty.is_float:
            return True
        src[st.target], fadd[st.target] = s, via
    return False
