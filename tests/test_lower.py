"""dlmsim.lower: generated Allo programs, their vectors and manifests (Allo not needed,
except in the tests marked as such, which skip without it)."""

from __future__ import annotations

import ast
import json
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from dlmsim.arch import load_arch
from dlmsim.cli import app
from dlmsim.functional import execute
from dlmsim.lower import lower, read_manifest, write_manifest
from dlmsim.lower.design import scope_ops
from dlmsim.lower.reference import quantize
from dlmsim.lower.runner import run_driver
from dlmsim.mapping import Mapper
from dlmsim.workloads import load_workload

CASES = [("int8-zcu102", "mdlm-tiny"), ("sda-style-2048-zcu102", "mdlm-tiny"),
         ("fp32-u280", "diffusion-lm-e2e"), ("w4a8-kv260", "diffusion-lm-e2e")]


@pytest.fixture(scope="module")
def lowered(tmp_path_factory):
    out = {}
    for arch, wl in CASES:
        a = load_arch(arch)
        t = load_workload(wl, batch=1, seq_len=16)
        d = tmp_path_factory.mktemp(f"{arch}-{wl}")
        out[(arch, wl)] = (a, t, lower(a, t, d))
    return out


def _module(res):
    return ast.parse((res.out_dir / "kernels.py").read_text())


def _assign(tree, name):
    for node in tree.body:
        if isinstance(node, ast.Assign):
            for tgt in node.targets:
                names = [e.id for e in tgt.elts] if isinstance(tgt, ast.Tuple) else [tgt.id]
                if name in names:
                    v = node.value
                    vals = v.elts if isinstance(v, ast.Tuple) else [v]
                    return ast.unparse(vals[names.index(name)])
    raise KeyError(name)


@pytest.mark.parametrize("case", CASES)
def test_generated_files_parse(lowered, case):
    _, _, res = lowered[case]
    for f in ("kernels.py", "run.py"):
        ast.parse((res.out_dir / f).read_text())
    assert (res.out_dir / "README.md").read_text().startswith("# ")
    assert set(res.files) == {"kernels.py", "run.py", "README.md", "manifest.json"}
    assert all(n > 10 for n in res.files.values())


@pytest.mark.parametrize("case", CASES)
def test_kernels_match_the_design(lowered, case):
    arch, trace, res = lowered[case]
    tree = _module(res)
    assert _assign(tree, "ROWS") == str(arch.array.rows)
    assert _assign(tree, "COLS") == str(arch.array.cols)
    ty_w = _assign(tree, "TyW")
    if arch.bits.weights == 4:
        assert ty_w == "Int(4) if HLS else int8"  # int8 containers for the llvm check
    elif arch.bits.weights == 8:
        assert ty_w == "int8 if HLS else int8"
    else:
        assert ty_w == "float32 if HLS else float32"
    # Exactly one array instance: every systolic call has the same parameters, unlabelled.
    calls = {ast.unparse(n.func) for n in ast.walk(tree)
             if isinstance(n, ast.Call) and isinstance(n.func, ast.Subscript)
             and ast.unparse(n.func.value) == "systolic"}
    assert len(calls) == 1
    (call,) = calls
    params = call[call.index("[") + 1:-1].split(", ")
    assert params[3:] == ["ROWS", "KT", "COLS", "ROWS", "COLS"]
    # Each GEMM of the scope has a wrapper; dataflows are the simulator's.
    man = res.manifest
    fns = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    ops = scope_ops(trace, "block")
    plans = {p.op.name: p for p in Mapper(arch).plan(ops)}
    for g in man["program"]["gemms"]:
        assert g["function"] in fns
        assert g["dataflow"] == plans[g["op"]].dataflow
        mp, kp, np_ = g["padded"]
        assert mp % arch.array.rows == 0 and np_ % arch.array.cols == 0
        assert kp % man["program"]["array"]["k_tile"] == 0
        assert mp >= g["M"] and np_ >= g["N"] and kp >= g["K"]
    assert man["program"]["top"] in fns
    assert len(man["program"]["gemms"]) == sum(op.kind == "gemm" for op in ops)


