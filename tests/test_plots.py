"""Every plot renders to PNG, PDF and SVG, from data and from the `dlmsim plot` command."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import dlmsim
from dlmsim import plots
from dlmsim.cli import app
from dlmsim.errors import InputError
from dlmsim.explore import run_sweep, spec_from_data

MAGIC = {".png": b"\x89PNG", ".pdf": b"%PDF", ".svg": b"<?xml"}


@pytest.fixture(scope="module")
def sim():
    arch = dlmsim.load_arch("sda-style-2048-zcu102")
    trace = dlmsim.load_workload("mdlm-tiny", batch=1, seq_len=64, steps=8)
    return dlmsim.simulate(arch, trace, timeline=True)


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("sweep")
    p = spec_from_data({
        "version": 1, "name": "tiny", "base": "sda-style-2048-zcu102",
        "workloads": [{"name": "mdlm-tiny", "batch": 1, "seq_len": 64, "steps": 8}],
        "parameters": {"array.rows": [8, 16, 64], "array.cols": [8, 64],
                       "bits.weights": [4, 8]},
        "objectives": ["latency_run_s", "dsp_used"],
        "constraints": {"max_frac": {"dsp": 0.3}},
    })
    (d / "spec.yaml").write_text(json.dumps(p.spec.model_dump(mode="json")))  # YAML superset
    run_sweep(p, d)
    return d


def _is_figure(path: Path) -> None:
    data = Path(path).read_bytes()
    assert len(data) > 2000
    assert data.startswith(MAGIC[Path(path).suffix])


@pytest.mark.parametrize("suffix", [".png", ".pdf", ".svg"])
def test_simulation_plots_render(sim, tmp_path, suffix):
    _is_figure(plots.timeline(sim.timeline, tmp_path / f"t{suffix}", title="tiny",
                              clock_mhz=sim.clock_mhz))
    _is_figure(plots.breakdown(sim.ops, tmp_path / f"b{suffix}", title="tiny"))
    _is_figure(plots.roofline(sim.ops, sim.summary(), tmp_path / f"r{suffix}"))


def test_roofline_knows_the_device(sim):
    pes, bw = plots._device_peaks(sim.summary())
    assert pes == pytest.approx(sim.pes, rel=1e-6)
    assert bw == pytest.approx(sim.bandwidth_bytes_per_cycle, rel=1e-6)


def test_results_plots_render(sweep_dir, tmp_path):
    from dlmsim.explore import read_table

    df = read_table(sweep_dir)
    assert not df["feasible"].all()  # infeasible points are drawn too
    _is_figure(plots.pareto(df, tmp_path / "p.png", title="tiny"))
    _is_figure(plots.pareto(df, tmp_path / "p2.svg", x="dsp_frac", y="tokens_per_s",
                            color="dataflow", senses=("minimize", "maximize")))
    _is_figure(plots.sweep(df, tmp_path / "s.pdf", y="latency_run_s",
                           params=["array.rows", "array.cols", "bits.weights"]))


def test_bad_plot_input(sim, tmp_path, sweep_dir):
    with pytest.raises(InputError, match="png"):
        plots.breakdown(sim.ops, tmp_path / "b.jpg")
    with pytest.raises(InputError, match="no column 'nope'"):
        plots.pareto(pd.DataFrame({"a": [1]}), tmp_path / "p.png", x="nope", y="a")
    with pytest.raises(InputError, match="no events"):
        plots.timeline([], tmp_path / "t.png")


def test_plot_command(sim, sweep_dir, tmp_path):
    sim_dir = tmp_path / "sim"
    sim_dir.mkdir()
    (sim_dir / "summary.json").write_text(sim.to_json())
    sim.ops.to_csv(sim_dir / "ops.csv", index=False)
    pd.DataFrame(sim.timeline, columns=["unit", "op", "chunk", "start_cycle", "end_cycle"]
                 ).to_csv(sim_dir / "timeline.csv", index=False)
    runner = CliRunner()
    for kind, src in [("breakdown", sim_dir), ("timeline", sim_dir), ("roofline", sim_dir),
                      ("pareto", sweep_dir), ("sweep", sweep_dir)]:
        out = tmp_path / f"{kind}.png"
        r = runner.invoke(app, ["plot", kind, str(src), "-o", str(out)])
        assert r.exit_code == 0, r.output
        _is_figure(out)
    r = runner.invoke(app, ["plot", "pareto", str(sweep_dir)])
    assert r.exit_code == 0 and (sweep_dir / "pareto.png").is_file()
    r = runner.invoke(app, ["plot", "breakdown", str(sim_dir), "--energy"])
    assert r.exit_code == 0, r.output
    _is_figure(sim_dir / "breakdown-energy.png")


def test_bad_results_are_one_line(sim, tmp_path, sweep_dir):
    """Empty tables, a list for a summary, a text column as an axis: one line each."""
    def sim_dir(name, ops=None, summary=None):
        d = tmp_path / name
        d.mkdir()
        (d / "ops.csv").write_text(sim.ops.to_csv(index=False) if ops is None else ops)
        (d / "summary.json").write_text(sim.to_json() if summary is None else summary)
        return d

    header = sim.ops.to_csv(index=False).splitlines()[0] + "\n"
    bad_cycles = sim.ops.assign(run_cycles="abc").to_csv(index=False)
    cases = [
        (["breakdown", str(sim_dir("empty", ops=""))], "ops.csv: not a table dlmsim wrote"),
        (["breakdown", str(sim_dir("header", ops=header))], "ops.csv: the table has no rows"),
        (["roofline", str(sim_dir("list", summary="[1, 2]"))],
         "summary.json: expected a mapping of metrics, got a list"),
        (["roofline", str(sim_dir("clock", summary='{"clock_mhz": "fast"}'))],
         "summary.json: clock_mhz must be a positive number, got 'fast'"),
        (["breakdown", str(sim_dir("text", ops=bad_cycles))],
         "ops.csv: column run_cycles must hold non-negative numbers"),
        (["pareto", str(sweep_dir), "--x", "reason", "-o", str(tmp_path / "p.png")],
         "column 'reason' holds no numbers to plot; numeric columns: "),
        (["breakdown", str(sim_dir("ok")), "-o", str(tmp_path / "ok" / "ops.csv" / "b.png")],
         "ops.csv is a file, not a directory"),
        (["timeline", str(sim_dir("t")), "--energy"], "--energy applies to plot breakdown only"),
        (["breakdown", str(sim_dir("old", ops=sim.ops.drop(columns="energy_j").to_csv(
            index=False))), "--energy"], "ops.csv has no energy_j column"),
        (["breakdown", str(sim_dir("neg", ops=sim.ops.assign(energy_j=-1.0).to_csv(
            index=False))), "--energy"], "column energy_j must hold non-negative numbers"),
    ]
    for args, message in cases:
        r = CliRunner().invoke(app, ["plot", *args])
        assert r.exit_code == 1, (args, r.output, r.exception)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, r.stderr)


def test_results_figures_are_titled_with_the_spec(sweep_dir, tmp_path, monkeypatch):
    """`dlmsim plot pareto|sweep` titles a figure with the spec's name, as sweep does."""
    seen = {}

    def spy(kind):
        real = getattr(plots, kind)

        def draw(*a, **k):
            seen[kind] = k.get("title")
            return real(*a, **k)
        return draw

    for kind in ("pareto", "sweep"):
        monkeypatch.setattr(plots, kind, spy(kind))
        r = CliRunner().invoke(app, ["plot", kind, str(sweep_dir), "-o", str(tmp_path / "f.png")])
        assert r.exit_code == 0, r.output
    assert seen == {"pareto": "tiny", "sweep": "tiny"}


