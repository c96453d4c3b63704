"""ONNX graphs -> traces: bring your own model, exported from PyTorch (`onnx` package only).

Each node becomes the trace op of the same meaning, in the graph's (topological) order:
MatMul and Gemm with a weight initializer -> `linear` (a following Add of a bias
initializer is folded into it, as nn.Linear exports), between two activations -> `matmul`
(a following Mul/Div by a scalar constant becomes its `scale`, as attention exports);
Conv -> `conv2d`; Softmax over the last axis, LayerNormalization, Gelu, Tanh -> SFU
functions; Add / Mul -> `add` / `mul` (a constant operand, broadcast, is a weight: every
initializer is); Reshape, Flatten, Squeeze, Unsqueeze -> `reshape`; Transpose -> `transpose`;
Gather of an initializer table -> an embedding gather; the exact-GELU subgraph older
opsets export, x * 0.5 * (1 + Erf(x / sqrt 2)), -> `gelu`. Identity and Dropout pass their
input through. Nodes that only compute shapes (feeding Reshape's shape input and the like)
are not ops. Shapes come from the graph's value info, completed by ONNX shape inference
(with data propagation, so exported shape subgraphs resolve); initializers are weights.

Run settings (`load_workload(path, **overrides)` and the CLI's --set): `steps` (forward
passes per run, default 1), `batch` / `seq_len` (values for symbolic input dims named like
a batch or a sequence), `dim.<name>` (any symbolic dim), `map.<OpType>` (an SFU function
for an op type dlmsim does not know, or `skip` to pass its first input through).
"""

from __future__ import annotations

import difflib
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from dlmsim.errors import InputError
from dlmsim.workloads.ir import Op, Schedule, Tensor, Trace, TraceError
from dlmsim.workloads.vocab import SFU_FNS

# ONNX TensorProto element types -> trace dtypes.
DTYPES = {1: "fp32", 10: "fp16", 16: "bf16", 11: "fp32", 3: "int8", 2: "int8", 5: "int16",
          6: "int32", 7: "idx", 12: "int32", 13: "idx", 9: "int8"}
INDEX_TYPES = {6, 7, 12, 13}
BATCH_DIMS = {"batch", "batch_size", "n", "b", "bs"}
SEQ_DIMS = {"seq", "seq_len", "sequence", "sequence_length", "seqlen", "length", "l", "tokens"}
# Inputs of these op types that carry data (others carry shapes, axes, ...).
DATA_INPUTS = {"Reshape": (0,), "Expand": (0,), "Squeeze": (0,), "Unsqueeze": (0,),
               "Slice": (0,), "Tile": (0,), "Resize": (0,)}
PASS_THROUGH = {"Identity", "Dropout"}


def _onnx():
    try:
        import onnx  # optional: dlmsim[onnx]
    except ImportError:
        raise InputError("reading ONNX files needs the onnx package: "
                         "pip install 'dlmsim[onnx]'") from None
    return onnx


