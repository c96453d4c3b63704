"""Lowering a design to a self-contained Allo program (`dlmsim lower`).

`lower(arch, trace, out_dir)` writes kernels.py (the Allo program), run.py (its driver),
vectors.npz (numpy test vectors at the design's precision), manifest.json and README.md.
Nothing here imports allo: the program runs in the user's Allo environment (Python >= 3.12),
optionally started by `run_driver` with that interpreter. See the README section "Lowering
to Allo and calibration".
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlmsim.arch import Accelerator
from dlmsim.errors import InputError
from dlmsim.lower.codegen import Emitter, canon
from dlmsim.lower.design import (
    allo_device,
    design_hash,
    design_types,
    family,
    k_tile,
    plan_gemms,
    predict,
    scope_ops,
    top_name,
    warnings_for,
)
from dlmsim.lower.manifest import MANIFEST_VERSION, read_manifest, write_manifest
from dlmsim.lower.reference import make_vectors, quantize

__all__ = [
    "MANIFEST_VERSION",
    "Lowered",
    "lower",
    "read_manifest",
    "run_driver",
    "write_manifest",
]

DRIVER = Path(__file__).with_name("driver_template.py")
# Functional check of the whole scope: outputs within atol + rtol*|expected|, allowing a
# small share outside (a float32 value an ulp either side of a rounding boundary flips an
# activation code between numpy and LLVM; the GEMM wrappers are checked exactly).
TOLERANCE = {"fp32": {"atol": 1e-4, "rtol": 1e-3, "max_fraction_outside": 0.0},
             "int": {"atol": 0.05, "rtol": 0.02, "max_fraction_outside": 0.001}}


@dataclass
class Lowered:
    out_dir: Path
    manifest: dict
    files: dict[str, int]  # file -> lines
    warnings: list[str]


def lower(arch: Accelerator, trace, out_dir: str | Path, *, scope: str = "block",
          arch_source: str = "", workload_source: str = "", seed: int = 0) -> Lowered:
    ops = scope_ops(trace, scope)
    fam = family(trace)
    first = ops[0].block
    strip = f"blocks.{first}." if scope == "block" else ""
    if scope == "block" and ops[0].name.startswith(f"layers.{first}."):
        strip = f"layers.{first}."
    gemms, plans = plan_gemms(arch, ops, strip)
    types = design_types(arch)
    kt = k_tile(arch, gemms)
    r, c = arch.array.rows, arch.array.cols
    em = Emitter(types, r, c, kt, strip)
    from dlmsim.functional import LN_EPS

    by_op = {g.op.name: g for g in gemms}
    seen_fn: dict[str, str] = {}
    for op in ops:
        if op.kind == "gemm":
            g = by_op[op.name]
            # Two GEMMs with the same shapes and dataflow share one wrapper function.
            key = repr((g.batch, g.m, g.k, g.n, g.transpose_b, g.b_is_weight, g.dataflow))
            if key in seen_fn:
                g = by_op[op.name] = _rename(g, seen_fn[key])
            seen_fn.setdefault(key, g.function)
            em.gemm(g, op)
        else:
            em.sfu(op, float(op.attr("eps", LN_EPS[fam])))
    out_t = ops[-1].outputs[0]
    out_var = em.var[out_t.name]
    top = top_name(trace, scope)

    vec = make_vectors(trace, ops, types, seed)
    arrays = _program_arrays(em, ops, gemms, vec, types, r, c, kt)
    arrays["expected"] = vec["env"][out_t.name].reshape(canon(out_t.shape)).astype(np.float32)

    streams = _streams(plans, em)
    dev = arch.dev()
    pred = predict(arch, ops)
    hash_ = design_hash(arch)
    run = dict(trace.run)
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "created_by": "dlmsim lower",
        "arch": {"name": arch.name, "source": arch_source, "design_hash": hash_,
                 "config": arch.model_dump(mode="json", exclude={"calibration"})},
        "workload": {"name": trace.model, "source": workload_source, "family": fam,
                     "run": run, "scope": scope, "blocks": sorted({op.block for op in ops}),
                     "ops": [op.name for op in ops]},
        "program": {
            "top": top, "kernels": "kernels.py", "driver": "run.py", "vectors": "vectors.npz",
            "array": {"rows": r, "cols": c, "k_tile": kt,
                      "instance": "systolic[TyA, TyW, TyC, ROWS, KT, COLS, ROWS, COLS]"},
            "types": {"hls": {"A": types.a_hls, "W": types.w_hls, "C": types.c_hls},
                      "llvm": {"A": types.a_llvm, "W": types.w_llvm, "C": types.c_llvm},
                      "bits": {"activations": types.a_bits, "weights": types.w_bits,
                               "accumulator": types.acc_bits}},
            "gemms": [{"op": g.op.name, "function": by_op[g.op.name].function,
                       "batch": g.batch, "M": g.m, "K": g.k, "N": g.n,
                       "padded": list(g.padded(r, c, kt)), "dataflow": g.dataflow,
                       "passes": g.passes, "b_operand": "weight" if g.b_is_weight
                       else "activation", "transpose_b": g.transpose_b} for g in gemms],
            "sfu_functions": em.sfu_used,
            "args": em.args,
            "output": {"name": out_var, "tensor": out_t.name,
                       "shape": list(canon(out_t.shape))},
            "streams": streams,
        },
        "hls": {"part": dev.part, "device": dev.name, "allo_device": allo_device(dev.name),
                "clock_mhz": arch.clock_mhz, "clock_period_ns": 1e3 / arch.clock_mhz},
        "numerics": {
            "gemm": "integer codes, exact accumulation" if types.integer else "float32",
            "activation_scales": "per tensor, static (max |x| of an fp32 run of the vectors)",
            "weight_scales": "per output channel",
            "rounding": "half away from zero, then clamp",
            "sfu": "float32 datapath (allo.exp/sqrt/tanh); the design's "
                   f"{arch.sfu.bits}-bit SFU width is not emulated",
            "largest_accumulator": int(vec["acc_max"]),
            "accumulator_limit": (2 ** (int(types.acc_bits) - 1) - 1) if types.integer
            else None,
            "tolerance": TOLERANCE["int" if types.integer else "fp32"],
            "seed": seed,
        },
        "prediction": pred,
    }
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".dlmsim-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise InputError(f"cannot write to {out}: {e.strerror or e}") from None
    kernels = _kernels_text(arch, trace, scope, top, em, types, kt, out_var, out_t, streams,
                            manifest)
    files = {"kernels.py": kernels, "run.py": DRIVER.read_text(),
             "README.md": _readme(manifest, arch)}
    for name, text in files.items():
        (out / name).write_text(text)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    (out / "vectors.npz").write_bytes(buf.getvalue())
    write_manifest(out / "manifest.json", manifest)
    lines = {n: t.count("\n") for n, t in files.items()}
    lines["manifest.json"] = (out / "manifest.json").read_text().count("\n")
    warns = warnings_for(arch, ops)
    if types.integer and vec["acc_max"] > manifest["numerics"]["accumulator_limit"]:
        warns.append(f"an accumulator reaches {vec['acc_max']}, beyond the "
                     f"{types.acc_bits}-bit range: the hardware would wrap")
    return Lowered(out, manifest, lines, warns)


def _rename(g, function):
    from dataclasses import replace

    return replace(g, function=function)


def _np_dtype(types, kind: str) -> str:
    name = {"A": types.a_llvm, "W": types.w_llvm, "C": types.c_llvm}[kind]
    return name if name in ("int8", "int16", "int32", "float32") else "int32"


def _program_arrays(em: Emitter, ops, gemms, vec, types, r, c, kt) -> dict[str, np.ndarray]:
    """Every top argument and the per-GEMM exact-check operands, keyed as the driver reads."""
    env = vec["env"]
    arrays: dict[str, np.ndarray] = {}
    by_name = {op.name: op for op in ops}
    for a in em.args:
        key = a["key"]
        if key.endswith(".inv_scale"):
            arrays[key] = np.array([vec["act_inv"][key[:-len(".inv_scale")]]], np.float32)
        elif key.endswith(".out_scale"):
            op = by_name[key[:-len(".out_scale")]]
            arrays[key] = _out_scale(op, vec)
        elif a["what"].startswith("weight codes") or a["what"] == "weight (padded)":
            arrays[key] = _padded_weight(key, gemms, vec, types, r, c, kt)
        elif key in vec["weights"]:
            arrays[key] = vec["weights"][key].astype(np.float32)
        else:
            src = vec["inputs"].get(key, env.get(key))
            arrays[key] = np.asarray(src, np.float32).reshape(a["shape"])
        if a["dtype"] == "w":
            a["dtype"] = _np_dtype(types, "W")
    for g in gemms:
        fn = em.functions and g.function
        if f"gemm.{fn}.A" in arrays:
            continue
        a_t, b_t = g.op.inputs[0], g.op.inputs[1]
        a = env[a_t.name].reshape(canon(a_t.shape))
        if g.b_is_weight:
            b = arrays[b_t.name]
        else:
            b = env[b_t.name].reshape(canon(b_t.shape))
        if types.integer:
            a = quantize(a, vec["act_inv"][a_t.name], types.a_bits)
            if not g.b_is_weight:
                b = quantize(b, vec["act_inv"][b_t.name], types.a_bits)
            b = b.astype(np.int64)
        else:
            a = a.astype(np.float32)
            if g.op.attr("scale") is not None:
                a = a * np.float32(g.op.attr("scale"))
        bm = np.swapaxes(b, -1, -2) if (g.transpose_b and not g.b_is_weight) else b
        if g.b_is_weight:
            bm = bm[:g.k, :g.n]
        y = a.astype(np.float64 if not types.integer else np.int64) @ bm
        a_dt, b_dt = _np_dtype(types, "A"), _np_dtype(types, "W" if g.b_is_weight else "A")
        arrays[f"gemm.{fn}.A"] = a.astype(a_dt)
        arrays[f"gemm.{fn}.B"] = b.astype(b_dt) if g.b_is_weight or not types.integer \
            else b.astype(a_dt)
        arrays[f"gemm.{fn}.Y"] = y.astype(_np_dtype(types, "C"))
    return arrays


def _out_scale(op, vec) -> np.ndarray:
    inv = vec["act_inv"]
    sa = np.float32(1.0) / inv[op.inputs[0].name]
    if op.inputs[1].role == "weight":
        return (sa * vec["wq"][op.inputs[1].name][1]).astype(np.float32)
    sb = np.float32(1.0) / inv[op.inputs[1].name]
    s = np.float32(sa * sb) * np.float32(op.attr("scale", 1.0))
    return np.array([s], np.float32)


def _padded_weight(name, gemms, vec, types, r, c, kt) -> np.ndarray:
    g = next(g for g in gemms if g.op.inputs[1].name == name)
    _, kp, np_ = g.padded(r, c, kt)
    if types.integer:
        w = vec["wq"][name][0]
    else:
        w = vec["weights"][name]
        w = w.T if g.transpose_b else w
    out = np.zeros((kp, np_), np.int64 if types.integer else np.float32)
    out[:g.k, :g.n] = w
    return out.astype(_np_dtype(types, "W"))


def _streams(plans, em: Emitter) -> list[dict]:
    """Producer -> consumer hand-offs the simulator keeps on chip row block by row block
    (an OS GEMM or a row-wise SFU op feeding the next op): FIFO candidates for HLS."""
    out = []
    for i, p in enumerate(plans[1:], start=1):
        prev = plans[i - 1]
        t = prev.op.outputs[0].name
        if t in p.on_chip_inputs and p.op.inputs[0].name == t and not prev.full_dependency:
            out.append({"tensor": t, "variable": em.var.get(t, ""), "producer": prev.op.name,
                        "consumer": p.op.name})
    return out


def _kernels_text(arch, trace, scope, top, em: Emitter, types, kt, out_var, out_t, streams,
                  manifest) -> str:
    b = arch.bits
    desc = " ".join(arch.description.split())
    head = f'''"""Allo program of design {arch.name} on {manifest['hls']['device']} \
