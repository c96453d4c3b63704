"""One design point: build its arch, estimate resources, simulate every workload, judge it.

A point that does not fit the device is still simulated (as if `allow_overfull`), so its
latency and resources show up greyed in the plots and the sampler learns from it; the
constraints then mark it infeasible with the reason. A point that cannot be built or
simulated at all (an invalid combination, a buffer too small for one tile) has an `error`
and no metrics.

Feasibility is judged from the stored metrics by `judge`, so a resumed sweep with new
constraints re-judges its cached points without simulating them again.
"""

from __future__ import annotations

import json
import math
import time
from functools import lru_cache
from typing import Any

from dlmsim.errors import InputError
from dlmsim.explore.spec import RESOURCES, WORKLOAD_METRICS, Problem


@lru_cache(maxsize=32)
def _trace(name: str, overrides_json: str):
    from dlmsim.workloads import load_workload

    return load_workload(name, **json.loads(overrides_json))


@lru_cache(maxsize=256)
def _accuracy(workload: str, w_bits, a_bits) -> dict:
    from dlmsim.quant import accuracy_proxy

    def b(x):
        return 32 if x == "fp32" else x

    return accuracy_proxy(workload, b(w_bits), b(a_bits))


def evaluate_point(problem: Problem, params: dict[str, Any]) -> dict[str, Any]:
    """Metrics of one point as a flat row (params, resources, per-workload metrics)."""
    from dlmsim.arch import arch_from_data
    from dlmsim.engine import simulate
    from dlmsim.resources import estimate

    t0 = time.perf_counter()
    row: dict[str, Any] = {"point": problem.point_id(params), **params,
                           "params": json.dumps(params, sort_keys=True), "error": ""}
    labels = problem.labels
    try:
        data = problem.arch_data(params)
        data["allow_overfull"] = True
        arch = arch_from_data(data, problem.spec.base)
        res = estimate(arch)
        row["clock_mhz"] = arch.clock_mhz
        row["bits"] = f"W{arch.bits.weights}A{arch.bits.activations}"
        row["dataflow"] = arch.array.policy
        row["design"] = "spatial" if arch.is_spatial else "temporal"
        row["units"] = len(arch.compute_units())
        row["fits"] = res.fits
        row["over"] = res.describe_over()
        row["worst_frac"] = float(res.worst_fraction)  # of the device or of any SLR
        row.update({f"{k}_used": float(res.used[k]) for k in RESOURCES})
        row.update({f"{k}_frac": float(res.fraction[k]) for k in RESOURCES})
        per: dict[str, list[float]] = {m: [] for m in WORKLOAD_METRICS}
        for w in problem.spec.workloads:
            trace = _trace(w.name, json.dumps(problem.run_overrides(w, params),
                                              sort_keys=True))
            s = simulate(arch, trace).summary()
            for m in WORKLOAD_METRICS:
                per[m].append(float(s[m]))
                if len(labels) > 1:
                    row[f"{w.key}/{m}"] = float(s[m])
        for m, vals in per.items():
            row[m] = _geomean(vals)
        for key in problem.accuracy_keys:
            vals = [float(_accuracy(w.name, arch.bits.weights, arch.bits.activations)[key])
                    for w in problem.spec.workloads]
            row[f"accuracy_{key}"] = sum(vals) / len(vals)
    except InputError as e:
        row["error"] = str(e)
    # A simulator bug must not end a sweep of thousands of points: record it on the point.
    except Exception as e:  # noqa: BLE001
        row["error"] = f"internal error ({type(e).__name__}: {e}); please report it"
    row["eval_s"] = time.perf_counter() - t0
    return row


def jsonable(row: dict) -> dict:
    """A row as plain JSON values (numpy scalars unwrapped, NaN as None, inf clipped)."""
    out = {}
    for k, v in row.items():
        if hasattr(v, "item"):
            v = v.item()
        if isinstance(v, float) and not math.isfinite(v):
            v = None if math.isnan(v) else (1e308 if v > 0 else -1e308)
        out[k] = v
    return out


def _geomean(vals: list[float]) -> float:
    if len(vals) == 1:
        return vals[0]
    if any(v <= 0 for v in vals):
        return sum(vals) / len(vals)
    return math.exp(sum(math.log(v) for v in vals) / len(vals))


def judge(problem: Problem, row: dict[str, Any]) -> tuple[bool, str, dict[str, float]]:
    """(feasible, reason, constraint values by name): each value <= 0 when met (Optuna's
    convention; the value says how far a point is from meeting it, for the sampler)."""
    c = problem.spec.constraints
    if row.get("error"):
        return False, str(row["error"]), {"error": 1.0}
    reasons, values = [], {}
    if c.fits:
        worst = max([row[f"{k}_frac"] for k in RESOURCES] + [row.get("worst_frac", 0.0)])
        values["fits"] = min(worst - 1.0, 1e6)
        if not row["fits"]:
            reasons.append(f"does not fit the device: {row['over']}")
            # A placement that fails on a share the whole-device figures hide (a stream's
            # wires across an SLR boundary) still counts as violated.
            values["fits"] = max(values["fits"], 1e-3)
    for k, cap in c.max_frac.items():
        f = row[f"{k}_frac"]
        values[f"max_frac.{k}"] = min(f - cap, 1e6)
        if f > cap:
            reasons.append(f"{k.upper()} {f:.0%} of the device > cap {cap:.0%}")
    for k, bound in c.max.items():
        v = row.get(k, math.nan)
        values[f"max.{k}"] = (v - bound) / abs(bound or 1) if not math.isnan(v) else 1.0
        if not v <= bound:
            reasons.append(f"{k} {v:.4g} > max {bound:g}")
    for k, bound in c.min.items():
        v = row.get(k, math.nan)
        values[f"min.{k}"] = (bound - v) / abs(bound or 1) if not math.isnan(v) else 1.0
        if not v >= bound:
            reasons.append(f"{k} {v:.4g} < min {bound:g}")
    return not reasons, "; ".join(reasons), values


def objective_values(problem: Problem, row: dict[str, Any]) -> list[float]:
    return [float(row.get(o.column, math.nan)) for o in problem.spec.objectives]
