"""`lower(arch, trace, out_dir)`: write a design's Allo program, its vectors and manifest.

Files written:
- kernels.py: the accelerator (kernel.py's text for this design) with `schedule_hls`;
- run.py: the driver (needs numpy and allo, not dlmsim);
- vectors.npz: the DRAM images (act, wts, prm), one descriptor row per op of the program and
  the emulator's output of every op (program.py, emulate.py);
- manifest.json: arch, workload, program (descriptors, tensor places, memory ports), numerics,
  and the simulator's prediction for exactly the lowered ops (design.predict);
- README.md.
Nothing here imports allo.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlmsim.arch import Accelerator
from dlmsim.errors import InputError
from dlmsim.lower.design import (
    allo_device,
    design_hash,
    family,
    predict,
    scope_ops,
    warnings_for,
)
from dlmsim.lower.emulate import Machine
from dlmsim.lower.kernel import (
    DESC,
    SFU_CODES,
    VEC_FNS,
    act_reads,
    kernel_text,
    weight_names,
)
from dlmsim.lower.manifest import MANIFEST_VERSION, write_manifest
from dlmsim.lower.program import Program, build_program, lowered_arch, read_tensor

DRIVER = Path(__file__).with_name("driver_template.py")
TOP = "accel"
# Per-op check of the Allo build against the emulator: GEMMs exact (integer codes) and SFU
# ops within one code on a small share of elements (LLVM's expf/tanhf differ from numpy's
# in the last bit, which can move a value across a rounding boundary); fp32 designs within
# float32 rounding of a different summation order.
TOLERANCE = {"int": {"gemm_codes": 0, "sfu_codes": 1, "max_fraction_off": 0.002},
             "fp32": {"atol": 1e-4, "rtol": 1e-3}}


@dataclass
class Lowered:
    out_dir: Path
    manifest: dict
    files: dict[str, int]  # file -> lines
    warnings: list[str]


def memory_ports(arch: Accelerator, weights: list[str],
                 reads: list[str]) -> dict[str, list[str]]:
    """m_axi bundles of the kernel's DRAM arguments, within the arch's port count: a bundle
    per weight port (the first also carries the parameters), then the activation reads and
    the activation writes on their own bundles where ports remain, else on the last weight
    bundles (processes on one bundle share its beats: the loop-nest estimate adds them up);
    a second A port (`reads`[1]) on the bundle after the first's."""
    n, p = arch.memory.ports, len(weights)
    b: list[list[str]] = [[w] for w in weights] + [[] for _ in range(max(0, n - p))]
    b[0].append("prm")
    ia = p if n > p else max(0, n - 2)
    b[ia].append(reads[0])
    b[ia if n == p + 1 else min(ia + 1, n - 1)].append("act")  # one port left: with act_in
    for r in reads[1:]:
        b[(ia + 1) % n].append(r)
    return {f"gmem{i}": x for i, x in enumerate(b) if x}


def _written(d: dict, prog: Program) -> tuple[int, int]:
    """[lo, hi) of the act elements an op's output occupies."""
    p = prog.places[d["out"]]
    lo = p.base + p.col0
    return lo, p.base + (p.rows - 1) * p.rs + p.col0 + p.cols


def output_dir(out_dir: str | Path) -> Path:
    """The lowered directory, made and checked writable (one line naming it otherwise)."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".dlmsim-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise InputError(f"cannot write to {out}: {e.strerror or e}") from None
    return out


def write_lowered(out: Path, files: dict[str, str], arrays: dict,
                  manifest: dict) -> dict[str, int]:
    """Write the text files, vectors.npz and manifest.json; return lines per file."""
    for name, text in files.items():
        (out / name).write_text(text)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    (out / "vectors.npz").write_bytes(buf.getvalue())
    write_manifest(out / "manifest.json", manifest)
    lines = {n: t.count("\n") for n, t in files.items()}
    lines["manifest.json"] = (out / "manifest.json").read_text().count("\n")
    return lines


def manifest_head(arch: Accelerator, trace, scope: str, ops, arch_source: str,
                  workload_source: str, lowered_policy: str) -> dict:
    """The manifest's arch, workload and hls sections."""
    dev = arch.dev()
    return {
        "manifest_version": MANIFEST_VERSION,
        "created_by": "dlmsim lower",
        "arch": {"name": arch.name, "source": arch_source, "design_hash": design_hash(arch),
                 "config": arch.model_dump(mode="json", exclude={"calibration"}),
                 "lowered_policy": lowered_policy},
        "workload": {"name": trace.model, "source": workload_source, "family": family(trace),
                     "run": dict(trace.run), "scope": scope,
                     "blocks": sorted({op.block for op in ops}),
                     "ops": [op.name for op in ops]},
        "hls": {"part": dev.part, "device": dev.name, "allo_device": allo_device(dev.name),
                "clock_mhz": arch.clock_mhz, "clock_period_ns": 1e3 / arch.clock_mhz},
    }