({manifest['hls']['part']}, {arch.clock_mhz:g} MHz):
{trace.model}, scope {scope} ({top}), generated by `dlmsim lower`.

{desc}

Design: one {arch.array.rows} x {arch.array.cols} systolic array shared by every GEMM (one
unlabelled `systolic` instance, called tile by tile), W{b.weights}A{b.activations} with a
{b.accumulator}-bit accumulator; dataflow per GEMM as the simulator chose it (OS: finish one
output block at a time; WS: hold a weight fold while every row block streams). SFU functions
are explicit loops in float32. Run it with run.py (see README.md); manifest.json ties it to
the arch, the workload and the simulator's prediction.

DLMSIM_TARGET=llvm (the functional check) holds sub-byte values in int8 containers: Allo's
LLVM backend cannot load or store narrower integers. The HLS path uses the narrow types.
"""

import os

import allo
from allo.ir.types import Int, float32, int8, int16, int32  # noqa: F401
from allo.library.systolic import systolic

TARGET = os.environ.get("DLMSIM_TARGET", "hls")  # "hls" or "llvm"
HLS = TARGET != "llvm"

# ---- the array: ROWS x COLS PEs; one call reduces KT products per PE
ROWS, COLS, KT = {arch.array.rows}, {arch.array.cols}, {kt}
TyA = {types.a_hls}  # activations ({types.a_bits} bits)
TyW = {types.w_hls} if HLS else {types.w_llvm}  # weights ({types.w_bits} bits)
TyC = {types.c_hls} if HLS else {types.c_llvm}  # accumulator ({types.acc_bits} bits)
'''
    parts = [head, "\n# ---- GEMMs: each walks its tiles and calls the one array\n"]
    gemm_fns = [n for n in em.functions if n.startswith("gemm_")]
    other = [n for n in em.functions if not n.startswith("gemm_")]
    for n in gemm_fns:
        parts.append("\n" + em.functions[n] + "\n")
    parts.append("\n# ---- quantization and SFU functions\n")
    for n in other:
        parts.append("\n" + em.functions[n] + "\n")
    sig = ",\n".join(f"    {a['name']}: {a['type']}[{', '.join(map(str, a['shape']))}]"
                     for a in em.args)
    parts.append(f"\n# ---- the top: {scope} of {trace.model}, ops in trace order\n"
                 f"def {top}(\n{sig},\n) -> float32[{', '.join(map(str, canon(out_t.shape)))}]:\n"
                 + "\n".join(em.body) + f"\n    return {out_var}\n")
    sched = [
        "\n\n# ---- hardware schedule (vhls / Vitis HLS only: llvm cannot build after it)",
        "STREAMS = [  # simulator's on-chip row-block hand-offs: (variable, consumer)",
        *[f"    ({s['variable']!r}, {s['consumer']!r})," for s in streams],
        "]", "", "",
        "def schedule_hls(s):",
        '    """Unfold the shared array (schedule_systolic through compose) and pipeline the',
        "    SFU loops. Each hint that Allo rejects is reported, not fatal: the result is",
        '    still a valid, if slower, design."""',
        "    notes = []",
        "",
        "    def attempt(what, f):",
        "        try:",
        "            f()",
        "        except Exception as e:  # noqa: BLE001",
        "            notes.append(f'{what}: {type(e).__name__}: {e}'.splitlines()[0])",
        "",
        "    inst = [TyA, TyW, TyC, ROWS, KT, COLS, ROWS, COLS]" if types.integer else
        "    inst = [float32, float32, float32, ROWS, KT, COLS, ROWS, COLS]",
        "    attempt('compose systolic', lambda: s.compose(systolic, instantiate=inst))",
        *[f"    attempt('pipeline {n}', lambda: s.pipeline('{n}:j'))"
          for n in other if n.startswith(("dequantize", "modulate", "residual", "gelu",
                                          "silu", "swiglu", "add_bias"))],
        "    return notes",
        "",
    ]
    return "".join(parts) + "\n".join(sched)


