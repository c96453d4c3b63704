"""LLaDA: RMSNorm/RoPE/SwiGLU blocks, low-confidence remasking, and its inference tricks.

Without tricks every step is a full forward pass over prompt + generated tokens, as LLaDA's
generate.py runs it. With the run parameters of `schema.LladaRun` (Fast-dLLM's block KV
cache and parallel decoding, semi-autoregressive truncation, dLLM-Cache) a run has forward
passes of several kinds -- trace variants with their expected passes per run -- that
compute fewer rows, read cached K/V or features from off-chip memory (role `cache`) and
write them back (`cache_write` ops).

Notation: P prompt tokens, G = gen_len, Bl = block_len, nb = G / Bl blocks, L = P + G,
spb steps per block.

Simplifications, stated once here:
- A refresh pass writes the K/V (and, for dLLM-Cache, the attention and FFN outputs) of
  every row it computes; the cached passes read the rows they reuse. Caches are stored at
  the activation width.
- With any cache or with semi_ar, the final norm, the lm_head and the sampler run on the
  current block's rows only (only they can be unmasked); without, on every position, as
  generate.py does. Which block a pass works on does not change its cost, so passes of the
  same shape share one variant.
- Parallel decoding's step count is an expectation given by unmask_per_step (the threshold
  makes it data dependent); its selection costs as a top-k of ceil(unmask_per_step).
- dLLM-Cache's cached steps follow its LLaDA hook on the response rows only (the prompt
  rows' hidden states feed nothing but their own, unused, logits there): per layer the
  response's V, its cosine similarity to the cached V, the top update_ratio * G rows
  recomputed (Q, K, attention over every position, FFN) and put back into the cached
  attention and FFN outputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dlmsim.workloads.build import _Builder, _run
from dlmsim.workloads.ir import Schedule, Tensor, Trace
from dlmsim.workloads.schema import LladaConfig


@dataclass(frozen=True)
class Pass:
    """One kind of forward pass: rows computed, K/V rows read from the cache, caches written."""

    name: str
    passes: float
    rows: int  # query rows computed (tokens fed)
    cached: int = 0  # K/V rows read from the cache (keys = rows + cached)
    write_kv: bool = False
    write_features: bool = False  # dLLM-Cache: attention and FFN outputs too
    partial: bool = False  # dLLM-Cache's cached step (V-verify, update_ratio rows)
    logits_from: int | None = None  # first row of the current block (None: all rows)


def passes(cfg: LladaConfig) -> list[Pass]:
    """The kinds of forward pass of a run and their count (see the module docstring)."""
    r = cfg.run
    G, Bl, L = r.gen_len, r.block_len, r.seq_len
    P, nb, spb = L - G, G // Bl, r.steps_per_block
    if r.dllm_cache:
        steps = nb * spb
        full = sum(1 for s in range(steps) if s % r.prompt_refresh == 0)
        resp = sum(1 for s in range(steps)
                   if s % r.response_refresh == 0 and s % r.prompt_refresh)
        out = [Pass("refresh", full, L, write_kv=True, write_features=True, logits_from=P),
               Pass("response", resp, G, cached=P, write_kv=True, write_features=True,
                    logits_from=0),
               Pass("cached", steps - full - resp, G, cached=P, partial=True, logits_from=0)]
        return [p for p in out if p.passes]
    if r.kv_cache == "none" and not r.semi_ar:
        return [Pass("", nb * spb, L)]
    out: list[Pass] = []
    for b in range(nb):
        length = P + (b + 1) * Bl if r.semi_ar else L
        start = P + b * Bl  # the current block's first row
        if r.kv_cache == "none":
            out.append(Pass(f"block{b}", spb, length, logits_from=start))
            continue
        out.append(Pass(f"refresh{b}" if r.semi_ar else "refresh", 1, length, write_kv=True,
                        logits_from=start))
        rows = length - start if r.kv_cache == "prefix" else Bl  # block (+ suffix)
        out.append(Pass(f"cached{b}" if r.semi_ar or r.kv_cache == "prefix" else "cached",
                        spb - 1, rows, cached=length - rows, logits_from=0))
    merged: dict[str, Pass] = {}
    for p in out:  # passes of the same shape share a variant
        if p.name in merged:
            p = Pass(**{**p.__dict__, "passes": merged[p.name].passes + p.passes})
        merged[p.name] = p
    return [p for p in merged.values() if p.passes]


class _Llada(_Builder):
    def __init__(self, cfg: LladaConfig):
        super().__init__(cfg.run.precision)
        self.m, self.b = cfg.model, cfg.run.batch
        self.dh = self.m.hidden // self.m.heads

    def cache(self, name: str, *shape: int) -> Tensor:
        return Tensor(name, tuple(shape), self.dt, "cache")

    def store(self, name: str, x: Tensor, cache_name: str) -> None:
        """A cache write: x's rows to off-chip memory for later passes."""
        self.add(name, "sfu", "cache_write", [x],
                 [Tensor(cache_name, x.shape, self.dt, "activation")])

    def qkv_heads(self, p: str, w: str, h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """q, k, v projections of h's rows, RoPE on q and k, v split into heads."""
        b, n, d = h.shape
        heads = self.m.heads
        q, k, v = (self.linear(f"{p}.{s}", h, d, f"{w}.{s}_proj", bias=False) for s in "qkv")
        cos, sin = self.const("rotary.cos", n, self.dh), self.const("rotary.sin", n, self.dh)
        q = self.sfu(f"{p}.rotary_q", "rotary", [q, cos, sin], shape=(b, heads, n, self.dh),
                     theta=5e5)
        k = self.sfu(f"{p}.rotary_k", "rotary", [k, cos, sin], shape=(b, heads, n, self.dh),
                     theta=5e5)
        return q, k, self.split_heads(f"{p}.v_heads", v, heads)

    def with_cache(self, p: str, i: int, kind: str, t: Tensor, cached: int) -> Tensor:
        """The pass's own K (or V) rows joined with the cached ones: [B, H, rows + cached]."""
        if not cached:
            return t
        b, h, n, dh = t.shape
        c = self.cache(f"cache.blocks.{i}.{kind}", b, h, cached, dh)
        out = self.act(f"{p}.{kind}_all", b, h, n + cached, dh)
        self.add(f"{p}.{kind}_all", "sfu", "concat", [t, c], [out], axis=2)
        return out

    def ffn(self, p: str, w: str, x: Tensor) -> Tensor:
        d = self.m.hidden
        h = self.sfu(f"{p}.ff_norm", "rmsnorm", [x, self.weight(f"{w}.ff_norm.weight", d)],
                     eps=1e-5)
        gate = self.linear(f"{p}.ff_gate", h, self.m.ffn, f"{w}.ff_proj", bias=False)
        up = self.linear(f"{p}.ff_up", h, self.m.ffn, f"{w}.up_proj", bias=False)
        h = self.sfu(f"{p}.swiglu", "swiglu", [gate, up])
        return self.linear(f"{p}.ff_down", h, d, f"{w}.ff_out", bias=False)

    def layer(self, i: int, x: Tensor, ps: Pass) -> Tensor:
        """One transformer block on the pass's rows (attention over rows + cached keys)."""
        p, w, d = f"blocks.{i}", f"transformer.blocks.{i}", self.m.hidden
        h = self.sfu(f"{p}.attn_norm", "rmsnorm", [x, self.weight(f"{w}.attn_norm.weight", d)],
                     eps=1e-5)
        q, k_new, v_new = self.qkv_heads(p, w, h)
        k, v = (self.with_cache(p, i, s, t, ps.cached) for s, t in (("k", k_new), ("v", v_new)))
        a = self.attention(f"{p}.attn", q, k, v, d)
        if ps.write_kv:  # after the cached rows were read
            self.store(f"{p}.store_k", k_new, f"cache.blocks.{i}.k")
            self.store(f"{p}.store_v", v_new, f"cache.blocks.{i}.v")
        y = self.linear(f"{p}.attn_out", a, d, f"{w}.attn_out", bias=False)
        if ps.write_features:
            self.store(f"{p}.store_attn", y, f"cache.blocks.{i}.attn")
        x = self.sfu(f"{p}.residual1", "residual", [x, y])
        y = self.ffn(p, w, x)
        if ps.write_features:
            self.store(f"{p}.store_mlp", y, f"cache.blocks.{i}.mlp")
        return self.sfu(f"{p}.residual2", "residual", [x, y])

    def partial_layer(self, i: int, x: Tensor, ps: Pass, ratio: float) -> Tensor:
        """dLLM-Cache's cached step on the G response rows of x: V of every row, its cosine
        to the cached V, the S = int(ratio * G) least similar rows recomputed and put back
        into the cached attention and FFN outputs."""
        p, w, d = f"blocks.{i}", f"transformer.blocks.{i}", self.m.hidden
        b, g_rows, _ = x.shape
        s = max(1, int(g_rows * ratio))
        h = self.sfu(f"{p}.attn_norm", "rmsnorm", [x, self.weight(f"{w}.attn_norm.weight", d)],
                     eps=1e-5)
        v_new = self.linear(f"{p}.v", h, d, f"{w}.v_proj", bias=False)
        sim = self.act(f"{p}.similarity", b, g_rows)
        self.add(f"{p}.similarity", "sfu", "cosine",
                 [v_new, self.cache(f"cache.blocks.{i}.v_gen", b, g_rows, d)], [sim])
        self.store(f"{p}.store_v", v_new, f"cache.blocks.{i}.v_gen")
        sel = self.idx(f"{self.variant}.{p}.select", b, s)
        self.add(f"{p}.select", "sfu", "topk", [sim], [sel], k=s)
        hs = self.act(f"{p}.rows", b, s, d)
        self.add(f"{p}.rows", "sfu", "take", [h, sel], [hs])
        heads, n = self.m.heads, s
        q = self.linear(f"{p}.q", hs, d, f"{w}.q_proj", bias=False)
        k = self.linear(f"{p}.k", hs, d, f"{w}.k_proj", bias=False)
        self.store(f"{p}.store_k", k, f"cache.blocks.{i}.k_rows")
        cos, sin = self.const("rotary.cos", n, self.dh), self.const("rotary.sin", n, self.dh)
        q = self.sfu(f"{p}.rotary_q", "rotary", [q, cos, sin], shape=(b, heads, n, self.dh),
                     theta=5e5)
        k = self.sfu(f"{p}.rotary_k", "rotary", [k, cos, sin], shape=(b, heads, n, self.dh),
                     theta=5e5)
        keys = ps.cached + g_rows
        k = self.with_cache(p, i, "k", k, keys - s)
        vh = self.split_heads(f"{p}.v_heads", v_new, heads)
        v = self.with_cache(p, i, "v", vh, ps.cached)  # the prompt's V + every response V
        a = self.attention(f"{p}.attn", q, k, v, d)
        y = self.linear(f"{p}.attn_out", a, d, f"{w}.attn_out", bias=False)
        att = self.act(f"{p}.attn_all", b, g_rows, d)
        self.add(f"{p}.attn_all", "sfu", "put",
                 [self.cache(f"cache.blocks.{i}.attn", b, g_rows, d), y, sel], [att])
        self.store(f"{p}.store_attn", y, f"cache.blocks.{i}.attn_rows")
        x = self.sfu(f"{p}.residual1", "residual", [att, x])
        xs = self.act(f"{p}.ffn_rows", b, s, d)
        self.add(f"{p}.ffn_rows", "sfu", "take", [x, sel], [xs])
        y = self.ffn(p, w, xs)
        mlp = self.act(f"{p}.mlp_all", b, g_rows, d)
        self.add(f"{p}.mlp_all", "sfu", "put",
                 [self.cache(f"cache.blocks.{i}.mlp", b, g_rows, d), y, sel], [mlp])
        self.store(f"{p}.store_mlp", y, f"cache.blocks.{i}.mlp_rows")
        return self.sfu(f"{p}.residual2", "residual", [mlp, x])

    def forward(self, ps: Pass, ratio: float, tokens: Tensor, sample_rows: int) -> Tensor:
        """Embedding of the pass's rows, the blocks, then the logits the sampler reads."""
        m, b = self.m, self.b
        ids = tokens if ps.rows == tokens.shape[1] else self.idx(f"tokens.{ps.rows}", b,
                                                                 ps.rows)
        x = self.act("x.embed", b, ps.rows, m.hidden)
        self.add("embed", "gather", "embedding",
                 [self.weight("transformer.wte.weight", m.vocab, m.hidden), ids], [x])
        for i in range(m.layers):
            self.block = i
            x = self.partial_layer(i, x, ps, ratio) if ps.partial else self.layer(i, x, ps)
        self.block = None
        if ps.logits_from is not None and ps.rows != sample_rows:
            xs = self.act("final.block_rows", b, sample_rows, m.hidden)
            self.add("final.block_rows", "sfu", "slice", [x], [xs], axis=1,
                     start=ps.logits_from, stop=ps.logits_from + sample_rows)
            x = xs
        h = self.sfu("final.norm", "rmsnorm", [x, self.weight("transformer.ln_f.weight",
                                                              m.hidden)], eps=1e-5)
        if not ps.name:  # LLaDA as published: names as before
            return self.linear("final.lm_head", h, m.vocab, "transformer.ff_out", bias=False)
        logits = Tensor("logits", (b, sample_rows, m.vocab), self.dt, "activation")
        self.add("final.lm_head", "gemm", "linear",
                 [h, self.weight("transformer.ff_out.weight", m.hidden, m.vocab)], [logits])
        return logits


def build_llada(cfg: LladaConfig) -> Trace:
    """LLaDA: the forward pass(es) of a run, then the low-confidence remasking step ops."""
    r = cfg.run
    B, L = r.batch, r.seq_len
    kinds = passes(cfg)
    tricks = kinds[0].name != ""
    S = r.block_len if tricks else L  # rows the sampler reads
    g = _Llada(cfg)
    tokens = g.idx("tokens", B, L)
    logits = None
    for ps in kinds:
        g.variant = ps.name
        logits = g.forward(ps, r.update_ratio, tokens, S)
    g.variant = ""

    # Every step: x0 = argmax(logits) (temperature 0), p = softmax, confidence = max p,
    # top-k lowest-confidence remasking over the current block's masked positions.
    g.phase = "step"
    x0 = g.idx("sample.x0", B, S)
    g.add("sample.argmax", "sfu", "argmax", [logits], [x0])
    prob = g.sfu("sample.softmax", "softmax", [logits])
    conf = g.act("sample.confidence", B, S)
    g.add("sample.confidence", "sfu", "rowmax", [prob], [conf])
    per_step = (math.ceil(r.unmask_per_step) if r.unmask_per_step
                else max(1, r.gen_len // r.steps))
    sel = g.idx("sample.select", B, per_step)
    g.add("sample.topk", "sfu", "topk", [conf], [sel], k=per_step)
    upd = tokens if S == L else g.idx("tokens.block", B, S)
    g.add("sample.update", "sfu", "masked_update", [upd, x0], [g.idx("tokens.next", B, S)])
    steps = (r.gen_len // r.block_len) * r.steps_per_block
    total = float(sum(p.passes for p in kinds))
    variants = tuple((p.name, float(p.passes)) for p in kinds) if tricks else ()
    run = tuple((k, steps if k == "steps" else v) for k, v in _run(cfg))
    return Trace(cfg.name, tuple(g.ops), Schedule(steps, total, variants), run)
