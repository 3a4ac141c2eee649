"""Classifier-free guidance on captions and caption dropout."""

import math

import torch
from text.texttools import CAPTIONS, randomise, tiny_encoder, tiny_text_unet

from diffusion_lab.guidance import CaptionClassifierFreeGuidance
from diffusion_lab.lightning.caption_dropout import drop_captions
from diffusion_lab.lightning.rows import draw_rows, global_rows


def guided_setup():
    encoder, net = tiny_encoder().double(), tiny_text_unet("glide").double()
    randomise(encoder)
    randomise(net)
    x = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return encoder, net, x, torch.tensor([10.0, 400.0, 900.0], dtype=torch.float64)


@torch.no_grad()
def test_guidance_is_the_combination_of_the_caption_and_empty_caption_passes():
    """The doubled batch (captions and "" padded together) equals two separate passes, each at
    its own length, combined as ε_u + w·(ε_c − ε_u); w = 0 is exactly the unconditional path
    model(x, t, text=encoder([""] * N)). float64: summation order only, 1e-10."""
    encoder, net, x, t = guided_setup()
    captions = CAPTIONS[:3]
    empty = encoder([""])
    cond = net(x, t, text=encoder(captions))
    uncond = net(x, t, text=encoder([""] * 3))
    for scale in (0.0, 3.0):
        guided = CaptionClassifierFreeGuidance(net, scale, empty)(x, t, text=encoder(captions))
        torch.testing.assert_close(guided, uncond + scale * (cond - uncond), rtol=0, atol=1e-10)
    assert (cond - uncond).abs().max() > 1e-3  # the caption matters in this network
    unguided = CaptionClassifierFreeGuidance(net, 1.0, empty)(x, t, text=encoder(captions))
    torch.testing.assert_close(unguided, cond, rtol=0, atol=0)


@torch.no_grad()
def test_learned_variance_channels_are_the_caption_passes():
    encoder = tiny_encoder().double()
    net = tiny_text_unet("cross_attention", learn_sigma=True).double()
    randomise(encoder)
    randomise(net)
    x, t = torch.randn(2, 3, 8, 8, dtype=torch.float64), torch.tensor([5.0, 50.0]).double()
    guided = CaptionClassifierFreeGuidance(net, 4.0, encoder([""]))(
        x, t, text=encoder(CAPTIONS[:2])
    )
    cond = net(x, t, text=encoder(CAPTIONS[:2]))
    torch.testing.assert_close(guided[:, 3:], cond[:, 3:], rtol=0, atol=1e-10)


def test_dropout_rate_matches_cond_drop_prob():
    """20,000 rows' u_drop from the training streams, p = 0.2: the dropped count is
    Binomial(n, p), standard deviation √(n·p·(1−p)) ≈ 57; 5 deviations (≈ 1.4 points of rate)
    fail once in ~3.5 million runs, a wrong p by 0.02 (400 rows) fails always."""
    n, p = 20000, 0.2
    _, u_drop, _ = draw_rows(seed=0, step=7, rows=range(n), image_shape=(1,))
    captions = drop_captions(["a caption"] * n, u_drop, p)
    dropped = captions.count("")
    assert abs(dropped - n * p) < 5 * math.sqrt(n * p * (1 - p))
    assert set(captions) == {"", "a caption"}
    assert drop_captions(["x"] * 10, u_drop[:10], 0.0) == ["x"] * 10
    assert drop_captions(["x"] * 10, u_drop[:10], 1.0) == [""] * 10


def test_processes_drop_the_global_rows_one_process_drops():
    captions = [f"caption {i}" for i in range(8)]
    one = drop_captions(captions, draw_rows(0, 3, global_rows(8, 1, 0), (1,))[1], 0.5)
    assert "" in one and any(one)  # both outcomes occur at p = 0.5 for this seed
    for rank in (0, 1):
        rows = global_rows(4, 2, rank)
        mine = drop_captions([captions[r] for r in rows], draw_rows(0, 3, rows, (1,))[1], 0.5)
        assert mine == [one[r] for r in rows]
