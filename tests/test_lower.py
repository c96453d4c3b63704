"""dlmsim.lower: the lowered accelerator program, its emulator, vectors and manifest.

Everything here runs without Allo. The tests at the end run the generated program under a
real Allo when DLMSIM_ALLO_PYTHON names its interpreter (../shared/tools/allo/ builds one);
CI has none, so they skip there.
"""

from __future__ import annotations

import ast
import json
import os
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from dlmsim.arch import load_arch
from dlmsim.cli import app
from dlmsim.lower import lower, read_manifest, write_manifest
from dlmsim.lower.design import scope_ops
from dlmsim.lower.emulate import Machine
from dlmsim.lower.kernel import DESC, SFU_CODES, KernelSpec, kernel_text
from dlmsim.lower.program import build_program, lowered_arch, read_tensor
from dlmsim.lower.reference import quantize
from dlmsim.lower.runner import last_error, run_driver, steps_for
from dlmsim.workloads import load_workload

SMALL = {"batch": 1, "seq_len": 16}
LLADA_SMALL = {"batch": 1, "seq_len": 32, "run.gen_len": 32, "model.hidden": 256,
               "model.heads": 4, "model.ffn": 512}
PRESETS = ["sda-zcu102", "sda-style-2048-zcu102", "int8-zcu102", "int8-u280", "fp32-u280",
           "w4a8-kv260"]
FAMILIES = {"mdlm-tiny": SMALL, "diffusion-lm-e2e": SMALL, "sedd-small": SMALL,
            "llada-8b": LLADA_SMALL}
# Callee prefixes Allo replaces by its own library templates (allo/passes.py,
# decompose_library_function at cornell-zhang/allo a098603f).
ALLO_RESERVED = ("gelu", "layernorm", "tril")


def small(workload: str):
    return load_workload(workload, **FAMILIES[workload])


@pytest.fixture(scope="module")
def lowered(tmp_path_factory):
    out = {}
    for arch, wl in [("sda-zcu102", "mdlm-tiny"), ("int8-zcu102", "diffusion-lm-e2e"),
                     ("fp32-u280", "llada-8b"), ("w4a8-kv260", "sedd-small")]:
        d = tmp_path_factory.mktemp(f"{arch}-{wl}")
        out[(arch, wl)] = lower(load_arch(arch), small(wl), d)
    return out


def _functions(res) -> dict[str, ast.FunctionDef]:
    tree = ast.parse((res.out_dir / "kernels.py").read_text())
    return {f.name: f for f in tree.body if isinstance(f, ast.FunctionDef)}


def _calls(fn: ast.AST, name: str) -> int:
    return sum(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == name
               for n in ast.walk(fn))


# ---- the generated program's structure (what an HLS engineer checks first) ---------------
def test_one_array_and_one_pe_call_site(lowered):
    """A temporal design has ONE array: `array_unit` (called once, from accel) holds the
    only call of `pe`, inside the PE grid loop that `unfold` turns into rows x cols/PACK
    PE functions; every GEMM tile goes through it (each call site would be its own RTL
    instance, UG1399). accel is the seven processes of the dataflow region, in order."""
    for res in lowered.values():
        fns = _functions(res)
        assert {f for f, fn in fns.items() if _calls(fn, "pe")} == {"array_unit"}
        assert _calls(fns["array_unit"], "pe") == 1
        grid = [n for n in ast.walk(fns["array_unit"]) if isinstance(n, ast.For)
                and "PE" in ast.unparse(n.iter)]
        assert len(grid) == 1 and _calls(grid[0], "pe") == 1
        assert {f for f, fn in fns.items() if _calls(fn, "array_unit")} == {"accel"}
        accel = fns["accel"]
        procs = [n.value.func.id for n in accel.body if isinstance(n, ast.Expr)
                 and isinstance(n.value, ast.Call)]
        assert procs == ["fetch_a", "fetch_b", "array_unit", "sfu_a", "sfu_b", "sfu_c", "store"]
        assert "sa.unfold('array_unit:PE', [0, 1])" in ast.unparse(fns["schedule_array"])


def test_no_generated_name_is_reserved_by_allo_and_none_is_redeclared(lowered):
    """Allo decomposes any callee starting with gelu/layernorm/tril into its own template;
    a name annotated twice in one function lowers to memref.copy, which the HLS emitter
    rejects. Neither may occur in a generated program."""
    reserved = ALLO_RESERVED
    passes = os.environ.get("DLMSIM_ALLO_SRC")  # cross-check against Allo's source if given
    if passes:
        with open(os.path.join(passes, "allo", "passes.py")) as f:
            text = f.read()
        assert all(f'"{p}"' in text for p in reserved)
    for res in lowered.values():
        for name, fn in _functions(res).items():
            assert not name.startswith(reserved), name
            declared = [n.target.id for n in ast.walk(fn)
                        if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)]
            dup = {d for d in declared if declared.count(d) > 1}
            assert not dup, f"{name} re-declares {sorted(dup)}"