def lower(arch: Accelerator, trace, out_dir: str | Path, *, scope: str = "block",
          arch_source: str = "", workload_source: str = "", seed: int = 0) -> Lowered:
    ops = scope_ops(trace, scope)
    if arch.is_spatial:
        from dlmsim.lower.spatial import lower_spatial

        return lower_spatial(arch, trace, ops, out_dir, scope=scope, arch_source=arch_source,
                             workload_source=workload_source, seed=seed)
    low = lowered_arch(arch)
    prog = build_program(low, trace, ops, seed)
    k = prog.spec
    # The emulator's run: the expected output of every op.
    act = prog.act.copy()
    mach = Machine(k, act, prog.wts, prog.prm)
    arrays: dict[str, np.ndarray] = {"act": prog.act, "wts": prog.wts, "prm": prog.prm,
                                     "desc": np.array([[d[f] for f in DESC]
                                                       for d in prog.instrs], np.int64)}
    spans = []
    for i, d in enumerate(prog.instrs):
        mach.run(d)
        lo, hi = _written(d, prog)
        arrays[f"out.{i}"] = act[lo:hi].copy()
        spans.append([lo, hi])
    arrays["spans"] = np.array(spans, np.int64)
    out_t = prog.output
    ref = prog.fp32_env[out_t]
    got = read_tensor(prog, act, out_t).reshape(ref.shape)
    err = got.astype(np.float64) - ref
    sqnr = 10 * np.log10(max(float((ref.astype(np.float64) ** 2).sum()), 1e-30)
                         / max(float((err ** 2).sum()), 1e-30))
    pred = predict(low, ops)
    lanes = k.sfu_lanes
    manifest = manifest_head(arch, trace, scope, ops, arch_source, workload_source,
                             low.array.policy)
    manifest.update({
        "program": {
            "kind": "temporal", "top": TOP, "kernels": "kernels.py", "driver": "run.py",
            "vectors": "vectors.npz",
            "design": "temporal: one kernel called once per op with its descriptor",
            "per_op_calls": True,
            "array": {"rows": k.rows, "cols": k.cols, "pe_cols": k.pe_cols,
                      "macs_per_pe": k.pack, "instances": 1, "dataflow": "os"},
            "sfu": {"elements_per_cycle": lanes, "functions": list(k.fns)},
            "types": {"activations": k.a_bits, "weights": k.w_bits,
                      "accumulator": k.acc_bits},
            "spec": k.__dict__ | {"fns": list(k.fns)},
            "desc_fields": list(DESC),
            "instrs": [{"op": d["name"], "out": d["out"],
                        "kind": "gemm" if d["op"] == 0 else
                        next(n for n, c in SFU_CODES.items() if c == d["op"]),
                        "desc": {f: int(d[f]) for f in DESC}} for d in prog.instrs],
            "args": [*weight_names(k), "prm", *act_reads(k), *DESC, "act"],
            "pointers": [*weight_names(k), "prm", *act_reads(k), "act"],
            "ports": memory_ports(arch, weight_names(k), act_reads(k)),
            "port_bits": arch.memory.port_bits,
            "output": {"tensor": out_t, "shape": list(ref.shape)},
            "places": {n: {"base": p.base, "rows": p.rows, "cols": p.cols, "rs": p.rs,
                           "col0": p.col0, "kind": p.kind, "scale": float(prog.prm[p.scale_at])}
                       for n, p in prog.places.items()},
            "on_chip_bytes": _on_chip_bytes(k),
            "llvm_bytes": llvm_bytes(k, prog.instrs),
        },
        "numerics": {
            "activations": "float32" if k.fp32 else
            f"{k.a_bits}-bit codes, one static scale per tensor (max |x| of an fp32 run)",
            "weights": "float32" if k.fp32 else f"{k.w_bits}-bit codes, per output channel",
            "gemm": "float32" if k.fp32 else "exact integer accumulation, "
            "dequantize + requantize in float32 on the array's output path",
            "rounding": "half away from zero, then clamp",
            "sfu": "float32 datapath on dequantized codes; the design's "
                   f"{arch.sfu.bits}-bit SFU width is not emulated",
            "tolerance": TOLERANCE["fp32" if k.fp32 else "int"],
            "sqnr_vs_fp32_db": round(sqnr, 2),
            "seed": seed,
        },
        "prediction": pred,
    })
    out = output_dir(out_dir)
    files = {"kernels.py": kernel_text(k, _header(arch, trace, scope, manifest)),
             "run.py": DRIVER.read_text(), "README.md": _readme(manifest)}
    lines = write_lowered(out, files, arrays, manifest)
    warns = warnings_for(arch, ops)
    if arch.array.policy != "os":
        from dlmsim.mapping import Mapper

        ws = [p.op.name for p in Mapper(arch).plan(ops) if p.dataflow == "ws"]
        if ws:
            warns.append(f"the arch's policy '{arch.array.policy}' runs {', '.join(ws)} "
                         "weight-stationary; the lowered array is output-stationary, and the "
                         "prediction is for policy os")
    if arch.array.fold_overlap != "full":
        warns.append(f"the arch's fold_overlap is '{arch.array.fold_overlap}'; the lowered "
                     "PEs overlap folds (full), and the prediction is for fold_overlap full")
    return Lowered(out, manifest, lines, warns)


