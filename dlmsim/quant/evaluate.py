"""Accuracy of a precision setting: fp32 vs quantized execution of a (reduced) model.

One evaluation = for each of a few sampling steps (levels of the sampler: the fraction of
tokens still masked for MDLM/LLaDA, t/T for Diffusion-LM), calibrate activation scales on
one seeded input, then run a second seeded input in fp32 and quantized and compare every
op's output (SQNR, cosine), the block outputs and the token distributions (KL, top-1).
A few representative steps stand in for "every sampling step" (SDA's per-step scales).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import ValidationError

from dlmsim.config import validation_message
from dlmsim.errors import InputError
from dlmsim.functional import (
    check_memory,
    execute,
    execution_bytes,
    family_of,
    mask_id,
    rng_for,
    sqrt_schedule,
)
from dlmsim.quant.metrics import cosine, kl_divergence, sqnr_db, top1_agreement
from dlmsim.quant.quantize import (
    A_BITS,
    ACC_BITS,
    DEFAULT_ACC_BITS,
    SENTINEL,
    SFU_BITS,
    W_BITS,
    QuantNumerics,
    check_bits,
    quantize_weights,
)
from dlmsim.quant.weights import load_checkpoint, synthetic_weights
from dlmsim.workloads import build_trace, load_workload_config
from dlmsim.workloads.ir import Op, Trace

LEVELS = (0.9, 0.5, 0.1)  # early, middle, late sampling step
DEPTH_KEY = {"mdlm": "blocks", "diffusion_lm": "layers", "llada": "layers"}
# Quick-proxy sizes: depth, batch and length cut; vocab (and LLaDA's width, dh kept at 128)
# cut where the full size would dominate the run time. Stated in every report.
PROXY_SIZE = {
    "mdlm": {"blocks": 2, "batch": 1, "seq_len": 128, "vocab": 8192},
    "diffusion_lm": {"layers": 2, "batch": 4, "seq_len": 64},
    "llada": {"layers": 2, "batch": 1, "seq_len": 128, "gen_len": 64, "hidden": 512,
              "heads": 4, "ffn": 1536, "vocab": 8192},
}
WIDTH_KEYS = {"hidden", "heads", "ffn", "vocab", "cond_dim", "mlp_ratio", "embed_dim",
              "freq_embed", "time_hidden", "max_positions", "max_len"}


def _family(cfg) -> str:
    return "mdlm" if cfg.family == "sedd" else cfg.family


def reduced_config(workload: str, scope: str = "forward", checkpoint: bool = False,
                   **sizes):
    """(config, note): the workload's config with the proxy sizes and `sizes` applied.
    sizes: model fields (blocks/layers, hidden, heads, vocab, ...) or run fields (batch,
    seq_len, ...). scope 'block' keeps one block and the given length."""
    base = load_workload_config(workload)
    fam = _family(base)
    if fam not in PROXY_SIZE:
        raise InputError(f"{workload}: quantization accuracy covers the diffusion language "
                         f"models ({', '.join(sorted(PROXY_SIZE))}), not family {base.family}")
    default = dict(PROXY_SIZE[fam])
    if scope == "block":
        default = {DEPTH_KEY[fam]: 1, "batch": 1, **({"vocab": 8192} if fam == "mdlm" else {})}
    if checkpoint:  # the checkpoint fixes the width and vocab
        default = {k: v for k, v in default.items() if k not in WIDTH_KEYS}
    if "depth" in sizes:
        sizes[DEPTH_KEY[fam]] = sizes.pop("depth")
    want = {**default, **{k: v for k, v in sizes.items() if v is not None}}
    model_up, run_up, note = {}, {}, []
    for k, v in want.items():
        part = ("model" if k in type(base.model).model_fields
                else "run" if k in type(base.run).model_fields else None)
        if part is None:
            raise InputError(f"unknown size '{k}' for {base.name}; model fields: "
                             f"{', '.join(type(base.model).model_fields)}; run fields: "
                             f"{', '.join(type(base.run).model_fields)}")
        old = getattr(getattr(base, part), k)
        if k in default and sizes.get(k) is None and isinstance(old, int) and v > old:
            v = old  # a proxy default never enlarges the model
        (model_up if part == "model" else run_up)[k] = v
        if v != old:
            note.append(f"{k} {old}->{v}")
    data = base.model_dump()
    data["model"].update(model_up)
    data["run"].update(run_up)
    try:
        cfg = type(base).model_validate(data)
    except ValidationError as e:
        raise InputError(validation_message(e, f"reduced size of {base.name}")) from None
    if fam in ("mdlm", "llada") and cfg.model.vocab < 2:
        raise InputError(f"vocab {cfg.model.vocab}: a masked diffusion model needs at least "
                         "one token besides [MASK] (vocab >= 2)")
    return cfg, (", ".join(note) or "none")


# ---- inputs -----------------------------------------------------------------------------
def sample_inputs(trace: Trace, weights: dict, level: float, seed: int, tag: str) -> dict:
    """Seeded inputs of one sampling step at `level` (fraction of the way from the end:
    1 = first step). MDLM/LLaDA: random tokens, each generated position masked with
    probability `level` (at least one per row); Diffusion-LM: x_t = sqrt(ab) x0 +
    sqrt(1-ab) noise at t = level (T-1), x0 the embeddings of random tokens."""
    fam = family_of(trace)
    rng = rng_for(seed, f"{tag}@{level}")
    run = dict(trace.run)
    ins: dict[str, np.ndarray] = {}
    produced = {t.name for op in trace.ops for t in op.outputs}
    needed = {t.name: t for op in trace.ops for t in op.inputs
              if t.role == "index" and t.name not in produced}
    for t in trace.inputs:
        needed[t.name] = t
    mask = mask_id(trace)
    for name, t in needed.items():
        if name == "tokens":
            tok = rng.integers(0, mask, t.shape)
            gen = run.get("gen_len", t.shape[-1])
            region = np.zeros(t.shape, bool)
            region[..., t.shape[-1] - gen:] = True
            masked = region & (rng.random(t.shape) < level)
            masked[..., -1] |= ~masked.any(-1)  # at least one masked position per row
            ins[name] = np.where(masked, mask, tok)
        elif name == "positions":
            ins[name] = np.arange(t.shape[0])
        elif name == "sigma":  # MDLM log-linear noise; zeroed when time conditioning is off
            s = -math.log1p(-(1 - 1e-3) * level) if run.get("time_conditioning") else 0.0
            ins[name] = np.full(t.shape, s, np.float32)
        elif name in ("x_t", "t"):
            steps = int(run.get("steps", trace.steps))
            step = round(level * (steps - 1))
            if name == "t":
                ins[name] = np.full(t.shape, float(step), np.float32)
                continue
            table = next(w for n, w in weights.items()
                         if w.ndim == 2 and w.shape[1] == t.shape[-1]
                         and "position" not in n)
            x0 = table[rng.integers(0, table.shape[0], t.shape[:-1])]
            ab = sqrt_schedule(steps)[step]
            ins[name] = (math.sqrt(ab) * x0 + math.sqrt(1 - ab)
                         * rng.standard_normal(t.shape)).astype(np.float32)
        else:
            raise InputError(f"no sample values for trace input '{name}' ({fam})")
    return ins


def logits_name(trace: Trace, dist: bool = False) -> str:
    """The output head's logits; dist: the tensor the token distribution is read from (MDLM's
    log-probs, with [MASK] suppressed; the logits elsewhere). Diffusion-LM: the x0 estimate
    against the tied embedding table (round.dot), the lm_head logits of x0."""
    by_op = {op.name: op for op in trace.ops}
    names = ("final.log_softmax",) if dist else ()
    for n in names + ("final.linear", "final.lm_head", "round.dot", "decode.lm_head"):
        if n in by_op:
            return by_op[n].outputs[0].name
    gemms = [op for op in trace.ops if op.kind == "gemm"]
    return gemms[-1].outputs[0].name


def scope_ops(trace: Trace, scope: str) -> list[Op]:
    """'forward': every op (once, forward, step) in order; 'block': up to block 0's end."""
    ops = list(trace.ops)
    if scope == "forward":
        return ops
    if scope != "block":
        raise InputError(f"unknown scope '{scope}'; known: forward, block")
    last = max(i for i, op in enumerate(ops) if op.block == 0)
    return ops[: last + 1]


