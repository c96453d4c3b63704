"""What hardware Allo-emitted HLS C++ describes, and a check of it against the design.

`describe(cpp, top)` reads the C++ (text or a parsed `cpp.Program`) from the call graph
rooted at `top` and returns a plain dict:

- `instances`: RTL instances Vitis HLS makes of every function. Rule (UG1399, "Vitis
  High-Level Synthesis User Guide": "All instances of a function, at the same level of
  hierarchy, make use of a single RTL implementation (block)" - one module definition,
  instantiated once per call; pragma HLS allocation: "if the C source has four instances
  of a function foo_sub, the ALLOCATION pragma can ensure that there is only one
  instance"): every call site is an instance, unless an `allocation ... instances=f
  limit=N` pragma in the caller caps the caller's instances of f at N; a call inside a
  loop unrolled by u is u call sites (a full unroll: the trip count); a callee's count is
  the sum over its callers of (caller's instances x sites in that caller). A function
  with `#pragma HLS inline` has no module of its own but its hardware is copied into each
  caller, so it keeps its count (reported with `inline: true`).
- `meshes`: systolic PE meshes: functions named `<pe>_<j>_<i>` (Allo's `unfold` suffixes
  column first, then row: checked on a 2 x 4 systolic, where `PE_kernel_3_1` is called
  with i=1, j=3) that contain a multiply, grouped per calling function, with the grid
  (rows x cols), its instances and the multipliers of one PE.
- `multipliers`: per function, every multiply of two non-constant operands (index
  arithmetic by a constant is not a DSP) with the operand widths as they really are:
  the narrowest declared type along the copy/cast chain (an int8 widened to int16 for
  the product is an 8-bit operand), the bit fields packed into an operand (`op(24, 17) =
  b1` writes), and `macs`: the number of separate bit ranges read out of the product
  (Allo's PE_kernel_packed_int8xint8 reads two 16-bit results out of one 18x27 -> 45-bit
  product: 2 MACs; a plain `a * b` is 1). `total` counts every multiply x unroll x
  instances.
- `dataflow`: functions and loops with `#pragma HLS dataflow`, their processes (calls and
  loops at the region's top level), the streams declared there (depth, element type,
  elements) with the processes writing and reading them, and the arrays handed from one
  process to another (ping-pong buffers).
- `m_axi`: the top's `#pragma HLS interface m_axi` ports (kernel.cpp of a Vitis project;
  the plain vhls text has none): port, bundle (Vitis's default `gmem` when unnamed),
  offset, element width; per bundle the widest element of its ports.
- `storage`: local arrays (not streams, not references) per function: element bits x
  elements x instances of the function, and the total bytes; FIFO bytes apart.
- `copied_on_chip`: top arguments copied whole into local arrays (Allo's wrap_io=True
  `load_buf`/`store_res` pattern, or any copy loop): a local array into which elements
  of the argument are stored unchanged (loads, copies and casts only; directly or through
  calls: computing a tensor from an argument is not copying it) holding at least as many bits as the argument (its
  declared shape, or the shape of a callee parameter it is passed to); for a bare pointer
  of unknown size, a copy made outside every loop of the top.

`check(desc, expect)` compares a description with the design (`expect` keys: rows, cols,
macs_per_pe, array_instances, dataflow_top, m_axi_bundles, max_port_bits, buffer_bytes,
not_on_chip) and returns one sentence per difference.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict

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
    node_name,
    parse,
    resolve,
    trip,
    walk,
)

__all__ = ["EXPECT_KEYS", "check", "describe", "instances", "multipliers"]

_PE = re.compile(r"^(\w+?)_(\d+)_(\d+)$")
EXPECT_KEYS = ("rows", "cols", "macs_per_pe", "array_instances", "dataflow_top",
               "m_axi_bundles", "max_port_bits", "buffer_bytes", "not_on_chip")


def _program(cpp) -> Program:
    return cpp if isinstance(cpp, Program) else parse(cpp)


# ------------------------------------------------------------------------ call graph
def _calls(fn: Function, body: list | None = None, mult: float = 1.0):
    """(Call, multiplicity) for every call site of `fn`, an unrolled loop multiplying the
    sites inside it (both branches of an if are hardware)."""
    for node in fn.body if body is None else body:
        if isinstance(node, Call):
            yield node, mult
        elif isinstance(node, Loop):
            u = node.unroll
            if u == 0:
                u = trip(node, {})
                if u is None:  # a full unroll of a loop with variable bounds cannot happen
                    raise InputError(f"{fn.name}: loop {node.name} (line {node.line}) is "
                                     "fully unrolled but its trip count is not a constant")
            yield from _calls(fn, node.body, mult * (u or 1))
        elif isinstance(node, If):
            yield from _calls(fn, node.then, mult)
            yield from _calls(fn, node.orelse, mult)
        elif isinstance(node, While):
            yield from _calls(fn, node.body, mult)


def _order(prog: Program, top: str) -> list[str]:
    """Functions reachable from `top`, callers before callees."""
    seen, post = set(), []

    def visit(name, path):
        if name in path:
            raise InputError(f"recursive call of {name}: HLS cannot build recursion")
        if name in seen or name not in prog.functions:
            return
        seen.add(name)
        for call, _ in _calls(prog.functions[name]):
            visit(call.callee, path | {name})
        post.append(name)

    visit(top, frozenset())
    return post[::-1]


def _limits(fn: Function) -> dict[str, int]:
    """allocation pragmas of `fn`: callee -> instance limit."""
    out = {}
    for p in fn.pragmas:
        if p.kind == "allocation" and "limit" in p.args and \
                ("function" in p.flags or p.args.get("type") == "function"):
            for name in p.args.get("instances", "").split(","):
                if name.strip():
                    out[name.strip()] = int(p.args["limit"])
    return out


def instances(cpp, top: str | None = None) -> dict[str, int]:
    """RTL instances of every function reachable from `top` (the rule in the module
    docstring)."""
    prog = _program(cpp)
    top = prog.function(top).name
    cache = prog.cache.setdefault("instances", {})
    if top in cache:
        return cache[top]
    count: dict[str, float] = {top: 1}
    for name in _order(prog, top):
        fn = prog.functions[name]
        sites: Counter = Counter()
        for call, mult in _calls(fn):
            if call.callee in prog.functions:
                sites[call.callee] += mult
        limits = _limits(fn)
        for callee, k in sites.items():
            count[callee] = count.get(callee, 0) + count.get(name, 0) * \
                min(k, limits.get(callee, k))
    cache[top] = {k: int(v) for k, v in count.items()}
    return cache[top]


def _callers(prog: Program, names: list[str]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for name in names:
        for call, _ in _calls(prog.functions[name]):
            out[call.callee].add(name)
    return out


# ----------------------------------------------------------------------- multipliers
def _straight(body: list, mult: float = 1.0):
    """(Stmt, multiplicity) in program order; an unrolled loop multiplies its body."""
    for node in body:
        if isinstance(node, Stmt):
            yield node, mult
        elif isinstance(node, Loop):
            u = node.unroll
            if u == 0:
                u = trip(node, {}) or 1
            yield from _straight(node.body, mult * (u or 1))
        elif isinstance(node, If):
            yield from _straight(node.then, mult)
            yield from _straight(node.orelse, mult)
        elif isinstance(node, While):
            yield from _straight(node.body, mult)


def multipliers(fn: Function) -> list[dict]:
    """The multiplies of `fn` with their true operand widths, packed operand fields and
    MACs (see the module docstring). Widths in bits."""
    width: dict[str, int] = {}
    fields: dict[str, tuple] = {}
    origin: dict[str, int] = {}
    out: list[dict] = []

    def bits(name):
        v = fn.vars.get(name)
        return v.type.bits if v else 64

    def w(name):
        return width.get(name, bits(name))

    for st, mult in _straight(fn.body):
        t = st.target
        if t is None:
            continue
        decl = st.decl.bits if st.decl else bits(t)
        if st.op == "binop" and st.binop == "*" and len(st.operands) == 2:
            a, b = st.operands
            v = fn.vars.get(a)
            out.append({"line": st.line, "a_bits": w(a), "b_bits": w(b), "product_bits": decl,
                        "a_fields": [hi - lo + 1 for hi, lo in sorted(fields.get(a, ()))],
                        "b_fields": [hi - lo + 1 for hi, lo in sorted(fields.get(b, ()))],
                        "float": bool(v and v.type.is_float), "count": mult,
                        "results": set()})
            width[t], fields[t], origin[t] = decl, (), len(out) - 1
            continue
        if st.op == "copy" and st.src is not None:
            if st.src in origin and decl < w(st.src):
                out[origin[st.src]]["results"].add((decl - 1, 0))  # the product's low bits
            width[t] = min(decl, w(st.src))
            fields[t] = fields.get(st.src, ())
            if st.src in origin:
                origin[t] = origin[st.src]
            else:
                origin.pop(t, None)
            continue
        if st.op == "slice_store":
            if st.bits:
                fields[t] = tuple(sorted(set(fields.get(t, ())) | {st.bits}))
            continue
        if st.op == "binop" and len(st.operands) in (1, 2):
            # Arithmetic packing (WP486's form): an operand built as (x << s) + y holds x
            # in bits s.. and y below; a product read back as its low s bits (a narrowing
            # copy) and as (p - low) >> s gives two results.
            shift = _shift(st)
            if st.binop == "<<" and shift is not None and len(st.operands) == 1:
                x = st.operands[0]
                f = fields.get(x) or ((w(x) - 1, 0),)
                fields[t] = tuple((hi + shift, lo + shift) for hi, lo in f)
                width[t] = decl
                origin.pop(t, None)
                continue
            if st.binop in ("+", "|") and len(st.operands) == 2 and any(
                    fields.get(o) for o in st.operands):
                parts = set()
                for o in st.operands:
                    parts |= set(fields.get(o) or ((w(o) - 1, 0),))
                fields[t], width[t] = tuple(sorted(parts)), decl
                origin.pop(t, None)
                continue
            src = next((origin[o] for o in st.operands if o in origin), None)
            if src is not None and st.binop == "-":
                origin[t], width[t], fields[t] = src, decl, ()
                continue
            if src is not None and st.binop == ">>" and shift is not None:
                out[src]["results"].add((decl - 1, shift))
                width[t], fields[t] = decl, ()
                origin.pop(t, None)
                continue
        origin_src = origin.get(st.src) if st.op == "slice" else None
        if origin_src is not None and st.bits:
            out[origin_src]["results"].add(st.bits)
        if st.op == "slice" and st.bits:
            width[t] = min(decl, st.bits[0] - st.bits[1] + 1)
        elif st.op in ("load", "read") and st.src in fn.vars:
            width[t] = min(decl, fn.vars[st.src].type.bits)
        else:
            width[t] = decl
        fields[t] = ()
        origin.pop(t, None)
    for m in out:
        m["macs"] = max(1, len(m.pop("results")))
    return out


def _shift(st) -> int | None:
    """The constant shift amount of `x << s` / `x >> s`, else None."""
    m = re.search(r"(<<|>>)\s*(\d+)\s*;?\s*$", st.rhs)
    return int(m.group(2)) if m else None


# -------------------------------------------------------------------------- describe
def describe(cpp, top: str | None = None) -> dict:
    """The hardware the C++ describes, from the call graph rooted at `top` (default: the
    function Allo marks as top). Keys are explained in the module docstring."""
    prog = _program(cpp)
    topf = prog.function(top)
    count = instances(prog, topf.name)
    names = _order(prog, topf.name)
    mults = {n: multipliers(prog.functions[n]) for n in names}
    return {
        "top": topf.name,
        "lines": prog.lines,
        "params": [{"name": p.name, "type": p.type.name, "shape": list(p.shape),
                    "kind": p.kind} for p in topf.params],
        "functions": len(names),
        "instances": {n: count.get(n, 0) for n in names},
        "inline": sorted(n for n in names if prog.functions[n].inline),
        "meshes": _meshes(prog, names, count, mults),
        "multipliers": {
            "total": int(sum(m["count"] * count.get(n, 0) for n in names for m in mults[n])),
            "per_function": {n: mults[n] for n in names if mults[n]},
        },
        "dataflow": _dataflow(prog, names),
        "m_axi": _m_axi(topf),
        "storage": _storage(prog, names, count),
        "copied_on_chip": _copies(prog, topf, names),
    }


def _meshes(prog: Program, names: list[str], count: dict, mults: dict) -> list[dict]:
    callers = _callers(prog, names)
    groups: dict[tuple[str, str], dict[tuple[int, int], str]] = defaultdict(dict)
    for n in names:
        m = _PE.match(n)
        if m and mults[n]:
            for parent in sorted(callers.get(n, ())):
                groups[(parent, m.group(1))][(int(m.group(2)), int(m.group(3)))] = n
    out = []
    for (parent, pe), cells in sorted(groups.items()):
        cols = max(j for j, _ in cells) + 1
        rows = max(i for _, i in cells) + 1
        first = cells.get((0, 0), next(iter(cells.values())))
        pe_mults = mults[first]
        out.append({"parent": parent, "pe": pe, "rows": rows, "cols": cols,
                    "pes": len(cells), "complete": len(cells) == rows * cols,
                    "instances": min(count.get(n, 0) for n in cells.values()),
                    "macs_per_pe": int(sum(m["macs"] * m["count"] for m in pe_mults)),
                    "multipliers_per_pe": [{k: v for k, v in m.items() if k != "line"}
                                           for m in pe_mults]})
    return out


def _dataflow(prog: Program, names: list[str]) -> list[dict]:
    out = []
    for n in names:
        fn = prog.functions[n]
        regions = [(n, fn.body)] if fn.dataflow else []
        regions += [(f"{n}/{node.name}", node.body) for node, _ in walk(fn.body)
                    if isinstance(node, Loop) and node.dataflow]
        for where, body in regions:
            procs = [node for node in body if isinstance(node, (Call, Loop, If, While))]
            rw = [effects(prog, fn, [p]) for p in procs]
            streams, buffers = [], []
            for v in fn.vars.values():
                if v.ref:
                    continue
                prod_ = [node_name(p) for p, (_, w) in zip(procs, rw)
                         if any(c[0] == v.name for c in w)]
                cons = [node_name(p) for p, (r, _) in zip(procs, rw)
                        if any(c[0] == v.name for c in r)]
                if v.stream:
                    streams.append({"name": v.name, "type": v.type.name, "count": v.elements,
                                    "depth": v.depth or 2, "length": list(v.logical),
                                    "producers": prod_, "consumers": cons})
                elif v.is_array and prod_ and cons and not v.param:
                    buffers.append({"name": v.name, "type": v.type.name,
                                    "shape": list(v.shape), "producers": prod_,
                                    "consumers": cons})
            out.append({"region": where, "processes": [node_name(p) for p in procs],
                        "streams": streams, "buffers": buffers})
    return out


def _m_axi(topf: Function) -> dict:
    ports = []
    for p in topf.pragmas:
        if p.kind == "interface" and "m_axi" in (p.flags + (p.args.get("mode", ""),)):
            var = topf.vars.get(p.args.get("port", ""))
            ports.append({"port": p.args.get("port", ""), "bundle": p.args.get("bundle", "gmem"),
                          "offset": p.args.get("offset", ""),
                          "bits": var.type.bits if var else None})
    bundles: dict[str, dict] = {}
    for port in ports:
        b = bundles.setdefault(port["bundle"], {"ports": [], "width_bits": 0})
        b["ports"].append(port["port"])
        b["width_bits"] = max(b["width_bits"], port["bits"] or 0)
    return {"ports": ports, "bundles": bundles, "count": len(bundles),
            "max_width_bits": max((b["width_bits"] for b in bundles.values()), default=0)}


def _storage(prog: Program, names: list[str], count: dict) -> dict:
    arrays, fifo_bytes = [], 0.0
    for n in names:
        k = count.get(n, 0)
        for v in prog.functions[n].locals:
            if v.ref or not v.shape:
                continue
            bits = v.type.bits * v.elements
            if v.stream:
                fifo_bytes += bits * (v.depth or 2) * k / 8
                continue
            arrays.append({"function": n, "name": v.name, "type": v.type.name,
                           "shape": list(v.shape), "bits": bits, "instances": k,
                           "bytes": bits * k / 8, "registers": v.registers,
                           "impl": v.storage})
    arrays.sort(key=lambda a: -a["bytes"])
    return {"arrays": arrays, "bytes": sum(a["bytes"] for a in arrays),
            "fifo_bytes": fifo_bytes}


def _regions(fn: Function, body: list, depth: int = 0):
    """Copy regions: each call, and each loop nest without a call, with its loop depth."""
    for node in body:
        if isinstance(node, Call):
            yield node, depth
        elif isinstance(node, (Loop, While)):
            if any(isinstance(x, Call) for x, _ in walk(node.body)):
                yield from _regions(fn, node.body, depth + 1)
            else:
                yield node, depth
        elif isinstance(node, If):
            yield from _regions(fn, node.then, depth)
            yield from _regions(fn, node.orelse, depth)


def _copy_pairs(prog: Program, fn: Function, nodes: list) -> set[tuple[str, str]]:
    """(source, destination) variables of `nodes` where an element loaded from the source
    is stored unchanged (through copies and casts only) into the destination; a callee's
    pairs fall on the caller's arguments. Computing from the value is not copying."""
    pairs: set[tuple[str, str]] = set()
    origin: dict[str, str] = {}
    for node, _ in walk(nodes):
        if isinstance(node, Stmt):
            if node.op in ("load", "read"):
                ch = resolve(fn, node.src + node.index)
                if ch:
                    origin[node.target] = ch[0]
            elif node.op == "copy" and node.src in origin:
                origin[node.target] = origin[node.src]
            elif node.op in ("store", "write"):
                value = node.rhs.strip()
                ch = resolve(fn, node.target + node.index)
                if ch and value in origin:
                    pairs.add((origin[value], ch[0]))
            elif node.target is not None:
                origin.pop(node.target, None)
        elif isinstance(node, Call) and node.callee in prog.functions:
            callee = prog.functions[node.callee]
            cache = prog.cache.setdefault("copies", {})
            if callee.name not in cache:
                cache[callee.name] = set()  # guards against a recursive call graph
                cache[callee.name] = _copy_pairs(prog, callee, callee.body)
            bound = {p.name: resolve(fn, a) for p, a in zip(callee.params, node.args)}
            for src, dst in cache[callee.name]:
                if bound.get(src) and bound.get(dst):
                    pairs.add((bound[src][0], bound[dst][0]))
    return pairs