def test_top_arguments_match_vectors(lowered):
    for _, _, res in lowered.values():
        vec = np.load(res.out_dir / "vectors.npz")
        for a in res.manifest["program"]["args"]:
            arr = vec[a["key"]]
            assert list(arr.shape) == a["shape"], a["key"]
            assert arr.dtype == np.dtype(a["dtype"]), a["key"]
        assert list(vec["expected"].shape) == res.manifest["program"]["output"]["shape"]


def test_manifest_round_trip(lowered, tmp_path):
    _, _, res = lowered[CASES[0]]
    m = read_manifest(res.out_dir)
    assert m == json.loads(json.dumps(res.manifest))
    write_manifest(tmp_path / "m.json", m)
    assert read_manifest(tmp_path / "m.json") == m
    assert m["prediction"]["cycles"] > 0
    assert m["hls"]["part"] == "xczu9eg-ffvb1156-2-e"
    assert m["hls"]["clock_mhz"] == 250


def test_fp32_reference_is_the_functional_semantics(lowered):
    """An fp32 design's expected output is dlmsim.functional on the same ops and inputs."""
    _arch, trace, res = lowered[("fp32-u280", "diffusion-lm-e2e")]
    vec = np.load(res.out_dir / "vectors.npz")
    ops = scope_ops(trace, "block")
    from dlmsim.lower.reference import external_inputs, scope_weights

    weights = scope_weights(ops, 0)
    inputs = {t.name: vec[t.name].reshape(t.shape) for t in external_inputs(ops)}
    env = execute(trace, weights, inputs, ops=ops)
    out = env[ops[-1].outputs[0].name].reshape(vec["expected"].shape)
    np.testing.assert_array_equal(out, vec["expected"])


@pytest.mark.parametrize("case", [CASES[0], CASES[1], CASES[3]])
def test_integer_vectors_are_exact_and_close_to_fp32(lowered, case):
    """Per-GEMM vectors: Y = A @ B exactly in integers, operands within the bit widths; the
    quantized block stays close to the fp32 block (the design's precision, not noise)."""
    arch, trace, res = lowered[case]
    vec = np.load(res.out_dir / "vectors.npz")
    qa = 2 ** (arch.bits.activations - 1) - 1
    qw = 2 ** (arch.bits.weights - 1) - 1
    for g in res.manifest["program"]["gemms"]:
        a, b, y = (vec[f"gemm.{g['function']}.{x}"] for x in "ABY")
        assert np.abs(a).max() <= qa
        assert np.abs(b).max() <= (qw if g["b_operand"] == "weight" else qa)
        bm = np.swapaxes(b, -1, -2) if g["transpose_b"] else b
        if g["b_operand"] == "weight":
            bm = bm[:g["K"], :g["N"]]
        assert np.array_equal(a.astype(np.int64) @ bm.astype(np.int64), y.astype(np.int64))
    ops = scope_ops(trace, "block")
    from dlmsim.lower.reference import external_inputs, scope_weights

    inputs = {t.name: vec[t.name].reshape(t.shape) for t in external_inputs(ops)}
    ref = execute(trace, scope_weights(ops, 0), inputs, ops=ops)[ops[-1].outputs[0].name]
    ref = ref.reshape(vec["expected"].shape)
    rel = np.linalg.norm(vec["expected"] - ref) / np.linalg.norm(ref)
    assert rel < (0.4 if arch.bits.weights == 4 else 0.15)  # outlier channels: see quant


def test_quantize_rounds_half_away_and_clamps():
    x = np.array([0.5, -0.5, 1.49, -1.5, 200.0, -200.0], np.float32)
    assert quantize(x, np.float32(1.0), 8).tolist() == [1, -1, 1, -2, 127, -127]


