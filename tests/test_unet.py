"""Stable Diffusion v1.5's U-Net trace: parameters, FLOPs per step, structure, sampler.

Counts are derived by hand from SD v1.5's published structure (diffusers'
UNet2DConditionModel config: channels 320/640/1280/1280, 2 ResBlocks per level, spatial
transformers at the first three levels, 8 heads, 77 x 768 text context, GEGLU x4), not
from the builder code.
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import dlmsim
from dlmsim.cli import app
from dlmsim.errors import InputError
from dlmsim.workloads import load_workload

C = (320, 640, 1280, 1280)
TIME = 1280  # 4 x 320
CTX, CTX_LEN = 768, 77


def _resnets():
    """(c_in, c_out, side) of every ResBlock, in order, at a 64x64 latent; the up path's
    inputs are the previous output concatenated with the skip (conv_in, then every down
    ResBlock/transformer output and downsampler output, popped last first)."""
    res, skips, side = [], [C[0]], 64
    c = C[0]
    for lvl, co in enumerate(C):
        for _ in range(2):
            res.append((c, co, side))
            c = co
            skips.append(c)
        if lvl < 3:
            side //= 2
            skips.append(c)
    res += [(c, c, side), (c, c, side)]  # mid block
    for lvl, co in enumerate(reversed(C)):
        for _ in range(3):
            res.append((c + skips.pop(), co, side))
            c = co
        if lvl < 3:
            side *= 2
    return res


# (channels, side) of the 16 spatial transformers: 2 per down level 0-2, 1 mid, 3 per up 1-3.
TRANSFORMERS = ([(320, 64)] * 2 + [(640, 32)] * 2 + [(1280, 16)] * 2 + [(1280, 8)]
                + [(1280, 16)] * 3 + [(640, 32)] * 3 + [(320, 64)] * 3)
DOWNSAMPLERS = [(320, 32), (640, 16), (1280, 8)]  # (channels, output side)
UPSAMPLERS = [(1280, 16), (1280, 32), (640, 64)]


def test_parameter_count():
    """Parameters, by hand (biases included; every linear has a bias except to_q/k/v):
    time MLP 320*1280 + 1280 + 1280*1280 + 1280 = 2,050,560;
    conv_in 4*320*9 + 320; conv_norm_out 2*320; conv_out 320*4*9 + 4;
    ResBlock(ci, co): norms 2ci + 2co, conv1 9 co ci + co, time proj 1280 co + co,
      conv2 9 co^2 + co, shortcut co ci + co when ci != co;
    transformer(c): GroupNorm 2c, proj_in/out 2(c^2 + c), 3 LayerNorms 6c, attn1 4c^2 + c,
      attn2 2c^2 + 2*768c + c, GEGLU proj 8c^2 + 8c, ff out 4c^2 + c
      = 20c^2 + 1536c + 21c;
    down/up-sampling convs 9c^2 + c.
    Sum: 859,520,964, within 2% of the public "860M UNet" (CompVis/stable-diffusion
    README: "a 860M UNet and 123M text encoder")."""
    n = 2_050_560 + (4 * 320 * 9 + 320) + 640 + (320 * 4 * 9 + 4)
    for ci, co, _ in _resnets():
        n += 2 * ci + 2 * co + 9 * co * ci + co + TIME * co + co + 9 * co * co + co
        n += co * ci + co if ci != co else 0
    n += sum(20 * c * c + 1536 * c + 21 * c for c, _ in TRANSFORMERS)
    n += sum(9 * c * c + c for c, _ in DOWNSAMPLERS + UPSAMPLERS)
    assert n == 859_520_964
    t = load_workload("sd15-unet")
    assert t.params == n
    assert abs(t.params / 860e6 - 1) < 0.02


def _flops_per_pass(b: int) -> tuple[float, float]:
    """(MACs, FLOPs) of one U-Net pass on a batch of b latents of 64x64 (see the test)."""
    macs = b * (320 * TIME + TIME * TIME)  # time MLP
    flops = b * (4 * 320 + 2 * TIME + 2 * 4 * TIME)  # sinusoid, 2 biases, 2 SiLUs
    hw = 64 * 64
    macs += b * hw * 320 * 4 * 9 + b * hw * 4 * 320 * 9  # conv_in, conv_out
    flops += b * hw * (320 + 4) + b * hw * 320 * (8 + 4)  # conv biases, norm_out, SiLU
    for ci, co, s in _resnets():
        p = b * s * s
        macs += p * co * ci * 9 + p * co * co * 9 + b * TIME * co + (p * co * ci if ci != co
                                                                     else 0)
        flops += p * ci * (8 + 4) + p * co * (8 + 4)  # norm1, SiLU1, norm2, SiLU2
        flops += b * co * 2 + p * co * (2 + 1)  # time bias, time add; conv biases; residual
        flops += p * co if ci != co else 0  # shortcut bias
    for c, s in TRANSFORMERS:
        n = s * s
        macs += b * (20 * n * c * c + 2 * CTX_LEN * CTX * c + 2 * n * n * c + 2 * n * CTX_LEN * c)
        # GroupNorm, 3 LayerNorms, 3 + 1 residuals, GEGLU (4.5 per element of [n, 8c]);
        # softmax over 8 heads (self and cross); biases of proj_in, to_out x 2, GEGLU proj
        # (8c), ff out, proj_out.
        flops += b * (n * c * (8 + 24 + 4 + 36) + 5 * 8 * n * (n + CTX_LEN)
                      + n * c * (1 + 1 + 1 + 8 + 1 + 1))
    for c, s in DOWNSAMPLERS + UPSAMPLERS:
        p = b * s * s
        macs += p * c * c * 9
        flops += p * c  # bias
    return macs, 2 * macs + flops


def test_flops_per_step():
    """FLOPs of one denoising step (one U-Net pass, batch 2 with guidance), by hand.

    GEMM MACs per latent (b = 1), implicit-GEMM convolutions counted as
    Ho*Wo*Cout*(Cin/groups)*kh*kw:
    - ResBlock(ci, co) at s x s: conv1 s^2 co ci 9, conv2 s^2 co^2 9, shortcut s^2 co ci
      (ci != co), time projection 1280 co;
    - transformer(c) on n = s^2 tokens: proj_in/out 2 n c^2, attn1 q/k/v/out 4 n c^2, attn2
      q/out 2 n c^2, GEGLU feed-forward 8 n c^2 + 4 n c^2 (20 n c^2 together), attn2 k/v
      on the text 2 * 77 * 768 c, attention scores and P.V 2 n^2 c (self) + 2 * 77 n c
      (cross);
    - conv_in 64^2 * 320 * 4 * 9, conv_out 64^2 * 4 * 320 * 9, down/upsampler convs
      s_out^2 c^2 9, the time MLP 320*1280 + 1280^2.
    Sum: 401.64 G MACs per latent (convolutions 221.97 G, linears 116.64 G, attention
    matmuls 63.03 G).
    FLOPs = 2 x MACs + the non-GEMM ops at dlmsim's per-element costs (groupnorm and
    layernorm 8, silu 4, softmax 5, geglu 4.5 per input element, residual and bias adds 1):
    per ResBlock 12 (ci + co) s^2 + 3 co s^2 (+ co s^2 shortcut bias) + 2 co; per
    transformer 72 n c + 40 n (n + 77) (softmax over 8 heads) + 13 n c of bias adds;
    conv_in bias, conv_norm_out + SiLU 12 * 320 * 64^2; the time MLP's sinusoid, biases and
    SiLUs. With guidance the U-Net runs on b = 2: 1616.74 GFLOP per step, 80.84 TFLOP for
    50 steps (the two step ops add 147 kFLOP per step).
    """
    macs, flops = _flops_per_pass(2)
    t = load_workload("sd15-unet")
    fwd = t.phase_ops("forward")
    assert sum(o.macs for o in fwd) == macs
    assert 2 * macs / 2 == pytest.approx(803.27e9, rel=1e-4)  # 401.64 G MACs per latent
    assert t.flops_per_forward == pytest.approx(flops, rel=1e-12)
    assert t.flops_per_forward == pytest.approx(1616.74e9, rel=1e-5)
    by_fn = {}
    for o in fwd:
        by_fn[o.fn] = by_fn.get(o.fn, 0) + o.macs / 2
    assert by_fn["conv2d"] == pytest.approx(221.97e9, rel=1e-4)
    assert by_fn["linear"] == pytest.approx(116.64e9, rel=1e-4)
    assert by_fn["matmul"] == pytest.approx(63.03e9, rel=1e-4)
    # Without guidance the U-Net runs on one latent: exactly half.
    assert load_workload("sd15-unet", guidance=False).flops_per_forward == pytest.approx(
        _flops_per_pass(1)[1], rel=1e-12)


def test_structure():
    """22 ResBlocks, 16 transformers (each with self and cross attention), 3 down- and 3
    upsamplers, 12 skip concatenations; 98 convolutions = conv_in + conv_out + 2 per
    ResBlock + 14 1x1 shortcuts (the ResBlocks whose channels change: 2 on the way down,
    all 12 on the way up, whose inputs are concatenations) + 2 per transformer (1x1
    proj_in/out) + 3 down- and 3 upsampler convolutions."""
    t = load_workload("sd15-unet")
    names = [o.name for o in t.ops]
    assert sum(n.endswith(".conv1") for n in names) == len(_resnets()) == 22
    assert sum(n.endswith("attn2.scores") for n in names) == len(TRANSFORMERS) == 16
    shortcuts = sum(ci != co for ci, co, _ in _resnets())
    assert shortcuts == 14
    convs = [o for o in t.ops if o.fn == "conv2d"]
    assert len(convs) == 2 + 2 * 22 + shortcuts + 2 * 16 + 6
    assert sum(o.fn == "concat" for o in t.ops) == 12
    cross = next(o for o in t.ops if o.name.endswith("attn2.scores"))
    assert cross.gemm_dims == (2 * 8, 64 * 64, 40, 77)  # 8 heads of 40 over 77 tokens
    down = next(o for o in t.ops if o.name == "down_blocks.0.downsamplers.0")
    assert down.outputs[0].shape == (2, 320, 32, 32) and down.attr("stride") == 2
    # GroupNorm consumes conv1 directly (the time embedding is conv1's per-sample bias).
    for i, o in enumerate(t.ops):
        if o.name.endswith(".conv1"):
            assert o.inputs[2].shape == (2, o.outputs[0].shape[1])
            assert t.ops[i + 1].fn == "groupnorm"


def test_sampler_schedule_and_guidance():
    """50 steps, one U-Net pass each; guidance doubles the U-Net batch and adds the combine
    (1.5 FLOPs per element of the [2, 4, 64, 64] estimate) before the DDIM update (6)."""
    t = load_workload("sd15-unet")
    assert t.steps == 50 and t.forward_passes == 50
    step = {o.fn: o for o in t.phase_ops("step")}
    assert set(step) == {"cfg_combine", "ddim_step"}
    assert step["cfg_combine"].flops == 1.5 * 2 * 4 * 64 * 64
    assert step["ddim_step"].flops == 6 * 4 * 64 * 64
    assert next(o for o in t.ops if o.name == "conv_in").inputs[0].shape == (2, 4, 64, 64)
    plain = load_workload("sd15-unet", guidance=False, steps=20, image_size=256, batch=3)
    assert plain.steps == 20 and {o.fn for o in plain.phase_ops("step")} == {"ddim_step"}
    assert next(o for o in plain.ops if o.name == "conv_in").inputs[0].shape == (3, 4, 32, 32)


@pytest.mark.parametrize("run, message", [
    ({"image_size": 500}, "image_size 500 must be a multiple of 64"),
    ({"cache": True}, "no cache"),
    ({"steps": 0}, "steps"),
])
def test_bad_run_settings(run, message):
    with pytest.raises(InputError, match=message):
        load_workload("sd15-unet", **run)


def test_cli_trace_and_simulate():
    """`dlmsim trace sd15-unet` prints the ops and the totals; simulate runs a (small)
    image and reports images per second."""
    r = CliRunner().invoke(app, ["trace", "sd15-unet"])
    assert r.exit_code == 0, r.output
    assert "859.52 M" in r.output and "1.62 TFLOP" in r.output and "conv2d" in r.output
    r = CliRunner().invoke(app, ["simulate", "-a", "sda-zcu102", "-w", "sd15-unet",
                                 "--steps", "2", "--workload-set", "image_size=128"])
    assert r.exit_code == 0, r.output
    assert "images/s" in r.output


def test_simulates_on_every_preset():
    """A 256x256 image (32x32 latents) at 2 steps runs on the SDA-like preset; no op beats
    its roofline."""
    res = dlmsim.simulate(dlmsim.load_arch("sda-zcu102"),
                          load_workload("sd15-unet", image_size=256, steps=2))
    assert res.total_cycles > 0
    assert (res.ops.span_cycles >= res.ops.roofline_cycles * (1 - 1e-9)).all()
