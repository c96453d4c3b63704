"""`dlmsim calibrate`: fit correction factors from HLS reports of lowered programs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer

from dlmsim.cli.common import Fmt, app, emit_frame, err, out


@app.command()
def calibrate(
    reports: list[Path] = typer.Argument(..., help="csynth.xml / csynth.rpt files or "
                                         "directories holding one (inside lowered dirs)."),
    manifest: list[Path] | None = typer.Option(None, "--manifest", "-m",
                                                help="Manifest(s) of the lowered programs, "
                                                "when reports lie outside their directory."),
    arch: Path | None = typer.Option(None, "--arch", "-a",
                                     help="Arch YAML to write the calibration section into "
                                     "(default: the file the manifest names, unless bundled)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the table, write nothing."),
    fmt: Fmt = typer.Option(Fmt.table, "--format", "-f", help="Output format."),
):
    """Compare predicted and reported cycles, clock and resources; store fitted factors."""
    from dlmsim.calibrate import (
        calibration_section,
        error_table,
        fit,
        pair_reports,
        write_calibration,
    )
    from dlmsim.config import bundled_dir
    from dlmsim.errors import InputError

    pairs = pair_reports(reports, manifest)
    f = fit(pairs)
    for w in f.warnings:
        err.print(f"warning: {w}", markup=False, highlight=False)
    table = error_table(pairs, f)
    emit_frame(_readable(table) if fmt == Fmt.table else table, fmt,
               title="predicted vs reported, before and after calibration (error % of "
                     "reported)")
    sec = calibration_section(f)
    if dry_run:
        out.print(f"factors (not written): {_factors(sec)}", highlight=False)
        return
    target = arch
    if target is None:
        src = pairs[0].manifest["arch"].get("source") or ""
        bundled = Path(bundled_dir("arch")).resolve()
        if not src or Path(src).resolve().parent == bundled or not Path(src).is_file():
            raise InputError("the manifest's arch is a bundled config (or unknown); pass "
                             "--arch FILE to say which arch YAML gets the calibration")
        target = Path(src)
    write_calibration(target, sec)
    out.print(f"wrote calibration to {target}: {_factors(sec)}", highlight=False)


def _factors(sec: dict) -> str:
    """'cycles x1.18, dsp x1.05, ..., clock 231 MHz' (factors are ratios, the clock MHz)."""
    return ", ".join(f"clock {v:.4g} MHz" if k == "clock_mhz" else f"{k} x{v:.4g}"
                     for k, v in sec.items() if k != "source")


def _readable(table):
    """The error table for people: 4 significant digits with each quantity's unit."""
    from dlmsim.calibrate import UNITS

    def num(v, unit):
        return "-" if v is None or pd.isna(v) else f"{v:.4g} {unit}".strip()

    def pct(v):
        return "-" if v is None or pd.isna(v) else f"{v:+.1f} %"

    rows = []
    for r in table.itertuples(index=False):
        u = UNITS[r.quantity]
        rows.append({"report": r.report, "quantity": r.quantity,
                     "reported": num(r.reported, u), "predicted": num(r.predicted, u),
                     "error": pct(r.error_pct), "calibrated": num(r.calibrated, u),
                     "calibrated error": pct(r.calibrated_error_pct)})
    return pd.DataFrame(rows)
