"""Reading Allo-emitted HLS C++ back: dlmsim.lower.cpp (parser), .structure (what hardware
it describes, and the check against the design) and .latency (the loop-nest estimate).

The fixtures under tests/fixtures/hls_cpp/ are Allo's own output, made by
tests/fixtures/hls_cpp/make_fixtures.py with a real Allo; the small hand-written programs
here follow the same emitter's style for the rules Allo's templates do not exercise.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dlmsim.errors import InputError
from dlmsim.lower.cpp import Call, Loop, evaluate, parse, resolve, walk
from dlmsim.lower.latency import OP_CYCLES, estimate, parameters
from dlmsim.lower.structure import check, describe, instances, multipliers

FIX = Path(__file__).parent / "fixtures" / "hls_cpp"


def cpp(name: str) -> str:
    return (FIX / f"{name}.cpp").read_text()


def loops(breakdown, function):
    return {r["loop"]: r for r in breakdown["loops"] if r["function"] == function}


# ------------------------------------------------------------------------------- parser
def test_parses_parameters_locals_and_the_top():
    prog = parse(cpp("engine_dyn"))
    assert prog.top == "engine"
    top = prog.function(None)
    assert [(p.name, p.type.name, p.shape) for p in top.params] == [
        ("v153", "int8_t", (64,)), ("v154", "int8_t", (64,)), ("v155", "int32_t", ()),
        ("v156", "int32_t", (64,))]
    assert top.vars["a_t"].shape == (2, 4) and not top.vars["a_t"].param
    pe = prog.functions["PE_kernel_0_0"]
    assert [p.stream for p in pe.params] == [True] * 4 + [False] * 3
    assert pe.params[0].depth == 3 and pe.params[0].logical == (4,)
    assert pe.params[4].registers  # int32_t v[2][2], complete on both dims
    kernel = parse(cpp("vitis_engine_direct")).function("engine")
    assert [(p.name, p.pointer) for p in kernel.params] == [
        ("v153", True), ("v154", True), ("v155", False), ("v156", True)]


def test_parses_loops_pragmas_calls_and_aliases():
    prog = parse(cpp("systolic_2x4"))
    tile = prog.functions["systolic_tile"]
    assert tile.dataflow
    assert tile.vars["A_fifo"].stream and tile.vars["A_fifo"].shape == (2, 5)
    assert tile.vars["A_fifo"].depth == 3 and tile.vars["B_fifo"].depth == 5
    calls = [n for n, _ in walk(tile.body) if isinstance(n, Call)]
    assert [c.callee for c in calls][:2] == ["PE_kernel_0_0", "PE_kernel_1_0"]
    assert calls[1].args[-2:] == ["0", "1"]
    # PE_kernel_1_0 passes its A output as v...; the alias names A_fifo[0][2]
    assert resolve(tile, calls[1].args[2]) == ("A_fifo", (0, 2))
    sys = prog.functions["systolic"]
    outer = sys.body[[isinstance(n, Loop) for n in sys.body].index(True)]
    assert (outer.label, outer.lo, outer.hi, outer.step) == ("l_outer_tile_mi_ni_fused", "0",
                                                              "4", 1)
    ak = next(n for n, _ in walk(outer.body) if isinstance(n, Loop))
    assert ak.label == "l_load_A_tile_ak" and ak.ii == 1
    f = parse(cpp("float_loops")).function(None)
    assert [(lp.label, lp.ii, lp.unroll) for lp in f.body if isinstance(lp, Loop)] == [
        ("l_acc_k", 1, None), ("l_u4_i", None, 4), ("l_full_j", None, 0)]
    top = parse(cpp("engine_dyn")).function(None)
    jb = next(n for n in top.body if isinstance(n, Loop))
    assert (jb.var, jb.hi, jb.step, jb.label) == ("v161", "v160", 1, "")


def test_evaluate_is_integer_c_arithmetic():
    env = {"v": 3.0, "w": 10.0}
    assert evaluate("((v * 4) + 1)", env) == 13
    assert evaluate("(w / 3)", env) == 3 and evaluate("(w % 3)", env) == 1
    assert evaluate("min(v, w)", env) == 3 and evaluate("v == 3", env) == 1
    assert evaluate("(int64_t)v * 2", env) == 6
    assert evaluate("u + 1", env) is None and evaluate("foo(v)", env) is None


@pytest.mark.parametrize("text, word", [
    ("", "empty"),
    ("void f(\n  int v0\n) {\n  int v1 = v0;\n", "truncated"),
    ("int x = 3;\n", "line 1"),
    ("void f(\n  int v0\n) {\n  for (;;) {\n  }\n}\n", "line 4"),
    ("void f(\n  int v0\n) {\n  v0 += 1\n}\n", "line 4"),
])
def test_unreadable_cpp_is_one_clear_error(text, word):
    with pytest.raises(InputError, match=word):
        parse(text)


# ---------------------------------------------------------------------------- structure
def test_instances_one_per_call_site_times_the_callers():
    """two_wrappers: block calls q_proj and k_proj, each calls the one C++ function
    systolic: 2 RTL instances of systolic, so 2 of systolic_tile and of every PE."""
    n = instances(cpp("two_wrappers"))
    assert n["block"] == n["q_proj"] == n["k_proj"] == 1
    assert n["systolic"] == n["systolic_tile"] == n["PE_kernel_0_0"] == 2
    d = describe(cpp("two_wrappers"))
    assert [(m["rows"], m["cols"], m["instances"]) for m in d["meshes"]] == [(2, 2, 2)]
    assert d["multipliers"]["total"] == 8  # 4 PEs x 1 multiply x 2 instances


HAND = """
void leaf(
  int32_t v0[4]
) {	// L1
  l_i: for (int i = 0; i < 4; i++) {	// L2
    int32_t v1 = v0[i];	// L3
    int32_t v2 = v1 * v1;	// L4
    v0[i] = v2;	// L5
  }
}