def test_schedule_streams_every_channel_and_pipelines_the_per_cycle_loops(lowered):
    """schedule_hls makes accel one dataflow region with its buffers as FIFOs, and every
    loop that moves one beat / one row / one element group per cycle asks for II=1."""
    for res in lowered.values():
        text = (res.out_dir / "kernels.py").read_text()
        fns = _functions(res)
        sched = ast.unparse(fns["schedule_hls"])
        assert "s.dataflow('accel')" in sched
        for buf in ("a_s", "b_s", "y_s", "x0_s", "x1_s", "z_s", "st_a", "st_b", "xa_s",
                    "xb_s"):
            assert f"'{buf}'" in sched
        for loop in ("burst", "feed", "first", "out", "row", "stats", "apply"):
            assert f'name="{loop}", pipeline=True' in text, loop


def test_kernel_types_and_packing_follow_the_arch():
    """W4A8 and W8A8 on DSP48E2 pack two products per PE (arch.macs_per_dsp = 2): the mesh
    has cols/2 PE columns and one multiply of a 27-bit by an 8-bit operand per PE; fp32 has
    one float MAC per PE."""
    for name, pack, wty in (("sda-zcu102", 2, "int8"), ("int8-zcu102", 2, "int16"),
                            ("fp32-u280", 1, "float32")):
        a = load_arch(name)
        prog = build_program(lowered_arch(a), small("mdlm-tiny"),
                             scope_ops(small("mdlm-tiny"), "block"))
        k = prog.spec
        assert (k.rows, k.cols, k.pack, k.pe_cols) == (a.array.rows, a.array.cols, pack,
                                                     a.array.cols // pack)
        text = kernel_text(k, '"""x"""\n')
        assert f"TyW = {wty}" in text
        assert ("p: Int(45) = op * a" in text) == (pack == 2)
        assert ("vp[k % FADD] += a * b" in text) == (wty == "float32")


# ---- the program computes the model ------------------------------------------------------
@pytest.mark.parametrize("workload", list(FAMILIES))
def test_fp32_program_is_the_functional_block(workload):
    """On an fp32 design nothing is quantized, so the emulator's run of the program (views,
    head strides, rotary, gating, batched attention) must give the functional block output
    to float32 rounding."""
    t = small(workload)
    ops = scope_ops(t, "block")
    prog = build_program(load_arch("fp32-u280"), t, ops)
    act = prog.act.copy()
    m = Machine(prog.spec, act, prog.wts, prog.prm)
    for d in prog.instrs:
        m.run(d)
    ref = prog.fp32_env[prog.output]
    got = read_tensor(prog, act, prog.output).reshape(ref.shape)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * float(np.abs(ref).max()))


@pytest.mark.parametrize("arch", PRESETS)
def test_every_preset_lowers_every_family(arch, tmp_path):
    """Every bundled design lowers every sequence family at a small size; the integer
    designs' output stays close to fp32 (SQNR above 5 dB on these deliberately harsh
    synthetic weights; W8A8 above 12 dB) and the tile buffer fits the arch's buffer."""
    a = load_arch(arch)
    for wl in FAMILIES:
        res = lower(a, small(wl), tmp_path / wl)
        m = res.manifest
        floor = 100 if a.bits.weights == "fp32" else (12 if a.bits.weights == 8 else 5)
        assert m["numerics"]["sqnr_vs_fp32_db"] > floor, (arch, wl)
        assert sum(m["program"]["on_chip_bytes"].values()) <= a.buffer.kib * 1024
        assert len(m["program"]["instrs"]) == np.load(tmp_path / wl / "vectors.npz")[
            "desc"].shape[0]


