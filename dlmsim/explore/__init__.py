"""Design-space exploration: sweep specs, grid sweeps, Optuna search, Pareto fronts.

    problem = load_spec("zcu102-mdlm-shape-bits")      # sweeps/*.yaml or a path
    df = run_sweep(problem, "results/x/sweep", jobs=4)  # one row per grid point
    df, study = run_search(problem, "results/x/search", trials=100, seed=0)
    front(df, problem)                                  # feasible Pareto points

Only this subpackage imports optuna (in `search`, imported lazily here).
"""

from dlmsim.explore.evaluate import evaluate_point, judge
from dlmsim.explore.pareto import export_arch, front, hypervolume, pareto_mask, write_front
from dlmsim.explore.spec import Problem, Spec, load_spec, spec_from_data
from dlmsim.explore.sweep import read_table, run_sweep

__all__ = ["Problem", "Spec", "evaluate_point", "export_arch", "front", "hypervolume", "judge",
           "load_spec", "pareto_mask", "read_table", "run_search", "run_sweep",
           "spec_from_data", "write_front"]


def run_search(*args, **kwargs):
    """See `dlmsim.explore.search.run_search` (imports optuna)."""
    from dlmsim.explore.search import run_search as _run

    return _run(*args, **kwargs)
