"""`dlmsim lower --check`: is the emitted HLS C++ the design the simulator predicted?

`check_lowered(out_dir, arch)` reads the Vitis project's kernel.cpp that `run.py vhls`
wrote (the HLS C++ Allo emits, with the m_axi bundles of the arch's ports) and compares it
with the arch (structure.py reads the hardware, latency.py the loop nests):

- one systolic mesh of rows x cols MACs (rows x cols/PACK PE functions, PACK products per
  PE as the arch's DSP packing says), instantiated once (a temporal design);
- the top a dataflow region (the array and the SFU overlap the DMA, as simulated);
- m_axi bundles no more than the arch's ports, each widened to the arch's port width;
- no DRAM argument copied on chip (weights stream from DRAM), and the on-chip buffers within
  the arch's tile buffer;
- the program's latency from its loop nests, summed over its kernel calls (one per op, with
  that op's descriptor), within RATIO of the simulator's prediction for the same ops.

A spatial design (manifest program kind "spatial", dlmsim.lower.spatial) is checked for one
mesh of its unit's rows x cols PEs per labelled array, each instantiated once; a dataflow
top whose processes are the program's, with its streams; the same m_axi, DRAM and buffer
rules; and the loop-nest latency of its one top call (the dataflow region's processes
overlapping as latency.py states) within RATIO of the prediction.
"""

from __future__ import annotations

import re
from pathlib import Path

from dlmsim.arch import Accelerator
from dlmsim.errors import InputError
from dlmsim.lower import latency, structure
from dlmsim.lower.manifest import read_manifest
from dlmsim.lower.program import pack_of

RATIO = 1.5  # the loop-nest estimate may differ from the prediction by at most this factor


def check_lowered(out_dir: str | Path, arch: Accelerator) -> dict:
    d = Path(out_dir)
    m = read_manifest(d)
    kernel = d / "hls_project" / "kernel.cpp"
    if not kernel.is_file():
        raise InputError(f"{kernel}: no Vitis project kernel; run `python run.py vhls` in {d} "
                         "(or dlmsim lower --run vhls) first")
    code = kernel.read_text()
    p = m["program"]
    if p.get("kind") == "spatial":
        return _check_spatial(code, kernel, m, arch)
    desc = structure.describe(code, p["top"])
    params = latency.parameters(code, p["top"])
    pointers = [i for i, x in enumerate(params) if x["kind"] in ("pointer", "array")]
    # accel(wts..., prm, act_in, ..., act): the weights stay in DRAM
    weights = pointers[:p["spec"].get("wports", 1)]
    expect = {"rows": arch.array.rows, "cols": arch.array.cols,
              "macs_per_pe": pack_of(arch), "array_instances": 1,
              "dataflow_top": True, "m_axi_bundles": len(p["ports"]),
              "buffer_bytes": arch.buffer.kib * 1024, "not_on_chip": weights}
    fails = structure.check(desc, expect)
    widths = _port_checks(code, p, arch, fails)
    # The loop-nest estimate of every kernel call, with that op's descriptor.
    scalars = [i for i, x in enumerate(params) if x["kind"] == "scalar"]
    if len(scalars) != len(m["program"]["desc_fields"]):
        raise InputError(f"{kernel}: accel has {len(scalars)} scalar arguments, the manifest "
                         f"describes {len(m['program']['desc_fields'])}")
    per_op, total = [], 0.0
    for x in p["instrs"]:
        vals = {pos: x["desc"][f] for pos, f in zip(scalars, m["program"]["desc_fields"])}
        cyc, _ = latency.estimate(code, p["top"], vals,
                                  axi_latency_cycles=arch.latency_cycles)
        per_op.append({"op": x["op"], "kind": x["kind"], "cycles": cyc})
        total += cyc
    pred = m["prediction"]["cycles"]
    ratio = _latency_check(total, pred, fails)
    # the manifest's names of the top's pointers (kernel.cpp names them v<n>)
    names = dict(zip([params[i]["name"] for i in pointers], p.get("pointers", [])))
    return _report(kernel, desc, widths, fails, per_op, total, pred, ratio, names)


def _latency_check(total: float, pred: float, fails: list[str]) -> float:
    """The estimate's ratio to the prediction; a failure unless within RATIO."""
    ratio = total / pred if pred else float("inf")
    if not 1 / RATIO <= ratio <= RATIO:
        fails.append(f"latency: the loop-nest estimate is {total:,.0f} cycles, {ratio:.2f}x "
                     f"the simulator's prediction of {pred:,.0f} cycles (allowed "
                     f"{1 / RATIO:.2f}x-{RATIO:g}x)")
    return ratio


def _port_checks(code: str, p: dict, arch: Accelerator, fails: list[str]) -> dict[str, int]:
    """No more m_axi bundles than the arch's ports, each widened to its width."""
    if len(p["ports"]) > arch.memory.ports:
        fails.append(f"m_axi: {len(p['ports'])} bundles, the arch has {arch.memory.ports} "
                     "ports")
    widths = {b: int(w) for b, w in re.findall(
        r"#pragma HLS interface m_axi port=\w+ offset=\w+ bundle=(\w+) "
        r"max_widen_bitwidth=(\d+)", code)}
    for b in p["ports"]:
        if widths.get(b) != arch.memory.port_bits:
            fails.append(f"m_axi: bundle {b} is {widths.get(b, 'not')} bits wide (widened), "
                         f"the arch's ports are {arch.memory.port_bits} bits")
    return widths


