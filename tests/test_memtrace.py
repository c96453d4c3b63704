"""DRAM access traces (dlmsim.memtrace): every DMA byte, at a stated address layout."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

import dlmsim
from dlmsim.cli import app
from dlmsim.mapping import Mapper
from dlmsim.memtrace import ALIGN, COLUMNS


@pytest.fixture(scope="module")
def traced():
    arch = dlmsim.load_arch("sda-zcu102")
    trace = dlmsim.load_workload("mdlm-tiny", batch=1, seq_len=32, steps=4)
    res = dlmsim.simulate(arch, trace, memory_trace=True)
    return res, pd.DataFrame(res.memory_trace, columns=list(COLUMNS)), trace


def test_trace_moves_every_byte_of_each_segment(traced):
    """Once and step: the trace's bytes are the run's. Forward: the trace plans the whole
    pass as one segment, where the run scales two simulated blocks; the bytes are those of
    that whole-pass plan (here within 1% of the scaled figure)."""
    res, mt, trace = traced
    by = mt.groupby("segment").bytes.sum()
    assert by["once"] == pytest.approx(res.once.dram_bytes)
    assert by["step"] == pytest.approx(res.step.dram_bytes)
    plans = Mapper(dlmsim.load_arch("sda-zcu102")).plan(list(trace.phase_ops("forward")))
    assert by["forward"] == pytest.approx(sum(p.dram_read_bytes + p.dram_write_bytes
                                              for p in plans))
    assert by["forward"] == pytest.approx(res.forward.dram_bytes, rel=0.01)
    assert set(mt.access) == {"read", "write"}
    assert (mt.end_cycle >= mt.start_cycle).all() and (mt.bytes > 0).all()


def test_layout_weights_first_aligned_regions(traced):
    """Weights occupy the lowest regions; every region starts on a 4 KiB boundary."""
    _, mt, trace = traced
    weights = {t.name for op in trace.ops for t in op.inputs if t.role == "weight"}
    is_w = mt.tensor.isin(weights)
    assert is_w.any() and (~is_w).any()
    assert mt[is_w].address.max() < mt[~is_w].address.min()
    starts = mt.groupby("tensor").address.min()
    assert (starts[mt.groupby("tensor").chunk.min() == 0] % ALIGN == 0).all()


def test_cli_writes_the_trace(tmp_path):
    out = tmp_path / "mem.csv"
    r = CliRunner().invoke(app, ["simulate", "-a", "sda-zcu102", "-w", "mdlm-tiny", "-b", "1",
                                 "-l", "32", "-t", "2", "--trace-memory", str(out)])
    assert r.exit_code == 0, r.output
    assert list(pd.read_csv(out).columns) == list(COLUMNS)