def _copies(prog: Program, topf: Function, names: list[str]) -> list[dict]:
    flows: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for p in topf.params:
        if p.is_array:
            flows[topf.name][p.name].add(p.name)
    size = {p.name: p.elements * p.type.bits for p in topf.params if p.shape}  # bits
    for n in names:  # callers first: bind each callee parameter to the top arguments
        fn = prog.functions[n]
        for call, _ in _calls(fn):
            callee = prog.functions.get(call.callee)
            if callee is None:
                continue
            for param, arg in zip(callee.params, call.args):
                ch = resolve(fn, arg)
                if ch and ch[0] in flows[n]:
                    for a in flows[n][ch[0]]:
                        flows[callee.name][param.name].add(a)
                        if param.shape and a not in size:
                            size[a] = param.elements * param.type.bits
    out = []
    for n in names:
        fn = prog.functions[n]
        for region, depth in _regions(fn, fn.body):
            for src, b in sorted(_copy_pairs(prog, fn, [region])):
                var = fn.vars.get(b)
                if var is None or var.param or var.stream or var.ref or not var.shape:
                    continue
                for a in sorted(flows[n].get(src, ())):
                    whole = var.elements * var.type.bits >= size[a] if a in size else \
                        (n == topf.name and depth == 0)
                    if whole:
                        out.append({"arg": a, "function": n, "into": var.name,
                                    "bytes": var.elements * var.type.bits / 8,
                                    "line": region.line})
    return out