void inl(
  int32_t v3[4]
) {	// L8
  #pragma HLS inline
  leaf(v3);	// L9
}

/// This is top function.
void top(
  int32_t v4[4],
  int32_t v5
) {	// L12
  #pragma HLS allocation function instances=leaf limit=1
  leaf(v4);	// L13
  leaf(v4);	// L14
  l_u: for (int u = 0; u < 3; u++) {	// L15
  #pragma HLS unroll
    inl(v4);	// L16
  }
  l_p: for (int p = 0; p < 4; p++) {	// L18
  #pragma HLS unroll factor=2
    inl(v4);	// L19
  }
}
"""


def test_instances_allocation_unroll_and_inline():
    """top: two leaf calls capped at 1 by allocation; inl called in a loop fully unrolled
    (3 trips) and in one unrolled by 2: 3 + 2 = 5 instances of inl (inlined: no module, but
    its hardware is copied 5 times), each holding one leaf call: 5 more leaf instances,
    1 + 5 = 6 in all, each with one 32 x 32 multiply: 6 multipliers."""
    n = instances(HAND)
    assert n == {"top": 1, "leaf": 6, "inl": 5}
    d = describe(HAND)
    assert d["inline"] == ["inl"]
    assert d["multipliers"]["total"] == 6
    assert multipliers(parse(HAND).functions["leaf"])[0]["a_bits"] == 32


def test_mesh_grid_orientation_and_multiplier_widths():
    """systolic_2x4 is Allo's systolic on Mt = 2 rows x Nt = 4 cols: PE functions
    PE_kernel_<j>_<i>, j < 4, i < 2; each one int8 x int8 multiply (widened to int16 in the
    C++: the operands are 8 bits) and 1 MAC."""
    d = describe(cpp("systolic_2x4"))
    (m,) = d["meshes"]
    assert (m["parent"], m["pe"], m["rows"], m["cols"], m["pes"], m["instances"]) == \
        ("systolic_tile", "PE_kernel", 2, 4, 8, 1)
    assert m["macs_per_pe"] == 1
    (mul,) = m["multipliers_per_pe"]
    assert (mul["a_bits"], mul["b_bits"], mul["product_bits"], mul["float"]) == (8, 8, 16,
                                                                                 False)
    assert check(d, {"rows": 2, "cols": 4, "macs_per_pe": 1, "array_instances": 1}) == []


def test_dsp_packed_pes():
    """packed_int8xint8: Allo's PE_kernel_packed_int8xint8 puts two 8-bit weights in an
    18 x 27 product (fields [7:0] and [24:17] of the 27-bit operand) and reads two 16-bit
    results out of the 45-bit product: 2 MACs per PE; the 2 x 2 MAC array is a 2 x 1 mesh.
    packed_int4xint8 does the same with two 4-bit weights ([3:0], [16:13]) into 48 bits."""
    d = describe(cpp("packed_int8xint8_2x2"))
    (m,) = d["meshes"]
    assert (m["rows"], m["cols"], m["macs_per_pe"]) == (2, 1, 2)
    (mul,) = m["multipliers_per_pe"]
    assert (mul["a_bits"], mul["b_bits"], mul["product_bits"]) == (18, 27, 45)
    assert (mul["a_fields"], mul["b_fields"], mul["macs"]) == ([8], [8, 8], 2)
    assert check(d, {"rows": 2, "cols": 2, "macs_per_pe": 2, "array_instances": 1,
                     "dataflow_top": True}) == []
    (m4,) = describe(cpp("packed_int4xint8_mesh"))["meshes"]
    assert m4["multipliers_per_pe"][0]["b_fields"] == [4, 4] and m4["macs_per_pe"] == 2


def test_check_names_each_difference():
    plain = describe(cpp("systolic_2x4"))
    fails = check(plain, {"rows": 2, "cols": 8, "macs_per_pe": 2, "dataflow_top": True})
    assert any(f.startswith("array: expected a 2 x 8 MACs, found 2 x 4 MACs") for f in fails)
    assert any(f.startswith("packing: expected 2 MAC(s) per PE, found 1") for f in fails)
    assert any("dataflow region in the top function systolic, found none" in f for f in fails)
    two = check(describe(cpp("two_wrappers")), {"array_instances": 1})
    assert two == [("array instances: expected 1, found 2 (PE_kernel mesh in systolic_tile "
                    "x2)")]
    flat = check(describe(cpp("dataflow3")), {"rows": 8, "cols": 8})
    assert "no unfolded PE mesh" in flat[0]
    with pytest.raises(InputError, match="unknown expectation"):
        check(plain, {"row": 2})


def test_dataflow_regions_streams_and_buffers():
    """dataflow3: top is a dataflow region of stage1, stage2, stage3; stream B (depth 4)
    from stage1 to stage2; array C handed from stage2 to stage3 (a ping-pong buffer)."""
    (r,) = describe(cpp("dataflow3"))["dataflow"]
    assert r["region"] == "top" and r["processes"] == ["stage1", "stage2", "stage3"]
    assert r["streams"] == [{"name": "B", "type": "int32_t", "count": 1, "depth": 4,
                             "length": [16], "producers": ["stage1"],
                             "consumers": ["stage2"]}]
    assert r["buffers"] == [{"name": "C", "type": "int32_t", "shape": [16],
                             "producers": ["stage2"], "consumers": ["stage3"]}]
    (mesh,) = describe(cpp("systolic_2x4"))["dataflow"]
    a = next(s for s in mesh["streams"] if s["name"] == "A_fifo")
    assert a["count"] == 10 and a["producers"][0] == "l_data_load_k8"
    assert a["consumers"][-1] == "l_data_drain_k9" and len(a["consumers"]) == 9


def test_m_axi_bundles_and_widths():
    """The Vitis kernel.cpp gives each array argument its own bundle (Allo's
    postprocess_hls_code): gmem0, gmem1 for the int8 act/wts, gmem2 for the int32 acc."""
    ax = describe(cpp("vitis_engine_direct"))["m_axi"]
    assert [(p["port"], p["bundle"], p["bits"], p["offset"]) for p in ax["ports"]] == [
        ("v153", "gmem0", 8, "slave"), ("v154", "gmem1", 8, "slave"),
        ("v156", "gmem2", 32, "slave")]
    assert ax["count"] == 3 and ax["max_width_bits"] == 32
    d = describe(cpp("vitis_engine_direct"))
    assert check(d, {"m_axi_bundles": 3, "max_port_bits": 512}) == []
    assert check(d, {"m_axi_bundles": 1, "max_port_bits": 16}) == [
        "m_axi: expected 1 bundle(s), found 3 (gmem0, gmem1, gmem2)",
        "m_axi: expected ports at most 16 bits wide, found gmem2 32 bits"]
    assert "plain vhls text has none" in check(describe(cpp("engine_dyn")),
                                               {"m_axi_bundles": 1})[0]


def test_on_chip_storage_bytes():
    """engine_dyn: a_t 2x4 int8 (8 B) + w_t 4x2 int8 (8) + c_t 2x2 int32 (16) in engine;
    local_A 8 + local_B 8 + local_C 16 in systolic; A_drain, B_drain 2 + 2 in systolic_tile:
    68 B. FIFOs: A_fifo and B_fifo are 2 x 3 int8 streams of depth 3: 2 x 6 x 3 = 36 B."""
    st = describe(cpp("engine_dyn"))["storage"]
    assert st["bytes"] == 68 and st["fifo_bytes"] == 36
    assert {a["name"]: a["bytes"] for a in st["arrays"]}["local_C"] == 16
    two = describe(cpp("two_wrappers"))["storage"]
    assert {(a["function"], a["name"]): a["instances"] for a in two["arrays"]}[
        ("systolic", "local_C")] == 2


def test_weights_copied_on_chip():
    """wrap_io=True: load_buf0/load_buf1 copy act (v165) and wts (v166) whole into buf0,
    buf1 (64 B each); wrap_io=False keeps them behind m_axi and copies 8-element tiles."""
    wrapped = describe(cpp("vitis_engine_wrap_io"))
    assert [(c["arg"], c["into"], c["bytes"]) for c in wrapped["copied_on_chip"]] == [
        ("v165", "buf0", 64), ("v166", "buf1", 64)]
    assert check(wrapped, {"not_on_chip": [1]}) == [
        ("weights on chip: expected argument v166 to stay in DRAM, found it copied whole "
         "into engine.buf1 (64 B, line 354)")]
    direct = describe(cpp("vitis_engine_direct"))
    assert direct["copied_on_chip"] == [] and check(direct, {"not_on_chip": [0, 1]}) == []
    with pytest.raises(InputError, match="no parameter 'w'"):
        check(direct, {"not_on_chip": ["w"]})


COPY_OR_COMPUTE = """
/// This is top function.
void top(
  float v0[16],
  float v1[16],
  float v2[16]
) {	// L1
  float buf[16];	// L2
  float y[16];	// L3
  l_c: for (int i = 0; i < 16; i++) {	// L4
    float v3 = v0[i];	// L5
    float v4 = v3;	// L6
    buf[i] = v4;	// L7
  }
  l_s: for (int j = 0; j < 16; j++) {	// L9
    float v5 = v1[j];	// L10
    float v6 = v5 * (float)2.000000;	// L11
    y[j] = v6;	// L12
  }
  l_o: for (int k = 0; k < 16; k++) {	// L14
    float v7 = buf[k];	// L15
    float v8 = y[k];	// L16
    float v9 = v7 + v8;	// L17
    v2[k] = v9;	// L18
  }
}
"""


def test_computing_from_an_argument_is_not_copying_it():
    """v0 is loaded and stored unchanged into buf (16 floats, all of v0): copied whole;
    y is computed from v1 (x 2): a result, not a copy of the weights."""
    d = describe(COPY_OR_COMPUTE)
    assert [(c["arg"], c["into"], c["bytes"]) for c in d["copied_on_chip"]] == [
        ("v0", "buf", 64)]
    assert check(d, {"not_on_chip": ["v1"]}) == []


# ------------------------------------------------------------------------------ latency
def test_pipelined_and_sequential_loops():
    """dataflow3, auto-pipelining off. stage1: 16 trips at II=1, one iteration = a load
    (2) then the stream write (1): depth 3, (16 - 1) x 1 + 3 = 18. stage2: stream read (1)
    then the store (1) (x 3 by a constant is no multiplier): 15 + 2 = 17. stage3
    unpipelined: 16 x (load 2 + store 1 + 1) = 64."""
    _, b = estimate(cpp("dataflow3"), auto_pipeline=None)
    assert loops(b, "stage1")["l_p_i"]["cycles"] == 18
    assert loops(b, "stage2")["l_q_i1"]["cycles"] == 17
    assert loops(b, "stage3")["l_r_i2"]["cycles"] == 64


def test_dataflow_region_streams_and_ping_pong():
    """dataflow3 with each call costing 1 + its loop. stage1 L = 19, F = 1 + 3 = 4;
    stage2 reads stream B: starts at 0 + 4, finishes at max(4 + 18, 19 + F 3) = 22;
    stage3 reads array C (ping-pong): starts when stage2 finishes, 22 + 65 = 87. With
    Vitis's automatic pipelining stage3's loop is pipelined (15 + 3 = 18): 22 + 19 = 41."""
    cycles, b = estimate(cpp("dataflow3"), auto_pipeline=None)
    assert cycles == 87
    rows = {p["process"]: p for p in b["dataflow"][0]["processes"]}
    assert (rows["stage2"]["start"], rows["stage2"]["finish"]) == (4, 22)
    assert rows["stage3"]["start"] == 22
    assert estimate(cpp("dataflow3"))[0] == 41
    assert loops(estimate(cpp("dataflow3"))[1], "stage3")["l_r_i2"]["kind"] == \
        "auto-pipelined"


SLOW_PRODUCER = """
void produce(
  int32_t v0[32],
  hls::stream< int32_t > &v1 /* v1[32] */
) {	// L1
  l_p: for (int i = 0; i < 32; i++) {	// L2
  #pragma HLS pipeline II=2
    int32_t v2 = v0[i];	// L3
    v1.write(v2); // v1[i] = v2;	// L4
  }
}

