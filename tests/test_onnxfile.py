"""ONNX import: graphs built with onnx.helper in tmp_path, read back as traces."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

import dlmsim
from dlmsim.cli import app
from dlmsim.errors import InputError
from dlmsim.functional import execute

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

B, L, D, H, F, V = 2, 8, 16, 2, 32, 20
DH = D // H


def _init(rng, name, *shape):
    return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32) * 0.3, name)


def _shape(name, *dims):
    return numpy_helper.from_array(np.array(dims, np.int64), name)


def transformer(path, symbolic: bool = False, opset: int = 20):
    """One pre-LayerNorm transformer block as PyTorch exports it: embedding Gather,
    LayerNormalization, MatMul + Add per projection, Reshape/Transpose into heads (K
    straight to [B, H, dh, L]), scores MatMul then Mul by 1/sqrt(dh), Softmax, P.V, heads
    back, output MatMul + Add, residual Add, LayerNorm, MLP with Gelu, residual Add."""
    rng = np.random.default_rng(0)
    inits = [_init(rng, "emb", V, D), _init(rng, "ln1.w", D), _init(rng, "ln1.b", D),
             _init(rng, "ln2.w", D), _init(rng, "ln2.b", D),
             _shape("heads_shape", B, L, H, DH), _shape("model_shape", B, L, D),
             numpy_helper.from_array(np.array(1 / np.sqrt(DH), np.float32), "scale")]
    for n, (k, m) in {"q": (D, D), "k": (D, D), "v": (D, D), "o": (D, D), "fc1": (D, F),
                      "fc2": (F, D)}.items():
        inits += [_init(rng, f"{n}.w", k, m), _init(rng, f"{n}.b", m)]
    N = helper.make_node
    nodes = [
        N("Gather", ["emb", "tokens"], ["x0"], name="embed"),
        N("LayerNormalization", ["x0", "ln1.w", "ln1.b"], ["h"], name="ln1", axis=-1,
          epsilon=1e-5),
    ]
    for s in "qkv":
        nodes += [N("MatMul", ["h", f"{s}.w"], [f"{s}0"], name=f"{s}_proj"),
                  N("Add", [f"{s}0", f"{s}.b"], [s], name=f"{s}_bias"),
                  N("Reshape", [s, "heads_shape"], [f"{s}4"], name=f"{s}_split")]
    nodes += [
        N("Transpose", ["q4"], ["qh"], name="q_heads", perm=[0, 2, 1, 3]),
        N("Transpose", ["k4"], ["kt"], name="k_heads", perm=[0, 2, 3, 1]),
        N("Transpose", ["v4"], ["vh"], name="v_heads", perm=[0, 2, 1, 3]),
        N("MatMul", ["qh", "kt"], ["s0"], name="scores"),
        N("Mul", ["s0", "scale"], ["s"], name="scale_scores"),
        N("Softmax", ["s"], ["p"], name="softmax", axis=-1),
        N("MatMul", ["p", "vh"], ["o"], name="pv"),
        N("Transpose", ["o"], ["o2"], name="merge", perm=[0, 2, 1, 3]),
        N("Reshape", ["o2", "model_shape"], ["o3"], name="merge_view"),
        N("MatMul", ["o3", "o.w"], ["a0"], name="attn_out"),
        N("Add", ["a0", "o.b"], ["a"], name="attn_out_bias"),
        N("Add", ["x0", "a"], ["x1"], name="residual1"),
        N("LayerNormalization", ["x1", "ln2.w", "ln2.b"], ["h2"], name="ln2", axis=-1,
          epsilon=1e-5),
        N("MatMul", ["h2", "fc1.w"], ["f0"], name="fc1"),
        N("Add", ["f0", "fc1.b"], ["f"], name="fc1_bias"),
        N("Gelu", ["f"], ["g"], name="gelu"),
        N("MatMul", ["g", "fc2.w"], ["f20"], name="fc2"),
        N("Add", ["f20", "fc2.b"], ["f2"], name="fc2_bias"),
        N("Add", ["x1", "f2"], ["y"], name="residual2"),
    ]
    dims = ["batch", "seq"] if symbolic else [B, L]
    graph = helper.make_graph(
        nodes, "tiny_block", [helper.make_tensor_value_info("tokens", TensorProto.INT64, dims)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [*dims, D])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.save(model, str(path))
    return model


def _t(name, *shape, role=None, dtype=None):
    d = {"name": name, "shape": list(shape)}
    if role:
        d["role"] = role
    if dtype:
        d["dtype"] = dtype
    return d


def _op(name, kind, fn, ins, outs, **attrs):
    d = {"name": name, "kind": kind, "fn": fn, "inputs": ins, "outputs": outs}
    if attrs:
        d["attrs"] = attrs
    return d


def hand_written() -> dict:
    """The same block written by hand as a trace file (fp32, the ONNX graph's dtype)."""
    f = "fp32"
    w = lambda n, *s: _t(n, *s, role="weight", dtype=f)
    a = lambda n, *s: _t(n, *s, dtype=f)
    ops = [_op("embed", "gather", "embedding", [w("emb", V, D), _t("tokens", B, L,
                                                                    role="index", dtype="idx")],
               [a("x0", B, L, D)]),
           _op("ln1", "sfu", "layernorm", [a("x0", B, L, D), w("ln1.w", D), w("ln1.b", D)],
               [a("h", B, L, D)], eps=1e-5)]
    for s in "qkv":
        ops += [_op(f"{s}_proj", "gemm", "linear", [a("h", B, L, D), w(f"{s}.w", D, D),
                                                     w(f"{s}.b", D)], [a(s, B, L, D)]),
                _op(f"{s}_split", "sfu", "reshape", [a(s, B, L, D)], [a(f"{s}4", B, L, H, DH)])]
    ops += [
        _op("q_heads", "sfu", "transpose", [a("q4", B, L, H, DH)], [a("qh", B, H, L, DH)],
            perm=[0, 2, 1, 3]),
        _op("k_heads", "sfu", "transpose", [a("k4", B, L, H, DH)], [a("kt", B, H, DH, L)],
            perm=[0, 2, 3, 1]),
        _op("v_heads", "sfu", "transpose", [a("v4", B, L, H, DH)], [a("vh", B, H, L, DH)],
            perm=[0, 2, 1, 3]),
        _op("scores", "gemm", "matmul", [a("qh", B, H, L, DH), a("kt", B, H, DH, L)],
            [a("s", B, H, L, L)], scale=float(np.float32(1 / np.sqrt(DH)))),
        _op("softmax", "sfu", "softmax", [a("s", B, H, L, L)], [a("p", B, H, L, L)]),
        _op("pv", "gemm", "matmul", [a("p", B, H, L, L), a("vh", B, H, L, DH)],
            [a("o", B, H, L, DH)]),
        _op("merge", "sfu", "transpose", [a("o", B, H, L, DH)], [a("o2", B, L, H, DH)],
            perm=[0, 2, 1, 3]),
        _op("merge_view", "sfu", "reshape", [a("o2", B, L, H, DH)], [a("o3", B, L, D)]),
        _op("attn_out", "gemm", "linear", [a("o3", B, L, D), w("o.w", D, D), w("o.b", D)],
            [a("a", B, L, D)]),
        _op("residual1", "sfu", "add", [a("x0", B, L, D), a("a", B, L, D)], [a("x1", B, L, D)]),
        _op("ln2", "sfu", "layernorm", [a("x1", B, L, D), w("ln2.w", D), w("ln2.b", D)],
            [a("h2", B, L, D)], eps=1e-5),
        _op("fc1", "gemm", "linear", [a("h2", B, L, D), w("fc1.w", D, F), w("fc1.b", F)],
            [a("f", B, L, F)]),
        _op("gelu", "sfu", "gelu", [a("f", B, L, F)], [a("g", B, L, F)], approx="erf"),
        _op("fc2", "gemm", "linear", [a("g", B, L, F), w("fc2.w", F, D), w("fc2.b", D)],
            [a("f2", B, L, D)]),
        _op("residual2", "sfu", "add", [a("x1", B, L, D), a("f2", B, L, D)], [a("y", B, L, D)]),
    ]
    return {"version": 1, "trace": "tiny_block", "schedule": {"steps": 4, "forward_passes": 4},
            "ops": ops}


def _sig(op):
    return (op.name, op.kind, op.fn, [(t.name, t.shape, t.role, t.dtype) for t in op.inputs],
            [(t.name, t.shape) for t in op.outputs], dict(op.attrs), op.flops)


def test_onnx_transformer_matches_the_trace_file_op_for_op(tmp_path):
    """Importing the exported block gives the hand-written trace op for op (biases folded
    into their MatMuls, the scale into the scores product, the shape constants gone), and
    both simulate to the same cycles."""
    transformer(tmp_path / "block.onnx")
    got = dlmsim.load_workload(tmp_path / "block.onnx", steps=4)
    (tmp_path / "block.trace.yaml").write_text(yaml.safe_dump(hand_written()))
    want = dlmsim.load_workload(tmp_path / "block.trace.yaml")
    assert [_sig(o) for o in got.ops] == [_sig(o) for o in want.ops]
    assert got.params == want.params == V * D + 4 * D + 4 * (D * D + D) + D * F + F + F * D + D
    assert got.forward_passes == 4
    arch = dlmsim.load_arch("int8-zcu102")
    assert dlmsim.simulate(arch, got).total_cycles == dlmsim.simulate(arch, want).total_cycles


def test_onnx_import_means_the_same_numbers(tmp_path):
    """The imported trace, executed by dlmsim's numeric executor on the graph's
    initializers, gives the ONNX reference evaluator's output."""
    model = transformer(tmp_path / "block.onnx")
    t = dlmsim.load_workload(tmp_path / "block.onnx")
    weights = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    tokens = np.random.default_rng(1).integers(0, V, (B, L))
    env = execute(t, weights, {"tokens": tokens})
    (ref,) = ReferenceEvaluator(model).run(None, {"tokens": tokens})
    assert np.abs(env["y"] - ref).max() < 1e-5 * np.abs(ref).max()


def test_symbolic_dims(tmp_path):
    """Symbolic batch and sequence dims take --batch/--seq-len (or dim.<name>); missing
    ones are named."""
    transformer(tmp_path / "sym.onnx", symbolic=True)
    with pytest.raises(InputError, match=r"dim 0 is symbolic \('batch'\): give it with --set "
                                         r"dim.batch=N"):
        dlmsim.load_workload(tmp_path / "sym.onnx")
    t = dlmsim.load_workload(tmp_path / "sym.onnx", batch=B, seq_len=L)
    assert t.ops[-1].outputs[0].shape == (B, L, D)
    t2 = dlmsim.load_workload(tmp_path / "sym.onnx", **{"dim.batch": B, "dim.seq": L})
    assert [o.signature() for o in t2.ops] == [o.signature() for o in t.ops]


def _one_node_graph(path, op_type, **attrs):
    node = helper.make_node(op_type, ["x"], ["y"], name="odd", **attrs)
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                      [2, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 8])])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 20)]), str(path))


