"""A tolerant reader of Vivado HLS / Vitis HLS C-synthesis reports.

`parse_report(path)` takes a `csynth.xml`, a text `csynth.rpt` (classic "HLS Report for" or
the 2020.2+ "Synthesis Summary"), or a directory holding one (e.g. `proj/solution1/syn/report`),
and returns an `HlsReport`. Whatever a report says is `undef`, `?`, `-` or leaves out becomes
None; a `<range>` or `a ~ b` becomes min/max where the field has both, else its max (the
worst case, which is what a design must budget for). Only the standard library is used.
"""

from __future__ import annotations

import itertools
import re
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dlmsim.errors import InputError

RESOURCES = ("DSP", "BRAM18", "URAM", "FF", "LUT")
# Report column/tag -> canonical key. Vivado HLS says DSP48E, Vitis HLS says DSP; the
# Synthesis Summary's "BRAM" column counts 18 Kb blocks like BRAM_18K.
_RESOURCE_ALIASES = {
    "DSP": "DSP", "DSP48": "DSP", "DSP48E": "DSP", "DSP48E1": "DSP", "DSP48E2": "DSP",
    "BRAM_18K": "BRAM18", "BRAM18K": "BRAM18", "BRAM": "BRAM18",
    "URAM": "URAM", "FF": "FF", "LUT": "LUT",
}
_TIME_NS = {"ps": 1e-3, "ns": 1.0, "us": 1e3, "ms": 1e6}


@dataclass(frozen=True)
class LoopRow:
    """One loop of the top function. Cycles are clock cycles of the report's clock."""

    name: str
    path: str  # enclosing loops (and, in a Synthesis Summary, sub-modules) joined by "/"
    latency_min_cycles: int | None
    latency_max_cycles: int | None
    iteration_latency_cycles: int | None  # pipeline depth for pipelined loops
    ii: int | None  # achieved initiation interval, cycles
    trip_count: int | None  # the maximum when the report gives a range
    pipelined: bool


@dataclass(frozen=True)
class HlsReport:
    """The top function's timing, latency, loops and resources from one synthesis report."""

    source: str
    report_format: str  # "xml", "rpt" (classic text) or "rpt-summary" (2020.2+ text)
    top: str
    tool: str  # "vivado_hls", "vitis_hls" or "unknown"
    version: str | None
    part: str | None
    clock_target_ns: float | None
    clock_estimated_ns: float | None
    clock_uncertainty_ns: float | None
    latency_best_cycles: int | None
    latency_average_cycles: int | None
    latency_worst_cycles: int | None
    interval_min_cycles: int | None
    interval_max_cycles: int | None
    pipeline_type: str | None
    loops: tuple[LoopRow, ...] = ()
    resources: dict[str, int] = field(default_factory=dict)  # used, keys from RESOURCES
    available: dict[str, int] = field(default_factory=dict)  # whole device
    available_slr: dict[str, int] = field(default_factory=dict)  # one SLR, text reports only

    @property
    def estimated_mhz(self) -> float | None:
        """Clock frequency the estimated period allows, MHz."""
        return 1e3 / self.clock_estimated_ns if self.clock_estimated_ns else None

    @property
    def target_mhz(self) -> float | None:
        """Target clock frequency, MHz."""
        return 1e3 / self.clock_target_ns if self.clock_target_ns else None

    @property
    def utilisation(self) -> dict[str, float]:
        """Used / available per resource (a fraction, 1.0 = full device); known devices only."""
        return {k: self.resources.get(k, 0) / n for k, n in self.available.items() if n > 0}

    def cycles_to_s(self, cycles: int | None) -> float | None:
        """Cycles -> seconds at the estimated clock (the target clock if no estimate)."""
        period_ns = self.clock_estimated_ns or self.clock_target_ns
        return None if cycles is None or not period_ns else cycles * period_ns * 1e-9

    def to_dict(self) -> dict:
        """The dataclass as a dict, plus the derived clock frequencies and utilisation."""
        return asdict(self) | {"estimated_mhz": self.estimated_mhz,
                               "target_mhz": self.target_mhz, "utilisation": self.utilisation}


