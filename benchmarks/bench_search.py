"""How close an Optuna search gets to an exhaustive grid, and with what share of the grid's
evaluations. Run: python benchmarks/bench_search.py [SPEC] [--trials 90 135] [--seeds 3]

Sweeps the spec's whole grid once, then runs searches per sampler, trial budget and seed
into temporary storages, and prints `dlmsim.explore.pareto.compare` per setting: the
hypervolume of the search's feasible front over the grid's (objectives scaled to the grid's
feasible range), Pareto points found, best-value gaps and the share of distinct points
evaluated.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from dlmsim.explore import load_spec, run_search, run_sweep
from dlmsim.explore.pareto import compare


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("spec", nargs="?", default="zcu102-mdlm-shape-bits")
    ap.add_argument("--trials", type=int, nargs="+", default=[90, 135])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--samplers", nargs="+", default=["tpe", "nsga2", "random"])
    ap.add_argument("-j", type=int, default=2)
    args = ap.parse_args()
    problem = load_spec(args.spec)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        grid = run_sweep(problem, Path(tmp) / "grid", jobs=args.j)
        print(f"{args.spec}: grid of {len(grid)} points in {time.perf_counter() - t0:.1f} s, "
              f"{int(grid.feasible.sum())} feasible")
        for sampler in args.samplers:
            for trials in args.trials:
                rows = []
                for seed in range(args.seeds):
                    out = Path(tmp) / f"{sampler}-{trials}-{seed}"
                    df, _ = run_search(problem, out, trials=trials, seed=seed, sampler=sampler)
                    rows.append(compare(problem, grid, df))
                gaps = {k: statistics.mean(r[k] for r in rows) for k in rows[0]
                        if k.startswith("gap_")}
                print(f"  {sampler:6s} {trials:4d} trials: evaluations "
                      f"{statistics.mean(r['evaluation_fraction'] for r in rows):.1%} of the grid,"
                      f" hypervolume {statistics.mean(r['hv_ratio'] for r in rows):.4f} of the "
                      f"grid's, front found {[r['front_points_found'] for r in rows]}, "
                      + ", ".join(f"{k} {v:.1%}" for k, v in gaps.items()))


if __name__ == "__main__":
    main()