# ---- the fp32 side (cached: every precision setting reuses it) ---------------------------
@dataclass
class _Reference:
    trace: Trace
    ops: list[Op]
    weights: dict
    weights_kind: str
    reduced: str
    levels: tuple
    calib: list[dict]
    nonneg: list[frozenset]
    inputs: list[dict]
    envs: list[dict]
    outputs: list[str]  # block outputs, then the head's logits (forward scope)
    dist: str | None  # the token-distribution tensor (forward scope)
    rows: list  # positions the token metrics average over (masked ones), per level
    wq: dict = field(default_factory=dict)  # fake-quantized weights per w_bits
    codes: dict = field(default_factory=dict)  # weight codes, shared by the numerics


_REFS: dict[tuple, _Reference] = {}
_RESULTS: dict[tuple, QuantReport] = {}


def _max_abs(env: dict) -> dict[str, float]:
    """Calibration range per tensor: max |x|, ignoring the log-prob sentinel (it saturates
    to the most negative code instead, which still means probability ~0)."""
    out = {}
    for k, v in env.items():
        if v.dtype.kind == "f" and v.size:
            a = np.abs(v)
            m = float(a.max())
            out[k] = float(a[a < SENTINEL].max(initial=0.0)) if m >= SENTINEL else m
    return out


