"""Guidance switched off (w = 1 for classifier-free, s = 0 for classifier guidance) samples exactly
what the unguided model samples from the same noise, for every sampler; switched on it differs."""

import pytest
import torch

from diffusion_lab.diffusion import create_diffusion
from diffusion_lab.guidance import ClassifierFreeGuidance, ClassifierGuidance, IgnoreLabels
from diffusion_lab.models import EncoderUNetModel, UNetModel
from diffusion_lab.models.presets import build_preset, preset_config
from diffusion_lab.sampling import sample

SAMPLERS = {"ddpm": {}, "ddim": {"eta": 0.5}, "dpm_solver": {}, "heun": {"s_churn": 1.0}}
SHAPE = (4, 1, 8, 8)
LABELS = torch.tensor([0, 1, 0, 1])
NULL = 2  # num_classes: the null class of classifier-free guidance
ENCODER = {  # the tiny U-Net's encoder half
    k: v for k, v in preset_config("tiny", 8, 1).items() if k not in ("_target_", "num_classes")
}


def perturbed(model: torch.nn.Module) -> torch.nn.Module:
    """Noise on every parameter, so the zero-initialised output and label paths contribute."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=generator))
    return model.eval()


def unet(learn_sigma: bool = False, num_classes: int | None = NULL) -> UNetModel:
    return perturbed(build_preset("tiny", 8, 1, num_classes=num_classes, learn_sigma=learn_sigma))


def classifier() -> EncoderUNetModel:
    return perturbed(EncoderUNetModel(**ENCODER, out_channels=2, pool="attention"))


def draw(model, sampler, labels=LABELS, cond_fn=None, var_type="fixed_large", dtype=torch.float32):
    loss_type = "hybrid" if var_type == "learned_range" else "simple"
    diffusion = create_diffusion(num_timesteps=50, model_var_type=var_type, loss_type=loss_type)
    return sample(
        model,
        diffusion,
        SHAPE,
        sampler,
        steps=4 if sampler != "heun" else 3,
        noise=torch.randn(SHAPE, generator=torch.Generator().manual_seed(1), dtype=dtype),
        generator=torch.Generator().manual_seed(2),
        model_kwargs={"y": labels},
        cond_fn=cond_fn,
        **SAMPLERS[sampler],
    ).images


@pytest.mark.parametrize("learned", [False, True], ids=["fixed_variance", "learned_variance"])
@pytest.mark.parametrize("sampler", SAMPLERS)
def test_cfg_at_w_one_is_the_conditional_model(sampler, learned):
    net = unet(learn_sigma=learned)
    var_type = "learned_range" if learned else "fixed_large"
    plain = draw(net, sampler, var_type=var_type)
    off = draw(ClassifierFreeGuidance(net, 1.0, NULL), sampler, var_type=var_type)
    on = draw(ClassifierFreeGuidance(net, 3.0, NULL), sampler, var_type=var_type)
    assert torch.equal(off, plain)
    assert (on - plain).abs().max() > 1e-3


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_cfg_at_w_zero_is_the_unconditional_model(sampler):
    """The batched pass at w = 0 gives the null-label model: the doubled batch is split right."""
    net = unet().double()
    uncond = draw(net, sampler, labels=torch.full_like(LABELS, NULL), dtype=torch.float64)
    guided = draw(ClassifierFreeGuidance(net, 0.0, NULL), sampler, dtype=torch.float64)
    # a batch of 8 and one of 4 may take different kernels: in float64 that rounding (~1e-15)
    # stays far below 1e-9 even after the sampler grows it; the conditional half in place of
    # the unconditional one moves the samples by ~1
    torch.testing.assert_close(guided, uncond, rtol=0, atol=1e-9)


def test_cfg_combines_eps_and_keeps_the_conditional_variance():
    """ε̂ = ε_u + w·(ε_c − ε_u) on the first C channels; learned variance channels are ε_c's pass."""
    net = unet(learn_sigma=True).double()
    x, t = torch.randn(SHAPE, dtype=torch.float64), torch.tensor([49, 30, 10, 0])
    with torch.no_grad():
        cond = net(x, t, y=LABELS)
        uncond = net(x, t, y=torch.full_like(LABELS, NULL))
        guided = ClassifierFreeGuidance(net, 2.5, NULL)(x, t, y=LABELS)
    # the doubled batch against two plain ones: float64 rounding only (~1e-15 at outputs ~3);
    # swapped halves or a wrong weight would be off by ~|cond − uncond| ~ 1
    expected = uncond[:, :1] + 2.5 * (cond[:, :1] - uncond[:, :1])
    torch.testing.assert_close(guided[:, :1], expected, rtol=0, atol=1e-9)
    torch.testing.assert_close(guided[:, 1:], cond[:, 1:], rtol=0, atol=1e-9)


@pytest.mark.parametrize("conditional", [True, False], ids=["conditional", "unconditional"])
@pytest.mark.parametrize("sampler", SAMPLERS)
def test_classifier_guidance_at_scale_zero_is_unguided(sampler, conditional):
    net = unet() if conditional else IgnoreLabels(unet(num_classes=None))
    plain = draw(net, sampler)
    off = draw(net, sampler, cond_fn=ClassifierGuidance(classifier(), 0.0))
    on = draw(net, sampler, cond_fn=ClassifierGuidance(classifier(), 5.0))
    assert torch.equal(off, plain)
    assert (on - plain).abs().max() > 1e-3