def _check_spatial(code: str, kernel: Path, m: dict, arch: Accelerator) -> dict:
    p = m["program"]
    desc = structure.describe(code, p["top"])
    params = [x["name"] for x in desc["params"]]
    weights = [i for i, a in enumerate(p["top_args"]) if p["tensors"][a]["kind"] == "weight"]
    expect = {"dataflow_top": True, "m_axi_bundles": len(p["ports"]),
              "buffer_bytes": arch.buffer.kib * 1024,
              "not_on_chip": [params[i] for i in weights if i < len(params)]}
    fails = structure.check(desc, expect)
    units = {u.name: u for u in arch.compute_units()}
    meshes = {mm["parent"].removeprefix("systolic_tile_"): mm for mm in desc["meshes"]}
    for label in p["arrays"]:
        a = units[label].array
        mm = meshes.get(label)
        if mm is None:
            fails.append(f"array {label}: no mesh of PE functions PE_kernel_{label}_i_j")
        elif (mm["rows"], mm["cols"] * mm["macs_per_pe"], mm["instances"]) != \
                (a.rows, a.cols, 1) or not mm["complete"]:
            fails.append(f"array {label}: expected one {a.rows} x {a.cols} mesh, found "
                         f"{mm['rows']} x {mm['cols'] * mm['macs_per_pe']} x"
                         f"{mm['instances']}")
    extra = sorted(set(meshes) - set(p["arrays"]))
    if extra:
        fails.append(f"arrays: meshes {', '.join(extra)} are not units of the design")
    region = next((r for r in desc["dataflow"] if r["region"] == desc["top"]), None)
    if region is not None:
        want = [x["fn"] for x in p["processes"]]
        if sorted(region["processes"]) != sorted(want):
            fails.append(f"dataflow: the top's processes are {', '.join(region['processes'])}"
                         f"; the program has {', '.join(want)}")
        if len(region["streams"]) < len(p["streams"]):
            fails.append(f"dataflow: {len(region['streams'])} streams in the top, the program "
                         f"declares {len(p['streams'])}")
    widths = _port_checks(code, p, arch, fails)
    total, _ = latency.estimate(code, p["top"], {}, axi_latency_cycles=arch.latency_cycles)
    pred = m["prediction"]["cycles"]
    ratio = _latency_check(total, pred, fails)
    rep = _report(kernel, desc, widths, fails, [{"op": p["top"], "kind": "dataflow",
                                                 "cycles": total}], total, pred, ratio,
                  dict(zip(params, p["top_args"])))
    rep["arrays"] = {k: {"pe_rows": v["rows"], "pe_cols": v["cols"], "instances":
                         v["instances"]} for k, v in meshes.items()}
    return rep


def _report(kernel, desc, widths, fails, per_op, total, pred, ratio, names) -> dict:
    """The check's report; `names` gives the manifest's name of a kernel.cpp pointer."""
    mesh = desc["meshes"][0] if desc["meshes"] else None
    region = next((r for r in desc["dataflow"] if r["region"] == desc["top"]), None)
    return {
        "kernel": str(kernel), "lines": desc["lines"], "failures": fails,
        "array": None if mesh is None else {
            "pe_rows": mesh["rows"], "pe_cols": mesh["cols"], "pes": mesh["pes"],
            "macs_per_pe": mesh["macs_per_pe"], "instances": mesh["instances"]},
        "meshes": len(desc["meshes"]),
        "dataflow": None if region is None else {
            "processes": region["processes"], "streams": len(region["streams"])},
        "m_axi": {b: {"ports": [names.get(q["port"], q["port"])
                                for q in desc["m_axi"]["ports"]
                                if q["bundle"] == b], "bits": widths.get(b)}
                  for b in desc["m_axi"]["bundles"]},
        "on_chip_bytes": desc["storage"]["bytes"],
        "copied_on_chip": [c["arg"] for c in desc["copied_on_chip"]],
        "estimate": {"cycles": total, "per_op": per_op, "prediction_cycles": pred,
                     "ratio": ratio},
    }


def format_report(rep: dict) -> str:
    a, df, est = rep["array"], rep["dataflow"], rep["estimate"]
    lines = [f"check of {rep['kernel']} ({rep['lines']} lines):"]
    if "arrays" in rep:
        lines.append("  arrays: " + ", ".join(f"{k} {v['pe_rows']} x {v['pe_cols']} PEs "
                                               f"x{v['instances']}"
                                               for k, v in rep["arrays"].items()))
    elif a:
        lines.append(f"  array: {a['pe_rows']} x {a['pe_cols']} PEs x {a['macs_per_pe']} "
                     f"MAC/PE, {a['instances']} instance(s), {rep['meshes']} mesh(es)")
    if df:
        lines.append(f"  top dataflow: {', '.join(df['processes'])}; {df['streams']} streams")
    lines.append("  m_axi: " + "; ".join(f"{b} ({', '.join(v['ports'])}) {v['bits']} bits"
                                         for b, v in rep["m_axi"].items()))
    lines.append(f"  on-chip buffers: {rep['on_chip_bytes'] / 1024:,.1f} KiB; copied on chip: "
                 f"{', '.join(rep['copied_on_chip']) or 'nothing'}")
    lines.append(f"  latency: loop-nest estimate {est['cycles']:,.0f} cycles over "
                 f"{len(est['per_op'])} kernel calls vs predicted {est['prediction_cycles']:,.0f}"
                 f" cycles ({est['ratio']:.2f}x)")
    lines += [f"  FAIL {f}" for f in rep["failures"]] or ["  all checks pass"]
    return "\n".join(lines)
