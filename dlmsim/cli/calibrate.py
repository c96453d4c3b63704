"""`dlmsim calibrate`: fit correction factors from HLS reports of lowered programs."""

from __future__ import annotations

from pathlib import Path

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
    emit_frame(error_table(pairs, f), fmt,
               title="predicted vs reported, before and after calibration (error % of "
                     "reported)")
    sec = calibration_section(f)
    if dry_run:
        out.print(f"factors (not written): {sec}", highlight=False)
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
    out.print(f"wrote calibration to {target}: " + ", ".join(
        f"{k}={v}" for k, v in sec.items() if k != "source"), highlight=False)