void consume(
  hls::stream< int32_t > &v3 /* v3[32] */,
  int32_t v4[32]
) {	// L7
  l_c: for (int j = 0; j < 32; j++) {	// L8
  #pragma HLS pipeline II=1
    int32_t v5 = v3.read(); // v3[j];	// L9
    v4[j] = v5;	// L10
  }
}

/// This is top function.
void top(
  int32_t v6[32],
  int32_t v7[32]
) {	// L13
  #pragma HLS dataflow
  hls::stream< int32_t > s /* s[32] */;	// L14
  #pragma HLS stream variable=s depth=2
  produce(v6, s);	// L15
  consume(s, v7);	// L16
}
"""


def test_dataflow_slow_producer_paces_the_consumer():
    """produce: 32 trips at II=2, depth load 2 + write 1 = 3: 31 x 2 + 3 = 65, +1 call = 66,
    F = 4. consume: 31 + (read 1 + store 1) = 33 + 1 = 34, F = 3. consume starts at 4 and
    cannot finish before the producer's last token plus its own 3: max(4 + 34, 66 + 3) =
    69 = the slowest stage (66) plus the consumer's fill (3)."""
    assert estimate(SLOW_PRODUCER)[0] == 69


def test_float_accumulation_ii_and_unroll():
    """float_loops. l_acc_k: v = v + A[k] * B[k], pipelined at II=1 asked; the add is on
    the loop-carried path, so II = fadd (4): depth = load 2 + fmul 3 + fadd 4 = 9,
    63 x 4 + 9 = 261. l_u4_i unrolled by 4: 16 / 4 = 4 iterations of (load 2 + fmul 3 +
    store 1 = 6) + 1: 28. l_full_j fully unrolled: one body, load 2 + fadd 4 + store 1 =
    7. Outside the loops only the final store to the 1-element C (a register, 0). 296."""
    cycles, b = estimate(cpp("float_loops"))
    lp = loops(b, "kern")
    assert (lp["l_acc_k"]["ii"], lp["l_acc_k"]["cycles"]) == (OP_CYCLES["fadd"], 261)
    assert lp["l_u4_i"]["cycles"] == 28 and lp["l_full_j"]["cycles"] == 7
    assert cycles == 296
    assert estimate(cpp("float_loops"), op_cycles={"fadd": 7})[1]["loops"][0]["ii"] == 7