def reference(workload: str, seed: int = 0, checkpoint: str | None = None,
              scope: str = "forward", levels=LEVELS, **sizes) -> _Reference:
    key = (workload, seed, checkpoint, scope, tuple(levels), tuple(sorted(sizes.items())))
    if key in _REFS:
        return _REFS[key]
    cfg, note = reduced_config(workload, scope, checkpoint is not None, **sizes)
    trace = build_trace(cfg)
    ops = scope_ops(trace, scope)
    # Kept: an evaluation run per level, a calibration run and the quantized run; weights
    # in fp32, fake-quantized and as integer codes.
    check_memory(execution_bytes(trace, ops, len(levels) + 2, 3),
                 f"evaluating {trace.model} (batch {trace.run_param('batch')}, seq_len "
                 f"{trace.run_param('seq_len')}, {trace.n_blocks} block"
                 f"{'s' if trace.n_blocks != 1 else ''})",
                 "choose smaller --batch, --seq-len, --vocab or --depth")
    if checkpoint:
        weights = load_checkpoint(checkpoint, trace)
        kind = f"checkpoint {Path(checkpoint).name}"
    else:
        weights = synthetic_weights(trace, seed)
        kind = f"synthetic (seed {seed})"
    calib, nonneg, inputs, envs, rows = [], [], [], [], []
    for lv in levels:
        ins = sample_inputs(trace, weights, lv, seed, "calibrate")
        env = {**execute(trace, weights, ins, ops=ops, seed=seed), **ins}
        calib.append(_max_abs(env))
        nonneg.append(frozenset(k for k, v in env.items()
                                if v.dtype.kind == "f" and v.size and v.min() >= 0))
        ins = sample_inputs(trace, weights, lv, seed, "evaluate")
        inputs.append(ins)
        envs.append(execute(trace, weights, ins, ops=ops, seed=seed))
        tok = ins.get("tokens")
        rows.append(tok == mask_id(trace) if tok is not None else None)
    blocks = sorted({op.block for op in ops if op.block is not None})
    outs = [[op for op in ops if op.block == b][-1].outputs[0].name for b in blocks]
    dist = None
    if scope == "forward":
        outs.append(logits_name(trace))
        dist = logits_name(trace, dist=True)
    ref = _Reference(trace, ops, weights, kind, note, tuple(levels), calib, nonneg, inputs,
                     envs, outs, dist, rows)
    _REFS[key] = ref
    return ref


# ---- the quantized side -------------------------------------------------------------------
@dataclass
class QuantReport:
    """summary: one dict of scalars; per_op: metrics per op (mean over steps), per_step."""

    summary: dict
    per_op: pd.DataFrame
    per_step: pd.DataFrame


