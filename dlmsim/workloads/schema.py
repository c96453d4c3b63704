"""Model-config schemas (workloads/*.yaml): architecture plus run parameters per family."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import Field, PositiveInt, model_validator

from dlmsim.config import Strict, Version

Precision = Literal["fp32", "bf16", "fp16"]

# Blocks (layers) of a model: published language models have at most ~128; a trace holds
# every block's ops, so 1024 keeps a trace near 20,000 ops (built and checked in seconds)
# where 2^31 blocks would never finish building.
Depth = Annotated[int, Field(gt=0, le=1024)]


class _Attention(Strict):
    """A model with `hidden` split over `heads` attention heads."""

    @model_validator(mode="after")
    def _heads_divide(self):
        if self.hidden % self.heads:
            raise ValueError(f"heads {self.heads} does not divide hidden {self.hidden}")
        return self


class MdlmModel(_Attention):
    """DDiT backbone (MDLM, SEDD)."""

    hidden: PositiveInt
    blocks: Depth
    heads: PositiveInt
    cond_dim: PositiveInt = 128
    mlp_ratio: PositiveInt = 4
    vocab: PositiveInt = 50258
    freq_embed: PositiveInt = 256  # sinusoidal timestep embedding width


class MdlmRun(Strict):
    batch: PositiveInt = 16
    seq_len: PositiveInt = 1024
    steps: PositiveInt = 128
    cache: bool = True  # ddpm_cache: skip the forward while no token changed
    time_conditioning: bool = False  # off: conditioning ops run once per run
    final_denoise: bool = True  # one extra forward at the end (noise removal)
    precision: Precision = "bf16"


class SeddRun(MdlmRun):
    """SEDD's sampler (score_entropy_discrete_diffusion sampling.py): no cache, the model
    conditioned on the noise level, an Euler or an analytic (Tweedie tau-leaping) predictor
    per step; its config.yaml samples with euler, its run_sample.py with analytic."""

    cache: bool = False
    time_conditioning: bool = True
    predictor: Literal["euler", "analytic"] = "euler"

    @model_validator(mode="after")
    def _sedd(self):
        if self.cache:
            raise ValueError("SEDD's sampler has no cache; set cache: false")
        if not self.time_conditioning:
            raise ValueError("SEDD's score model is conditioned on the noise level; "
                             "set time_conditioning: true")
        return self


class DiffusionLmModel(_Attention):
    """BERT-base encoder with up/down projections around it (Diffusion-LM)."""

    hidden: PositiveInt = 768
    layers: Depth = 12
    heads: PositiveInt = 12
    ffn: PositiveInt = 3072
    embed_dim: PositiveInt = 16
    vocab: PositiveInt = 821
    max_positions: PositiveInt = 512
    freq_embed: PositiveInt = 128
    time_hidden: PositiveInt = 512


class DiffusionLmRun(Strict):
    batch: PositiveInt = 64
    seq_len: PositiveInt = 64
    steps: PositiveInt = 2000
    cache: bool = False  # no cache exists for Diffusion-LM; kept for a uniform interface
    rounding: bool = True  # "clamp" rounding to the nearest embedding every step
    precision: Precision = "fp32"

    @model_validator(mode="after")
    def _no_cache(self):
        if self.cache:
            raise ValueError("Diffusion-LM has no sampler cache; set cache: false")
        return self


class LladaModel(_Attention):
    """LLaMA-style masked diffusion LM (LLaDA)."""

    hidden: PositiveInt = 4096
    layers: Depth = 32
    heads: PositiveInt = 32
    ffn: PositiveInt = 12288
    vocab: PositiveInt = 126464
    max_len: PositiveInt = 4096

    @model_validator(mode="after")
    def _even_head_dim(self):
        if (self.hidden // self.heads) % 2:
            raise ValueError("rotary needs an even head dim (hidden / heads)")
        return self


class LladaRun(Strict):
    """LLaDA's sampler (generate.py: blocks of block_len decoded left to right, steps split
    evenly over them) and the published inference tricks, as run parameters:

    - kv_cache (Fast-dLLM, NVlabs/Fast-dLLM llada/generate.py): the first step of each block
      runs the whole sequence and stores every layer's K/V; the block's other steps reuse
      them: `prefix` recomputes the block and everything after it (generate_with_prefix_
      cache), `dual` only the block (generate_with_dual_cache).
    - unmask_per_step (Fast-dLLM's confidence-aware parallel decoding): the expected tokens
      a confidence threshold unmasks per step; each block then takes
      ceil(block_len / unmask_per_step) steps, and `steps` is not used.
    - semi_ar: semi-autoregressive block decoding that feeds only the prompt and the blocks
      up to the current one (the masked future is not in the forward pass); off, every
      pass covers prompt + gen_len as LLaDA's generate.py does.
    - dllm_cache (dLLM-Cache, maomaocun/dLLM-cache): prompt features (K, V, attention and
      FFN outputs) refreshed every prompt_refresh steps, response features every
      response_refresh steps; in between, per layer the response's V is recomputed, and the
      update_ratio of response tokens least similar to their cached V are recomputed
      (defaults: its LLaDA_test_flops_script.py, 100, 7 and 0.25).
    """

    batch: PositiveInt = 1
    seq_len: PositiveInt = 256  # prompt + generated tokens
    gen_len: PositiveInt = 128
    block_len: PositiveInt = 32
    steps: PositiveInt = 128
    cache: bool = False  # no MDLM-style sampler cache (see kv_cache, dllm_cache)
    kv_cache: Literal["none", "prefix", "dual"] = "none"
    unmask_per_step: float | None = Field(None, ge=1)
    semi_ar: bool = False
    dllm_cache: bool = False
    prompt_refresh: PositiveInt = 100
    response_refresh: PositiveInt = 7
    update_ratio: float = Field(0.25, gt=0, le=1)
    precision: Precision = "bf16"

    @model_validator(mode="after")
    def _lengths(self):
        if self.gen_len > self.seq_len:
            raise ValueError(f"gen_len {self.gen_len} exceeds seq_len {self.seq_len}")
        if self.gen_len % self.block_len:
            raise ValueError(f"gen_len {self.gen_len} is not a multiple of "
                             f"block_len {self.block_len}")
        n_blocks = self.gen_len // self.block_len
        if self.unmask_per_step is None and self.steps % n_blocks:
            raise ValueError(f"steps {self.steps} is not a multiple of the "
                             f"{n_blocks} generation blocks")
        if self.unmask_per_step is not None and self.unmask_per_step > self.block_len:
            raise ValueError(f"unmask_per_step {self.unmask_per_step:g} exceeds block_len "
                             f"{self.block_len}")
        if self.cache:
            raise ValueError("LLaDA has no MDLM-style sampler cache; set cache: false (its "
                             "caches are kv_cache and dllm_cache)")
        if self.dllm_cache and (self.kv_cache != "none" or self.semi_ar):
            raise ValueError("dllm_cache is modelled alone: not with kv_cache or semi_ar")
        return self

    @property
    def steps_per_block(self) -> int:
        n_blocks = self.gen_len // self.block_len
        if self.unmask_per_step is None:
            return self.steps // n_blocks
        return math.ceil(self.block_len / self.unmask_per_step)


class UNetModel(Strict):
    """Latent-diffusion U-Net (Stable Diffusion v1.x; diffusers' UNet2DConditionModel)."""

    in_channels: PositiveInt = 4
    out_channels: PositiveInt = 4
    block_channels: list[PositiveInt] = Field(default_factory=lambda: [320, 640, 1280, 1280])
    # Spatial transformers per level.
    attention: list[bool] = Field(default_factory=lambda: [True, True, True, False])
    layers_per_block: PositiveInt = 2
    heads: PositiveInt = 8
    context_dim: PositiveInt = 768  # CLIP ViT-L/14 text features
    context_len: PositiveInt = 77  # CLIP's token count
    groups: PositiveInt = 32  # GroupNorm groups
    ffn_mult: PositiveInt = 4  # GEGLU inner width = ffn_mult x channels
    latent_factor: PositiveInt = 8  # VAE downsampling: latent side = image side / 8

    @model_validator(mode="after")
    def _levels(self):
        if len(self.attention) != len(self.block_channels):
            raise ValueError(f"attention has {len(self.attention)} levels, block_channels "
                             f"{len(self.block_channels)}")
        for c in self.block_channels:
            if c % self.groups or c % self.heads:
                raise ValueError(f"channels {c} are not divisible by groups {self.groups} "
                                 f"and heads {self.heads}")
        return self


class UNetRun(Strict):
    batch: PositiveInt = 1  # images
    image_size: PositiveInt = 512  # pixels per side
    steps: PositiveInt = 50  # denoising steps (DDIM-style: one U-Net pass each)
    guidance: bool = True  # classifier-free guidance: the U-Net runs on 2 x batch
    guidance_scale: float = Field(7.5, gt=0)  # scales, costs nothing extra
    cache: bool = False  # no sampler cache; kept for the uniform interface
    precision: Precision = "fp16"

    @model_validator(mode="after")
    def _no_cache(self):
        if self.cache:
            raise ValueError("the U-Net sampler has no cache; set cache: false")
        return self


class _Base(Strict):
    version: Version
    name: str
    description: str = ""


class MdlmConfig(_Base):
    family: Literal["mdlm"]
    model: MdlmModel
    run: MdlmRun = MdlmRun()


class SeddConfig(_Base):
    family: Literal["sedd"]
    model: MdlmModel
    run: SeddRun = SeddRun()


class DiffusionLmConfig(_Base):
    family: Literal["diffusion_lm"]
    model: DiffusionLmModel
    run: DiffusionLmRun = DiffusionLmRun()

    @model_validator(mode="after")
    def _fits(self):
        if self.run.seq_len > self.model.max_positions:
            raise ValueError(f"seq_len {self.run.seq_len} exceeds max_positions "
                             f"{self.model.max_positions}")
        return self


class LladaConfig(_Base):
    family: Literal["llada"]
    model: LladaModel
    run: LladaRun = LladaRun()

    @model_validator(mode="after")
    def _fits(self):
        if self.run.seq_len > self.model.max_len:
            raise ValueError(f"seq_len {self.run.seq_len} exceeds max_len {self.model.max_len}")
        return self


class UNetConfig(_Base):
    family: Literal["sd_unet"]
    model: UNetModel = UNetModel()
    run: UNetRun = UNetRun()

    @model_validator(mode="after")
    def _fits(self):
        side = self.run.image_size // self.model.latent_factor
        down = 2 ** (len(self.model.block_channels) - 1)
        if self.run.image_size % self.model.latent_factor or side % down:
            raise ValueError(f"image_size {self.run.image_size} must be a multiple of "
                             f"{self.model.latent_factor * down} (latent factor "
                             f"{self.model.latent_factor} x {down} for the downsamplings)")
        return self


WorkloadConfig = Annotated[
    MdlmConfig | SeddConfig | DiffusionLmConfig | LladaConfig | UNetConfig,
    Field(discriminator="family"),
]