def test_trip_counts_from_scalar_arguments():
    """engine_dyn: `int v160 = v155; for (v161 = 0; v161 < v160; ...)`: the jb loop runs n
    times, each (tile copies + systolic call + store loop) + 1: cycles(n) = n x c."""
    assert [p["name"] for p in parameters(cpp("engine_dyn")) if p["kind"] == "scalar"] == \
        ["v155"]
    one, _ = estimate(cpp("engine_dyn"), scalars={"v155": 1})
    three, _ = estimate(cpp("engine_dyn"), scalars={2: 3})
    assert three == 3 * one and one > 0
    assert estimate(cpp("engine_dyn"), scalars={2: 0})[0] == 0
    with pytest.raises(InputError, match=r"depends on v160.*v155 \(position 2\)"):
        estimate(cpp("engine_dyn"))
    with pytest.raises(InputError, match="no such parameter"):
        estimate(cpp("engine_dyn"), scalars={"n": 3})
    with pytest.raises(InputError, match="finite"):  # negative values are descriptor flags
        estimate(cpp("engine_dyn"), scalars={"v155": float("nan")})


BRANCHY = """
/// This is top function.
void top(
  int32_t v0[64],
  int32_t v1
) {	// L1
  bool v2 = v1 > 8;	// L2
  if (v2) {	// L3
    l_a: for (int i = 0; i < 64; i++) {	// L4
    #pragma HLS pipeline II=1
      v0[i] = 0;	// L5
    }
  } else {
    l_b: for (int j = 0; j < 8; j++) {	// L7
    #pragma HLS pipeline II=1
      v0[j] = 1;	// L8
    }
  }
  l_t: for (int k = 0; k < 8; k++) {	// L11
    l_r: for (int r = 0; r < k; r++) {	// L12
    #pragma HLS pipeline II=1
      v0[r] = 2;	// L13
    }
  }
}
"""


