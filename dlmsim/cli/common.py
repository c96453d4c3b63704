"""The Typer app and what every subcommand shares: consoles, formats, number formatting."""

from __future__ import annotations

import sys
from enum import Enum

import typer
from rich.console import Console
from rich.table import Table


def _flags_take_no_value() -> None:
    """Typer's rich help labels flags (--cache/--no-cache, --help) `<bool>` as if they took a
    value (typer 0.29); its plain help does not. Show flags with no type in both."""
    core = getattr(typer, "core", None)
    option = getattr(core, "TyperOption", None)
    shown = getattr(option, "display_type_rich", None)
    if shown is None or getattr(shown, "_dlmsim", False):
        return

    def display_type_rich(self, ctx):
        return None if getattr(self, "is_flag", False) else shown(self, ctx)

    display_type_rich._dlmsim = True
    option.display_type_rich = display_type_rich


_flags_take_no_value()

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


def _version(value: bool) -> None:
    if value:
        from dlmsim import __version__

        out.print(f"dlmsim {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """dlmsim: trace -> simulate -> sweep/search -> plot -> lower -> calibrate."""


class Fmt(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


def fail(msg: str) -> None:
    err.print(f"error: {msg}", markup=False, highlight=False)
    raise typer.Exit(1)


def workload_overrides(sets: list[str] | None, flag: str, **options) -> dict:
    """Run options (--batch ...) and `flag` key=value overrides as one set of overrides; a
    run parameter given both ways is an error, not a silent choice between the two."""
    from dlmsim.config import check_plain, parse_sets
    from dlmsim.errors import InputError

    given = {k: v for k, v in options.items() if v is not None}
    for k, v in given.items():
        check_plain(v, f"--{k.replace('_', '-')}")
    out = dict(given)
    for k, v in parse_sets(sets, flag).items():
        plain = k.removeprefix("run.")
        if plain in given:
            raise InputError(f"{flag} {k} and --{plain.replace('_', '-')} both set "
                             f"{plain}; give one")
        out[k] = v
    return out


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