def test_gemm_descriptor_on_a_hand_made_memory():
    """A 3 x 5 x 4 W4A8 GEMM written by hand: A codes a[i,k] = i + k - 3, weights
    w[k,n] = (k + 2n) mod 15 - 7 (4-bit), stored as pairs (w[k,2j+1] << 4 | w[k,2j] & 15)
    in tile order (panels of pw = 2 columns = one word per k: panel 0's 5 words, then
    panel 1's);
    scales s_a = 0.5, s_w = 0.25 for every column, s_y = 1: y = round(0.125 (A @ W)) clamped
    to +-127, rounded half away from zero. The emulator must give exactly that, from the
    descriptor alone."""
    k = KernelSpec(rows=2, cols=2, pack=2, a_bits=8, w_bits=4, acc_bits=32, sfu_lanes=1, we=1,
                   k_max=5, pw_max=2, mt_max=2, wpan_words=10, bt_rows=1, bt_cols=1,
                   n_max=1, passes_max=1, act_words=64, wts_words=16, prm_words=8, t_max=4,
                   tk_max=20, y_stream=8, x_stream=1, sfu_rows=1, fns=())
    a = np.add.outer(np.arange(3), np.arange(5)) - 3
    w = (np.add.outer(np.arange(5), 2 * np.arange(4)) % 15) - 7
    act = np.zeros(64, np.int8)
    act[:15] = a.ravel()
    words = ((w[:, 1::2] << 4) | (w[:, 0::2] & 15)).astype(np.uint8).view(np.int8)
    wts = np.zeros(16, np.int8)
    wts[:10] = words.T.ravel()
    prm = np.array([1.0, 0.5, 0.25, 0.25, 0.25, 0.25, 1.0, 0], np.float32)
    d = dict.fromkeys(DESC, 0)
    d.update(op=0, M=3, K=5, N=4, Z=1, H=1, order=0, nout=2, nin=2, mtr=2, pw=2, passes=1,
             a0=0, a_rs=5, b0=0, b_rs=2, b_src=0, y0=32, y_rs=4, sa=1, sb=2, bstep=1, sy=6,
             bias=-1)
    Machine(k, act, wts, prm).run(d)
    y = 0.125 * (a @ w)
    exp = np.clip(np.trunc(np.where(y >= 0, y + 0.5, y - 0.5)), -127, 127)
    assert act[32:44].reshape(3, 4).tolist() == exp.astype(int).tolist()


def test_rotary_tables_are_stored_as_their_first_halves():
    """Rotate-half pairs element d with d + dh/2 at one angle, so functional.rotary_tables
    repeats each row's dh/2 angles: prm holds [L, dh/2] (half the floats sfu_c reads), and
    a table whose halves differ is refused in one line naming the op."""
    from types import SimpleNamespace

    from dlmsim.errors import InputError
    from dlmsim.functional import rotary_tables
    from dlmsim.lower.program import _Builder

    b = _Builder(lowered_arch(load_arch("int8-zcu102")), None, [])
    cos, _ = rotary_tables(4, 8, 1e4)
    b.weights, b.env = {}, {"rotary.cos": cos, "odd": np.arange(32.0).reshape(4, 8)}
    op = SimpleNamespace(name="blocks.0.rotary_q")
    at = b.half_table(op, SimpleNamespace(name="rotary.cos"), 8)
    assert np.array_equal(np.asarray(b.prm[at:at + 16], np.float32).reshape(4, 4),
                          cos[:, :4].astype(np.float32)) and len(b.prm) == at + 16
    with pytest.raises(InputError, match="op blocks.0.rotary_q: rotary table odd has halves"):
        b.half_table(op, SimpleNamespace(name="odd"), 8)


def test_two_pass_attention_on_a_4bit_weight_port():
    """An 8-bit activation b = 16 hi + lo (hi = b >> 4 signed, lo = b & 15) passes a 4-bit
    port as hi and lo - 8, so sum_k a_k b_k = 16 sum a hi + sum a (lo - 8) + 8 sum a: the
    emulator's 2-pass product equals the exact one for every code pair."""
    b = np.arange(-127, 128)
    hi, lo = b >> 4, (b & 15) - 8
    assert hi.min() >= -8 and hi.max() <= 7 and lo.min() >= -8 and lo.max() <= 7
    a = np.arange(-127, 128)[::7]
    exact = np.outer(a, b)
    assert (16 * np.outer(a, hi) + np.outer(a, lo) + 8 * a[:, None] == exact).all()


def test_quantize_rounds_half_away_and_clamps():
    x = np.array([0.5, -0.5, 1.49, -1.5, 200.0, -200.0], np.float32)
    assert quantize(x, np.float32(1.0), 8).tolist() == [1, -1, 1, -2, 127, -127]