def test_if_else_and_triangular_nests():
    """With v1 = 9 the branch takes l_a: 63 + 1 (a store) = 64; with v1 = 1, l_b: 7 + 1 = 8;
    unknown v1: the slower branch, 64. l_t runs l_r over r < k, k = 0..7: l_r is evaluated
    at the mean k = 3.5 (trips ceil(3.5) = 4, so 3 + 1 = 4 cycles) and l_t costs
    8 x (4 + 1) = 40."""
    big, _ = estimate(BRANCHY, scalars={"v1": 9})
    small, _ = estimate(BRANCHY, scalars={"v1": 1})
    assert (big, small) == (64 + 40, 8 + 40)
    unknown, b = estimate(BRANCHY, scalars={}, auto_pipeline=None)
    assert unknown == 104 and loops(b, "top")["l_t"]["cycles"] == 40


def test_m_axi_burst_latency():
    """vitis_engine_direct with a 100-cycle m_axi latency: in each of the n = 3 jb
    iterations the two tile-copy loops (auto-pipelined, reading act and wts) and the store
    loop (writing acc) each pay one burst: 3 x 3 x 100 = 900 more cycles."""
    base, _ = estimate(cpp("vitis_engine_direct"), scalars={"v155": 3})
    slow, _ = estimate(cpp("vitis_engine_direct"), scalars={"v155": 3},
                       axi_latency_cycles=100)
    assert slow - base == 900


