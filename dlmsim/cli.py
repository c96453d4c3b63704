"""The `dlmsim` command line: one entry point, one subcommand per pipeline stage.

Exit codes: 0 ok, 1 bad input (one line naming the problem, no traceback), 2 usage.
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from dlmsim.errors import InputError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Cycle-approximate simulator and design-space explorer for FPGA accelerators of "
    "diffusion language models.",
    pretty_exceptions_enable=False,
)
# Wide enough for op tables when piped (rich assumes 80 columns without a terminal).
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, soft_wrap=True)


@app.callback()
def _root() -> None:
    """dlmsim: trace -> simulate -> sweep/search -> plot -> lower -> calibrate."""


class Fmt(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


def fail(msg: str) -> None:
    err.print(f"error: {msg}", markup=False, highlight=False)
    raise typer.Exit(1)


def fmt_num(x: float, digits: int = 3) -> str:
    """Compact engineering format: 1.23e+09 -> '1.23 G'. The unit goes in the header."""
    if x == 0:
        return "0 "
    for scale, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.{digits}g} {prefix}"
    return f"{x:.{digits}g} "


def emit_frame(df, fmt: Fmt, title: str | None = None, output: Path | None = None) -> None:
    """A DataFrame as a rich table, CSV or JSON; written atomically to `output` if given."""
    from dlmsim.config import write_atomic

    if fmt == Fmt.table:
        table = Table(title=title, show_lines=False, header_style="bold")
        for col in df.columns:
            table.add_column(str(col), justify="right" if df[col].dtype.kind in "if" else "left")
        for row in df.itertuples(index=False):
            table.add_row(*("" if v is None else str(v) for v in row))
        out.print(table)
        return
    text = df.to_csv(index=False) if fmt == Fmt.csv else df.to_json(orient="records", indent=1)
    if output:
        write_atomic(output, text)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


# --------------------------------------------------------------------------------- trace
@app.command()
def trace(
    workload: str = typer.Argument(..., help="Bundled model name or path to a model/trace YAML."),
    batch: Optional[int] = typer.Option(None, "--batch", "-b", help="Batch size."),
    seq_len: Optional[int] = typer.Option(None, "--seq-len", "-l", help="Sequence length."),
    steps: Optional[int] = typer.Option(None, "--steps", "-t", help="Sampling steps."),
    cache: Optional[bool] = typer.Option(None, "--cache/--no-cache", help="Sampler cache."),
    precision: Optional[str] = typer.Option(None, help="Model dtype: fp32, bf16, fp16."),
    fmt: Fmt = typer.Option(Fmt.table, "--format", "-f", help="Output format."),
    output: Optional[Path] = typer.Option(None, "-o", help="Write the trace to this YAML file."),
):
    """Print the operator trace of a model: ops with shapes, FLOPs and bytes, and totals."""
    from dlmsim.workloads import load_workload, write_trace

    t = load_workload(workload, batch=batch, seq_len=seq_len, steps=steps, cache=cache,
                      precision=precision)
    if output is not None:
        write_trace(t, output)
        err.print(f"wrote {len(t.ops)} ops to {output}", highlight=False)
        return
    df = t.to_dataframe()
    if fmt != Fmt.table:
        emit_frame(df, fmt)
        return
    shown = df.assign(
        **{
            "FLOPs": df.flops.map(lambda v: fmt_num(v) + "FLOP"),
            "bytes": df.bytes.map(lambda v: fmt_num(v) + "B"),
            "weights": df.weight_bytes.map(lambda v: fmt_num(v) + "B" if v else ""),
        }
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
    for k, v in rows:
        table.add_row(k, v)
    return table


def main() -> None:
    """Console entry point: bad input becomes one line on stderr and exit code 1."""
    try:
        app()
    except InputError as e:
        err.print(f"error: {e}", markup=False, highlight=False)
        sys.exit(1)
    except FileNotFoundError as e:
        err.print(f"error: file not found: {e.filename}", markup=False, highlight=False)
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted", highlight=False)
        sys.exit(130)

