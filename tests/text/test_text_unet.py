"""The U-Net's text conditioning, GLIDE's and Stable Diffusion's: padding changes nothing, the
caption changes nothing at initialisation and something after training, and without text the
network is the one it was."""

import pytest
import torch
from text.texttools import CAPTIONS, randomise, tiny_encoder, tiny_text_unet

from diffusion_lab.errors import ConfigError
from diffusion_lab.models import UNetModel

MODES = ["glide", "cross_attention"]


def inputs(n: int, dtype=torch.float64):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, 8, 8, generator=generator, dtype=dtype)
    return x, torch.tensor([3.0, 500.0, 999.0, 42.0][:n], dtype=dtype)


@pytest.mark.parametrize("mode", MODES)
def test_padding_changes_nothing(mode):
    """The same captions with 24 - L_max and 24 + 9 - L_max padding tokens: masked attention in
    the encoder and the U-Net gives the same output. float64: only summation order differs, so
    1e-10 is far above rounding (~1e-15) and far below any effect of attending to padding (the
    padded states are non-zero after encoder_kv/to_k's bias: O(0.1))."""
    encoder, net = tiny_encoder().double(), tiny_text_unet(mode).double()
    randomise(net)
    randomise(encoder)
    tokens, mask = encoder.tokenizer(CAPTIONS)
    shortest = int(mask.sum(1).max())
    x, t = inputs(len(CAPTIONS))
    with torch.no_grad():
        tight = encoder.encode(tokens[:, :shortest], mask[:, :shortest])
        full = encoder.encode(tokens, mask)
        out_tight = net(x, t, text=tight)
        out_full = net(x, t, text=full)
        out_more = net(x, t, text=full.pad_to(33))
    torch.testing.assert_close(out_full, out_tight, rtol=0, atol=1e-10)
    torch.testing.assert_close(out_more, out_tight, rtol=0, atol=1e-10)
    assert out_tight.abs().mean() > 0.1  # a real output, not zeros


def text_gates(mode: str):
    """The parameters that keep the caption out of the output at initialisation."""
    if mode == "glide":
        return lambda name: name.startswith("transformer_proj") or ".proj_out" in name
    return lambda name: ".proj_out" in name  # SpatialTransformer's


@pytest.mark.parametrize("mode", MODES)
def test_caption_changes_nothing_at_initialisation(mode):
    """Every other parameter moved (the U-Net's own zeroed out_conv included, so the output is
    not trivially 0): the zeroed text projections alone keep the output caption-free."""
    encoder, net = tiny_encoder().double(), tiny_text_unet(mode).double()
    randomise(encoder)
    randomise(net, keep=text_gates(mode))
    x, t = inputs(1)
    with torch.no_grad():
        outs = [net(x, t, text=encoder([c])) for c in CAPTIONS]
    for out in outs[1:]:
        torch.testing.assert_close(out, outs[0], rtol=0, atol=1e-12)
    assert outs[0].abs().mean() > 0.1
    # the same network with the gates opened does depend on the caption
    randomise(net, keep=lambda name: False)
    with torch.no_grad():
        opened = [net(x, t, text=encoder([c])) for c in CAPTIONS[:2]]
    assert (opened[0] - opened[1]).abs().max() > 1e-3


@pytest.mark.parametrize("mode", MODES)
def test_a_few_steps_teach_the_caption(mode):
    """A toy objective (output +1 for one caption, -1 for the other) from the real
    initialisation: after 40 Adam steps the two captions' outputs differ by far more than
    the 1e-3 that would be noise, and point the right way."""
    encoder, net = tiny_encoder(), tiny_text_unet(mode)
    params = [*encoder.parameters(), *net.parameters()]
    optimizer = torch.optim.Adam(params, lr=2e-3)
    x, t = inputs(2, torch.float32)
    captions = ["a bright image", "a small red sneaker on the left"]
    target = torch.tensor([1.0, -1.0])[:, None, None, None].expand(2, 3, 8, 8)
    with torch.no_grad():
        before = net(x, t, text=encoder(captions))
    assert before.abs().max() == 0  # the zeroed output layer
    for _ in range(40):
        optimizer.zero_grad()
        out = net(x[:1].expand(2, -1, -1, -1), t[:1].expand(2), text=encoder(captions))
        torch.nn.functional.mse_loss(out, target).backward()
        optimizer.step()
    with torch.no_grad():
        after = net(x[:1].expand(2, -1, -1, -1), t[:1].expand(2), text=encoder(captions))
    assert after[0].mean() - after[1].mean() > 0.5


def test_without_text_nothing_of_it_is_in_the_network():
    plain = tiny_text_unet("glide", text_channels=None)
    names = [name for name, _ in plain.named_parameters()]
    assert not [n for n in names if "encoder_kv" in n or "transformer" in n or "attn" in n]
    glide = {n for n, _ in tiny_text_unet("glide").named_parameters()}
    # GLIDE's conditioning only adds parameters: the plain network's are all still there
    assert set(names) <= glide and {n for n in glide - set(names)} == {
        n for n in glide if "encoder_kv" in n or n.startswith("transformer_proj")
    }
    x, t = inputs(1, torch.float32)
    with pytest.raises(ValueError, match="not text-conditioned"):
        plain(x, t, text=tiny_encoder()(["a"]))


@pytest.mark.parametrize("mode", MODES)
def test_a_text_unet_needs_the_caption(mode):
    x, t = inputs(1, torch.float32)
    with pytest.raises(ValueError, match="empty caption"):
        tiny_text_unet(mode)(x, t)


@pytest.mark.parametrize(
    ("overrides", "key"),
    [({"text_mode": "film"}, "text_mode='film'"), ({"text_channels": 0}, "text_channels=0")],
)
def test_bad_text_settings_name_the_key(overrides, key):
    with pytest.raises(ConfigError, match=key):
        UNetModel(
            image_size=8,
            in_channels=3,
            model_channels=32,
            num_res_blocks=1,
            attention_resolutions=[],
            channel_mult=(1, 2),
            **{"text_channels": 16, **overrides},
        )


def test_gradient_checkpointing_gives_the_same_gradients():
    """Recomputation in backward sees the same text: float64, only rounding differs."""
    encoder = tiny_encoder().double()
    grads = []
    for use_checkpoint in (False, True):
        net = tiny_text_unet("cross_attention", use_checkpoint=use_checkpoint).double()
        randomise(net)
        x, t = inputs(2)
        net(x, t, text=encoder(CAPTIONS[:2])).square().sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in net.parameters()]))
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-9, atol=1e-12)


def test_a_text_unet_does_not_convert_to_a_unet2dmodel():
    from diffusion_lab.interop.diffusers_config import diffusers_config

    net = {
        "_target_": "diffusion_lab.models.UNetModel",
        "image_size": 8,
        "in_channels": 3,
        "model_channels": 32,
        "num_res_blocks": 1,
        "attention_resolutions": [],
        "text_channels": 16,
    }
    with pytest.raises(ConfigError, match="text-conditioned"):
        diffusers_config(net, learn_sigma=False)