class _Graph:
    """The model with fixed input dims and inferred shapes, and lookups over it."""

    def __init__(self, path: Path, dims: dict[str, int]):
        onnx = _onnx()
        from google.protobuf.message import Error as ProtobufError  # onnx's dependency

        try:
            model = onnx.load(str(path))
        except (OSError, ProtobufError) as e:
            raise InputError(f"cannot read ONNX file {path}: {e.__class__.__name__}: "
                             f"{str(e).splitlines()[0] if str(e) else 'not an ONNX model'}"
                             ) from None
        g = model.graph
        init_names = {t.name for t in g.initializer}
        for vi in g.input:
            if vi.name in init_names:
                continue
            for k, d in enumerate(vi.type.tensor_type.shape.dim):
                if d.dim_value > 0:
                    continue
                name = d.dim_param
                value = dims.get(name) or dims.get(name.lower())
                if value is None:
                    raise InputError(f"{path}: input '{vi.name}' dim {k} is symbolic "
                                     f"('{name or '?'}'): give it with --set dim.{name or 'N'}=N")
                d.Clear()
                d.dim_value = int(value)
        try:
            model = onnx.shape_inference.infer_shapes(model, data_prop=True)
        except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError) as e:
            raise InputError(f"{path}: ONNX shape inference failed: {str(e).splitlines()[0]}"
                             ) from None
        from onnx import numpy_helper

        self.path, self.graph = path, model.graph
        self.init = {t.name: t for t in model.graph.initializer}
        for n in model.graph.node:
            if n.op_type == "Constant":
                for a in n.attribute:
                    if a.name == "value":
                        self.init[n.output[0]] = a.t
        self.arrays = {}
        self._numpy = numpy_helper.to_array
        self.types: dict[str, tuple[tuple[int, ...] | None, int]] = {}
        for vi in list(model.graph.input) + list(model.graph.value_info) + list(
                model.graph.output):
            tt = vi.type.tensor_type
            shape = tuple(d.dim_value for d in tt.shape.dim) if tt.HasField("shape") else None
            if shape is not None and not all(shape):
                shape = None
            self.types[vi.name] = (shape, tt.elem_type)
        for name, t in self.init.items():
            self.types[name] = (tuple(t.dims), t.data_type)

    def array(self, name: str):
        if name not in self.arrays:
            self.arrays[name] = self._numpy(self.init[name])
        return self.arrays[name]

    def shape(self, name: str, where: str) -> tuple[int, ...]:
        shape = self.types.get(name, (None, 0))[0]
        if shape is None:
            raise InputError(f"{self.path}: {where}: no static shape for '{name}' (shape "
                             "inference could not resolve it)")
        return shape if shape else (1,)

    def dtype(self, name: str) -> str:
        return DTYPES.get(self.types.get(name, (None, 1))[1], "fp32")

    def scalar(self, name: str) -> float | None:
        """The value of a one-element constant, else None."""
        if name not in self.init or math.prod(self.init[name].dims) != 1:
            return None
        return float(self.array(name).reshape(-1)[0])


def _data_nodes(graph) -> set[int]:
    """Indices of the nodes whose outputs reach a graph output through data inputs."""
    made = {o: i for i, n in enumerate(graph.node) for o in n.output}
    keep: set[int] = set()
    todo = [o.name for o in graph.output]
    while todo:
        i = made.get(todo.pop())
        if i is None or i in keep:
            continue
        keep.add(i)
        node = graph.node[i]
        use = DATA_INPUTS.get(node.op_type, range(len(node.input)))
        todo += [node.input[k] for k in use if k < len(node.input) and node.input[k]]
    return keep