def test_forward_scope_covers_every_block(tmp_path):
    a = load_arch("int8-zcu102")
    t = load_workload("mdlm-tiny", batch=1, seq_len=16)
    res = lower(a, t, tmp_path / "fwd", scope="forward")
    assert res.manifest["workload"]["blocks"] == list(range(8))
    assert res.manifest["program"]["top"] == "ddit_stack"
    ast.parse((tmp_path / "fwd" / "kernels.py").read_text())


def test_runner_reports_the_error_line(lowered, tmp_path):
    """Without Allo the driver fails at `import allo`; the runner names that line."""
    _, _, res = lowered[CASES[0]]
    rows = run_driver(res.out_dir, sys.executable, ["llvm", "vhls"])
    assert len(rows) == 1 and not rows[0]["ok"]
    assert "allo" in rows[0]["error"]
    assert (res.out_dir / "logs" / "llvm.log").is_file()
    assert json.loads((res.out_dir / "results" / "llvm.json").read_text())["ok"] is False


def test_cli_lower_and_bad_input(tmp_path):
    r = CliRunner()
    d = tmp_path / "out"
    res = r.invoke(app, ["lower", "--arch", "int8-zcu102", "--workload", "mdlm-tiny",
                         "--seq-len", "16", "--batch", "1", "-o", str(d)])
    assert res.exit_code == 0, res.output
    assert (d / "manifest.json").is_file() and "kernels.py" in res.output
    from dlmsim.cli import main

    for args, word in (
        (["--arch", "nope", "--workload", "mdlm-tiny"], "nope"),
        (["--arch", "int8-zcu102", "--workload", "nope"], "nope"),
        (["--arch", "int8-zcu102", "--workload", "mdlm-tiny", "--seq-len", "16", "--batch",
          "1", "-o", str(tmp_path / "f" / "x")], "cannot write"),
        (["--arch", "int8-zcu102", "--workload", "mdlm-tiny", "--run", "llvm"], "Allo"),
    ):
        if word == "cannot write":
            (tmp_path / "f").write_text("a file, not a directory")
        sys.argv = ["dlmsim", "lower", *args]
        with pytest.raises(SystemExit) as e:
            main()
        assert e.value.code == 1


# ---- with a real Allo (skipped here: Allo needs Python >= 3.12 and an MLIR build) ---------
def test_llvm_build_matches_vectors(lowered):
    pytest.importorskip("allo")
    _, _, res = lowered[CASES[0]]
    rows = run_driver(res.out_dir, sys.executable, ["llvm"])
    assert rows[0]["ok"], rows[0]["error"]


def test_vhls_generation(lowered):
    pytest.importorskip("allo")
    _, _, res = lowered[CASES[1]]
    rows = run_driver(res.out_dir, sys.executable, ["vhls"])
    assert rows[0]["ok"], rows[0]["error"]
    assert rows[0]["result"]["lines"] > 100


def test_prediction_is_the_simulators_run_of_the_lowered_ops(lowered):
    """The manifest's predicted cycles are the engine's run of the lowered ops on the arch:
    at least the time one channel needs for all their DRAM bytes at the achieved bandwidth,
    and exactly what `dlmsim.engine.run_ops` gives for them."""
    from dlmsim.engine import run_ops
    from dlmsim.mapping import Mapper

    for arch, _trace, res in lowered.values():
        pred = res.manifest["prediction"]
        names = [r["name"] for r in pred["per_op"]]
        ops = [op for op in _trace.ops if op.name in set(names)]
        assert [op.name for op in ops] == names
        plans, seg = run_ops(Mapper(arch), ops)
        dram = sum(p.dram_read_bytes + p.dram_write_bytes for p in plans)
        assert pred["cycles"] >= dram / arch.bandwidth_bytes_per_cycle()
        assert pred["cycles"] == pytest.approx(seg.cycles)