def _readme(m: dict, arch) -> str:
    p = m["program"]
    pred = m["prediction"]
    gem = "\n".join(f"| `{g['function']}` | {g['op']} | {g['batch']} x [{g['M']}, {g['K']}] x "
                    f"[{g['K']}, {g['N']}] | {g['dataflow'].upper()} | {g['passes']} |"
                    for g in p["gemms"])
    return f"""# {p['top']}: {m['workload']['name']} ({m['workload']['scope']}) on {m['arch']['name']}

Generated by `dlmsim lower`. Allo needs Python >= 3.12 and an MLIR build; run these in that
environment (or let dlmsim do it: `dlmsim lower ... --run llvm --allo-python PATH`).

| file | what |
|---|---|
| `kernels.py` | the Allo program: GEMM wrappers on the one {p['array']['rows']}x{p['array']['cols']} array, SFU functions, top `{p['top']}`, `schedule_hls` |
| `run.py` | the driver (numpy + allo only) |
| `vectors.npz` | inputs, weights as the program takes them, expected outputs (numpy, at the design's precision) |
| `manifest.json` | arch, workload, program structure and the simulator's prediction |

## Steps

```sh
python run.py llvm   # CPU build: each GEMM wrapper exactly, then the top within tolerance
python run.py vhls   # hardware schedule applied, HLS C++ written to hls/{p['top']}.cpp
python run.py csyn   # Vitis HLS project in hls_project/ for {m['hls']['part']} at {m['hls']['clock_mhz']:g} MHz
python run.py all    # all three
```

Each step writes `results/<step>.json`. `csyn` runs `vitis_hls` only if it is on PATH; the
report it produces (`hls_project/**/csynth.xml`) goes back with
`dlmsim calibrate {m['workload']['scope']}-dir/ --arch ARCH.yaml` (this directory, or the
report itself: the manifest is found next to it).

## Design

| GEMM function | op | shape | dataflow | passes |
|---|---|---|---|---|
{gem}

Types: HLS A={p['types']['hls']['A']}, W={p['types']['hls']['W']}, C={p['types']['hls']['C']};
llvm check A={p['types']['llvm']['A']}, W={p['types']['llvm']['W']}, C={p['types']['llvm']['C']}.
Numerics: {m['numerics']['gemm']}; SFU {m['numerics']['sfu']}.

Predicted by the simulator for exactly these ops: {pred['cycles']:.0f} cycles at
{pred['clock_mhz']:g} MHz ({pred['seconds'] * 1e6:.1f} us): {pred['definition']}.
"""
