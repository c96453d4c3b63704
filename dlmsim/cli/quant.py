"""`dlmsim quant`: what a bit-width choice costs in accuracy (fp32 vs quantized execution)."""

from __future__ import annotations

import math
from pathlib import Path

import typer
from rich.table import Table

from dlmsim.cli.common import Fmt, app, emit_frame, err, out


def _db(x: float) -> str:
    return "inf" if math.isinf(x) and x > 0 else f"{x:.1f}"


@app.command()
def quant(
    workload: str = typer.Argument(..., help="Bundled model name or path to a model YAML."),
    w_bits: int = typer.Option(8, "--w-bits", help="Weight bits: 4, 8, 16, or 32 (fp32)."),
    a_bits: int = typer.Option(8, "--a-bits", help="Activation bits: 8, 16, or 32 (fp32)."),
    sfu_bits: int | None = typer.Option(None, "--sfu-bits",
                                        help="SFU fixed-point bits (default fp32)."),
    approx: bool = typer.Option(False, "--approx",
                                help="Hardware approximations: hard GELU/SiLU, fixed-point "
                                "exp softmax."),
    acc_bits: int = typer.Option(48, "--acc-bits", help="Accumulator bits (saturating)."),
    per_step: bool = typer.Option(True, "--per-step/--shared-scales",
                                  help="One activation scale set per sampling step."),
    checkpoint: Path | None = typer.Option(None, "--checkpoint",
                                           help="Real weights: .safetensors or PyTorch zip."),
    block: bool = typer.Option(False, "--block", help="One block only (no output head)."),
    depth: int | None = typer.Option(None, "--depth", help="Blocks/layers to run."),
    batch: int | None = typer.Option(None, "--batch", "-b", help="Batch size."),
    seq_len: int | None = typer.Option(None, "--seq-len", "-l", help="Sequence length."),
    vocab: int | None = typer.Option(None, "--vocab", help="Vocabulary size."),
    seed: int = typer.Option(0, "--seed", help="Seed of the weights and inputs."),
    per_op: bool = typer.Option(False, "--per-op", help="Also print the per-op metrics."),
    fmt: Fmt = typer.Option(Fmt.table, "--format", "-f", help="Output format."),
):
    """Accuracy of a precision setting: SQNR and cosine per op and at the block output, KL
    and top-1 agreement of the token distributions, against fp32 execution."""
    import pandas as pd

    from dlmsim.quant import evaluate

    with err.status(f"running {workload} in fp32 and at W{w_bits}A{a_bits} ..."):
        rep = evaluate(workload, w_bits, a_bits, sfu_bits, approx, acc_bits=acc_bits,
                       per_step=per_step, seed=seed,
                       checkpoint=str(checkpoint) if checkpoint else None,
                       scope="block" if block else "forward", depth=depth, batch=batch,
                       seq_len=seq_len, vocab=vocab)
    s = rep.summary
    if fmt != Fmt.table:
        emit_frame(rep.per_op if per_op else pd.DataFrame([s]), fmt)
        return
    if per_op:
        df = rep.per_op.assign(
            sqnr_db=rep.per_op.sqnr_db.map(lambda v: "" if math.isnan(v) else _db(v)),
            cosine=rep.per_op.cosine.map(lambda v: "" if math.isnan(v) else f"{v:.5f}"),
            agreement=rep.per_op.agreement.map(lambda v: "" if math.isnan(v) else f"{v:.3f}"),
            block=rep.per_op.block.map(lambda v: "" if pd.isna(v) else str(int(v))))
        emit_frame(df, fmt, title="per op (error accumulated up to the op's output, "
                   "mean over steps)")
    sfu = "fp32" if s["sfu_bits"] is None else f"{s['sfu_bits']}-bit fixed point"
    t = Table(title=f"{workload}: W{s['w_bits']}A{s['a_bits']} vs fp32", header_style="bold")
    t.add_column("quantity")
    t.add_column("value", justify="right")
    rows = [
        ("weights", s["weights"]),
        ("reduced for speed", s["reduced"]),
        ("sampling steps evaluated (fraction masked / t/T)", s["steps"]),
        ("SFU", sfu + (", hardware approximations" if s["approx"] else "")),
        ("accumulator", f"{s['acc_bits']} bits, {s['saturated']} saturated outputs"),
        ("activation scales", "per sampling step" if s["per_step_scales"] else "shared"),
        (f"block output SQNR ({s['block_output']})", _db(s["block_sqnr_db"]) + " dB"),
        ("block output cosine", f"{s['block_cosine']:.5f}"),
    ]
    if s["scope"] == "forward":
        rows += [
            (f"logits SQNR ({s['output']})", _db(s["output_sqnr_db"]) + " dB"),
            ("logits cosine", f"{s['output_cosine']:.5f}"),
            ("KL(fp32 || quantized), masked positions", f"{s['kl']:.4g} nats"),
            ("top-1 agreement, masked positions", f"{100 * s['top1']:.1f} %"),
        ]
    if s["worst_op"]:
        rows.append(("worst op", f"{s['worst_op']} ({_db(s['worst_op_sqnr_db'])} dB)"))
    for k, v in rows:
        t.add_row(k, v)
    out.print(t)
