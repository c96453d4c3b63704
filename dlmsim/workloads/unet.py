"""Stable Diffusion v1.x's latent-diffusion U-Net, one denoising step per forward pass.

Follows diffusers' UNet2DConditionModel with SD v1.5's config (block_out_channels 320, 640,
1280, 1280; CrossAttnDownBlock2D x 3 + DownBlock2D; UNetMidBlock2DCrossAttn; UpBlock2D +
CrossAttnUpBlock2D x 3; layers_per_block 2; 8 heads; cross attention to 77 CLIP tokens of
768 features; GroupNorm 32; GEGLU feed-forward; 1x1 proj_in/proj_out convolutions). Weight
names are diffusers' state-dict names; linear weights are stored [in, out] as elsewhere in
dlmsim, convolution weights as PyTorch's [Cout, Cin, kh, kw]. Tensors are NCHW, PyTorch's
layout; inside a spatial transformer the tokens are [B, H*W, C].

Sampler: `steps` DDIM-style steps, one U-Net pass each. With classifier-free guidance the
latent is duplicated and the U-Net runs on 2 x batch (unconditional and text halves); each
step combines the two halves of the noise estimate and updates the latent (step ops).

Simplifications, stated once here:
- The text context (CLIP ViT-L/14's [77, 768] features) is a trace input: the text encoder
  and the VAE decoder, which run once per image, are not in this trace.
- The SiLU of the time embedding, which diffusers applies inside every ResBlock to the same
  tensor, is computed once per forward pass (same values, fewer ops).
- Each ResBlock adds its time-embedding projection to conv1's output: that add is fused
  into conv1 as a per-sample bias [B, Cout] (the accumulator output path adds a bias
  anyway), so GroupNorm consumes conv1 directly, as in SDA's pipeline.
- Residual and skip adds take the fresh GEMM output first, so it can stream into the add.
- Dropout is off (inference).
"""

from __future__ import annotations

from dlmsim.workloads.build import _Builder, _run
from dlmsim.workloads.ir import Schedule, Tensor, Trace
from dlmsim.workloads.schema import UNetConfig


class _UNet(_Builder):
    """The U-Net's building blocks on top of the common op builder."""

    def __init__(self, cfg: UNetConfig):
        super().__init__(cfg.run.precision)
        self.m = cfg.model

    def conv(self, name: str, x: Tensor, cout: int, wname: str, k: int = 3, stride: int = 1,
             bias: Tensor | None = None) -> Tensor:
        """Conv2d with 'same' padding (k // 2) and its bias (or a given per-sample bias)."""
        b, cin, h, w = x.shape
        pad = k // 2
        ins = [x, self.weight(f"{wname}.weight", cout, cin, k, k),
               bias if bias is not None else self.weight(f"{wname}.bias", cout)]
        ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
        y = self.act(name, b, cout, ho, wo)
        attrs = {"stride": stride, "padding": pad} if k > 1 or stride > 1 else {}
        self.add(name, "gemm", "conv2d", ins, [y], **attrs)
        return y

    def groupnorm(self, name: str, x: Tensor, wname: str, eps: float) -> Tensor:
        c = x.shape[1]
        return self.sfu(name, "groupnorm", [x, self.weight(f"{wname}.weight", c),
                                            self.weight(f"{wname}.bias", c)],
                        groups=self.m.groups, eps=eps)

    def resnet(self, p: str, x: Tensor, cout: int, temb: Tensor) -> Tensor:
        """ResnetBlock2D: GN-SiLU-conv3x3 (+ time projection) - GN-SiLU-conv3x3, + skip."""
        cin = x.shape[1]
        skip = x if cin == cout else self.conv(f"{p}.conv_shortcut", x, cout,
                                               f"{p}.conv_shortcut", k=1)
        t = self.linear(f"{p}.time_emb_proj", temb, cout, f"{p}.time_emb_proj")
        tb = self.sfu(f"{p}.time_bias", "add", [t, self.weight(f"{p}.conv1.bias", cout)])
        h = self.groupnorm(f"{p}.norm1", x, f"{p}.norm1", 1e-5)
        h = self.sfu(f"{p}.silu1", "silu", [h])
        h = self.conv(f"{p}.conv1", h, cout, f"{p}.conv1", bias=tb)
        h = self.groupnorm(f"{p}.norm2", h, f"{p}.norm2", 1e-5)
        h = self.sfu(f"{p}.silu2", "silu", [h])
        h = self.conv(f"{p}.conv2", h, cout, f"{p}.conv2")
        return self.sfu(f"{p}.residual", "residual", [h, skip])

    def mha(self, p: str, x: Tensor, ctx: Tensor, wname: str) -> Tensor:
        """Multi-head attention of x's tokens over ctx's (self attention when ctx is x)."""
        c = x.shape[-1]
        heads = self.m.heads
        q = self.linear(f"{p}.to_q", x, c, f"{wname}.to_q", bias=False)
        k = self.linear(f"{p}.to_k", ctx, c, f"{wname}.to_k", bias=False)
        v = self.linear(f"{p}.to_v", ctx, c, f"{wname}.to_v", bias=False)
        q, k, v = (self.split_heads(f"{p}.{s}_heads", t, heads) for s, t in zip("qkv", (q, k, v)))
        a = self.attention(p, q, k, v, c)
        return self.linear(f"{p}.to_out", a, c, f"{wname}.to_out.0")

    def transformer(self, p: str, x: Tensor, ctx: Tensor) -> Tensor:
        """Transformer2DModel: GN, 1x1 proj_in, tokens, one BasicTransformerBlock (self
        attention, cross attention to the text, GEGLU feed-forward, each pre-LayerNorm
        with a residual), back to NCHW, 1x1 proj_out, + the block's input."""
        b, c, hh, ww = x.shape
        h = self.groupnorm(f"{p}.norm", x, f"{p}.norm", 1e-6)
        h = self.conv(f"{p}.proj_in", h, c, f"{p}.proj_in", k=1)
        h = self.sfu(f"{p}.to_tokens", "transpose", [h], shape=(b, hh * ww, c), perm=(0, 2, 3, 1))
        t = f"{p}.transformer_blocks.0"
        for i, cross in ((1, False), (2, True), (3, None)):
            n = self.sfu(f"{t}.norm{i}", "layernorm", [h, self.weight(f"{t}.norm{i}.weight", c),
                                                       self.weight(f"{t}.norm{i}.bias", c)],
                         eps=1e-5)
            if cross is None:
                f = self.linear(f"{t}.ff.proj", n, 2 * self.m.ffn_mult * c, f"{t}.ff.net.0.proj")
                f = self.sfu(f"{t}.ff.geglu", "geglu", [f], shape=(b, hh * ww, self.m.ffn_mult * c))
                y = self.linear(f"{t}.ff.out", f, c, f"{t}.ff.net.2")
            else:
                y = self.mha(f"{t}.attn{i}", n, ctx if cross else n, f"{t}.attn{i}")
            h = self.sfu(f"{t}.residual{i}", "residual", [y, h])
        h = self.sfu(f"{p}.to_channels", "transpose", [h], shape=(b, c, hh, ww), perm=(0, 2, 1))
        h = self.conv(f"{p}.proj_out", h, c, f"{p}.proj_out", k=1)
        return self.sfu(f"{p}.residual", "residual", [h, x])