LLVM_BASE_BYTES = 400 * 2**20  # Allo, MLIR and the LLVM JIT in the driver's process


def llvm_bytes(k, instrs: list[dict]) -> int:
    """Memory the llvm check takes. On the CPU every FIFO of a call is a whole buffer of
    the op's stream (A codes through every PE row, weight words through every PE column),
    and Allo's CPU backend frees none of a call's buffers; run.py calls every op twice
    (alone, then in the chain). Measured on the fp32 8 x 8 cases (L 32): 1.9-4.8 GB, within
    15 % of this plus the base."""
    ab = 4 if k.fp32 else 1
    wb = 4 if k.fp32 else max(1, (k.pack * int(k.w_bits)) // 8)
    total = 0
    for d in instrs:
        if d["op"] != 0:
            continue
        nrb = 1 if d["order"] == 0 else d["mtr"] // k.rows
        tiles = d["Z"] * d["nout"] * d["nin"] * nrb * (d["pw"] // k.cols) * d["passes"]
        total += tiles * d["K"] * (ab * k.rows * (k.pe_cols + 2) + wb * k.pe_cols * (k.rows + 2))
    return LLVM_BASE_BYTES + 2 * total


def _on_chip_bytes(k) -> dict[str, int]:
    """Bytes of the kernel's on-chip buffers (FIFOs not counted): the tile buffer (A tile,
    weight panel, accumulators), the DMA staging, the SFU's parameter vectors (two of
    v_max floats) and rotary's ring (kernel.py)."""
    ab = 4 if k.fp32 else max(1, int(k.a_bits) // 8)
    wb = 4 if k.fp32 else (k.pack * int(k.w_bits) + 7) // 8
    vec = 2 * k.v_max if set(VEC_FNS) & set(k.fns) else 0
    ring = k.rot_ring[1] if "rotary" in k.fns else 0
    return {"abuf": k.mt_max * k.k_max * ab, "wpan": k.wpan_words * wb,
            "acc": k.passes_max * k.rows * k.cols * 4, "bt": k.bt_rows * k.bt_cols * ab,
            "sfu": 4 * (vec + ring)}


def _header(arch, trace, scope, m) -> str:
    p = m["program"]
    desc = " ".join(arch.description.split())
    b = arch.bits
    return f'''"""Allo program of design {arch.name} on {m['hls']['device']} \
({m['hls']['part']}, {arch.clock_mhz:g} MHz), generated by `dlmsim lower`.

{desc}

Design: one kernel `accel` (the temporal accelerator), called by the host once per op of
{trace.model} ({scope}) with that op's descriptor; see dlmsim/lower/kernel.py for its
structure. One {p['array']['rows']} x {p['array']['cols']} output-stationary systolic array
({p['array']['rows']} x {p['array']['pe_cols']} PEs, {p['array']['macs_per_pe']} products per
PE), W{b.weights}A{b.activations} with a {b.accumulator}-bit accumulator; an SFU of
{p['sfu']['elements_per_cycle']} elements per cycle. Run it with run.py (README.md).
"""
'''


def _readme(m: dict) -> str:
    p, pred = m["program"], m["prediction"]
    ops = "\n".join(f"| {i} | `{x['op']}` | {x['kind']} |" for i, x in enumerate(p["instrs"]))
    return f"""# {m['workload']['name']} ({m['workload']['scope']}) on {m['arch']['name']}

Generated by `dlmsim lower`. Allo needs Python >= 3.12 and an MLIR build; run these in that
environment (or let dlmsim do it: `dlmsim lower ... --run vhls --allo-python PATH`).

| file | what |
|---|---|
| `kernels.py` | the accelerator: `accel` (a dataflow of fetch_a, fetch_b, array_unit, sfu_a, sfu_b, sfu_c, store), `schedule_hls` |
| `run.py` | the driver (numpy + allo only) |
| `vectors.npz` | DRAM images (act, wts, prm), the descriptors, the expected output of every op |
| `manifest.json` | arch, workload, program, memory ports and the simulator's prediction |

## Steps

```sh
python run.py llvm   # CPU build of accel; every op against the numpy emulator, then the chain
python run.py vhls   # hardware schedule, HLS C++ (hls/accel.cpp) and the Vitis project
python run.py csyn   # run Vitis HLS synthesis there (needs vitis_hls on PATH)
```

Each step writes `results/<step>.json`. `dlmsim lower ... --check` reads the Vitis project's
`kernel.cpp` back and compares it with the arch.

## The program: one `accel` call per op

| # | op | kind |
|---|---|---|
{ops}

Memory ports (m_axi bundles, {p['port_bits']} bits): {', '.join(f"{b}: {', '.join(a)}" for b, a in p['ports'].items())}.

Predicted by the simulator for exactly these ops: {pred['cycles']:.0f} cycles at
{pred['clock_mhz']:g} MHz ({pred['seconds'] * 1e6:.1f} us): {pred['definition']}.
"""