def test_pareto_legend_counts_points_not_trials(tmp_path, monkeypatch):
    """A search table holds each point once per trial that proposed it; the legend counts
    designs: 3 points, 2 on the front and 1 infeasible, asked 4 times each."""
    rows = [{"point": "a", "dsp_used": 10, "latency_run_s": 3.0, "feasible": True},
            {"point": "b", "dsp_used": 20, "latency_run_s": 1.0, "feasible": True},
            {"point": "c", "dsp_used": 5, "latency_run_s": 0.5, "feasible": False}]
    df = pd.DataFrame(rows * 4)
    labels = []

    def keep(fig, path):
        labels.extend(t.get_text() for t in fig.axes[0].get_legend().get_texts())
        return path

    monkeypatch.setattr(plots, "_save", keep)
    plots.pareto(df, tmp_path / "p.png")
    assert "Pareto front (2 points)" in labels and "infeasible (1 point)" in labels


@pytest.fixture(scope="module")
def spatial_sim():
    arch = dlmsim.load_arch("spatial-int8-u280")
    trace = dlmsim.load_workload("mdlm-tiny", batch=1, seq_len=64, steps=8)
    return dlmsim.simulate(arch, trace, timeline=True)


def _sim_dir(res, d: Path) -> Path:
    d.mkdir()
    (d / "summary.json").write_text(res.to_json())
    res.ops.to_csv(d / "ops.csv", index=False)
    return d


def test_timeline_has_a_lane_per_unit_in_the_design_order(spatial_sim, tmp_path, monkeypatch):
    """Lanes: DMA in, then every unit that has events in the arch's order, then DMA out."""
    seen = {}
    real = plots.plt.Axes.set_yticks

    def spy(self, ticks, labels=None, **kw):
        seen["lanes"] = list(labels) if labels is not None else None
        return real(self, ticks, labels, **kw)

    monkeypatch.setattr(plots.plt.Axes, "set_yticks", spy)
    units = [u.name for u in dlmsim.load_arch("spatial-int8-u280").compute_units()]
    _is_figure(plots.timeline(spatial_sim.timeline, tmp_path / "t.png", lanes=units))
    busy = {e[0] for e in spatial_sim.timeline}
    assert seen["lanes"][0] == "DMA in"
    assert [u for u in seen["lanes"] if u in units] == [u for u in units if u in busy]
    assert {"qkv", "mlp1", "softmax"} <= set(seen["lanes"])


def test_plot_compare_puts_designs_side_by_side(sim, spatial_sim, tmp_path):
    a = _sim_dir(sim, tmp_path / "temporal")
    b = _sim_dir(spatial_sim, tmp_path / "spatial")
    out = tmp_path / "cmp.png"
    r = CliRunner().invoke(app, ["plot", "compare", str(a), str(b), "-o", str(out)])
    assert r.exit_code == 0, r.output
    _is_figure(out)
    for args, message in [
        (["compare", str(a)], "plot compare needs two or more simulate directories"),
        (["compare", str(a), str(tmp_path / "nope")], "results not found"),
        (["breakdown", str(a), str(b)], "plot breakdown takes one results directory or table"),
    ]:
        r = CliRunner().invoke(app, ["plot", *args])
        assert r.exit_code == 1, (args, r.output)
        assert message in r.stderr.strip().splitlines()[0]