class _Importer:
    def __init__(self, g: _Graph, mapping: dict[str, str]):
        self.g, self.mapping = g, mapping
        self.ops: list[Op] = []
        self.alias: dict[str, str] = {}  # pass-through outputs -> the tensor they stand for
        self.names: set[str] = set()
        self.done: set[str] = set()  # folded nodes' outputs already produced by another op
        consumers: dict[str, list] = {}
        for n in g.graph.node:
            for x in n.input:
                consumers.setdefault(x, []).append(n)
        self.consumers = consumers

    # ---- tensors --------------------------------------------------------------------
    def name(self, x: str) -> str:
        while x in self.alias:
            x = self.alias[x]
        return x

    def tensor(self, x: str, node, role: str | None = None) -> Tensor:
        x = self.name(x)
        if role is None:
            if x in self.g.init:
                role = "weight"
            elif self.g.types.get(x, (None, 1))[1] in INDEX_TYPES:
                role = "index"
            else:
                role = "activation"
        dt = "idx" if role == "index" else self.g.dtype(x)
        where = (f"node '{node.name or node.op_type}'" if hasattr(node, "op_type")
                 else f"input '{node.name}'")
        return Tensor(x, self.g.shape(x, where), dt, role)

    def op_name(self, node) -> str:
        base = node.name or f"{node.op_type}_{node.output[0]}"
        name, k = base, 1
        while name in self.names:
            k += 1
            name = f"{base}_{k}"
        self.names.add(name)
        return name

    def add(self, node, kind, fn, inputs, outputs, **attrs) -> None:
        self.ops.append(Op(self.op_name(node), kind, fn, tuple(inputs), tuple(outputs),
                           attrs=tuple(sorted(attrs.items()))))

    def only_consumer(self, x: str, op_type: str):
        users = self.consumers.get(x, [])
        out_names = {o.name for o in self.g.graph.output}
        return users[0] if (len(users) == 1 and users[0].op_type == op_type
                            and x not in out_names) else None

    # ---- nodes ----------------------------------------------------------------------
    def node(self, n) -> str | None:
        """Emit the op(s) of one node; the op type when dlmsim has no mapping for it."""
        if n.output[0] in self.done or n.op_type == "Constant":
            return None
        t = n.op_type
        user = self.mapping.get(t)
        if user == "skip" or (t in PASS_THROUGH and user is None):
            self.alias[n.output[0]] = n.input[0]
            return None
        if user is not None:
            return self.mapped(n, user)
        handler = getattr(self, f"op_{t}", None)
        return t if handler is None else handler(n)  # a handler may decline: its op type

    def out(self, n, k: int = 0) -> Tensor:
        return self.tensor(n.output[k], n, "activation")

    def attr(self, n, key: str, default=None):
        from onnx import helper

        for a in n.attribute:
            if a.name == key:
                return helper.get_attribute_value(a)
        return default

    def _fold_bias(self, n, y: str) -> tuple[list[Tensor], str]:
        """A following Add of a 1-D initializer (nn.Linear's bias) joins the product."""
        add = self.only_consumer(y, "Add")
        if add is not None:
            other = [x for x in add.input if x != y]
            if other and other[0] in self.g.init and len(self.g.init[other[0]].dims) == 1:
                self.done.add(add.output[0])
                return [self.tensor(other[0], add, "weight")], add.output[0]
        return [], y

    def op_MatMul(self, n) -> None:
        a, b = n.input
        if b in self.g.init and len(self.g.init[b].dims) == 2:
            bias, y = self._fold_bias(n, n.output[0])
            self.add(n, "gemm", "linear", [self.tensor(a, n), self.tensor(b, n, "weight"), *bias],
                     [self.tensor(y, n, "activation")])
            return
        y, attrs = n.output[0], {}
        for op_type, inv in (("Mul", False), ("Div", True)):
            scaled = self.only_consumer(y, op_type)
            if scaled is not None:
                s = self.g.scalar(scaled.input[1]) if scaled.input[0] == y else None
                if s:
                    attrs["scale"] = 1.0 / s if inv else s
                    self.done.add(scaled.output[0])
                    y = scaled.output[0]
                    break
        self.add(n, "gemm", "matmul", [self.tensor(a, n), self.tensor(b, n)],
                 [self.tensor(y, n, "activation")], **attrs)

    def op_Gemm(self, n) -> None:
        if self.attr(n, "transA", 0):
            raise InputError(f"{self.g.path}: Gemm '{n.name}' with transA is not supported")
        ins = [self.tensor(n.input[0], n), self.tensor(n.input[1], n, "weight")]
        if len(n.input) > 2 and n.input[2]:
            ins.append(self.tensor(n.input[2], n, "weight"))
        attrs = {"transpose_b": True} if self.attr(n, "transB", 0) else {}
        alpha = self.attr(n, "alpha", 1.0)
        if alpha != 1.0:
            attrs["scale"] = float(alpha)
        self.add(n, "gemm", "linear", ins, [self.out(n)], **attrs)

    def op_Conv(self, n) -> None:
        pads = list(self.attr(n, "pads", [0, 0, 0, 0]))
        if self.attr(n, "auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"VALID", "VALID"):
            raise InputError(f"{self.g.path}: Conv '{n.name}': auto_pad SAME_* is not "
                             "supported; export with explicit pads")
        if len(pads) != 4 or pads[:2] != pads[2:]:
            raise InputError(f"{self.g.path}: Conv '{n.name}': only 2-D convolutions with "
                             f"symmetric pads are supported, got pads {pads}")
        ins = [self.tensor(x, n, "weight" if k else None) for k, x in enumerate(n.input) if x]
        attrs = {"padding": tuple(pads[:2]),
                 "stride": tuple(self.attr(n, "strides", [1, 1])),
                 "dilation": tuple(self.attr(n, "dilations", [1, 1])),
                 "groups": int(self.attr(n, "group", 1))}
        self.add(n, "gemm", "conv2d", ins, [self.out(n)], **attrs)

    def op_Softmax(self, n) -> None:
        x = self.tensor(n.input[0], n)
        axis = self.attr(n, "axis", -1)
        if axis % len(x.shape) != len(x.shape) - 1:
            raise InputError(f"{self.g.path}: Softmax '{n.name}' over axis {axis}: only the "
                             "last axis is supported")
        self.add(n, "sfu", "softmax", [x], [self.out(n)])

    def op_LayerNormalization(self, n) -> None:
        x = self.tensor(n.input[0], n)
        if self.attr(n, "axis", -1) % len(x.shape) != len(x.shape) - 1:
            raise InputError(f"{self.g.path}: LayerNormalization '{n.name}': only over the "
                             "last axis")
        ins = [x] + [self.tensor(w, n, "weight") for w in n.input[1:] if w]
        # ONNX stores float attributes in single precision: keep the decimal they were.
        eps = float(str(np.float32(self.attr(n, "epsilon", 1e-5))))
        self.add(n, "sfu", "layernorm", ins, [self.out(n)], eps=eps)

    def op_Gelu(self, n) -> None:
        approx = self.attr(n, "approximate", b"none")
        approx = approx.decode() if isinstance(approx, bytes) else approx
        self.add(n, "sfu", "gelu", [self.tensor(n.input[0], n)], [self.out(n)],
                 approx="tanh" if approx == "tanh" else "erf")

    def op_Tanh(self, n) -> None:
        self.add(n, "sfu", "tanh", [self.tensor(n.input[0], n)], [self.out(n)])

    def _binary(self, n, fn: str) -> None:
        ins = [self.tensor(x, n) for x in n.input]
        data = [t for t in ins if t.role not in ("weight", "const")]
        if not data:
            raise InputError(f"{self.g.path}: {n.op_type} '{n.name}' has only constant inputs")
        ins = data + [t for t in ins if t not in data]  # the data operand first
        self.add(n, "sfu", fn, ins, [self.out(n)])

    def op_Add(self, n) -> None:
        self._binary(n, "add")

    def op_Mul(self, n) -> None:
        self._binary(n, "mul")

    def op_Div(self, n) -> str | None:
        """Only as the start of the exported exact GELU: Div(x, sqrt 2) -> Erf -> Add 1 ->
        Mul by x -> Mul by 0.5 (either Mul first). Other Divs have no mapping."""
        x, c = n.input
        chain, y = [n], n.output[0]
        for op_type in ("Erf", "Add", "Mul", "Mul"):
            nxt = self.only_consumer(y, op_type)
            if nxt is None:
                break
            chain.append(nxt)
            y = nxt.output[0]
        consts = [self.g.scalar(k) for node in chain[2:] for k in node.input if k != x]
        ok = (len(chain) == 5 and abs((self.g.scalar(c) or 0) - math.sqrt(2)) < 1e-3
              and x in [*chain[3].input, *chain[4].input]
              and sorted(round(v, 3) for v in consts if v is not None) == [0.5, 1.0])
        if not ok:
            return "Div"
        self.done.update(node.output[0] for node in chain[1:-1])
        self.done.add(y)
        self.ops.append(Op(self.op_name(n), "sfu", "gelu", (self.tensor(x, n),),
                           (self.tensor(y, chain[-1], "activation"),),
                           attrs=(("approx", "erf"),)))
        return None

    def op_Transpose(self, n) -> None:
        x = self.tensor(n.input[0], n)
        perm = self.attr(n, "perm", list(reversed(range(len(x.shape)))))
        self.add(n, "sfu", "transpose", [x], [self.out(n)], perm=tuple(perm))

    def _reshape(self, n) -> None:
        self.add(n, "sfu", "reshape", [self.tensor(n.input[0], n)], [self.out(n)])

    op_Reshape = op_Flatten = op_Squeeze = op_Unsqueeze = _reshape

    def op_Gather(self, n) -> None:
        table, idx = n.input
        if table not in self.g.init or len(self.g.init[table].dims) != 2 or \
                self.attr(n, "axis", 0) != 0:
            raise InputError(f"{self.g.path}: Gather '{n.name}': only rows of a 2-D "
                             "initializer table (an embedding) are supported")
        self.add(n, "gather", "embedding",
                 [self.tensor(table, n, "weight"), self.tensor(idx, n, "index")], [self.out(n)])

    def mapped(self, n, fn: str) -> None:
        if fn not in SFU_FNS:
            near = difflib.get_close_matches(fn, SFU_FNS, n=1)
            raise InputError(f"map.{n.op_type}: unknown SFU function '{fn}'"
                             + (f" (did you mean '{near[0]}'?)" if near else "")
                             + "; use an SFU function or skip")
        self._binary(n, fn) if len(n.input) > 1 else self.add(
            n, "sfu", fn, [self.tensor(n.input[0], n)], [self.out(n)])


def trace_from_onnx(path: str | os.PathLike, **overrides: Any) -> Trace:
    """An ONNX file -> Trace (module docstring for what maps to what and the overrides)."""
    path = Path(path)
    steps, dims, mapping = 1, {}, {}
    for k, v in overrides.items():
        if v is None:
            continue
        if k == "steps":
            steps = v
        elif k in ("batch", "seq_len"):
            dims.update(dict.fromkeys(BATCH_DIMS if k == "batch" else SEQ_DIMS, v))
        elif k.startswith("dim."):
            dims[k[4:]] = v
        elif k.startswith("map."):
            mapping[k[4:]] = str(v)
        else:
            raise InputError(f"{path}: '{k}' does not apply to an ONNX model (it takes steps, "
                             "batch, seq_len, dim.<name>=N, map.<OpType>=<sfu fn>|skip)")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise InputError(f"{path}: steps must be a positive integer, got {steps!r}")
    for name, v in dims.items():
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise InputError(f"{path}: dim.{name} must be a positive integer, got {v!r}")
    g = _Graph(path, dims)
    imp = _Importer(g, mapping)
    unknown: dict[str, list[str]] = {}
    for i in sorted(_data_nodes(g.graph)):
        n = g.graph.node[i]
        missing = imp.node(n)
        if missing:
            unknown.setdefault(missing, []).append(n.name or n.output[0])
    if unknown:
        parts = [f"{t} ({len(v)} node{'s' if len(v) > 1 else ''}: "
                 f"{', '.join(v[:3])}{', ...' if len(v) > 3 else ''})"
                 for t, v in sorted(unknown.items())]
        first = min(unknown)
        raise InputError(f"{path}: ONNX op types dlmsim has no mapping for: {'; '.join(parts)}."
                         f" Map each to an SFU function (--set map.{first}=silu; known: "
                         f"{', '.join(sorted(SFU_FNS))}) or pass its input through "
                         f"(--set map.{first}=skip)")
    init = set(g.init)
    inputs = tuple(imp.tensor(vi.name, vi) for vi in g.graph.input
                   if vi.name not in init and g.types.get(vi.name, (None, 1))[1]
                   not in INDEX_TYPES)
    run = (("source", "onnx"), ("steps", steps), *sorted(dims.items()))
    try:
        return Trace(g.graph.name or path.stem, tuple(imp.ops), Schedule(steps, float(steps)),
                     run, inputs)
    except TraceError as e:
        raise TraceError(f"{path}: {e}") from None