def test_unknown_ops_are_listed_with_a_suggestion(tmp_path):
    """An op type without a mapping is named with its nodes and the two ways out; mapping it
    to an SFU function or skipping it makes the graph load."""
    _one_node_graph(tmp_path / "odd.onnx", "Sigmoid")
    with pytest.raises(InputError) as e:
        dlmsim.load_workload(tmp_path / "odd.onnx")
    msg = str(e.value)
    assert "no mapping for: Sigmoid (1 node: odd)" in msg
    assert "--set map.Sigmoid=silu" in msg and "--set map.Sigmoid=skip" in msg
    t = dlmsim.load_workload(tmp_path / "odd.onnx", **{"map.Sigmoid": "silu"})
    assert [(o.fn, o.flops) for o in t.ops] == [("silu", 4 * 16)]
    with pytest.raises(InputError, match="no ops"):
        dlmsim.load_workload(tmp_path / "odd.onnx", **{"map.Sigmoid": "skip"})
    with pytest.raises(InputError, match="unknown SFU function 'sigmoidd'"):
        dlmsim.load_workload(tmp_path / "odd.onnx", **{"map.Sigmoid": "sigmoidd"})


def test_conv_and_bad_files(tmp_path):
    """Conv (3x3, stride 2, padding 1, 2 groups) becomes an implicit-GEMM conv2d; a file
    that is not ONNX, a wrong override and a missing file are one-line errors."""
    rng = np.random.default_rng(0)
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv", pads=[1, 1, 1, 1],
                            strides=[2, 2], group=2)
    g = helper.make_graph([node], "cnn",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 9, 9])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [_init(rng, "w", 8, 2, 3, 3), _init(rng, "b", 8)])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 20)])
    onnx.save(model, str(tmp_path / "cnn.onnx"))
    t = dlmsim.load_workload(tmp_path / "cnn.onnx")
    (op,) = t.ops
    assert (op.fn, op.outputs[0].shape, op.gemm_dims) == ("conv2d", (1, 8, 5, 5), (2, 25, 18, 4))
    # dlmsim's implicit-GEMM convolution computes what ONNX's Conv does.
    x = rng.standard_normal((1, 4, 9, 9)).astype(np.float32)
    weights = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    (ref,) = ReferenceEvaluator(model).run(None, {"x": x})
    assert np.abs(execute(t, weights, {"x": x})["y"] - ref).max() < 1e-5
    (tmp_path / "junk.onnx").write_bytes(b"\x00not a model")
    with pytest.raises(InputError, match="cannot read ONNX file"):
        dlmsim.load_workload(tmp_path / "junk.onnx")
    with pytest.raises(InputError, match="'precision' does not apply to an ONNX model"):
        dlmsim.load_workload(tmp_path / "cnn.onnx", precision="bf16")
    with pytest.raises(InputError, match="workload file not found"):
        dlmsim.load_workload(tmp_path / "missing.onnx")


