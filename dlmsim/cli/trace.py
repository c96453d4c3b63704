"""`dlmsim trace`: the operator table of a model and its totals."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from dlmsim.cli.common import Fmt, app, emit_frame, err, fmt_num, out, workload_overrides


@app.command()
def trace(
    workload: str = typer.Argument(..., help="Bundled model name or path to a model/trace YAML."),
    batch: int | None = typer.Option(None, "--batch", "-b", help="Batch size."),
    seq_len: int | None = typer.Option(None, "--seq-len", "-l", help="Sequence length."),
    steps: int | None = typer.Option(None, "--steps", "-t", help="Sampling steps."),
    cache: bool | None = typer.Option(None, "--cache/--no-cache", help="Sampler cache."),
    precision: str | None = typer.Option(None, help="Model dtype: fp32, bf16, fp16."),
    sets: list[str] | None = typer.Option(
        None, "--set", metavar="KEY=VALUE", help="Workload override, dotted.key=value (run.gen_len=32, model.blocks=2)."),
    fmt: Fmt = typer.Option(Fmt.table, "--format", "-f", help="Output format."),
    output: Path | None = typer.Option(None, "-o", "--output",
                                       help="Write the trace to this YAML file."),
):
    """Print the operator trace of a model: ops with shapes, FLOPs and bytes, and totals."""
    from dlmsim.workloads import load_workload, write_trace

    t = load_workload(workload, **workload_overrides(
        sets, "--set", batch=batch, seq_len=seq_len, steps=steps, cache=cache,
        precision=precision))
    if output is not None:
        write_trace(t, output)
        err.print(f"wrote {len(t.ops)} ops to {output}", highlight=False)
        return
    df = t.to_dataframe()
    if fmt != Fmt.table:
        emit_frame(df, fmt)
        return
    shown = df.assign(
        FLOPs=df.flops.map(lambda v: fmt_num(v) + "FLOP"), bytes=df.bytes.map(lambda v: fmt_num(v) + "B"), weights=df.weight_bytes.map(lambda v: fmt_num(v) + "B" if v else "")
    )[["name", "kind", "fn", "phase", "dims", "FLOPs", "bytes", "weights"]]
    emit_frame(shown, fmt, title=f"{t.model}: ops (bytes at the model dtype, "
               "every operand once)")
    out.print(trace_summary(t))


def trace_summary(t) -> Table:
    run = ", ".join(f"{k}={v}" for k, v in t.run)
    table = Table(title=f"{t.model} totals ({run})", show_header=True, header_style="bold")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    rows = [
        ("parameters", f"{t.params / 1e6:.2f} M"),
        ("weights at model dtype", fmt_num(sum(w.bytes for w in t.weights.values())) + "B"),
        ("ops per forward pass", f"{len(t.phase_ops('forward'))} ops"),
        ("FLOPs per forward pass", fmt_num(t.flops_per_forward) + "FLOP"),
        ("FLOPs per sampling step (sampler ops)", fmt_num(t.flops_per_step) + "FLOP"),
        ("FLOPs once per run", fmt_num(t.flops_once) + "FLOP"),
        ("sampling steps", f"{t.steps} steps"),
        ("expected forward passes per run", f"{t.forward_passes:.2f} passes"),
        ("FLOPs per sampling run", fmt_num(t.flops_per_run) + "FLOP"),
    ]
    if t.schedule.variants:
        rows[2] = ("ops per forward pass", ", ".join(
            f"{name} {len(ops)}" for name, _, ops in t.forward_variants()) + " ops")
        rows[3] = ("FLOPs per forward pass (mean)", fmt_num(t.flops_per_forward) + "FLOP")
        rows.insert(-1, ("kinds of forward pass", ", ".join(
            f"{name} {passes:g}" for name, passes, _ in t.forward_variants()) + " passes"))
    if t.cache_bytes:
        rows.insert(2, ("caches kept off chip at model dtype", fmt_num(t.cache_bytes) + "B"))
    for k, v in rows:
        table.add_row(k, v)
    return table