# ----------------------------------------------------------------------------- check
def check(desc: dict, expect: dict) -> list[str]:
    """Differences between the described hardware and the design, one sentence each.

    `expect` (every key optional): rows, cols (the MAC grid of the array), macs_per_pe
    (1, or 2 for a DSP-packed PE: Allo packs two columns' weights into one multiply, so a
    packed mesh has cols / 2 PE columns), array_instances (1 for a temporal design),
    dataflow_top (bool), m_axi_bundles (count), max_port_bits (no bundle wider: narrower
    ports are not failures, Vitis HLS widens bursting ports itself), buffer_bytes (limit
    on the local arrays), not_on_chip (top arguments, by C++ name or position, that must
    stay in DRAM).
    """
    unknown = set(expect) - set(EXPECT_KEYS)
    if unknown:
        raise InputError(f"unknown expectation(s) {', '.join(sorted(unknown))}: "
                         f"known are {', '.join(EXPECT_KEYS)}")
    fails: list[str] = []
    meshes = desc["meshes"]
    if "array_instances" in expect:
        n = sum(m["instances"] for m in meshes)
        if n != expect["array_instances"]:
            where = "; ".join(f"{m['pe']} mesh in {m['parent']} x{m['instances']}"
                              for m in meshes) or "no unfolded PE mesh"
            fails.append(f"array instances: expected {expect['array_instances']}, found {n} "
                         f"({where})")
    if "rows" in expect or "cols" in expect or "macs_per_pe" in expect:
        fails += _check_mesh(meshes, expect)
    if expect.get("dataflow_top") is not None:
        has = any(r["region"] == desc["top"] for r in desc["dataflow"])
        if has != bool(expect["dataflow_top"]):
            fails.append(f"dataflow: expected {'a' if expect['dataflow_top'] else 'no'} "
                         f"dataflow region in the top function {desc['top']}, found "
                         f"{'one' if has else 'none'}")
    ax = desc["m_axi"]
    if "m_axi_bundles" in expect and ax["count"] != expect["m_axi_bundles"]:
        names = ", ".join(sorted(ax["bundles"])) or "no m_axi interface pragma (the plain " \
            "vhls text has none: read the Vitis project's kernel.cpp)"
        fails.append(f"m_axi: expected {expect['m_axi_bundles']} bundle(s), found "
                     f"{ax['count']} ({names})")
    if "max_port_bits" in expect:
        wide = {b: v["width_bits"] for b, v in ax["bundles"].items()
                if v["width_bits"] > expect["max_port_bits"]}
        if wide:
            fails.append(f"m_axi: expected ports at most {expect['max_port_bits']} bits wide, "
                         f"found " + ", ".join(f"{b} {w} bits" for b, w in sorted(wide.items())))
    if "buffer_bytes" in expect and desc["storage"]["bytes"] > expect["buffer_bytes"]:
        top3 = ", ".join(f"{a['function']}.{a['name']} {a['bytes']:.0f} B"
                         for a in desc["storage"]["arrays"][:3])
        fails.append(f"on-chip buffers: expected at most {expect['buffer_bytes']:.0f} B, "
                     f"found {desc['storage']['bytes']:.0f} B (largest: {top3})")
    params = [p["name"] for p in desc["params"]]
    for a in expect.get("not_on_chip", ()):
        name = params[a] if isinstance(a, int) and 0 <= a < len(params) else a
        if name not in params:
            raise InputError(f"not_on_chip: the top {desc['top']} has no parameter {a!r} "
                             f"(it has {', '.join(params)})")
        for c in desc["copied_on_chip"]:
            if c["arg"] == name:
                fails.append(f"weights on chip: expected argument {name} to stay in DRAM, "
                             f"found it copied whole into {c['function']}.{c['into']} "
                             f"({c['bytes']:.0f} B, line {c['line']})")
    return fails