def test_systolic_2x4_by_hand():
    """Allo's systolic, M=4 K=8 N=8 on 2 x 4, after schedule_systolic: 4 output tiles, each
    - load_A: 8 trips pipelined, depth load 2 + store 1 (local_A is partitioned on dim 1
      only: a memory): 7 + 3 = 10; load_B the same: 10;
    - systolic_tile (dataflow), + 1 for the call: data_load auto-pipelined (its m and n
      loops of 2 and 4 trips unrolled, one after the other: depth 3 + 3): 7 + 6 = 13, F 6;
      each PE: 1 + (7 + read 1 + mul 1) = 10, F 3; PE(j, i) starts at 6 + 3 (i + j) and
      finishes at 16 + 3 (i + j): PE_3_1 at 28; the drain loop (7 + 2 + 2 = 11, F 4)
      starts at 21 and ends at max(21 + 11, 28 + 4) = 32: the call is 33;
    - store_C: 4 trips, local_C in registers, store 1: 3 + 1 = 4.
    Tile: 10 + 10 + 33 + 4 = 57, loop: 4 x (57 + 1) = 232 cycles."""
    cycles, b = estimate(cpp("systolic_2x4"))
    assert b["dataflow"][0]["cycles"] == 32
    assert cycles == 232


def test_bad_estimate_inputs():
    with pytest.raises(InputError, match="while loop"):
        estimate("/// This is top function.\nvoid t(\n  int32_t v0\n) {\n  while (true) {\n"
                 "    if (!(v0)) break;\n  }\n}\n")
    with pytest.raises(InputError, match="not defined"):
        estimate(cpp("dataflow3"), top="nope")
    with pytest.raises(InputError, match="op_cycles"):
        estimate(cpp("dataflow3"), op_cycles={"fadd": -1})
    with pytest.raises(InputError, match="axi_latency"):
        estimate(cpp("dataflow3"), axi_latency_cycles=-5)


