"""Cold diffusion's degradations: kernels, masks, blocks and D(x_0, 0) = x_0."""

import pytest
import torch

from diffusion_lab.errors import ConfigError
from diffusion_lab.processes.cold import DEGRADATIONS, create_degradation
from diffusion_lab.processes.cold.degradations import gaussian_kernel

T = 4
SHAPE = (3, 3, 16, 16)
X0 = torch.rand(SHAPE, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2 - 1
NOISE = torch.randn(SHAPE, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
EVERY = [
    {"name": "blur", "kernel_size": 5, "kernel_std": 1.0},
    {"name": "blur", "kernel_size": 3, "kernel_std": 0.3, "routine": "exponential"},
    {
        "name": "blur",
        "kernel_size": 5,
        "kernel_std": 0.5,
        "routine": "incremental",
        "discrete": True,
    },
    {"name": "inpaint", "kernel_std": 1.0},
    {"name": "inpaint", "kernel_std": 1.0, "centre": "random"},
    {"name": "pixelate"},
    {"name": "decolorize"},
    {"name": "noise", "schedule": "cosine"},
]


def levels(t: int) -> torch.Tensor:
    return torch.full((SHAPE[0],), t, dtype=torch.long)


def test_every_registered_degradation_is_exercised():
    assert {options["name"] for options in EVERY} == set(DEGRADATIONS)


@pytest.mark.parametrize("options", EVERY, ids=lambda o: "-".join(map(str, o.values())))
def test_level_zero_is_the_clean_image(options):
    degradation = create_degradation(T, **options)
    assert torch.equal(degradation(X0, levels(0), NOISE), X0)
    assert not torch.allclose(degradation(X0, levels(T), NOISE), X0)


@pytest.mark.parametrize("options", EVERY, ids=lambda o: "-".join(map(str, o.values())))
def test_rows_at_mixed_levels_match_rows_degraded_alone(options):
    degradation = create_degradation(T, **options)
    t = torch.tensor([0, 2, T])
    together = degradation(X0, t, NOISE)
    for row, level in enumerate(t.tolist()):
        alone = degradation(X0[row : row + 1], torch.tensor([level]), NOISE[row : row + 1])
        torch.testing.assert_close(together[row : row + 1], alone, rtol=0, atol=1e-12)


@pytest.mark.parametrize("size, std", [(3, 0.5), (11, 7.0), (5, 1e-3)])
def test_blur_kernels_sum_to_one(size, std):
    kernel = gaussian_kernel(size, std)
    assert kernel.shape == (size, size)
    assert abs(float(kernel.sum()) - 1) < 1e-15  # float64 sum of size² positive terms


@pytest.mark.parametrize("padding", ["circular", "reflect"])
def test_blurring_a_constant_image_leaves_it_unchanged(padding):
    blur = create_degradation(T, "blur", kernel_size=5, kernel_std=2.0, padding=padding)
    constant = torch.full(SHAPE, 0.3, dtype=torch.float64)
    # T·25 products and sums of float64 weights summing to one: rounding well under 1e-14
    torch.testing.assert_close(blur(constant, levels(T)), constant, rtol=0, atol=1e-14)


def test_blur_preserves_the_mean_with_circular_padding_and_smooths():
    blur = create_degradation(T, "blur", kernel_size=5, kernel_std=1.0)
    blurred = blur(X0, levels(T))
    torch.testing.assert_close(blurred.mean(dim=(2, 3)), X0.mean(dim=(2, 3)))
    assert blurred.std() < 0.5 * X0.std()


def test_discrete_blurs_last_step_is_the_channel_mean():
    blur = create_degradation(T, "blur", kernel_size=3, kernel_std=0.5, discrete=True)
    last = blur(X0, levels(T))
    expected = X0.mean(dim=(2, 3), keepdim=True).expand_as(X0)
    torch.testing.assert_close(last, expected, rtol=0, atol=0)
    assert not torch.allclose(blur(X0, levels(T - 1)), expected, atol=1e-3)


@pytest.mark.parametrize("centre", ["fixed", "random"])
def test_masks_lie_in_the_unit_interval_and_never_grow_back(centre):
    inpaint = create_degradation(8, "inpaint", kernel_std=1.0, centre=centre)
    masks = [inpaint.mask(X0, levels(t), NOISE) for t in range(9)]
    assert torch.equal(masks[0], torch.ones_like(masks[0]))
    for before, after in zip(masks[:-1], masks[1:], strict=True):
        assert after.min() >= 0 and after.max() <= 1
        assert (after <= before).all()
    assert masks[-1].min() < 1e-3  # the hole's centre has faded to the fill


def test_inpaint_fades_to_the_fill_value_where_masked():
    inpaint = create_degradation(T, "inpaint", kernel_std=1.0, fill=0.5)
    x = inpaint(X0, levels(T))
    mask = inpaint.mask(X0, levels(T))
    torch.testing.assert_close(x, mask * X0 + (1 - mask) * 0.5)


def test_random_centres_follow_the_noise():
    inpaint = create_degradation(T, "inpaint", kernel_std=1.0, centre="random")
    first = inpaint.mask(X0, levels(T), NOISE)
    assert not torch.equal(first[0], first[1])
    assert torch.equal(inpaint.mask(X0, levels(T), NOISE), first)


@pytest.mark.parametrize("t", range(T + 1))
def test_pixelation_is_constant_on_blocks_of_two_to_the_t(t):
    pixelate = create_degradation(T, "pixelate")
    x = pixelate(X0, levels(t))
    block = 2**t
    blocks = x.unflatten(2, (-1, block)).unflatten(4, (-1, block))  # [N,C,H/b,b,W/b,b]
    spread = blocks.amax(dim=(3, 5)) - blocks.amin(dim=(3, 5))
    assert spread.max() == 0
    torch.testing.assert_close(blocks.mean(dim=(3, 5)), torch.nn.functional.avg_pool2d(X0, block))


def test_pixelate_refuses_images_too_small_for_t():
    with pytest.raises(ConfigError, match="process.num_timesteps"):
        create_degradation(5, "pixelate")(X0, levels(5))


def test_decolorize_ends_at_the_grey_image_and_interpolates():
    decolorize = create_degradation(T, "decolorize")
    grey = X0.mean(dim=1, keepdim=True).expand_as(X0)
    torch.testing.assert_close(decolorize(X0, levels(T)), grey)
    torch.testing.assert_close(decolorize(X0, levels(1)), 0.75 * X0 + 0.25 * grey)


def test_noise_is_ddpms_forward_process():
    noise = create_degradation(1000, "noise")
    from diffusion_lab.diffusion import create_diffusion

    diffusion = create_diffusion("linear", 1000)
    t = torch.tensor([1, 10, 1000])
    expected = diffusion.q_sample(X0, t - 1, noise=NOISE)  # level s is the Gaussian's index s−1
    torch.testing.assert_close(noise(X0, t, NOISE), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "options, key",
    [
        ({"name": "snow"}, "degradation.name"),
        ({"name": "blur", "routine": "linear"}, "degradation.routine"),
        ({"name": "blur", "padding": "zeros"}, "degradation.padding"),
        ({"name": "blur", "kernel_size": 4}, "degradation.kernel_size"),
        ({"name": "inpaint", "centre": "corner"}, "degradation.centre"),
    ],
)
def test_bad_options_name_the_key(options, key):
    with pytest.raises(ConfigError, match=key):
        create_degradation(T, **options)
