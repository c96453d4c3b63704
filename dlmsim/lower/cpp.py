"""Reading the HLS C++ that Allo emits back into a program tree.

`parse(text)` reads the subset of C++ that Allo's EmitVivadoHLS writes
(`str(s.build(target="vhls"))`, or the kernel.cpp of a `target="vitis_hls"` project, whose
top takes pointers with `#pragma HLS interface m_axi` lines): functions and their
parameters (arrays with element type and shape, `hls::stream` references, scalars,
pointers), local arrays, scalars and stream aliases, `for` loops with their bounds and
labels, pragmas (pipeline II, unroll [factor], dataflow, stream depth, array_partition,
bind_storage, interface, allocation, inline), calls with their arguments, if/else and
`while (true)` blocks, and one `Stmt` per statement, classified (load, store, stream read
or write, copy, binary operation, bit-slice read or write, ...).

It is a line-oriented reader, not a C++ front end: it relies on what Allo's emitter does
(one statement per line, a function signature with one parameter per line closed by
`) {`, one pragma per line, callees defined before callers). Anything else is an
`InputError` naming the line. structure.py and latency.py interpret the tree.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from functools import lru_cache
from math import prod

from dlmsim.errors import InputError

# Compiled once: the reader runs them on every line of files of 100k lines.
_TYPE_START = re.compile(r"\s*(?:const\s+)?(?:u?int|ap_|hls::|float|double|half|bool|char|"
                         r"short|long|unsigned|size_t)")
_STDINT = re.compile(r"(u?)int(\d+)_t")
_AP_TYPE = re.compile(r"ap_(u?)(int|fixed)<\s*(\d+)\s*(?:,[^>]*)?>")
_HLS_VECTOR = re.compile(r"hls::vector<\s*(.+?)\s*,\s*(\d+)\s*>")
_TYPE_HEAD = re.compile(r"(?:const\s+)?(?:unsigned\s+int|long\s+long|[A-Za-z_][\w:]*)")
_TYPE_WORDS = re.compile(r"ap_u?(?:int|fixed)<[^>]*>|hls::\w+")
_CONST = re.compile(r"-?\d+(\.\d*)?([eE][-+]?\d+)?[fFuUlL]*|true|false")
_SHAPE_NOTE = re.compile(r"/\*\s*\w+((?:\[\d+\])*)\s*\*/")
_ANY_BLOCK_COMMENT = re.compile(r"/\*.*?\*/")
_NAME_DIMS = re.compile(r"(\w+)((?:\[\d+\])*)$")
_IF = re.compile(r"if\s*\((.*)\)\s*\{$")
_WHILE = re.compile(r"while\s*\(\s*(true|1)\s*\)\s*\{$")
_BREAK_IF = re.compile(r"if\s*\(!\(.*\)\)\s*break$")
_DECL_NAME = re.compile(r"(?:&|\*|\(\*)?\s*\w")
_STREAM_WRITE = re.compile(r"^([\w.]+(?:\[[^\]]*\])*)\.write\((.*)\)$")
_CALL_STMT = re.compile(r"^(\w+)\((.*)\)$")
_COMPARE_FIRST = re.compile(r"^[^=]*[<>!=]=")
_DECLARATOR = re.compile(r"^[&*]?\s*(?:\(\*\s*)?(\w+)\)?((?:\[\d+\])*)\s*(?:=\s*(.*))?$")
_PTR_CAST = re.compile(r"^\(.*?\(\*\)[\[\]\d]*\)")
_STREAM_READ = re.compile(r"^([\w]+(?:\[[^\]]*\])*)\.read\(\)$")
_WORD = re.compile(r"\w+")
_SUBSCRIPTED = re.compile(r"(\w+)((?:\[[^\]]*\])+)")
_FUNC_EXPR = re.compile(r"^([\w:]+)\s*\((.*)\)$")
_UNARY = re.compile(r"^[-!~]\s*(\w+)$")
_SUBSCRIPT = re.compile(r"\[([^\]]*)\]")
_INT = re.compile(r"-?\d+")
_NOT = re.compile(r"!(?!=)")
_TERNARY = re.compile(r"(\S+)\s*\?\s*(\S+)\s*:\s*(\S+)")
_BOOL = re.compile(r"\b(true|false)\b")
_ACCESS = re.compile(r"^(\w+)((?:\[[^\]]*\])*)$")
_ACCESS_HEAD = re.compile(r"^(\w+)((?:\[[^\]]*\])*)")

__all__ = ["CType", "Call", "Chan", "Function", "If", "Loop", "Pragma", "Program", "Stmt", "Var",
           "While", "ctype", "effects", "evaluate", "node_name", "overlaps", "param_modes", "parse",
           "parse_index", "resolve", "trip", "walk"]


# ------------------------------------------------------------------------------- types
@dataclass(frozen=True)
class CType:
    """An element type: `kind` is int, uint, fixed, ufixed, float or bool; `bits` its width."""

    name: str
    kind: str
    bits: int

    @property
    def is_float(self) -> bool:
        return self.kind == "float"


_FIXED_INT = {"bool": ("bool", 1), "char": ("int", 8), "short": ("int", 16), "int": ("int", 32),
              "unsigned": ("uint", 32), "unsigned int": ("uint", 32), "long": ("int", 64),
              "long long": ("int", 64), "size_t": ("uint", 64), "half": ("float", 16),
              "float": ("float", 32), "double": ("float", 64)}


@lru_cache(maxsize=4096)
def ctype(text: str) -> CType | None:
    """The element type named by `text` (`int8_t`, `ap_int<33>`, `ap_fixed<16, 8>`,
    `float`, `hls::stream< int8_t >` -> its element), or None when it is not a type."""
    if not _TYPE_START.match(text):
        return None
    t = " ".join(text.replace("const ", "").split())
    if t.startswith("hls::stream<") and t.endswith(">"):
        return ctype(t[len("hls::stream<"):-1].strip())
    if t in _FIXED_INT:
        kind, bits = _FIXED_INT[t]
        return CType(t, kind, bits)
    m = _STDINT.fullmatch(t)
    if m:
        return CType(t, "uint" if m.group(1) else "int", int(m.group(2)))
    m = _AP_TYPE.fullmatch(t)
    if m:
        return CType(t, ("u" if m.group(1) else "") + m.group(2), int(m.group(3)))
    m = _HLS_VECTOR.fullmatch(t)
    if m and ctype(m.group(1)):
        e = ctype(m.group(1))
        return CType(t, e.kind, e.bits * int(m.group(2)))
    return None


def _take_type(s: str) -> tuple[str, str] | None:
    """Split `s` into a leading type (balanced <...>) and the rest; None if no type leads."""
    m = _TYPE_HEAD.match(s)
    if not m:
        return None
    i = m.end()
    if i < len(s) and s[i:].lstrip().startswith("<"):
        i = s.index("<", i)
        depth = 0
        for j in range(i, len(s)):
            depth += {"<": 1, ">": -1}.get(s[j], 0)
            if depth == 0:
                i = j + 1
                break
        else:
            return None
    t = s[:i].strip()
    return (t, s[i:].strip()) if ctype(t) else None


# ------------------------------------------------------------------------------ nodes
@dataclass
class Var:
    """A parameter or local: `shape` are its C array dimensions (for an array of streams,
    the streams'), `logical` the dimensions Allo writes in a /* v[8] */ comment (a stream's
    length), `ref` the expression an alias (`&v = A_fifo[0][1]`) refers to."""

    name: str
    type: CType
    shape: tuple[int, ...] = ()
    stream: bool = False
    pointer: bool = False
    param: bool = False
    ref: str | None = None
    logical: tuple[int, ...] = ()
    line: int = 0
    depth: int | None = None  # FIFO depth (stream pragma)
    partition: dict[int, str] = field(default_factory=dict)  # dim (1-based, 0 = all) -> kind
    storage: str | None = None  # bind_storage impl

    @property
    def is_array(self) -> bool:
        return bool(self.shape) or self.pointer

    @property
    def elements(self) -> int:
        return prod(self.shape) if self.shape else 1

    @property
    def kind(self) -> str:
        return "stream" if self.stream else "pointer" if self.pointer else \
            "array" if self.shape else "scalar"

    @property
    def registers(self) -> bool:
        """Completely partitioned in every dimension: registers, not a memory."""
        if 0 in self.partition:
            return self.partition[0] == "complete"
        return bool(self.shape) and all(self.partition.get(d + 1) == "complete" or n == 1
                                        for d, n in enumerate(self.shape))


@dataclass
class Pragma:
    kind: str  # pipeline, unroll, dataflow, stream, array_partition, interface, ...
    args: dict[str, str]
    flags: tuple[str, ...]
    line: int


@dataclass
class Stmt:
    """One statement. `op`: decl, const, copy, load, store, read (stream), write (stream),
    binop, slice (bit-range read), slice_store, call (expression call such as abs()),
    select, break, other. `target` is the variable written (an array's or stream's base
    name), `src` the array/stream/variable read by load/read/slice, `operands` the
    identifiers the statement reads."""

    line: int
    op: str
    target: str | None = None
    src: str | None = None
    binop: str = ""
    operands: tuple[str, ...] = ()
    index: str = ""  # subscript text of a load/store/stream access
    bits: tuple[int, int] | None = None  # (hi, lo) of a constant bit slice
    func: str = ""  # callee of an expression call
    rhs: str = ""
    decl: CType | None = None  # type the statement declares its target with


@dataclass
class Call:
    line: int
    callee: str
    args: list[str]


@dataclass
class Loop:
    line: int
    var: str
    lo: str
    hi: str
    step: int
    label: str
    body: list = field(default_factory=list)
    pragmas: list[Pragma] = field(default_factory=list)

    def pragma(self, kind: str) -> Pragma | None:
        return next((p for p in self.pragmas if p.kind == kind), None)

    @property
    def ii(self) -> int | None:
        p = self.pragma("pipeline")
        if p is None or "off" in p.flags:
            return None
        return int(p.args.get("ii", "1"))

    @property
    def unroll(self) -> int | None:
        """None: not unrolled; 0: fully unrolled; n: unrolled by n."""
        p = self.pragma("unroll")
        if p is None or "off" in p.flags:
            return None
        return int(p.args.get("factor", "0"))

    @property
    def dataflow(self) -> bool:
        return self.pragma("dataflow") is not None

    @property
    def name(self) -> str:
        return self.label or f"loop@{self.line}"


@dataclass
class If:
    line: int
    cond: str
    then: list = field(default_factory=list)
    orelse: list = field(default_factory=list)


@dataclass
class While:
    line: int
    body: list = field(default_factory=list)


@dataclass
class Function:
    name: str
    line: int
    params: list[Var] = field(default_factory=list)
    body: list = field(default_factory=list)
    pragmas: list[Pragma] = field(default_factory=list)
    vars: dict[str, Var] = field(default_factory=dict)  # params and every declaration

    @property
    def dataflow(self) -> bool:
        return any(p.kind == "dataflow" for p in self.pragmas)

    @property
    def inline(self) -> bool:
        return any(p.kind == "inline" and "off" not in p.flags for p in self.pragmas)

    @property
    def locals(self) -> list[Var]:
        return [v for v in self.vars.values() if not v.param]


@dataclass
class Program:
    functions: dict[str, Function]
    top: str | None  # the function Allo marks "/// This is top function."
    lines: int
    cache: dict = field(default_factory=dict, repr=False)  # analyses memoised per program

    def function(self, name: str | None) -> Function:
        name = name or self.top
        if name is None:
            raise InputError("the C++ names no top function (no '/// This is top function.' "
                             "line): pass top")
        if name not in self.functions:
            raise InputError(f"function '{name}' is not defined in the C++ (defined: "
                             f"{', '.join(sorted(self.functions)[:8])}"
                             f"{', ...' if len(self.functions) > 8 else ''})")
        return self.functions[name]


def node_name(node) -> str:
    """A loop's label (or loop@line), a call's callee, if@line / while@line."""
    return node.callee if isinstance(node, Call) else \
        node.name if isinstance(node, Loop) else f"{type(node).__name__.lower()}@{node.line}"


def walk(body: list, depth: int = 0):
    """Every node of `body` in program order, with its loop-nesting depth."""
    for node in body:
        yield node, depth
        if isinstance(node, (Loop, While)):
            yield from walk(node.body, depth + 1)
        elif isinstance(node, If):
            yield from walk(node.then, depth)
            yield from walk(node.orelse, depth)


# ------------------------------------------------------------------------------ parser
_COMMENT = re.compile(r"//.*$")
_BLOCK = re.compile(r"/\*\s*([^*]*?)\s*\*/")
_FOR = re.compile(r"(?:(\w+)\s*:\s*)?for\s*\((?:[\w<>:, ]+?\s+)?(\w+)\s*=\s*(.+?);\s*\2\s*<\s*(.+?);"
                  r"\s*\2\s*(\+\+|\+=\s*(\d+))\s*\)\s*\{$")
_FUNC = re.compile(r"void\s+(\w+)\s*\((.*)$")
_IDENT = re.compile(r"[A-Za-z_]\w*")
_DIMS = re.compile(r"\[(\d+)\]")
_SLICE = re.compile(r"^(\w+)\((-?\d+),\s*(-?\d+)\)$")
_KEYWORDS = {"if", "for", "while", "return", "break", "true", "false", "sizeof", "float",
             "double", "int", "bool", "half", "min", "max"}
_BINOPS = ("<<", ">>", "==", "!=", "<=", ">=", "&&", "||", "+", "-", "*", "/", "%", "&", "|",
           "^", "<", ">")
_BIN = re.compile(r"^(\S+?)\s+(" + "|".join(re.escape(o) for o in _BINOPS) + r")\s+(\S+)$")


_CAST = re.compile(r"\(\s*((?:const\s+)?[\w:]+(?:<[^()]*?>)?)\s*(?:\(\*\)[\[\]\d]*)?\s*\)")


def _drop_casts(text: str) -> str:
    """`(ap_int<17>)v66` -> ` v66`; a parenthesised variable such as `(v5)` is kept."""
    return _CAST.sub(lambda m: " " if ctype(m.group(1)) else m.group(0), text)


def _names(text: str) -> tuple[str, ...]:
    """Identifiers read by an expression (type names and casts dropped)."""
    text = _TYPE_WORDS.sub(" ", _drop_casts(text))
    out = []
    for m in _IDENT.finditer(text):
        w = m.group()
        if w in _KEYWORDS or w in _FIXED_INT or w.endswith("_t") or \
                text[m.end():m.end() + 1] == "(":
            continue
        if m.start() > 0 and text[m.start() - 1] == ".":
            continue
        out.append(w)
    return tuple(dict.fromkeys(out))


def _strip_cast(s: str) -> str:
    """Drop a leading cast and parentheses around the whole expression."""
    s = s.strip()
    m = _CAST.match(s)
    if m and ctype(m.group(1)) and s[m.end():].strip():
        s = s[m.end():].strip()
    while s.startswith("(") and s.endswith(")") and _balanced(s[1:-1]):
        s = s[1:-1].strip()
    return s


def _balanced(s: str) -> bool:
    depth = 0
    for ch in s:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0


def _is_const(s: str) -> bool:
    return bool(_CONST.fullmatch(_strip_cast(s)))


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.functions: dict[str, Function] = {}
        self.top: str | None = None

    def fail(self, n: int, line: str, why: str):
        raise InputError(f"C++ line {n}: {why}: {line.strip()[:120]}")

    def run(self) -> Program:
        lines = self.text.splitlines()
        fn: Function | None = None
        stack: list = []  # open blocks: ("fn", body) | ("loop", Loop) | ("if", If) | ...
        sig: list[str] | None = None
        top_next = False
        for n, raw in enumerate(lines, 1):
            if raw.lstrip().startswith("///") and "top function" in raw:
                top_next = True
                continue
            shape_note = _BLOCK.search(raw)
            line = _COMMENT.sub("", _BLOCK.sub("", raw)).strip()
            if not line:
                continue
            if sig is not None:  # inside a multi-line signature
                if line.startswith(")"):
                    fn.params = [self.param(p, n) for p in sig if p]
                    fn.vars = {v.name: v for v in fn.params}
                    sig = None
                    if line.endswith(";"):  # a declaration, not a definition
                        fn = None
                        continue
                    stack = [("fn", fn.body)]
                    self.functions[fn.name] = fn
                    continue
                sig.append(line.rstrip(",") + (f" /*{shape_note.group(1)}*/" if shape_note
                                               else ""))
                continue
            if fn is None or not stack:
                m = _FUNC.match(line)
                if m:
                    fn = Function(m.group(1), n)
                    if top_next:
                        self.top = fn.name
                        top_next = False
                    rest = m.group(2).strip()
                    if rest.startswith(")") or rest.endswith(("{", ";")):
                        params = rest.rsplit(")", 1)[0]
                        sig = [p.strip() for p in params.split(",")] if params.strip() else []
                        fn.params = [self.param(p, n) for p in sig if p]
                        fn.vars = {v.name: v for v in fn.params}
                        sig = None
                        if rest.endswith(";"):
                            fn = None
                            continue
                        stack = [("fn", fn.body)]
                        self.functions[fn.name] = fn
                    else:
                        sig = [rest.rstrip(",")] if rest else []
                    continue
                if line.startswith(("#", "using ", "extern ", "}", "namespace ", "typedef ",
                                    "template", "static ", "const ")) or line in ("{",):
                    continue
                self.fail(n, raw, "not a function of the Allo HLS C++ subset")
            self.body_line(fn, stack, line, n, raw, shape_note)
            if not stack:
                fn = None
        if sig is not None or stack:
            raise InputError("the C++ ends inside a function: the file is truncated")
        return Program(self.functions, self.top, len(lines))

    # ----------------------------------------------------------------- declarations
    def param(self, text: str, n: int) -> Var:
        note = _SHAPE_NOTE.search(text)
        text = _ANY_BLOCK_COMMENT.sub("", text).strip()
        split = _take_type(text)
        if split is None:
            raise InputError(f"C++ line {n}: cannot read parameter '{text}'")
        t, rest = split
        stream = t.replace(" ", "").startswith("hls::stream<")
        pointer = rest.startswith("*")
        rest = rest.lstrip("*&").strip()
        m = _NAME_DIMS.match(rest)
        if not m:
            raise InputError(f"C++ line {n}: cannot read parameter '{text}'")
        return Var(m.group(1), ctype(t), tuple(int(d) for d in _DIMS.findall(m.group(2))),
                   stream=stream, pointer=pointer, param=True, line=n,
                   logical=tuple(int(d) for d in _DIMS.findall(note.group(1))) if note else ())

    def body_line(self, fn: Function, stack: list, line: str, n: int, raw: str, note):
        kind, cur = stack[-1]
        body = self.target_list(stack)
        if line.startswith("#pragma"):
            self.pragma(fn, stack, line, n)
            return
        if line.startswith("}"):
            rest = line[1:].strip()
            if rest.startswith("else"):
                if kind != "if":
                    self.fail(n, raw, "else without if")
                if rest != "else {":
                    self.fail(n, raw, "only 'else {' is read")
                stack[-1] = ("else", cur)
                return
            stack.pop()
            return
        m = _FOR.match(line)
        if m:
            loop = Loop(n, m.group(2), m.group(3).strip(), m.group(4).strip(),
                        int(m.group(6) or 1), m.group(1) or "")
            body.append(loop)
            stack.append(("loop", loop))
            return
        if line.startswith("for"):
            self.fail(n, raw, "unreadable for loop")
        m = _IF.match(line)
        if m:
            node = If(n, m.group(1).strip())
            body.append(node)
            stack.append(("if", node))
            return
        if _WHILE.match(line):
            node = While(n)
            body.append(node)
            stack.append(("while", node))
            return
        if line == "{":
            stack.append(("block", body))
            return
        if not line.endswith(";"):
            self.fail(n, raw, "statement without ';'")
        stmt = line[:-1].strip()
        if _BREAK_IF.match(stmt) or stmt in ("break", "continue"):
            body.append(Stmt(n, "break", operands=_names(stmt)))
            return
        if stmt.startswith("return"):
            body.append(Stmt(n, "other", operands=_names(stmt[6:])))
            return
        node = self.statement(fn, stmt, n, raw, note)
        if node is not None:
            body.append(node)

    @staticmethod
    def target_list(stack: list) -> list:
        kind, cur = stack[-1]
        if kind in ("fn", "block"):
            return cur
        if kind == "else":
            return cur.orelse
        return cur.then if kind == "if" else cur.body

    def pragma(self, fn: Function, stack: list, line: str, n: int):
        words = line.split()
        if len(words) < 3 or words[1].upper() != "HLS":
            return  # another tool's pragma
        kind = words[2].lower()
        args: dict[str, str] = {}
        flags: list[str] = []
        for w in words[3:]:
            if "=" in w:
                k, v = w.split("=", 1)
                args[k.lower()] = v
            else:
                flags.append(w.lower())
        p = Pragma(kind, args, tuple(flags), n)
        if kind in ("pipeline", "unroll", "loop_tripcount", "loop_flatten", "dataflow") and \
                any(k == "loop" for k, _ in stack):
            loop = next(c for k, c in reversed(stack) if k == "loop")
            if kind != "dataflow" or stack[-1][0] == "loop":
                loop.pragmas.append(p)
                return
        fn.pragmas.append(p)
        var = fn.vars.get(args.get("variable", args.get("port", "")))
        if var is None:
            return
        if kind == "stream":
            var.depth = int(args.get("depth", "2"))
        elif kind == "array_partition":
            how = next((f for f in flags if f in ("complete", "cyclic", "block")),
                       args.get("type", "complete"))
            var.partition[int(args.get("dim", "0"))] = how
        elif kind == "bind_storage":
            var.storage = args.get("impl")

    def statement(self, fn: Function, s: str, n: int, raw: str, note) -> Stmt | Call | None:
        split = _take_type(s)
        if split is not None and _DECL_NAME.match(split[1]):
            return self.declaration(fn, split, s, n, raw, note)
        m = _STREAM_WRITE.match(s)
        if m:
            base, idx = self.base(m.group(1))
            return Stmt(n, "write", target=base, index=idx, operands=_names(m.group(2)) +
                        _names(idx), rhs=m.group(2))
        m = _CALL_STMT.match(s)
        if m and m.group(1) not in fn.vars:
            return Call(n, m.group(1), _split_args(m.group(2)))
        if "=" in s and not _COMPARE_FIRST.match(s):
            lhs, rhs = (x.strip() for x in s.split("=", 1))
            return self.assignment(fn, lhs, rhs, n, raw)
        return Stmt(n, "other", operands=_names(s), rhs=s)

    def declaration(self, fn, split, s, n, raw, note) -> Stmt | None:
        t, rest = split
        ty = ctype(t)
        stream = t.replace(" ", "").startswith("hls::stream<")
        ref = rest.startswith(("&", "(*"))
        m = _DECLARATOR.match(rest)
        if not m:
            self.fail(n, raw, "unreadable declaration")
        name, dims, init = m.group(1), m.group(2), m.group(3)
        shape = tuple(int(d) for d in _DIMS.findall(dims))
        if ref and init is not None and rest.startswith("(*"):
            init = _PTR_CAST.sub("", init).strip()
            shape = ()
        logical = ()
        if note is not None:
            logical = tuple(int(d) for d in _DIMS.findall(note.group(1)))
        var = Var(name, ty, shape, stream=stream, line=n, logical=logical,
                  ref=init.strip() if ref and init else None)
        fn.vars[name] = var
        if ref:
            return None
        if init is None:
            return Stmt(n, "decl", target=name, decl=ty)
        st = self.assignment(fn, name, init.strip(), n, raw)
        st.decl = ty
        return st

    @staticmethod
    def base(expr: str) -> tuple[str, str]:
        i = expr.find("[")
        return (expr, "") if i < 0 else (expr[:i], expr[i:])

    def assignment(self, fn: Function, lhs: str, rhs: str, n: int, raw: str) -> Stmt:
        m = _SLICE.match(lhs)
        if m:  # v(7, 0) = x: a bit-range write
            return Stmt(n, "slice_store", target=m.group(1), bits=(int(m.group(2)),
                        int(m.group(3))), operands=_names(rhs), rhs=rhs)
        target, idx = self.base(lhs)
        if idx and target in fn.vars and fn.vars[target].is_array:
            return Stmt(n, "store", target=target, index=idx,
                        operands=_names(rhs) + _names(idx), rhs=rhs)
        if idx:  # v[3] = b on a scalar: a single-bit write
            return Stmt(n, "slice_store", target=target, operands=_names(rhs) + _names(idx),
                        rhs=rhs)
        r = _strip_cast(rhs)
        m = _STREAM_READ.match(r)
        if m:
            base, ridx = self.base(m.group(1))
            return Stmt(n, "read", target=target, src=base, index=ridx, operands=(base,) +
                        _names(ridx), rhs=rhs)
        if _is_const(r):
            return Stmt(n, "const", target=target, rhs=rhs)
        if _WORD.fullmatch(r):
            return Stmt(n, "copy", target=target, src=r, operands=(r,), rhs=rhs)
        m = _SLICE.match(r)
        if m and m.group(1) in fn.vars:
            return Stmt(n, "slice", target=target, src=m.group(1), bits=(int(m.group(2)),
                        int(m.group(3))), operands=(m.group(1),), rhs=rhs)
        m = _SUBSCRIPTED.fullmatch(r)
        if m:
            var = fn.vars.get(m.group(1))
            if var is not None and not var.is_array:  # v[7] on a scalar: bit select
                return Stmt(n, "slice", target=target, src=m.group(1),
                            operands=_names(r), rhs=rhs)
            return Stmt(n, "load", target=target, src=m.group(1), index=m.group(2),
                        operands=_names(r), rhs=rhs)
        m = _BIN.match(r)
        if m:
            return Stmt(n, "binop", target=target, binop=m.group(2),
                        operands=_names(m.group(1)) + _names(m.group(3)), rhs=rhs)
        if "?" in r:
            return Stmt(n, "select", target=target, operands=_names(r), rhs=rhs)
        m = _FUNC_EXPR.match(r)
        if m:
            return Stmt(n, "call", target=target, func=m.group(1).split("::")[-1],
                        operands=_names(m.group(2)), rhs=rhs)
        m = _UNARY.match(r)
        if m:
            return Stmt(n, "binop", target=target, binop="neg", operands=(m.group(1),),
                        rhs=rhs)
        return Stmt(n, "other", target=target, operands=_names(r), rhs=rhs)


def _split_args(text: str) -> list[str]:
    out, depth, cur = [], 0, []
    for ch in text:
        if ch in "([<":
            depth += 1
        elif ch in ")]>":
            depth -= 1
        if ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    if "".join(cur).strip():
        out.append("".join(cur).strip())
    return out


def parse(text: str) -> Program:
    """The program tree of Allo-emitted HLS C++ (see the module docstring)."""
    if not text.strip():
        raise InputError("the C++ text is empty")
    return _Parser(text).run()


def parse_index(idx: str) -> tuple[int | None, ...]:
    """`[m][0]` -> (None, 0): constant subscripts, None where a subscript is a variable."""
    out = []
    for part in _SUBSCRIPT.findall(idx):
        part = part.strip()
        out.append(int(part) if _INT.fullmatch(part) else None)
    return tuple(out)


# ------------------------------------------------------------------------- evaluation
_ALLOWED = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.Name,
            ast.Constant, ast.Call, ast.Load, ast.IfExp, ast.operator, ast.unaryop,
            ast.boolop, ast.cmpop)


@lru_cache(maxsize=65536)
def _compile(expr: str):
    e = _drop_casts(_strip_cast(expr))
    e = e.replace("&&", " and ").replace("||", " or ").replace("/", "//")
    e = _NOT.sub(" not ", e)
    e = _TERNARY.sub(r"(\2 if \1 else \3)", e)
    e = _BOOL.sub(lambda m: m.group(1).capitalize(), e)
    try:
        tree = ast.parse(e.strip(), mode="eval")
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            return None
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and
                                               node.func.id in ("min", "max")):
            return None
    return compile(tree, "<c++ expression>", "eval")


def evaluate(expr: str, env: dict[str, float]) -> float | None:
    """The value of a C integer expression of names in `env` (None when a name is unknown
    or the expression is outside +, -, *, /, %, comparisons, &&, ||, !, the bitwise
    operators on whole numbers, min, max, ?:)."""
    code = _compile(expr)
    if code is None:
        return None
    glob = {"__builtins__": {}, "min": min, "max": max}
    try:
        v = eval(code, glob, env)
    except TypeError:  # a bitwise operator (`c0 | c1` of two bools): on whole numbers
        ints = {k: int(x) if isinstance(x, float) and x.is_integer() else x
                for k, x in env.items()}
        try:
            v = eval(code, glob, ints)
        except (NameError, ZeroDivisionError, TypeError):
            return None
    except (NameError, ZeroDivisionError):
        return None
    return float(v) if isinstance(v, (int, float, bool)) else None


# ------------------------------------------------------------------- data movement
Chan = tuple[str, tuple]  # (variable, constant subscripts with None where variable)


def resolve(fn: Function, expr: str) -> Chan | None:
    """The variable (and constant subscripts) an argument or access names, through
    stream/array aliases: `v428` with `&v428 = A_fifo[0][1]` -> ("A_fifo", (0, 1))."""
    expr = _strip_cast(expr)
    m = _ACCESS.match(expr)
    if not m:
        return None
    name, idx = m.group(1), parse_index(m.group(2))
    seen = set()
    while name in fn.vars and fn.vars[name].ref and name not in seen:
        seen.add(name)
        r = _ACCESS_HEAD.match(_strip_cast(fn.vars[name].ref))
        if not r:
            break
        name, idx = r.group(1), parse_index(r.group(2)) + idx
    if name not in fn.vars:
        return None
    return name, idx


def overlaps(a: Chan, b: Chan) -> bool:
    """Two accesses may touch the same element (None matches any subscript)."""
    return a[0] == b[0] and all(x is None or y is None or x == y for x, y in zip(a[1], b[1]))


def effects(program: Program, fn: Function, nodes: list) -> tuple[set[Chan], set[Chan]]:
    """(read, written) variables of `nodes` in `fn`, through calls (a callee parameter's
    reads and writes fall on the caller's argument)."""
    reads: set[Chan] = set()
    writes: set[Chan] = set()
    for node, _ in walk(nodes):
        if isinstance(node, Stmt):
            if node.op in ("load", "read"):
                ch = resolve(fn, node.src + node.index)
                if ch:
                    reads.add(ch)
            elif node.op in ("store", "write"):
                ch = resolve(fn, node.target + node.index)
                if ch:
                    writes.add(ch)
            for name in node.operands:
                if name in fn.vars and fn.vars[name].param and not fn.vars[name].is_array:
                    reads.add((name, ()))
        elif isinstance(node, Call):
            callee = program.functions.get(node.callee)
            modes = param_modes(program, callee) if callee else {}
            names = [p.name for p in callee.params] if callee else []
            for i, arg in enumerate(node.args):
                ch = resolve(fn, arg)
                if ch is None:
                    continue
                mode = modes.get(names[i], "r") if i < len(names) else "r"
                if "r" in mode:
                    reads.add(ch)
                if "w" in mode:
                    writes.add(ch)
    return reads, writes


def param_modes(program: Program, fn: Function) -> dict[str, str]:
    """Each parameter of `fn`: "r", "w", "rw" or "" (unused)."""
    cache = program.cache.setdefault("modes", {})
    if fn.name not in cache:
        cache[fn.name] = {}  # guards against a recursive call graph
        reads, writes = effects(program, fn, fn.body)
        r = {c[0] for c in reads}
        w = {c[0] for c in writes}
        cache[fn.name] = {p.name: ("r" if p.name in r else "") + ("w" if p.name in w else "")
                          for p in fn.params}
    return cache[fn.name]


def trip(loop: Loop, env: dict[str, float]) -> float | None:
    """Iterations of `loop` with its bounds evaluated in `env` (None if unresolved)."""
    lo, hi = evaluate(loop.lo, env), evaluate(loop.hi, env)
    if lo is None or hi is None:
        return None
    return max(0.0, -(-(hi - lo) // loop.step))
