"""Trace builders: every op of one forward pass, in order, plus per-run and per-step ops.

Follows ../shared/reference/workloads.md. Weight tensor names follow the PyTorch state dicts
of the public code (MDLM's DIT, Diffusion-LM's TransformerNetModel2, LLaDA's HF model) so a
checkpoint maps onto the trace by name; our linear weights are stored [in, out] (PyTorch's
transposed).

Simplifications, stated once here:
- Dropout is off (inference). LayerNorm runs at the model precision in the trace (MDLM runs
  it in fp32 on GPUs; the accelerator's SFU precision is an arch setting anyway).
- Rotary cos/sin tables and MDLM's constant conditioning are constants computed on the host.
- Views and reshapes are free; head split/merge are explicit layout ops (`split_heads`,
  `merge_heads`, or `rotary`, which splits heads while it rotates) whose hardware cost is
  the arch's choice.
"""

from __future__ import annotations

import math

from dlmsim.workloads.ir import Op, Schedule, Tensor, Trace
from dlmsim.workloads.schema import DiffusionLmConfig, MdlmConfig, SeddConfig


class _Builder:
    """Appends ops in order; knows the current dtype, phase and block."""

    def __init__(self, dtype: str):
        self.dt = dtype
        self.ops: list[Op] = []
        self.phase = "forward"
        self.block: int | None = None
        self.variant = ""  # a forward variant: prefixes op and activation names

    def _named(self, name: str) -> str:
        return f"{self.variant}.{name}" if self.variant else name

    def act(self, name: str, *shape: int, dtype: str | None = None) -> Tensor:
        return Tensor(self._named(name), tuple(shape), dtype or self.dt, "activation")

    def idx(self, name: str, *shape: int) -> Tensor:
        return Tensor(name, tuple(shape), "idx", "index")

    def weight(self, name: str, *shape: int) -> Tensor:
        return Tensor(name, tuple(shape), self.dt, "weight")

    def const(self, name: str, *shape: int) -> Tensor:
        return Tensor(name, tuple(shape), self.dt, "const")

    def add(self, name, kind, fn, inputs, outputs, phase=None, **attrs) -> Op:
        op = Op(self._named(name), kind, fn, tuple(inputs), tuple(outputs), phase or self.phase,
                self.block, tuple(sorted(attrs.items())), self.variant)
        self.ops.append(op)
        return op

    def linear(self, name: str, x: Tensor, n: int, wname: str, bias: bool = True,
               out: str | None = None, phase: str | None = None) -> Tensor:
        ins = [x, self.weight(f"{wname}.weight", x.shape[-1], n)]
        if bias:
            ins.append(self.weight(f"{wname}.bias", n))
        y = self.act(out or name, *x.shape[:-1], n)
        self.add(name, "gemm", "linear", ins, [y], phase=phase)
        return y

    def sfu(self, name: str, fn: str, inputs, shape=None, out: str | None = None,
            phase: str | None = None, dtype: str | None = None, **attrs) -> Tensor:
        shape = shape or inputs[0].shape
        y = self.act(out or name, *shape, dtype=dtype)
        self.add(name, "sfu", fn, inputs, [y], phase=phase, **attrs)
        return y

    def attention(self, p: str, q: Tensor, k: Tensor, v: Tensor, hidden: int) -> Tensor:
        """Scores, softmax, P.V per (batch, head), then heads merged back to [B, L, D]
        (k, v may hold another sequence than q: cross attention)."""
        b, h, seq, dh = q.shape
        s = self.act(f"{p}.scores", b, h, seq, k.shape[2])
        self.add(f"{p}.scores", "gemm", "matmul", [q, k], [s], transpose_b=True,
                 scale=1.0 / math.sqrt(dh))
        prob = self.sfu(f"{p}.softmax", "softmax", [s])
        o = self.act(f"{p}.pv", b, h, seq, dh)
        self.add(f"{p}.pv", "gemm", "matmul", [prob, v], [o])
        return self.sfu(f"{p}.merge_heads", "merge_heads", [o], shape=(b, seq, hidden))

    def split_heads(self, name: str, x: Tensor, heads: int) -> Tensor:
        b, seq, d = x.shape
        return self.sfu(name, "split_heads", [x], shape=(b, heads, seq, d // heads))

    def timestep_mlp(self, prefix: str, sigma: Tensor, freq: int, hidden: int, out: int,
                     names: tuple[str, str], silu_out: bool) -> Tensor:
        """Sinusoidal embedding -> Linear -> SiLU -> Linear (-> SiLU)."""
        e = self.sfu(f"{prefix}.sinusoid", "timestep_embedding", [sigma],
                     shape=(sigma.shape[0], freq))
        h = self.linear(f"{prefix}.fc1", e, hidden, names[0])
        h = self.sfu(f"{prefix}.silu1", "silu", [h])
        h = self.linear(f"{prefix}.fc2", h, out, names[1])
        if silu_out:
            h = self.sfu(f"{prefix}.silu2", "silu", [h])
        return h


def build_mdlm(cfg: MdlmConfig | SeddConfig) -> Trace:
    """MDLM / SEDD: DDiT blocks with adaLN conditioning, then the sampler's per-step ops."""
    m, r = cfg.model, cfg.run
    B, L, D, H, V = r.batch, r.seq_len, m.hidden, m.heads, m.vocab
    dh = D // H
    g = _Builder(r.precision)
    cond_phase = "forward" if r.time_conditioning else "once"

    tokens = g.idx("tokens", B, L)
    sigma = g.act("sigma", B)
    x = g.act("x.embed", B, L, D)
    g.add("embed", "gather", "embedding", [g.weight("vocab_embed.embedding", V, D), tokens], [x])
    g.phase = cond_phase
    c = g.timestep_mlp("sigma_map", sigma, m.freq_embed, m.cond_dim, m.cond_dim,
                       ("sigma_map.mlp.0", "sigma_map.mlp.2"), silu_out=True)
    g.phase = "forward"
    cos, sin = g.const("rotary.cos", L, dh), g.const("rotary.sin", L, dh)

    for i in range(m.blocks):
        g.block = i
        p = f"blocks.{i}"
        mod = g.linear(f"{p}.adaLN", c, 6 * D, f"{p}.adaLN_modulation", phase=cond_phase)
        h = g.sfu(f"{p}.norm1", "layernorm", [x, g.weight(f"{p}.norm1.weight", D)], eps=1e-5)
        h = g.sfu(f"{p}.modulate1", "modulate", [h, mod], chunks=6, shift=0, scale=1)
        qkv = g.linear(f"{p}.qkv", h, 3 * D, f"{p}.attn_qkv", bias=False)
        q, k, v = (g.act(f"{p}.{n}", B, H, L, dh) for n in "qkv")
        g.add(f"{p}.rotary", "sfu", "rotary", [qkv, cos, sin], [q, k, v], rotate="qk",
              theta=1e4)
        a = g.attention(f"{p}.attn", q, k, v, D)
        y = g.linear(f"{p}.attn_out", a, D, f"{p}.attn_out", bias=False)
        x = g.sfu(f"{p}.residual1", "residual", [x, y, mod], chunks=6, gate=2)
        h = g.sfu(f"{p}.norm2", "layernorm", [x, g.weight(f"{p}.norm2.weight", D)], eps=1e-5)
        h = g.sfu(f"{p}.modulate2", "modulate", [h, mod], chunks=6, shift=3, scale=4)
        h = g.linear(f"{p}.mlp1", h, m.mlp_ratio * D, f"{p}.mlp.0")
        h = g.sfu(f"{p}.gelu", "gelu", [h], approx="tanh")
        y = g.linear(f"{p}.mlp2", h, D, f"{p}.mlp.2")
        x = g.sfu(f"{p}.residual2", "residual", [x, y, mod], chunks=6, gate=5)
    g.block = None

    mod = g.linear("final.adaLN", c, 2 * D, "output_layer.adaLN_modulation", phase=cond_phase)
    h = g.sfu("final.norm", "layernorm", [x, g.weight("output_layer.norm_final.weight", D)],
              eps=1e-5)
    h = g.sfu("final.modulate", "modulate", [h, mod], chunks=2, shift=0, scale=1)
    logits = g.linear("final.linear", h, V, "output_layer.linear")
    if cfg.family == "sedd":
        _sedd_sampler(g, logits, tokens, sigma, r)
    else:
        # MASK column suppressed, log-softmax over V, unmasked positions forced to one-hot.
        logp = g.sfu("final.log_softmax", "log_softmax", [logits, tokens], mask_index=V - 1)
        # Per step, forward or not: q_xs = p_x0 * (dt), Gumbel argmax over [B, L, V], update.
        g.phase = "step"
        q = g.sfu("sample.probs", "exp_scale", [logp])
        new = g.idx("sample.draw", B, L)
        g.add("sample.gumbel_argmax", "sfu", "gumbel_argmax", [q], [new])
        g.add("sample.update", "sfu", "masked_update", [tokens, new],
              [g.idx("tokens.next", B, L)])
        if r.final_denoise:
            g.phase = "once"
            g.add("final.argmax", "sfu", "argmax", [logp], [g.idx("tokens.final", B, L)])

    nfe = mdlm_forward_passes(r.steps, B, L, r.cache) + (1 if r.final_denoise else 0)
    return Trace(cfg.name, tuple(g.ops), Schedule(r.steps, nfe), _run(cfg), (sigma,))


def _sedd_sampler(g: _Builder, logits: Tensor, tokens: Tensor, sigma: Tensor, r) -> None:
    """SEDD (absorbing graph, score_entropy_discrete_diffusion): the model's output is a log
    score, shifted by log(e^sigma - 1) + log(V - 1) and zeroed at the current token (in the
    forward pass). Every step (a forward every step: no cache) then takes score = exp(log
    score) and either Euler's step -- reverse rate = transp_rate(x) * score with the row sum
    on the diagonal, x dt * dsigma, + one-hot(x), sampled by Gumbel argmax -- or the
    analytic (Tweedie tau-leaping) step -- staggered score x the transposed transition,
    sampled likewise. The final noise removal is an analytic step at the last time, once."""
    b, seq = tokens.shape
    logs = g.sfu("final.score_scale", "score_scale", [logits, sigma, tokens])
    for phase, p in (("step", "sample"), ("once", "denoise")):
        if phase == "once" and not r.final_denoise:
            break
        g.phase = phase
        score = g.sfu(f"{p}.exp", "exp", [logs])
        if phase == "step" and r.predictor == "euler":
            rate = g.sfu(f"{p}.reverse_rate", "reverse_rate", [score, tokens])
        else:
            stag = g.sfu(f"{p}.staggered_score", "staggered_score", [score, sigma])
            rate = g.sfu(f"{p}.transp_transition", "transp_transition", [stag, tokens])
        out = "tokens.next" if phase == "step" else "tokens.final"
        g.add(f"{p}.sample", "sfu", "gumbel_argmax", [rate], [g.idx(out, b, seq)])


def mdlm_forward_passes(steps: int, batch: int, seq_len: int, cache: bool) -> float:
    """Expected forward passes of MDLM's ddpm_cache sampler over `steps` steps.

    The first step always runs the model; each later step runs it only if some token of the
    batch was unmasked in the previous step. Each token's unmask step is uniform over the T
    steps, so a step changes nothing with probability (1 - 1/T)^(B*L):
    E[NFE] = 1 + (T - 1) * (1 - (1 - 1/T)^(B*L)). Without the cache every step runs it: T.
    (The final noise-removal forward is added by the caller.)
    """
    if not cache:
        return float(steps)
    t = steps
    return 1.0 + (t - 1) * (1.0 - (1.0 - 1.0 / t) ** (batch * seq_len))


def build_diffusion_lm(cfg: DiffusionLmConfig) -> Trace:
    """Diffusion-LM: time embedding, up-projection, BERT layers, down-projection, rounding."""
    m, r = cfg.model, cfg.run
    B, L, D, H, E, V = r.batch, r.seq_len, m.hidden, m.heads, m.embed_dim, m.vocab
    g = _Builder(r.precision)
    xt = g.act("x_t", B, L, E)
    t = g.act("t", B)
    temb = g.timestep_mlp("time_embed", t, m.freq_embed, m.time_hidden, D,
                          ("time_embed.0", "time_embed.2"), silu_out=False)
    h = g.linear("up_proj.fc1", xt, D, "input_up_proj.0")
    h = g.sfu("up_proj.tanh", "tanh", [h])
    h = g.linear("up_proj.fc2", h, D, "input_up_proj.2")
    pos = g.act("pos_emb", L, D)
    g.add("pos_embed", "gather", "embedding",
          [g.weight("position_embeddings.weight", m.max_positions, D), g.idx("positions", L)],
          [pos])
    x = g.sfu("embed.add", "add", [h, pos, temb])
    x = g.sfu("embed.norm", "layernorm",
              [x, g.weight("LayerNorm.weight", D), g.weight("LayerNorm.bias", D)], eps=1e-12)

    for i in range(m.layers):
        g.block = i
        p = f"layers.{i}"
        w = f"input_transformers.layer.{i}"
        q, k, v = (g.linear(f"{p}.{n}", x, D, f"{w}.attention.self.{full}")
                   for n, full in (("q", "query"), ("k", "key"), ("v", "value")))
        q, k, v = (g.split_heads(f"{p}.{n}_heads", t_, H) for n, t_ in zip("qkv", (q, k, v)))
        a = g.attention(f"{p}.attn", q, k, v, D)
        y = g.linear(f"{p}.attn_dense", a, D, f"{w}.attention.output.dense")
        x = g.sfu(f"{p}.residual1", "residual", [x, y])
        x = g.sfu(f"{p}.norm1", "layernorm", [x, g.weight(f"{w}.attention.output.LayerNorm.weight",
                  D), g.weight(f"{w}.attention.output.LayerNorm.bias", D)], eps=1e-12)
        h = g.linear(f"{p}.ffn1", x, m.ffn, f"{w}.intermediate.dense")
        h = g.sfu(f"{p}.gelu", "gelu", [h], approx="erf")
        y = g.linear(f"{p}.ffn2", h, D, f"{w}.output.dense")
        x = g.sfu(f"{p}.residual2", "residual", [x, y])
        x = g.sfu(f"{p}.norm2", "layernorm", [x, g.weight(f"{w}.output.LayerNorm.weight", D),
                  g.weight(f"{w}.output.LayerNorm.bias", D)], eps=1e-12)
    g.block = None

    h = g.linear("down_proj.fc1", x, D, "output_down_proj.0")
    h = g.sfu("down_proj.tanh", "tanh", [h])
    x0 = g.linear("down_proj.fc2", h, E, "output_down_proj.2")

    table = g.weight("word_embedding.weight", V, E)  # tied with lm_head
    g.phase = "step"
    if r.rounding:
        dots = g.act("round.dot", B, L, V)
        g.add("round.dot", "gemm", "linear", [x0, table], [dots], transpose_b=True)
        ids = g.idx("round.ids", B, L)
        g.add("round.argmin", "sfu", "dist_argmin", [dots, x0], [ids])
        x0r = g.act("round.x0", B, L, E)
        g.add("round.gather", "gather", "embedding", [table, ids], [x0r])
        x0 = x0r
    g.sfu("sample.posterior", "posterior_update", [x0, xt], out="x_prev")

    g.phase = "once"
    logits = g.act("decode.logits", B, L, V)
    g.add("decode.lm_head", "gemm", "linear", [x0, table], [logits], transpose_b=True)
    g.add("decode.argmax", "sfu", "argmax", [logits], [g.idx("tokens.final", B, L)])
    return Trace(cfg.name, tuple(g.ops), Schedule(r.steps, float(r.steps)), _run(cfg), (xt, t))


def _run(cfg) -> tuple:
    return tuple(cfg.run.model_dump().items())


BUILDERS = {
    "mdlm": build_mdlm,
    "sedd": build_mdlm,
    "diffusion_lm": build_diffusion_lm,
}