# ---- files, manifest, prediction ---------------------------------------------------------
def test_files_vectors_and_manifest(lowered, tmp_path):
    for (arch, _), res in lowered.items():
        for f in ("kernels.py", "run.py"):
            ast.parse((res.out_dir / f).read_text())
        m = read_manifest(res.out_dir)
        vec = np.load(res.out_dir / "vectors.npz")
        assert vec["desc"].shape == (len(m["program"]["instrs"]), len(DESC))
        for i, x in enumerate(m["program"]["instrs"]):
            assert [int(v) for v in vec["desc"][i]] == [x["desc"][f] for f in DESC]
            lo, hi = vec["spans"][i]
            assert vec[f"out.{i}"].shape == (hi - lo,)
        assert m["program"]["top"] == "accel"
        ports = m["program"]["ports"]
        assert len(ports) <= load_arch(arch).memory.ports
        assert sorted(a for v in ports.values() for a in v) == sorted(m["program"]["pointers"])
        write_manifest(tmp_path / "m.json", m)
        assert read_manifest(tmp_path / "m.json") == m


def test_weight_ports_carry_the_arrays_words_a_cycle():
    """The array takes CP = cols / pack weight words a cycle: CP x word bits over the port
    width bundles, a divisor of CP, at most the arch's ports. sda-zcu102: 10 x 8 = 80 of 128
    bits: 1; sda-style-2048: 32 x 8 = 256: 2; int8-zcu102: 32 x 16 = 512: 4; int8-u280: 512
    of 512: 1; fp32-u280: 8 x 32 = 256 of 512: 1; w4a8-kv260: 16 x 8 = 128: 1. A 2-port
    int8-zcu102 takes 2 (the most it has). Each weight port's image is its columns of every
    CP-word row; the bundles: a weight port each (prm with the first), then act_in and act
    on their own where ports remain, the second A port (act_in2) on the bundle after
    act_in's."""
    from dlmsim.lower.lowering import memory_ports
    from dlmsim.lower.program import pack_of, weight_ports

    got = {a: weight_ports(load_arch(a), pack_of(load_arch(a))) for a in
           ("sda-zcu102", "sda-style-2048-zcu102", "int8-zcu102", "int8-u280", "fp32-u280",
            "w4a8-kv260")}
    assert got == {"sda-zcu102": 1, "sda-style-2048-zcu102": 2, "int8-zcu102": 4,
                   "int8-u280": 1, "fp32-u280": 1, "w4a8-kv260": 1}
    two = load_arch("int8-zcu102", **{"memory.ports": 2})
    assert weight_ports(two, 2) == 2
    assert memory_ports(two, ["wts0", "wts1"], ["act_in", "act_in2"]) == {
        "gmem0": ["wts0", "prm", "act_in"], "gmem1": ["wts1", "act", "act_in2"]}
    assert memory_ports(load_arch("sda-style-2048-zcu102"), ["wts0", "wts1"],
                        ["act_in", "act_in2"]) == {
        "gmem0": ["wts0", "prm"], "gmem1": ["wts1"], "gmem2": ["act_in"],
        "gmem3": ["act", "act_in2"]}
    assert memory_ports(load_arch("fp32-u280"), ["wts"], ["act_in"]) == {
        "gmem0": ["wts", "prm", "act_in", "act"]}


def test_forward_scope_runs_every_block(tmp_path):
    """A DDiT block has 16 ops; merge_heads is a view (no call) and rotary is two calls
    (q and k; v is a view of qkv): 16 kernel calls per block, 8 blocks."""
    t = small("mdlm-tiny")
    res = lower(load_arch("int8-zcu102"), t, tmp_path / "fwd", scope="forward")
    assert len(scope_ops(t, "block")) == 16
    assert res.manifest["workload"]["blocks"] == list(range(8))
    assert len(res.manifest["program"]["instrs"]) == 8 * 16


def test_prediction_is_the_simulators_run_of_the_lowered_ops(lowered):
    """The manifest's predicted cycles are the engine's run of the lowered ops on the
    design as lowered (policy os): exactly `run_ops`, and never below the DRAM time."""
    from dlmsim.engine import run_ops
    from dlmsim.mapping import Mapper

    for (arch, wl), res in lowered.items():
        a = lowered_arch(load_arch(arch))
        pred = res.manifest["prediction"]
        ops = scope_ops(small(wl), "block")
        plans, seg = run_ops(Mapper(a), ops)
        assert pred["cycles"] == pytest.approx(seg.cycles)
        dram = sum(p.dram_read_bytes + p.dram_write_bytes for p in plans)
        assert pred["cycles"] >= dram / a.bandwidth_bytes_per_cycle()


# ---- the runner and the CLI --------------------------------------------------------------
def test_steps_and_error_lines():
    assert steps_for("none") == [] and steps_for("all") == ["llvm", "vhls", "csyn"]
    assert steps_for("vhls") == ["vhls"] and steps_for("vhls,llvm") == ["llvm", "vhls"]
    from dlmsim.errors import InputError

    with pytest.raises(InputError, match="unknown --run step"):
        steps_for("llvm,bogus")
    crash = ("error: 'func.call' op operand type mismatch\nPLEASE submit a bug report to "
             "https://github.com/llvm/llvm-project/issues/ and include the crash backtrace.\n"
             " #0 0x00007f llvm::sys::PrintStackTrace\n")
    assert last_error(crash).startswith("error: 'func.call'")
    assert last_error("Traceback ...\nValueError: bad\n") == "ValueError: bad"