# --------------------------------------------------- with a real Allo (skipped without it)
def test_allo_systolic_64_on_8x8(tmp_path):
    """Allo's systolic GEMM 64 x 64 x 64 on 8 x 8 after schedule_systolic: one 8 x 8 mesh,
    64 int8 multipliers; 64 output tiles of (load_A 66 + load_B 66 + mesh call 119 +
    store_C 8 + 1) = 16,640 cycles (see the report of issue 9 for the derivation)."""
    allo = pytest.importorskip("allo")
    from allo.ir.types import int8, int32
    from allo.library.systolic import schedule_systolic, systolic

    s = allo.customize(systolic, instantiate=[int8, int8, int32, 64, 64, 64, 8, 8])
    schedule_systolic(s)
    text = str(s.build(target="vhls"))
    d = describe(text)
    assert check(d, {"rows": 8, "cols": 8, "macs_per_pe": 1, "array_instances": 1}) == []
    assert d["multipliers"]["total"] == 64
    assert estimate(text)[0] == 16640


def test_arithmetic_dsp_packing_counts_two_macs():
    """WP486's packing in arithmetic form, as dlmsim's packed PE writes it: the 27-bit
    operand is (w1 << 18) + w0, one multiply by a, the low 18 bits are a*w0 and
    (p - low) >> 18 is a*w1: one multiplier, 2 MACs. A plain product stays 1 MAC."""
    from dlmsim.lower.cpp import parse
    from dlmsim.lower.structure import multipliers

    text = """void pe(
  int8_t v0,
  int8_t v1,
  int8_t v2,
  int32_t v3[2]
) {
  ap_int<27> v4 = v1;
  ap_int<27> v5 = v4 << 18;
  ap_int<27> v6 = v2;
  ap_int<28> v7 = v5 + v6;
  ap_int<27> op = v7;
  ap_int<35> v8 = op;
  ap_int<35> v9 = v0;
  ap_int<35> v10 = v8 * v9;
  ap_int<45> p = v10;
  ap_int<18> lo = p;
  ap_int<46> v11 = p;
  ap_int<46> v12 = lo;
  ap_int<46> v13 = v11 - v12;
  ap_int<46> v14 = v13 >> 18;
  v3[0] = lo;
  v3[1] = v14;
  int16_t v15 = v0;
  int16_t v16 = v1;
  int16_t v17 = v15 * v16;
  v3[0] = v17;
}
"""
    m = multipliers(parse(text).functions["pe"])
    assert [x["macs"] for x in m] == [2, 1]


RATE = """
/// This is top function.
void top(
  int8_t *v0,
  float *v1,
  int8_t *v2,
  int32_t v3
) {	// L1
  #pragma HLS interface m_axi port=v0 offset=slave bundle=gmem0 max_widen_bitwidth=128
  #pragma HLS interface m_axi port=v1 offset=slave bundle=gmem0 max_widen_bitwidth=128
  #pragma HLS interface m_axi port=v2 offset=slave bundle=gmem1 max_widen_bitwidth=128
  l_w: for (int i = 0; i < 100; i++) {	// L2
  #pragma HLS pipeline II=1
    l_j: for (int j = 0; j < 32; j++) {	// L3
      int v4 = i * 32;	// L4
      int v5 = v4 + j;	// L5
      int8_t v6 = v0[v5];	// L6
      v2[v5] = v6;	// L7
    }
  }
  l_p: for (int k = 0; k < 10; k++) {	// L8
  #pragma HLS pipeline II=1
    l_e: for (int e = 0; e < 8; e++) {	// L9
      float v7 = v1[e];	// L10
      int8_t v8 = v0[e];	// L11
    }
    bool v9 = v3 > 0;	// L12
    if (v9) {	// L13
      l_f: for (int f = 0; f < 8; f++) {	// L14
        float v10 = v1[f];	// L15
      }
    }
  }
}
"""


def test_m_axi_rate_sets_the_ii():
    """A bundle moves one 128-bit (16-byte) beat a cycle, reads and writes apart.
    l_w reads 32 int8 (32 B) through gmem0 and writes 32 B through gmem1 an iteration:
    II = ceil(32 / 16) = 2, latency (100 - 1) x 2 + depth 3 (load 2 + store 1) = 201.
    l_p reads 8 floats (32 B) and 8 int8 (8 B) through gmem0, both arguments on one
    bundle: 40 B, II = ceil(40 / 16) = 3: 9 x 3 + depth 2 = 29 cycles; with v3 > 0 the
    branch adds 8 floats: 72 B, II 5, and its loads follow l_e's (depth 2 + 2):
    9 x 5 + 4 = 49."""
    _, b = estimate(RATE, scalars={"v3": 0})
    assert (loops(b, "top")["l_w"]["ii"], loops(b, "top")["l_w"]["cycles"]) == (2, 201)
    assert (loops(b, "top")["l_p"]["ii"], loops(b, "top")["l_p"]["cycles"]) == (3, 29)
    _, b = estimate(RATE, scalars={"v3": 1})
    assert (loops(b, "top")["l_p"]["ii"], loops(b, "top")["l_p"]["cycles"]) == (5, 49)


