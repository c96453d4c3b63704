"""The Typer app and what every subcommand shares: consoles, formats, number formatting."""

from __future__ import annotations

import sys
from enum import Enum

import typer
from rich.console import Console
from rich.table import Table

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


def fmt_seconds(s: float, digits: int = 3) -> str:
    """Seconds with an SI prefix: 5.04e-06 -> '5.04 us'."""
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us")):
        if s >= scale:
            return f"{s / scale:.{digits}g} {unit}"
    return f"{s / 1e-9:.{digits}g} ns"


def fmt_num(x: float, digits: int = 3) -> str:
    """Compact engineering format: 1.23e+09 -> '1.23 G'. The unit goes in the header."""
    if x == 0:
        return "0 "
    for scale, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.{digits}g} {prefix}"
    return f"{x:.{digits}g} "


def emit_frame(df, fmt: Fmt, title: str | None = None) -> None:
    """A DataFrame as a rich table, or as CSV or JSON on stdout."""
    if fmt == Fmt.table:
        table = Table(title=title, show_lines=False, header_style="bold")
        for col in df.columns:
            table.add_column(str(col), justify="right" if df[col].dtype.kind in "if" else "left")
        for row in df.itertuples(index=False):
            table.add_row(*("" if v is None else str(v) for v in row))
        out.print(table)
        return
    text = df.to_csv(index=False) if fmt == Fmt.csv else df.to_json(orient="records", indent=1)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