def test_runner_without_allo_reports_one_line(lowered):
    """With a Python that cannot import allo the driver prints one error line (no
    traceback) and the runner names it."""
    res = next(iter(lowered.values()))
    rows = run_driver(res.out_dir, sys.executable, ["llvm", "vhls"])
    assert len(rows) == 1 and not rows[0]["ok"]
    assert "cannot import allo" in rows[0]["error"]
    log = (res.out_dir / "logs" / "llvm.log").read_text()
    assert "Traceback" not in log


def test_cli_lower_and_bad_input(tmp_path):
    r = CliRunner()
    d = tmp_path / "out"
    res = r.invoke(app, ["lower", "--arch", "int8-zcu102", "--workload", "mdlm-tiny",
                         "--seq-len", "16", "-o", str(d)])
    assert res.exit_code == 0, res.output
    assert (d / "manifest.json").is_file() and "kernels.py" in res.output
    res = r.invoke(app, ["lower", "-a", "w4a8-kv260", "-w", "llada-8b", "--seq-len", "16",
                         "--workload-set", "model.hidden=128", "--workload-set",
                         "model.heads=2", "--workload-set", "model.ffn=256",
                         "-o", str(tmp_path / "ll")])
    assert res.exit_code == 0, res.output
    assert "gen_len 16" in res.output
    trace = tmp_path / "t.trace.yaml"
    assert r.invoke(app, ["trace", "mdlm-tiny", "--seq-len", "16", "--batch", "1", "-o",
                          str(trace)]).exit_code == 0
    for args, word in (
        (["--arch", "nope", "--workload", "mdlm-tiny"], "nope"),
        (["--arch", "int8-zcu102", "--workload", "nope"], "nope"),
        (["--arch", "int8-zcu102", "--workload", "mdlm-tiny", "--seq-len", "16",
          "-o", str(tmp_path / "f" / "x")], "writ"),
        (["--arch", "int8-zcu102", "--workload", "mdlm-tiny", "--run", "llvm"], "Allo"),
        (["--arch", "int8-zcu102", "--workload", "mdlm-tiny", "--check"], "vhls"),
        (["--arch", "int8-zcu102", "--workload", str(trace), "--seq-len", "8"],
         "trace file"),
        (["--arch", "int8-zcu102", "--workload", "llada-8b", "--seq-len", "4096"], "GiB"),
        (["--arch", "spatial-int8-u280", "--workload", "mdlm-tiny"], "generates float32 designs"),
    ):
        if word == "writ":
            (tmp_path / "f").write_text("a file, not a directory")
        res = r.invoke(app, ["lower", *args])
        assert res.exit_code == 1, (args, res.output)
        assert word in res.output, (args, res.output)


# ---- with a real Allo (DLMSIM_ALLO_PYTHON=path of its python; skipped in CI) -------------
ALLO = os.environ.get("DLMSIM_ALLO_PYTHON")
needs_allo = pytest.mark.skipif(not ALLO, reason="set DLMSIM_ALLO_PYTHON to a Python with "
                                "Allo (../shared/tools/allo/) to run the generated program")


@needs_allo
def test_real_allo_llvm_matches_the_emulator(lowered):
    for res in lowered.values():
        rows = run_driver(res.out_dir, ALLO, ["llvm"])
        assert rows[0]["ok"], rows[0]["error"]
        ops = rows[0]["result"]["ops"]
        assert all(o["ok"] for o in ops)


@needs_allo
def test_real_allo_vhls_is_the_design(lowered):
    from dlmsim.lower.check import check_lowered

    res = lowered[("fp32-u280", "llada-8b")]
    rows = run_driver(res.out_dir, ALLO, ["vhls"])
    assert rows[0]["ok"], rows[0]["error"]
    rep = check_lowered(res.out_dir, load_arch("fp32-u280"))
    assert rep["failures"] == [], rep["failures"]
    assert json.loads((res.out_dir / "results" / "vhls.json").read_text())["ok"]


def test_sfu_codes_cover_the_lowered_functions():
    assert set(SFU_CODES) >= {"layernorm", "rmsnorm", "softmax", "gelu_tanh", "gelu_erf",
                              "silu", "swiglu", "add", "gated", "modulate", "rotary"}