SHARED = """
void rd(
  int8_t *v0,
  int32_t v1,
  hls::stream< int8_t > &v2 /* v2[64] */
) {	// L1
  bool v3 = v1 == 1;	// L2
  bool v4 = v1 == 2;	// L3
  bool v5 = v3 | v4;	// L4
  if (v5) {	// L5
    l_r: for (int i = 0; i < 64; i++) {	// L6
    #pragma HLS pipeline II=1
      l_e: for (int e = 0; e < 16; e++) {	// L7
        int v6 = i * 16;	// L8
        int v7 = v6 + e;	// L9
        int8_t v8 = v0[v7];	// L10
        v2.write(v8); // v2[i] = v8;	// L11
      }
    }
  }
}

void sink(
  hls::stream< int8_t > &v9 /* v9[64] */,
  hls::stream< int8_t > &v10 /* v10[64] */,
  int32_t v11,
  int32_t v12
) {	// L12
  l_s: for (int j = 0; j < 64; j++) {	// L13
  #pragma HLS pipeline II=1
    l_f: for (int f = 0; f < 16; f++) {	// L14
      bool v13 = v11 == 1;	// L15
      if (v13) {	// L16
        int8_t v14 = v9.read(); // v9[j];	// L17
      }
      bool v15 = v12 == 1;	// L18
      if (v15) {	// L19
        int8_t v16 = v10.read(); // v10[j];	// L20
      }
    }
  }
}

/// This is top function.
void top(
  int8_t *v20,
  int8_t *v21,
  int32_t v22,
  int32_t v23
) {	// L21
  #pragma HLS interface m_axi port=v20 offset=slave bundle=gmem0 max_widen_bitwidth=128
  #pragma HLS interface m_axi port=v21 offset=slave bundle=BUNDLE max_widen_bitwidth=128
  #pragma HLS dataflow
  hls::stream< int8_t > s0 /* s0[64] */;	// L22
  hls::stream< int8_t > s1 /* s1[64] */;	// L23
  rd(v20, v22, s0);	// L24
  rd(v21, v23, s1);	// L25
  sink(s0, s1, v22, v23);	// L26
}
"""


def test_processes_sharing_a_bundle_share_its_beats():
    """Each rd reads 16 int8 an iteration (one 128-bit beat) for 64 iterations when its
    flag (v22 or v23) is 1 or 2 (`c1 | c2` of two bools): alone, 63 x II 1 + depth 3 (load
    2 + write 1; i * 16 is a shift) = 66 + 1 call = 67 cycles, first output F = 4. sink:
    63 + depth 1 (a read) + 1 call = 65, F 2, starting at 4: the chain ends at max(4 + 65,
    67 + 2) = 69 when the two rd read different bundles. Both on gmem0 at once: the bundle
    moves 64 + 64 = 128 beats, so the region takes at least 128 cycles. With v23 = 0 the
    second rd reads nothing: gmem0 moves 64 beats and the chain's 69 stands."""
    one_bundle = SHARED.replace("BUNDLE", "gmem0")
    cycles, b = estimate(one_bundle, scalars={"v22": 1, "v23": 2})
    assert b["dataflow"][-1]["bundle_beats"] == {"gmem0 r": 128.0}
    assert cycles == 128
    assert estimate(SHARED.replace("BUNDLE", "gmem1"), scalars={"v22": 1, "v23": 2})[0] == 69
    cycles, b = estimate(one_bundle, scalars={"v22": 1, "v23": 0})
    assert b["dataflow"][-1]["bundle_beats"] == {"gmem0 r": 64.0} and cycles == 69


def test_bitwise_operators_evaluate_on_whole_numbers():
    """Allo joins conditions with `|` and `&` of bools; Python refuses them on floats."""
    assert evaluate("a | b", {"a": 0.0, "b": 1.0}) == 1.0
    assert evaluate("a & b", {"a": 1.0, "b": 0.0}) == 0.0
    assert evaluate("a | b", {"a": 0.5, "b": 1.0}) is None  # not a whole number