def test_cli_trace_and_simulate_an_onnx_file(tmp_path, run_dlmsim):
    """`dlmsim trace model.onnx` and `dlmsim simulate -w model.onnx` work like bundled
    workloads; an unmapped op is one line and exit code 1."""
    transformer(tmp_path / "block.onnx")
    r = CliRunner().invoke(app, ["trace", str(tmp_path / "block.onnx"), "--steps", "3"])
    assert r.exit_code == 0, r.output
    assert "softmax" in r.output and "3 steps" in r.output
    r = CliRunner().invoke(app, ["simulate", "-a", "int8-zcu102", "-w",
                                 str(tmp_path / "block.onnx")])
    assert r.exit_code == 0, r.output
    assert "latency per sampling run" in r.output
    _one_node_graph(tmp_path / "odd.onnx", "Sigmoid")
    p = run_dlmsim("trace", str(tmp_path / "odd.onnx"))
    assert p.returncode == 1 and p.stderr.count("\n") == 1 and "map.Sigmoid" in p.stderr
    p = run_dlmsim("trace", str(tmp_path / "odd.onnx"), "--set", "map.Sigmoid=silu")
    assert p.returncode == 0, p.stderr


def test_pytorch_export_patterns(tmp_path):
    """What torch.onnx.export emits besides single ops: a Reshape whose shape is computed
    from Shape/Gather/Unsqueeze/Concat of a symbolic input (only data ops become trace
    ops), and the exact GELU of opsets before Gelu existed, x * 0.5 * (1 + Erf(x / sqrt 2))
    -> one gelu op."""
    rng = np.random.default_rng(0)
    N = helper.make_node
    c = lambda name, v, dt=np.float32: numpy_helper.from_array(np.array(v, dt), name)
    nodes = [
        N("MatMul", ["x", "w"], ["h"], name="fc"),
        N("Shape", ["x"], ["shp"]),
        N("Gather", ["shp", "zero"], ["b"], axis=0),
        N("Gather", ["shp", "one"], ["l"], axis=0),
        N("Unsqueeze", ["b", "axes"], ["b1"]),
        N("Unsqueeze", ["l", "axes"], ["l1"]),
        N("Concat", ["b1", "l1", "heads", "dh"], ["newshape"], axis=0),
        N("Reshape", ["h", "newshape"], ["h4"], name="split"),
        N("Div", ["h4", "sqrt2"], ["d"], name="gelu"),
        N("Erf", ["d"], ["e"]),
        N("Add", ["e", "one_f"], ["e1"]),
        N("Mul", ["h4", "e1"], ["m"]),
        N("Mul", ["m", "half"], ["y"]),
    ]
    inits = [_init(rng, "w", 8, 8), c("zero", 0, np.int64), c("one", 1, np.int64),
             c("axes", [0], np.int64), c("heads", [2], np.int64), c("dh", [4], np.int64),
             c("sqrt2", 1.4142135), c("one_f", 1.0), c("half", 0.5)]
    g = helper.make_graph(nodes, "export",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 6, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(tmp_path / "export.onnx"))
    t = dlmsim.load_workload(tmp_path / "export.onnx", batch=3)
    assert [(o.fn, o.outputs[0].shape) for o in t.ops] == [
        ("linear", (3, 6, 8)), ("reshape", (3, 6, 2, 4)), ("gelu", (3, 6, 2, 4))]
    x = rng.standard_normal((3, 6, 8)).astype(np.float32)
    env = execute(t, {"w": numpy_helper.to_array(inits[0])}, {"x": x})
    (ref,) = ReferenceEvaluator(model).run(None, {"x": x})
    assert np.abs(env["y"] - ref).max() < 1e-5
