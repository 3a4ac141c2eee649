"""UNetModel(conventions="ddpm_tf"): DDPM's TensorFlow numerics (timestep embedding, GroupNorm
eps, stride-2 padding) in closed form, and nothing else changed."""

import math

import pytest
import torch
import torch.nn.functional as F

from diffusion_lab.errors import ConfigError
from diffusion_lab.models import UNetModel
from diffusion_lab.models.blocks import Downsample, timestep_embedding

TINY = dict(
    image_size=16,
    in_channels=3,
    model_channels=32,
    num_res_blocks=1,
    attention_resolutions=[8],
    channel_mult=(1, 2),
)


def test_ddpm_tf_timestep_embedding_closed_form():
    # dim 4: exponents i/(2 - 1), frequencies 1 and 10000^-1; sin first, then cos.
    emb = timestep_embedding(torch.tensor([1.0, 1000.0]), 4, conventions="ddpm_tf")
    expected = torch.tensor(
        [[math.sin(t), math.sin(t / 1e4), math.cos(t), math.cos(t / 1e4)] for t in (1.0, 1000.0)]
    )
    torch.testing.assert_close(emb, expected, atol=2e-6, rtol=0)


def test_ddpm_tf_downsampling_pads_bottom_and_right_only():
    tf, adm = Downsample(8, conventions="ddpm_tf"), Downsample(8)
    adm.load_state_dict(tf.state_dict())
    x = torch.randn(2, 8, 6, 6)
    expected = F.conv2d(F.pad(x, (0, 1, 0, 1)), tf.conv.weight, tf.conv.bias, stride=2)
    torch.testing.assert_close(tf(x), expected)
    assert tf(x).shape == adm(x).shape == (2, 8, 3, 3)
    assert not torch.allclose(tf(x), adm(x))


def test_conventions_set_every_group_norm_eps_and_keep_the_parameters():
    tf, adm = UNetModel(**TINY, conventions="ddpm_tf"), UNetModel(**TINY)
    norms = [m for m in tf.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert norms and all(m.eps == 1e-6 for m in norms)
    assert all(m.eps == 1e-5 for m in adm.modules() if isinstance(m, torch.nn.GroupNorm))
    shapes = {name: tensor.shape for name, tensor in adm.state_dict().items()}
    assert {name: tensor.shape for name, tensor in tf.state_dict().items()} == shapes


def test_unknown_conventions_are_refused():
    with pytest.raises(ConfigError, match=r"conventions='tf' is not one of \['adm', 'ddpm_tf'\]"):
        UNetModel(**TINY, conventions="tf")