def evaluate(workload: str, w_bits: int = 8, a_bits: int = 8, sfu_bits: int | None = None,
             approx: bool = False, *, acc_bits: int = DEFAULT_ACC_BITS, per_step: bool = True,
             seed: int = 0, checkpoint: str | None = None, scope: str = "forward",
             levels=LEVELS, **sizes) -> QuantReport:
    """Quantized vs fp32 execution of `workload` at the proxy size (see reduced_config).

    w_bits in (4, 8, 16, 32), a_bits in (8, 16, 32), 32 meaning fp32; sfu_bits None (fp32)
    or 8..32; acc_bits 16..64 (default 48, a DSP48 accumulator); per_step: one activation
    scale set per sampling step (else one set pooled over the steps). Cached in-process per setting.
    """
    w_bits = check_bits("weight bits", w_bits, W_BITS)
    a_bits = check_bits("activation bits", a_bits, A_BITS)
    sfu_bits = check_bits("sfu bits", sfu_bits, SFU_BITS)
    acc_bits = check_bits("accumulator bits", acc_bits, ACC_BITS)
    key = (workload, w_bits, a_bits, sfu_bits, bool(approx), acc_bits, per_step, seed,
           checkpoint, scope, tuple(levels), tuple(sorted(sizes.items())))
    if key in _RESULTS:
        return _RESULTS[key]
    ref = reference(workload, seed, checkpoint, scope, levels, **sizes)
    if w_bits not in ref.wq:
        ref.wq[w_bits] = quantize_weights(ref.trace, ref.weights, w_bits)
    pooled: dict[str, float] = {}
    for c in ref.calib:
        for k, v in c.items():
            pooled[k] = max(v, pooled.get(k, 0.0))
    pooled_nonneg = frozenset.intersection(*ref.nonneg)
    rows, steps = [], []
    for i, lv in enumerate(ref.levels):
        num = QuantNumerics(approx=approx, w_bits=w_bits, a_bits=a_bits, acc_bits=acc_bits,
                            sfu_bits=sfu_bits, act_max=ref.calib[i] if per_step else pooled,
                            nonneg=ref.nonneg[i] if per_step else pooled_nonneg,
                            weight_codes=ref.codes)
        renv = ref.envs[i]

        def observe(op, outs, lv=lv, renv=renv):
            for t, v in zip(op.outputs, outs):
                r = renv[t.name]
                if v.dtype.kind == "f":
                    rows.append((lv, op.name, op.fn, op.block, sqnr_db(r, v), cosine(r, v),
                                 math.nan))
                else:
                    rows.append((lv, op.name, op.fn, op.block, math.nan, math.nan,
                                 float(np.mean(r == v))))

        env = execute(ref.trace, ref.wq[w_bits], ref.inputs[i], ops=ref.ops, seed=seed,
                      numerics=num, observe=observe)
        st = {"level": lv, "saturated": num.saturated}
        for j, name in enumerate(ref.outputs):
            st[f"sqnr_db[{name}]"] = sqnr_db(renv[name], env[name])
            st[f"cosine[{name}]"] = cosine(renv[name], env[name])
        if scope == "forward":
            lg = ref.dist
            st["kl"] = kl_divergence(renv[lg], env[lg], ref.rows[i])
            st["top1"] = top1_agreement(renv[lg], env[lg], ref.rows[i])
        steps.append(st)
    df = pd.DataFrame(rows, columns=["level", "op", "fn", "block", "sqnr_db", "cosine",
                                     "agreement"])
    per_op = (df.groupby(["op", "fn"], sort=False, dropna=False)
              .agg(block=("block", "first"), sqnr_db=("sqnr_db", "mean"),
                   cosine=("cosine", "mean"), agreement=("agreement", "mean"))
              .reset_index())
    per_step_df = pd.DataFrame(steps)
    out = ref.outputs[-1]
    blk = ref.outputs[len(ref.outputs) - (2 if scope == "forward" else 1)]
    finite = per_op.dropna(subset=["sqnr_db"])
    worst = finite.loc[finite.sqnr_db.idxmin()] if len(finite) else None
    summary = {
        "workload": workload, "w_bits": w_bits, "a_bits": a_bits, "sfu_bits": sfu_bits,
        "approx": bool(approx), "acc_bits": acc_bits, "per_step_scales": per_step,
        "scope": scope, "weights": ref.weights_kind, "reduced": ref.reduced,
        "steps": ", ".join(f"{lv:g}" for lv in ref.levels),
        "block_output": blk,
        "block_sqnr_db": float(per_step_df[f"sqnr_db[{blk}]"].mean()),
        "block_cosine": float(per_step_df[f"cosine[{blk}]"].mean()),
        "output": out,
        "output_sqnr_db": float(per_step_df[f"sqnr_db[{out}]"].mean()),
        "output_cosine": float(per_step_df[f"cosine[{out}]"].mean()),
        "kl": float(per_step_df["kl"].mean()) if "kl" in per_step_df else math.nan,
        "top1": float(per_step_df["top1"].mean()) if "top1" in per_step_df else math.nan,
        "worst_op": None if worst is None else str(worst.op),
        "worst_op_sqnr_db": math.nan if worst is None else float(worst.sqnr_db),
        "saturated": int(per_step_df["saturated"].sum()),
    }
    rep = QuantReport(summary, per_op, per_step_df)
    _RESULTS[key] = rep
    return rep


def accuracy_proxy(workload: str, w_bits, a_bits, sfu_bits=None, approx: bool = False,
                   seed: int = 0, **reduced_size) -> dict:
    """Scalar accuracy of a precision setting, for the design-space search: a copy of
    `evaluate(...).summary` (keys kl, top1, output_sqnr_db, block_sqnr_db, ...). Cached
    per setting in-process; the fp32 reference and calibration are shared by all settings."""
    return dict(evaluate(workload, w_bits, a_bits, sfu_bits, approx, seed=seed,
                         **reduced_size).summary)


def clear_cache() -> None:
    _REFS.clear()
    _RESULTS.clear()
