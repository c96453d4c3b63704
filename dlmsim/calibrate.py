"""Calibration: line HLS reports up with the manifests of the programs they came from, fit
per-design correction factors, and store them in the arch file's `calibration:` section.

Factors (each a ratio reported / predicted, over every pair of one design, combined by the
geometric mean so that x2 and x0.5 cancel):
- cycles: HLS top-function latency (worst case, else average, else best) / the manifest's
  predicted cycles (the simulator's cycles for exactly the lowered ops, see dlmsim.lower);
  not for programs whose kernel runs one op per call (today's lowering: its report's latency
  is one call's, with run-time trip counts): their cycles factor stays 1, with a warning;
- dsp, bram36, uram, lut, ff: reported / predicted resources (BRAM18 / 2 -> bram36); a
  resource predicted 0 or not reported keeps factor 1 (nothing to scale), with a warning;
- clock_mhz: the lowest clock the reports' estimated periods allow (the design must close
  at its slowest), not a ratio.
Bounds: every factor (and clock / target clock) is clamped to [0.25, 4]; a clamp is
reported by name, never silent. Nothing is applied to a simulation unless the arch carries
the section, and `dlmsim simulate` shows calibrated figures beside the raw ones.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from dlmsim.config import write_atomic
from dlmsim.errors import InputError

BOUNDS = (0.25, 4.0)
RESOURCE_KEYS = {"dsp": "DSP", "bram36": "BRAM18", "uram": "URAM", "lut": "LUT", "ff": "FF"}
# Unit of each quantity of the error table.
UNITS = {"cycles": "cycles", "clock_mhz": "MHz", "dsp": "DSP", "bram36": "BRAM36",
         "uram": "URAM", "lut": "LUT", "ff": "FF"}


@dataclass
class Pair:
    """One report and the manifest of the program it came from."""

    report_path: str
    manifest_path: str
    manifest: dict
    report: object  # dlmsim.hls_report.HlsReport

    @property
    def design(self) -> str:
        return self.manifest["arch"]["design_hash"]

    def predicted(self) -> dict[str, float]:
        p = self.manifest["prediction"]
        return {"cycles": p["cycles"], "clock_mhz": p["clock_mhz"], **p["resources"]}

    def reported(self) -> dict[str, float | None]:
        r = self.report
        lat = next((x for x in (r.latency_worst_cycles, r.latency_average_cycles,
                                r.latency_best_cycles) if x is not None), None)
        if self.manifest["program"].get("per_op_calls"):
            # The kernel runs one op per call, its loops with run-time trip counts: a
            # report's latency is one call's (or undefined), not the block's.
            lat = None
        out = {"cycles": lat, "clock_mhz": r.estimated_mhz or r.target_mhz}
        for k, key in RESOURCE_KEYS.items():
            v = r.resources.get(key)
            out[k] = None if v is None else (v / 2 if k == "bram36" else float(v))
        return out


@dataclass
class Fit:
    factors: dict[str, float]
    clock_mhz: float | None
    warnings: list[str] = field(default_factory=list)
    pairs: list[Pair] = field(default_factory=list)

    def source(self) -> str:
        tops = sorted({p.manifest["program"]["top"] for p in self.pairs})
        return (f"dlmsim calibrate: {len(self.pairs)} report(s) of {', '.join(tops)} "
                f"({', '.join(Path(p.report_path).name for p in self.pairs)})")


def pair_reports(paths: list[str | Path], manifests: list[str | Path] | None = None
                 ) -> list[Pair]:
    """Each report path (file or directory) with its manifest: the given one when exactly
    one --manifest is passed, else the manifest.json of the lowered directory it lies in,
    else a given manifest the report matches. A report matches a manifest when its top
    function, its part and its target clock are the lowered program's; a report paired
    with a manifest it does not match is an InputError saying which differs."""
    from dlmsim.hls_report import parse_report
    from dlmsim.lower.manifest import find_manifest, read_manifest

    given = [(str(m), read_manifest(m)) for m in manifests or []]
    out = []
    for p in paths:
        rep = parse_report(p)
        if len(given) == 1:
            candidates = given
        else:
            found = find_manifest(p)
            candidates = [(str(found), read_manifest(found))] if found is not None else [
                (gp, gm) for gp, gm in given if mismatch(rep, gm) is None]
        if not candidates:
            raise InputError(f"{p}: no manifest matches this report (top '{rep.top}'); pass "
                             "the lowered directory's manifest.json with --manifest")
        mpath, man = candidates[0]
        why = mismatch(rep, man)
        if why:
            raise InputError(f"{p} is not a report of the program of {mpath}: {why}")
        out.append(Pair(str(p), mpath, man, rep))
    return out


def _die(part: str) -> str:
    """'xczu9eg-ffvb1156-2-e' -> 'xczu9eg', 'xc7z020clg400-1' -> 'xc7z020clg400'."""
    return re.match(r"[a-z0-9]*", part.strip().lower()).group()


def mismatch(report, manifest: dict) -> str | None:
    """Why `report` did not come from the program `manifest` describes (None: it may have):
    another top function, another part, or another target clock (more than 1% apart)."""
    top = manifest["program"]["top"]
    if report.top != top:
        return f"its top function is '{report.top}', the program's is '{top}'"
    part = manifest["hls"]["part"]
    a, b = _die(report.part or ""), _die(part)
    if a and b and not (a.startswith(b) or b.startswith(a)):
        return f"it was synthesised for {report.part}, the program for {part}"
    want = manifest["hls"].get("clock_mhz") or manifest["prediction"]["clock_mhz"]
    got = report.target_mhz
    if got and abs(got / want - 1) > 0.01:
        return f"it targets {got:.4g} MHz, the program {want:.4g} MHz"
    return None


def _clamp(name: str, x: float, warnings: list[str]) -> float:
    lo, hi = BOUNDS
    if x < lo or x > hi:
        c = min(max(x, lo), hi)
        warnings.append(f"{name} factor {x:.3g} clamped to {c:g} (bounds [{lo:g}, {hi:g}])")
        return c
    return x


def fit(pairs: list[Pair]) -> Fit:
    """Correction factors of one design from its pairs (see the module docstring)."""
    if not pairs:
        raise InputError("no reports to calibrate from")
    designs = {p.design for p in pairs}
    if len(designs) > 1:
        names = sorted({p.manifest["arch"]["name"] for p in pairs})
        raise InputError(f"reports of {len(designs)} different designs ({', '.join(names)}); "
                         "calibrate one design at a time")
    warnings: list[str] = []
    factors: dict[str, float] = {}
    for k in ("cycles", *RESOURCE_KEYS):
        logs = []
        for p in pairs:
            pred, rep = p.predicted().get(k), p.reported().get(k)
            if rep is None:
                continue
            if not pred:
                if rep:
                    warnings.append(f"{k}: predicted 0 but {Path(p.report_path).name} reports "
                                    f"{rep:g}; factor left at 1")
                continue
            if rep <= 0:
                warnings.append(f"{k}: {Path(p.report_path).name} reports 0; not used")
                continue
            logs.append(math.log(rep / pred))
        if not logs:
            if k == "cycles":
                why = ("the lowered kernel runs one op per call, so a report's latency is not "
                       "the block's (calibrate cycles from C/RTL co-simulation of every call)"
                       if any(p.manifest["program"].get("per_op_calls") for p in pairs)
                       else "no report gives a latency")
                warnings.append(f"cycles: {why}; factor left at 1")
            factors[k] = 1.0
            continue
        factors[k] = _clamp(k, math.exp(sum(logs) / len(logs)), warnings)
    clocks = [p.reported()["clock_mhz"] for p in pairs if p.reported()["clock_mhz"]]
    clock = None
    if clocks:
        target = pairs[0].predicted()["clock_mhz"]
        clock = target * _clamp("clock_mhz (estimated / target)", min(clocks) / target,
                                warnings)
    return Fit(factors, clock, warnings, list(pairs))


def error_table(pairs: list[Pair], f: Fit):
    """One row per pair and quantity: predicted raw / calibrated, reported, errors (%)."""
    import pandas as pd

    rows = []
    for p in pairs:
        pred, rep = p.predicted(), p.reported()
        for k in ("cycles", "clock_mhz", *RESOURCE_KEYS):
            if rep.get(k) is None:
                continue
            raw = pred.get(k)
            cal = f.clock_mhz if k == "clock_mhz" and f.clock_mhz else (
                raw * f.factors.get(k, 1.0) if raw is not None else None)
            rows.append({"report": Path(p.report_path).name, "quantity": k, "unit": UNITS[k],
                         "reported": rep[k], "predicted": raw,
                         "error_pct": _err_pct(raw, rep[k]), "calibrated": cal,
                         "calibrated_error_pct": _err_pct(cal, rep[k])})
    return pd.DataFrame(rows)


def _err_pct(x: float | None, ref: float) -> float:
    return 100.0 * (x - ref) / ref if ref and x is not None else float("nan")


def calibration_section(f: Fit) -> dict:
    sec = {k: round(v, 6) for k, v in f.factors.items()}
    if f.clock_mhz is not None:
        sec["clock_mhz"] = round(f.clock_mhz, 3)
    sec["source"] = f.source()
    return sec


_TOP_KEY = re.compile(r"^[A-Za-z_][\w-]*\s*:")


def write_calibration(arch_path: str | Path, section: dict) -> None:
    """Replace (or append) the top-level `calibration:` block of an arch YAML, keeping every
    other line as it was; validate the result before an atomic write."""
    from dlmsim.arch import arch_from_data

    p = Path(arch_path)
    try:
        text = p.read_text()
    except OSError as e:
        raise InputError(f"cannot read {p}: {e.strerror or e}") from None
    lines = text.splitlines(keepends=True)
    keep, skipping = [], False
    for ln in lines:
        if ln.startswith("calibration:"):
            skipping = True
            continue
        if skipping and (_TOP_KEY.match(ln) or ln.startswith("#")):
            skipping = False
        if not skipping:
            keep.append(ln)
    body = "".join(keep)
    if body and not body.endswith("\n"):
        body += "\n"
    block = yaml.safe_dump({"calibration": section}, sort_keys=False, width=1000)
    new = body + block
    arch_from_data(yaml.safe_load(new), str(p))  # raises InputError naming a bad key
    try:
        write_atomic(p, new)
    except OSError as e:
        raise InputError(f"cannot write {p}: {e.strerror or e}") from None