def parse_report(path: str | Path) -> HlsReport:
    """Read a csynth.xml, a csynth.rpt, or a directory holding one (XML preferred)."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"HLS report not found: {p}")
    if p.is_dir():
        p = find_report(p)
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise InputError(f"cannot read HLS report {p}: {e.strerror}") from None
    try:
        r = _parse_xml(p, text) if p.suffix.lower() == ".xml" or text.lstrip().startswith("<") \
            else _parse_text(p, text)
    except _Unreadable as e:
        raise InputError(f"{p}: {e}") from None
    for name, ns in (("target", r.clock_target_ns), ("estimated", r.clock_estimated_ns)):
        if ns is not None and not ns > 0:
            raise InputError(f"{p}: clock {name} {ns:g} ns is not a clock period")
    return r


def find_report(directory: Path) -> Path:
    """The top function's report under `directory`: csynth.xml, <top>_csynth.xml, then .rpt."""
    for ext in ("xml", "rpt"):
        # Vitis writes csynth.{xml,rpt} for the whole design beside one file per module.
        whole = sorted(directory.rglob(f"csynth.{ext}"), key=lambda f: (len(f.parts), f))
        if whole:
            return whole[0]
        per_module = sorted(directory.rglob(f"*_csynth.{ext}"))
        if len(per_module) == 1:
            return per_module[0]
        if per_module:
            top = _project_top(directory)
            named = [f for f in per_module if f.name == f"{top}_csynth.{ext}"]
            if named:
                return named[0]
            raise InputError(f"{len(per_module)} per-module *_csynth.{ext} reports under "
                             f"{directory} and no csynth.{ext} or project file naming the top; "
                             "pass the top function's report file")
    raise InputError(f"no csynth.xml, *_csynth.xml or csynth.rpt under {directory}")


def _project_top(directory: Path) -> str | None:
    """The top function named by a Vivado/Vitis HLS project file (vivado_hls.app, hls.app)."""
    for d in (directory, *list(directory.parents)[:3]):
        for app in sorted(d.glob("*.app")):
            m = re.search(r'\btop="([^"]+)"', app.read_text(errors="replace"))
            if m:
                return m.group(1)
    return None


# ---- cell values ---------------------------------------------------------------------------

class _Unreadable(InputError):
    """Content no synthesis report holds: a number of thousands of digits, loops nested
    hundreds deep (parse_report adds the file's name)."""


# Cycle and resource counts of real designs have at most 18 digits (2^63 has 19).
_MAX_DIGITS = 18


def _span(text: str | None) -> tuple[int | None, int | None]:
    """'12' -> (12, 12); '1 ~ 1024' -> (1, 1024); '64 (2%)' -> (64, 64); undef/?/- -> None.

    ASCII digits only ('²' and other Unicode digits are not numbers here)."""
    s = re.sub(r"\(.*?\)", "", text or "").strip()
    if "~" in s and not s.startswith("~"):
        lo, hi = (_span(part)[0] for part in s.split("~", 1))
        return lo, hi
    if not re.fullmatch(r"[0-9]+", s):
        return None, None
    if len(s) > _MAX_DIGITS:
        raise _Unreadable(f"a count of {len(s)} digits ({s[:12]}...) is no synthesis result")
    return int(s), int(s)