def build_unet(cfg: UNetConfig) -> Trace:
    """SD v1.x U-Net forward (one denoising step) plus the guidance and update step ops."""
    m, r = cfg.model, cfg.run
    g = _UNet(cfg)
    b = r.batch * (2 if r.guidance else 1)
    side = r.image_size // m.latent_factor
    c0 = m.block_channels[0]
    time_dim = 4 * c0  # diffusers: time_embed_dim = block_out_channels[0] * 4

    latents = g.act("latents", r.batch, m.in_channels, side, side)
    x = g.act("latents.cfg", b, m.in_channels, side, side) if r.guidance else latents
    timestep = g.act("timestep", b)
    ctx = g.act("text_context", b, m.context_len, m.context_dim)
    temb = g.timestep_mlp("time_embedding", timestep, c0, time_dim, time_dim,
                          ("time_embedding.linear_1", "time_embedding.linear_2"), silu_out=True)

    h = g.conv("conv_in", x, c0, "conv_in")
    skips = [h]
    levels = len(m.block_channels)
    for lvl, (c, attn) in enumerate(zip(m.block_channels, m.attention)):
        for j in range(m.layers_per_block):
            p = f"down_blocks.{lvl}"
            h = g.resnet(f"{p}.resnets.{j}", h, c, temb)
            if attn:
                h = g.transformer(f"{p}.attentions.{j}", h, ctx)
            skips.append(h)
        if lvl < levels - 1:
            h = g.conv(f"{p}.downsamplers.0", h, c, f"{p}.downsamplers.0.conv", stride=2)
            skips.append(h)

    c_mid = m.block_channels[-1]
    h = g.resnet("mid_block.resnets.0", h, c_mid, temb)
    h = g.transformer("mid_block.attentions.0", h, ctx)
    h = g.resnet("mid_block.resnets.1", h, c_mid, temb)

    for i, (c, attn) in enumerate(zip(reversed(m.block_channels), reversed(m.attention))):
        p = f"up_blocks.{i}"
        for j in range(m.layers_per_block + 1):
            s = skips.pop()
            cat = g.act(f"{p}.cat{j}", b, h.shape[1] + s.shape[1], *h.shape[2:])
            g.add(f"{p}.cat{j}", "sfu", "concat", [h, s], [cat], axis=1)
            h = g.resnet(f"{p}.resnets.{j}", cat, c, temb)
            if attn:
                h = g.transformer(f"{p}.attentions.{j}", h, ctx)
        if i < levels - 1:
            up = g.sfu(f"{p}.upsample", "upsample", [h], shape=(b, c, 2 * h.shape[2],
                                                                2 * h.shape[3]), scale=2)
            h = g.conv(f"{p}.upsamplers.0", up, c, f"{p}.upsamplers.0.conv")

    h = g.groupnorm("conv_norm_out", h, "conv_norm_out", 1e-5)
    h = g.sfu("conv_act", "silu", [h])
    eps = g.conv("conv_out", h, m.out_channels, "conv_out", bias=None)

    g.phase = "step"
    if r.guidance:
        eps = g.sfu("sample.cfg", "cfg_combine", [eps], shape=latents.shape,
                    scale=r.guidance_scale)
    g.sfu("sample.ddim", "ddim_step", [eps, latents], out="latents.next")
    inputs = (latents, x, timestep, ctx) if r.guidance else (latents, timestep, ctx)
    return Trace(cfg.name, tuple(g.ops), Schedule(r.steps, float(r.steps)), _run(cfg), inputs)