def _check_mesh(meshes: list[dict], expect: dict) -> list[str]:
    macs = expect.get("macs_per_pe", 1)
    want = f"{expect.get('rows', '?')} x {expect.get('cols', '?')} MACs"
    if not meshes:
        return [(f"array: expected a {want} mesh, found no unfolded PE mesh (no functions "
                 "named <pe>_<j>_<i> containing a multiply)")]
    fails = []
    for m in meshes:
        got_cols = m["cols"] * m["macs_per_pe"]
        if ("rows" in expect and m["rows"] != expect["rows"]) or \
                ("cols" in expect and got_cols != expect["cols"]) or not m["complete"]:
            fails.append(f"array: expected a {want}, found {m['rows']} x {got_cols} MACs "
                         f"({m['rows']} x {m['cols']} {m['pe']} PEs in {m['parent']} at "
                         f"{m['macs_per_pe']} MAC/PE{'' if m['complete'] else ', incomplete'})")
        if "macs_per_pe" in expect and m["macs_per_pe"] != macs:
            mm = m["multipliers_per_pe"]
            what = ", ".join(f"{x['a_bits']}x{x['b_bits']}->{x['product_bits']} bits"
                             for x in mm)
            fails.append(f"packing: expected {macs} MAC(s) per PE, found {m['macs_per_pe']} "
                         f"({m['pe']}: {len(mm)} multiply {what})")
    return fails