def _ns(text: str | None) -> float | None:
    """'5.00' or '5.00 ns' or '3.4 us' -> ns; anything else -> None."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ps|ns|us|ms)?\s*", text or "")
    if not m:
        return None
    if len(m.group(1)) > _MAX_DIGITS + 1:
        raise _Unreadable(f"a time of {len(m.group(1))} digits is no clock period")
    return float(m.group(1)) * _TIME_NS[m.group(2) or "ns"]


def _count(text: str) -> int:
    """A resource cell: '-' means none used."""
    return _span(text)[1] or 0


def _tool(title_or_version: str | None, dsp48_tag: bool = False) -> str:
    """Vivado HLS up to 2020.1, Vitis HLS from 2020.1 (both shipped 2020.1; Vitis says DSP)."""
    s = title_or_version or ""
    if "Vitis" in s:
        return "vitis_hls"
    if "Vivado" in s:
        return "vivado_hls"
    m = re.match(r"(\d{4})\.(\d)", s)
    if not m:
        return "unknown"
    year_minor = (int(m.group(1)), int(m.group(2)))
    if year_minor == (2020, 1):
        return "vivado_hls" if dsp48_tag else "vitis_hls"
    return "vivado_hls" if year_minor < (2020, 1) else "vitis_hls"


# ---- XML -----------------------------------------------------------------------------------

# Per-loop tags; any other child holding a Latency or TripCount is a nested loop.
_LOOP_FIELDS = {"Slack", "TripCount", "Latency", "AbsoluteTimeLatency", "IterationLatency",
                "PipelineII", "PipelineDepth", "InstanceList", "PipelineType"}


def _x(el: ET.Element | None) -> tuple[int | None, int | None]:
    """An XML number, `undef`, or <range><min/><max/></range> -> (min, max)."""
    if el is None:
        return None, None
    rng = el.find("range")
    if rng is not None:
        return _span(rng.findtext("min"))[0], _span(rng.findtext("max"))[1]
    return _span(el.text)


def _parse_xml(p: Path, text: str) -> HlsReport:
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise InputError(f"{p}: not well-formed XML ({e})") from None
    # Direct children only: ModuleInformation (2022.1+) repeats these sections per module.
    user, perf = root.find("UserAssignments"), root.find("PerformanceEstimates")
    if root.tag != "profile" or user is None or perf is None:
        raise InputError(f"{p}: XML is not an HLS csynth report (root <{root.tag}>, "
                         "expected <profile> with <UserAssignments> and <PerformanceEstimates>)")
    top = (user.findtext("TopModelName") or "").strip()
    if not top:
        raise InputError(f"{p}: csynth report has no <TopModelName>")
    scale = _TIME_NS.get((user.findtext("unit") or "ns").strip(), 1.0)

    def clock(el: ET.Element | None, tag: str) -> float | None:
        v = _ns(el.findtext(tag)) if el is not None else None
        return None if v is None else v * scale

    lat = perf.find("SummaryOfOverallLatency")
    lat = lat if lat is not None else ET.Element("none")
    area = root.find("AreaEstimates")
    used = _xml_resources(area.find("Resources") if area is not None else None)
    avail = _xml_resources(area.find("AvailableResources") if area is not None else None)
    loops_el = perf.find("SummaryOfLoopLatency")
    version = (root.findtext("ReportVersion/Version") or "").strip() or None
    dsp48 = area is not None and area.find("Resources/DSP48E") is not None
    return HlsReport(
        source=str(p), report_format="xml", top=top,
        tool=_tool(version, dsp48), version=version,
        part=(user.findtext("Part") or "").strip() or None,
        clock_target_ns=clock(user, "TargetClockPeriod"),
        clock_estimated_ns=clock(perf.find("SummaryOfTimingAnalysis"), "EstimatedClockPeriod"),
        clock_uncertainty_ns=clock(user, "ClockUncertainty"),
        latency_best_cycles=_x(lat.find("Best-caseLatency"))[0],
        latency_average_cycles=_x(lat.find("Average-caseLatency"))[1],
        latency_worst_cycles=_x(lat.find("Worst-caseLatency"))[1],
        interval_min_cycles=_x(lat.find("Interval-min"))[0],
        interval_max_cycles=_x(lat.find("Interval-max"))[1],
        pipeline_type=(perf.findtext("PipelineType") or "").strip() or None,
        loops=tuple(_xml_loops(loops_el, "")) if loops_el is not None else (),
        resources=used, available=avail,
    )


def _xml_resources(el: ET.Element | None) -> dict[str, int]:
    if el is None:
        return {}
    out: dict[str, int] = {}
    for child in el:
        key = _RESOURCE_ALIASES.get(child.tag.upper())
        if key:
            out[key] = out.get(key, 0) + _count(child.text or "")
    return out


_MAX_LOOP_DEPTH = 64


def _xml_loops(parent: ET.Element, prefix: str, depth: int = 0):
    if depth > _MAX_LOOP_DEPTH:
        raise _Unreadable(f"loops nested deeper than {_MAX_LOOP_DEPTH} levels")
    for el in parent:
        if el.tag in _LOOP_FIELDS or (el.find("Latency") is None and el.find("TripCount") is None):
            continue
        path = f"{prefix}/{el.tag}" if prefix else el.tag
        lo, hi = _x(el.find("Latency"))
        ii_el = el.find("PipelineII")
        it = el.find("IterationLatency")
        yield LoopRow(
            name=el.tag, path=path, latency_min_cycles=lo, latency_max_cycles=hi,
            iteration_latency_cycles=_x(it if it is not None else el.find("PipelineDepth"))[1],
            ii=_x(ii_el)[1], trip_count=_x(el.find("TripCount"))[1],
            pipelined=ii_el is not None,
        )
        yield from _xml_loops(el, path, depth + 1)


# ---- text ----------------------------------------------------------------------------------

@dataclass
class _Table:
    columns: list[str]  # header words of each column, spanning header cells included
    rows: list[list[str]]  # raw cells (leading spaces kept: they encode nesting)

    def col(self, *words: str, exclude: str = "") -> int | None:
        for i, name in enumerate(self.columns):
            low = name.lower()
            if all(w in low for w in words) and not (exclude and exclude in low):
                return i
        return None

    def cell(self, row: list[str], *words: str, exclude: str = "") -> str:
        i = self.col(*words, exclude=exclude)
        return row[i] if i is not None and i < len(row) else ""


def _cells(line: str) -> list[tuple[int, int, str]]:
    bars = [i for i, c in enumerate(line) if c == "|"]
    return [(a, b, line[a + 1:b]) for a, b in itertools.pairwise(bars)]


def _table_after(lines: list[str], start: int, within: int = 4) -> _Table | None:
    """The ASCII table starting within `within` lines after `start` (None if `N/A`)."""
    i = next((j for j in range(start + 1, min(start + 1 + within, len(lines)))
              if lines[j].lstrip().startswith("+-")), None)
    if i is None:
        return None
    block = []
    for line in lines[i:]:
        s = line.strip()
        if not s.startswith(("+", "|")):
            break
        block.append(s)
    seps = [k for k, s in enumerate(block) if s.startswith("+")]
    header = block[seps[0] + 1:seps[1]] if len(seps) > 1 else []
    body = [s for s in block[(seps[1] if len(seps) > 1 else 0):] if s.startswith("|")]
    # A header cell names every column whose span lies inside it ("Latency" over min, max).
    columns = []
    for a, b, name in _cells(header[-1]) if header else []:
        words = [t.strip() for h in header[:-1] for a2, b2, t in _cells(h) if a2 <= a and b <= b2]
        columns.append(" ".join(w for w in [*words, name.strip()] if w))
    return _Table(columns, [s.split("|")[1:-1] for s in body])


def _find(lines: list[str], pattern: str, start: int = 0) -> int | None:
    rx = re.compile(pattern)
    return next((i for i in range(start, len(lines)) if rx.search(lines[i])), None)


def _head(text: str, pattern: str) -> str | None:
    m = re.search(pattern, text, re.MULTILINE)
    return m.group(1).strip() if m else None


def _resource_row(table: _Table, row: list[str]) -> dict[str, int]:
    out = {}
    for i, name in enumerate(table.columns):
        key = _RESOURCE_ALIASES.get(name.strip().upper())
        if key and i < len(row):
            out[key] = _count(row[i])
    return out


def _text_loops(table: _Table | None, marker: str, top: str | None = None) -> list[LoopRow]:
    """Loop rows of a classic loop table (marker '-+') or a Synthesis Summary tree ('+o*')."""
    if table is None:
        return []
    loops, stack = [], []  # stack: (depth, name) of the enclosing rows
    for row in table.rows:
        m = re.match(rf"^(\s*)([{re.escape(marker)}]+)\s+(.+?)\s*$", row[0])
        if not m:
            continue
        indent, marks, name = m.groups()
        name = name.lstrip("* ")  # a dataflow region's '*' sits beside the '+' or 'o'
        # Classic: "- L", " + L", "  ++ L". Summary: "+ top", " o L", "  o L": depth is indent.
        depth = (0 if marks == "-" else len(marks)) if marker == "-+" else len(indent)
        is_loop = marker == "-+" or "o" in marks
        while stack and stack[-1][0] >= depth:
            stack.pop()
        path = "/".join([n for _, n in stack if n != top] + [name])
        stack.append((depth, name))
        if not is_loop:
            continue
        if marker == "-+":
            lo = _span(table.cell(row, "latency", "min", exclude="absolute"))[0]
            hi = _span(table.cell(row, "latency", "max", exclude="absolute"))[1]
            ii = _span(table.cell(row, "achieved"))[1]
        else:
            lo, hi = _span(table.cell(row, "latency", "cycles"))
            ii = _span(table.cell(row, "interval"))[1]
        loops.append(LoopRow(
            name=name, path=path, latency_min_cycles=lo, latency_max_cycles=hi,
            iteration_latency_cycles=_span(table.cell(row, "iteration"))[1], ii=ii,
            trip_count=_span(table.cell(row, "trip"))[1],
            pipelined=table.cell(row, "pipelined").strip().lower() == "yes",
        ))
    return loops


def _parse_text(p: Path, text: str) -> HlsReport:
    lines = text.splitlines()
    version = _head(text, r"^\s*\*\s*Version:\s*(\S+)")
    part = _head(text, r"^\s*\*\s*Target device:\s*(\S+)")
    summary_top = _head(text, r"==\s*Synthesis Summary Report of '([^']+)'")
    if summary_top:
        return _parse_summary(p, lines, summary_top, version, part)
    m = re.search(r"==\s*((?:Vivado|Vitis)\s+HLS)\s+Report for '([^']+)'", text)
    if not m:
        raise InputError(f"{p}: not an HLS synthesis report (no 'HLS Report for' or "
                         "'Synthesis Summary Report of' title)")
    tool, top = _tool(m.group(1)), m.group(2)

    t_i = _find(lines, r"^\s*\+ Timing")
    timing = (_table_after(lines, t_i) if t_i is not None else None) or _Table([], [])
    clk = timing.rows[0] if timing.rows else []
    l_i = _find(lines, r"^\s*\+ Latency")
    lat = (_table_after(lines, l_i) if l_i is not None else None) or _Table([], [])
    lrow = lat.rows[0] if lat.rows else []
    loop_i = _find(lines, r"^\s*\* Loop:", l_i or 0)
    u_i = _find(lines, r"== Utilization Estimates")
    util = _table_after(lines, u_i, within=6) if u_i is not None else None
    if not clk and not lrow and util is None:
        raise InputError(f"{p}: HLS report has no Timing, Latency or Utilization table")

    res: dict[str, dict[str, int]] = {}
    for row in util.rows if util else []:
        label = row[0].strip().lower()
        if label in ("total", "available", "available slr"):
            res[label] = _resource_row(util, row)

    def lat_cell(*words: str, exclude: str = "") -> str:
        return lat.cell(lrow, *words, exclude=exclude)

    return HlsReport(
        source=str(p), report_format="rpt", top=top, tool=tool, version=version, part=part,
        clock_target_ns=_ns(timing.cell(clk, "target")),
        clock_estimated_ns=_ns(timing.cell(clk, "estimated")),
        clock_uncertainty_ns=_ns(timing.cell(clk, "uncertainty")),
        # A text report gives min and max only: best = min, worst = max, no average.
        latency_best_cycles=_span(lat_cell("latency", "min", exclude="absolute"))[0],
        latency_average_cycles=None,
        latency_worst_cycles=_span(lat_cell("latency", "max", exclude="absolute"))[1],
        interval_min_cycles=_span(lat_cell("interval", "min"))[0],
        interval_max_cycles=_span(lat_cell("interval", "max"))[1],
        pipeline_type=lat_cell("type").strip() or None,
        loops=tuple(_text_loops(_table_after(lines, loop_i), "-+") if loop_i is not None else ()),
        resources=res.get("total", {}), available=res.get("available", {}),
        available_slr=res.get("available slr", {}),
    )


def _parse_summary(p: Path, lines: list[str], top: str, version: str | None,
                   part: str | None) -> HlsReport:
    """The 2020.2+ "Synthesis Summary": one tree of modules and loops, no clock, no device
    totals (its `N (x%)` cells give used counts; percentages are not turned into totals)."""
    i = _find(lines, r"Performance & Resource Estimates")
    table = _table_after(lines, i, within=6) if i is not None else None
    top_row = next((r for r in table.rows if r[0].strip().lstrip("+* ") == top), None) \
        if table else None
    if top_row is None:
        raise InputError(f"{p}: Synthesis Summary has no row for the top module '{top}'")
    lo, hi = _span(table.cell(top_row, "latency", "cycles"))
    ii_lo, ii_hi = _span(table.cell(top_row, "interval"))
    pipelined = table.cell(top_row, "pipelined").strip()
    return HlsReport(
        source=str(p), report_format="rpt-summary", top=top, tool="vitis_hls",
        version=version, part=part,
        clock_target_ns=None, clock_estimated_ns=None, clock_uncertainty_ns=None,
        latency_best_cycles=lo, latency_average_cycles=None, latency_worst_cycles=hi,
        interval_min_cycles=ii_lo, interval_max_cycles=ii_hi,
        pipeline_type=pipelined or None,
        loops=tuple(_text_loops(table, "+o*", top)),
        resources=_resource_row(table, top_row),
    )
