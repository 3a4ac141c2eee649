"""DiffusionModule with a text encoder: captions from 3-tuple batches, dropped to "" by the rows'
`u_drop`, the jointly trained transformer optimised with the U-Net, a frozen encoder never."""

import pytest
import torch
from text.test_text_encoders import t5_folder  # noqa: F401 (a fixture)
from text.texttools import CAPTIONS

from diffusion_lab.errors import ConfigError
from diffusion_lab.lightning import DiffusionModule
from diffusion_lab.models.text.registry import needs_vocab, vocab_of

NET = {
    "_target_": "diffusion_lab.models.UNetModel",
    "image_size": 8,
    "in_channels": 3,
    "model_channels": 32,
    "channel_mult": [1, 2],
    "num_res_blocks": 1,
    "attention_resolutions": [4],
    "num_head_channels": 16,
    "use_scale_shift_norm": True,
}
DIFFUSION = {"schedule": "linear", "num_timesteps": 100}
OPTIMIZER = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-3}
TRANSFORMER = {"name": "transformer", "vocab": None, "context_length": 12, "width": 16}


def text_module(encoder: dict, text_mode: str = "glide", **kwargs) -> DiffusionModule:
    torch.manual_seed(0)
    net = {**NET, "text_channels": encoder["width"], "text_mode": text_mode}
    return DiffusionModule(net, DIFFUSION, OPTIMIZER, text_encoder=encoder, **kwargs)


def transformer(**overrides) -> dict:
    config = {**TRANSFORMER, **overrides}
    return {**config, "vocab": vocab_of(CAPTIONS, config["context_length"])}


def batch(n: int = 4):
    images = torch.rand(n, 3, 8, 8) * 2 - 1
    captions = [CAPTIONS[i % 3] for i in range(n)]  # none of them ""
    return images, torch.zeros(n, dtype=torch.long), captions


def test_vocab_comes_from_the_captions_without_the_special_tokens():
    assert needs_vocab(TRANSFORMER) and not needs_vocab(transformer())
    assert not needs_vocab({"name": "t5"}) and not needs_vocab(None)
    vocab = vocab_of(["A red 3", "a blue 3, small"], 8)
    assert vocab == [",", "3", "a", "blue", "red", "small"]


def test_captions_are_dropped_where_the_rows_draw_below_cond_drop_prob():
    module = text_module(transformer(), cond_drop_prob=0.5)
    images, labels, captions = batch(4)
    u_drop = torch.tensor([0.1, 0.9, 0.49, 0.5])
    got = module.model_kwargs((images, labels, captions), u_drop)["text"]
    expected = module.text_encoder(["", captions[1], "", captions[3]])
    torch.testing.assert_close(got.tokens, expected.tokens, rtol=0, atol=0)
    assert set(module.model_kwargs((images, labels, captions))) == {"text"}  # no labels


def test_the_optimizer_holds_the_transformer_and_the_net():
    module = text_module(transformer())
    [group] = module.configure_optimizers()["optimizer"].param_groups
    held = {id(p) for p in group["params"]}
    assert held == {id(p) for p in module.parameters()}
    assert {id(p) for p in module.text_encoder.parameters()} <= held


def test_a_frozen_encoder_is_not_in_the_optimizer_nor_the_state_dict(t5_folder):  # noqa: F811
    module = text_module(
        {"name": "t5", "path": str(t5_folder), "width": 16}, text_mode="cross_attention"
    )
    frozen = {id(p) for p in module.text_encoder.held.module.parameters()}
    [group] = module.configure_optimizers()["optimizer"].param_groups
    assert frozen and not frozen & {id(p) for p in group["params"]}
    assert not [k for k in module.state_dict() if k.startswith("text_encoder")]
    assert module(**module.example_input_array).shape == (1, 3, 8, 8)


def test_training_steps_move_the_transformer():
    module = text_module(transformer())
    optimizer = module.configure_optimizers()["optimizer"]
    images, labels, captions = batch(4)
    t = torch.full((4,), 50)
    before = module.text_encoder.token_embedding.weight.detach().clone()
    # the residual blocks' output convolutions and the text projections start at zero: steps 1
    # and 2 move them off zero with the encoder's gradient exactly 0; step 3's reaches it
    for _ in range(3):
        kwargs = module.model_kwargs((images, labels, captions))
        terms = module.diffusion.training_losses(module.net, images, t, model_kwargs=kwargs)
        optimizer.zero_grad()
        terms["loss"].mean().backward()
        optimizer.step()
    assert not torch.equal(before, module.text_encoder.token_embedding.weight)


def test_a_text_encoder_needs_a_text_unet():
    with pytest.raises(ConfigError, match="model.text_channels"):
        DiffusionModule(NET, DIFFUSION, OPTIMIZER, text_encoder=transformer())
