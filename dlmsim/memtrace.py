"""DRAM access traces: every DMA transfer of the simulated segments, with byte addresses.

For users who feed them to a DRAM simulator (Ramulator, DRAMSim). Each segment is simulated
whole for the trace (every block of a forward pass, where the run's figures scale two
simulated blocks), so a forward pass's trace bytes can differ slightly from the run's
per-pass traffic (the first and last blocks plan their residency differently from the
middle ones). One row per tensor part
a transfer moves: the segment (`once`, a forward-pass kind, `step`) and how often it runs
per sampling run, start and end cycle within the segment, op, chunk, read or write, tensor,
byte address and byte count.

Address layout (an assumption; the design's real allocator may differ): one flat DRAM
address space from 0. Every tensor that goes to or from DRAM gets its own contiguous region,
aligned to 4 KiB, in order of first use: all weights first, then activations, caches and
indices. Nothing is reused or freed. A chunk reads its share of each input (the input's DRAM
bytes / chunks, re-reads included) at consecutive addresses that wrap around the tensor, and
writes its share of the output at its own offset. The bytes of one transfer are split over
its tensors in proportion, one after another within the transfer's cycles.
"""

from __future__ import annotations

ALIGN = 4096
COLUMNS = ("segment", "runs_per_sampling_run", "start_cycle", "end_cycle", "op", "chunk",
           "access", "tensor", "address", "bytes")


class Layout:
    """Byte address of each DRAM tensor (module docstring)."""

    def __init__(self, tensors):
        self.base: dict[str, int] = {}
        self.size: dict[str, float] = {}
        addr = 0
        for weights in (True, False):
            for name, nbytes, is_weight in tensors:
                if is_weight != weights or name in self.base:
                    continue
                self.base[name], self.size[name] = addr, max(nbytes, 1.0)
                addr += -(-int(max(nbytes, 1)) // ALIGN) * ALIGN


def _tensors(segments, mapper):
    for _, _, plans, _ in segments:
        for p in plans:
            inputs = {t.name: t for t in p.op.inputs}
            for name, _ in p.dram_reads:
                t = inputs[name]
                yield name, mapper.tensor_bytes(t), t.role == "weight"
            if p.dram_write_bytes > 0:
                for t in p.op.outputs:
                    yield t.name, mapper.tensor_bytes(t), False


def rows(segments, mapper) -> list[tuple]:
    """Trace rows for `segments`: (name, runs per sampling run, plans, SegmentRun with
    recorded events) each."""
    layout = Layout(list(_tensors(segments, mapper)))
    out = []
    for name, runs, plans, seg in segments:
        by_name = {p.op.name: p for p in plans}
        for unit, op, c, t0, t1 in seg.events:
            if unit not in ("dma_in", "dma_out"):
                continue
            p = by_name[op]
            if unit == "dma_in":
                parts = [(t, b / p.chunks, "read") for t, b in p.dram_reads if b > 0]
            else:
                written = [t for t in p.op.outputs if t.name in layout.base]
                parts = [(t.name, p.dram_write_bytes / p.chunks / len(written), "write")
                         for t in written]
            total = sum(b for _, b, _ in parts) or 1.0
            t = t0
            for tensor, nbytes, access in parts:
                size = layout.size[tensor]
                offset = int((c * nbytes) % size)
                end = t + (t1 - t0) * nbytes / total
                out.append((name, runs, t, end, op, c, access, tensor,
                            layout.base[tensor] + offset, nbytes))
                t = end
    return out
