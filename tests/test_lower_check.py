"""dlmsim.lower.check: the Allo-emitted HLS C++ of a lowered program against its arch.

The fixture is a real program: `dlmsim lower` of an int8 design with a 4 x 4 array, its
Vitis kernel.cpp as a real Allo emitted it (tests/fixtures/lowered/README.md). No Allo is
needed here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dlmsim.arch import load_arch
from dlmsim.errors import InputError
from dlmsim.lower.check import RATIO, check_lowered, format_report

FIX = Path(__file__).parent / "fixtures" / "lowered" / "int8-4x4-mdlm-tiny"
ARCH = {"array.rows": 4, "array.cols": 4}


def _copy(tmp_path) -> Path:
    d = tmp_path / "prog"
    shutil.copytree(FIX, d)
    return d


def test_the_emitted_program_is_the_design():
    """One 4 x 2 mesh of packed PEs (4 x 4 MACs, 2 per DSP), instantiated once; the top a
    dataflow of the five processes; three m_axi bundles (the arch has 4 ports) widened to
    128 bits; the weights not copied on chip; the loop-nest estimate within RATIO of the
    simulator's prediction for the same 16 ops."""
    rep = check_lowered(FIX, load_arch("int8-zcu102", **ARCH))
    assert rep["failures"] == [], format_report(rep)
    assert rep["array"] == {"pe_rows": 4, "pe_cols": 2, "pes": 8, "macs_per_pe": 2,
                            "instances": 1}
    assert rep["dataflow"]["processes"] == ["fetch_a", "fetch_b", "array_unit", "sfu_a",
                                            "sfu_b", "sfu_c", "store"]
    assert {b: v["bits"] for b, v in rep["m_axi"].items()} == {"gmem0": 128, "gmem1": 128,
                                                              "gmem2": 128}
    est = rep["estimate"]
    assert len(est["per_op"]) == 16
    assert 1 / RATIO <= est["ratio"] <= RATIO
    assert est["cycles"] == pytest.approx(sum(o["cycles"] for o in est["per_op"]))


def test_a_different_arch_fails_with_the_reasons():
    """The same C++ checked against the arch it was not lowered for names each difference:
    an 8 x 8 array, 512-bit ports."""
    rep = check_lowered(FIX, load_arch("int8-u280", **{"array.rows": 8, "array.cols": 8}))
    text = " ".join(rep["failures"])
    assert "expected a 8 x 8 MACs, found 4 x 4 MACs" in text
    assert "512 bits" in text


def test_a_second_array_instance_or_no_dataflow_fails(tmp_path):
    d = _copy(tmp_path)
    cpp = d / "hls_project" / "kernel.cpp"
    text = cpp.read_text()
    # A second call site of the array in the top: two RTL instances of the PE mesh.
    call = next(ln for ln in text.splitlines() if ln.strip().startswith("array_unit("))
    cpp.write_text(text.replace(call, call + "\n" + call, 1))
    rep = check_lowered(d, load_arch("int8-zcu102", **ARCH))
    assert any("array instances: expected 1, found 2" in f for f in rep["failures"])
    top = text.index("void accel(")  # the top without its dataflow pragma
    cpp.write_text(text[:top] + text[top:].replace("#pragma HLS dataflow\n", "", 1))
    rep = check_lowered(d, load_arch("int8-zcu102", **ARCH))
    assert any("dataflow" in f for f in rep["failures"])


def test_without_the_vitis_project_it_says_what_to_run(tmp_path):
    d = _copy(tmp_path)
    (d / "hls_project" / "kernel.cpp").unlink()
    with pytest.raises(InputError, match="run.py vhls"):
        check_lowered(d, load_arch("int8-zcu102", **ARCH))


def test_every_pipelined_loop_meets_its_ii_through_the_ports():
    """The emitted kernel moves at most one beat a cycle through each m_axi bundle in the
    pipelined loops of every op (latency.py's rate rule) on the fixture's 128-bit ports:
    e.g. the 4 x 4 array's CP = 2 weight words (4 B) a cycle. The one exception is by design:
    sfu_c reads an op's two parameter vectors (modulate's scale and shift, rotary's cos and
    sin) a beat of each a cycle through prm's one bundle: II 2. A per-element read of a
    parameter in the word loop (L = 16 floats, 64 B, a cycle) would make that loop 4."""
    import json

    from dlmsim.lower import latency

    m = json.loads((FIX / "manifest.json").read_text())["program"]
    code = (FIX / "hls_project" / "kernel.cpp").read_text()
    params = latency.parameters(code, m["top"])
    scalars = [i for i, x in enumerate(params) if x["kind"] == "scalar"]
    slow = set()
    for x in m["instrs"]:
        vals = {pos: x["desc"][f] for pos, f in zip(scalars, m["desc_fields"])}
        _, b = latency.estimate(code, m["top"], vals, axi_latency_cycles=60)
        slow |= {(x["kind"], r["function"], r["port_ii"]) for r in b["loops"]
                 if (r["port_ii"] or 1) > 1}
    assert slow == {("modulate", "sfu_c", 2), ("rotary", "sfu_c", 2)}
