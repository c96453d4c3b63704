"""SimResult: what one simulation of (arch, trace) produced, with units in every name."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dlmsim.resources import Footprint, Resources

if TYPE_CHECKING:  # pandas is imported only when a frame is built (faster CLI start-up)
    import pandas as pd

    from dlmsim.power import Power


@dataclass(frozen=True)
class PhaseCost:
    """Cycles and work of one execution of a phase (once / forward / step); adds and scales."""

    cycles: float = 0.0
    macs: float = 0.0
    sfu_busy_cycles: float = 0.0
    array_busy_cycles: float = 0.0
    dram_bytes: float = 0.0

    def __add__(self, other: PhaseCost) -> PhaseCost:
        return PhaseCost(*(a + b for a, b in zip(self._t(), other._t())))

    def __mul__(self, k: float) -> PhaseCost:
        return PhaseCost(*(a * k for a in self._t()))

    __rmul__ = __mul__

    def _t(self):
        return (self.cycles, self.macs, self.sfu_busy_cycles, self.array_busy_cycles,
                self.dram_bytes)


@dataclass(frozen=True)
class UnitInfo:
    """A compute unit as the result reports it."""

    name: str
    kind: str  # "array" or "sfu"
    region: str
    peak: float  # PEs (MACs per cycle) of an array, elements per cycle of an SFU
    slr: int | None = None  # where its region was placed (multi-SLR devices)


@dataclass
class SimResult:
    """Latency, utilisation, per-op rows and resources of one design on one workload.

    `ops` has one row per op instance kind; `count` is how often it runs per sampling run
    and `cycles` its attributed cycles per instance, so (count * cycles).sum() equals
    `total_cycles`.
    """

    arch: str
    workload: str
    run: dict[str, Any]
    clock_mhz: float
    pes: int
    bandwidth_bytes_per_cycle: float
    once: PhaseCost
    forward: PhaseCost
    step: PhaseCost
    forward_passes: float
    steps: int
    tokens_per_run: int
    ops: pd.DataFrame
    resources: Resources
    dram: Footprint | None = None  # what the run keeps in off-chip memory
    calibrated_resources: Resources | None = None
    cycle_factor: float | None = None  # calibration: reported / predicted cycles
    calibrated_clock_mhz: float | None = None  # calibration: the clock synthesis estimated
    timeline: list[tuple[str, str, int, float, float]] = field(default_factory=list)
    memory_trace: list[tuple] = field(default_factory=list)  # dlmsim.memtrace rows
    power: Power | None = None  # energy and power of the run (dlmsim.power)
    units: tuple[UnitInfo, ...] = ()  # the design's compute units (empty: array and SFU)

    def __post_init__(self):
        """A result is finite and non-negative, and a run takes time; anything else comes
        from inputs at the edge of float range and is refused, never reported."""
        from dlmsim.errors import InputError

        if not self.total_cycles > 0:
            raise InputError(f"{self.workload} on {self.arch}: the sampling run takes "
                             f"{self.total_cycles:g} cycles ({self.forward_passes:g} forward "
                             f"passes, {self.steps} steps): nothing to simulate")
        for k, v in self.summary().items():
            if k.startswith("run_") or isinstance(v, bool) or not isinstance(v, int | float):
                continue  # run parameters are the trace's, not results
            if not (math.isfinite(v) and v >= 0):
                raise InputError(f"{self.workload} on {self.arch}: {k} comes out as {v:g}; "
                                 "the sizes are beyond what the model computes in floats")

    @property
    def run_cost(self) -> PhaseCost:
        return self.once + self.forward * self.forward_passes + self.step * self.steps

    @property
    def total_cycles(self) -> float:
        return self.run_cost.cycles

    @property
    def seconds(self) -> float:
        return self.total_cycles / (self.clock_mhz * 1e6)

    @property
    def forward_s(self) -> float:
        return self.forward.cycles / (self.clock_mhz * 1e6)

    @property
    def step_s(self) -> float:
        """Mean seconds per sampling step: the run minus once-per-run work, over the steps."""
        return (self.seconds - self.once.cycles / (self.clock_mhz * 1e6)) / max(self.steps, 1)

    @property
    def calibration_time_factor(self) -> float:
        """Calibrated / raw time: the cycle factor, and the synthesised clock if it is known."""
        f = self.cycle_factor or 1.0
        if self.calibrated_clock_mhz:
            f *= self.clock_mhz / self.calibrated_clock_mhz
        return f

    @property
    def tokens_per_s(self) -> float:
        return self.tokens_per_run / self.seconds if self.seconds else float("inf")

    @property
    def utilisation(self) -> dict[str, float]:
        c = self.run_cost
        if not c.cycles:
            return {"array": 0.0, "sfu": 0.0, "memory": 0.0}
        sfus = max(1, sum(u.kind == "sfu" for u in self.units))
        return {
            "array": c.macs / (c.cycles * self.pes),
            "sfu": c.sfu_busy_cycles / (c.cycles * sfus),  # the mean over the SFUs
            "memory": c.dram_bytes / (c.cycles * self.bandwidth_bytes_per_cycle),
        }

    def unit_table(self) -> pd.DataFrame:
        """One row per compute unit: its busy cycles per run and the share of the run they
        take (utilisation), MACs and MAC utilisation of an array, the run time attributed
        to its ops (`ops.run_cycles`: what they add beyond the overlap), and its resources."""
        import pandas as pd

        units = self.units or (UnitInfo("array", "array", "design", self.pes),
                               UnitInfo("sfu", "sfu", "design", 0.0))
        ops = self.ops
        busy = (ops["count"] * ops["compute_cycles"]).groupby(ops["unit"]).sum()
        macs = (ops["count"] * ops["macs"]).groupby(ops["unit"]).sum()
        added = ops["run_cycles"].groupby(ops["unit"]).sum()
        total = self.total_cycles
        rows = []
        for u in units:
            res = self.resources.by_unit.get(u.name, {})
            b = float(busy.get(u.name, 0.0))
            m = float(macs.get(u.name, 0.0))
            rows.append({
                "unit": u.name, "kind": u.kind, "region": u.region, "slr": u.slr,
                "busy_s": b / (self.clock_mhz * 1e6), "util": b / total if total else 0.0,
                "mac_util": m / (total * u.peak) if u.kind == "array" and total and u.peak
                else None,
                "critical_s": float(added.get(u.name, 0.0)) / (self.clock_mhz * 1e6),
                "dsp": res.get("dsp", 0), "bram36": res.get("bram18", 0) / 2,
                "uram": res.get("uram", 0), "lut": res.get("lut", 0)})
        return pd.DataFrame(rows)

    def region_table(self) -> pd.DataFrame:
        """One row per dataflow region: its SLR, the run time attributed to its ops, its
        critical stage (the unit busy longest: the pipeline's slowest stage) and that
        stage's busy time, the mean utilisation of its units, and its resources (its units,
        the FIFOs of the streams into it, and for the first region the shared buffer and
        memory interface: `Resources.region_used`)."""
        import pandas as pd

        units = self.unit_table()
        rows = []
        for region, g in units.groupby("region", sort=False):
            crit = g.loc[g["busy_s"].idxmax()]
            used = self.resources.region_used.get(region) or {
                k: g[k].sum() for k in ("dsp", "bram36", "uram", "lut")}
            rows.append({
                "region": region, "slr": g["slr"].iloc[0], "units": len(g),
                "critical_s": g["critical_s"].sum(), "critical_stage": crit["unit"],
                "stage_busy_s": crit["busy_s"], "util": g["util"].mean(),
                **{k: used[k] for k in ("dsp", "bram36", "uram", "lut")}})
        return pd.DataFrame(rows)

    def summary(self) -> dict[str, Any]:
        """Flat metrics with units in the keys (what `-o` writes and sweeps tabulate)."""
        u = self.utilisation
        res = self.resources
        out = {
            "arch": self.arch,
            "workload": self.workload,
            **{f"run_{k}": v for k, v in self.run.items()},
            "clock_mhz": self.clock_mhz,
            "pes": self.pes,
            "bandwidth_bytes_per_cycle": self.bandwidth_bytes_per_cycle,
            "total_cycles": self.total_cycles,
            "latency_run_s": self.seconds,
            "latency_forward_s": self.forward_s,
            "latency_step_s": self.step_s,
            "forward_passes": self.forward_passes,
            "steps": self.steps,
            "tokens_per_s": self.tokens_per_s,
            "util_array": u["array"],
            "util_sfu": u["sfu"],
            "util_memory_bw": u["memory"],
            "dram_bytes_per_run": self.run_cost.dram_bytes,
            "fits": res.fits,
            **{f"{k}_used": v for k, v in res.used.items()},
            **{f"{k}_frac": v for k, v in res.fraction.items()},
        }
        if self.units:  # a spatial design: each unit's utilisation, each SLR's share
            for _, r in self.unit_table().iterrows():
                out[f"util_unit_{r['unit']}"] = r["util"]
            for i, (used, avail) in enumerate(zip(res.slr_used, res.slr_available)):
                for k in ("dsp", "bram36", "uram"):
                    out[f"slr{i}_{k}_used"] = used[k]
                    out[f"slr{i}_{k}_frac"] = used[k] / avail[k] if avail[k] else 0.0
        if self.power is not None:
            out.update(self.power.summary())
        if self.dram is not None:
            out.update({"dram_memory": self.dram.memory,
                        "dram_footprint_bytes": self.dram.total_bytes,
                        "dram_usable_bytes": self.dram.usable_bytes})
        if self.cycle_factor is not None:
            out["latency_run_calibrated_s"] = self.seconds * self.calibration_time_factor
        if self.calibrated_resources is not None:
            out.update({f"{k}_used_calibrated": v
                        for k, v in self.calibrated_resources.used.items()})
        return out

    def to_json(self) -> str:
        return json.dumps(self.summary(), indent=1, default=float)
