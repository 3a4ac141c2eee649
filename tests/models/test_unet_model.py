"""UNetModel: shapes, initialisation, conditioning, numerics under channels_last / bf16 /
checkpointing / torch.compile tracing, and the closed forms of its building blocks."""

import math

import pytest
import torch

from diffusion_lab.models import UNetModel
from diffusion_lab.models.blocks import AttentionBlock, normalization, timestep_embedding

TINY = dict(
    image_size=16,
    in_channels=3,
    model_channels=32,
    num_res_blocks=1,
    attention_resolutions=[8],
    channel_mult=(1, 2),
    num_head_channels=32,
)


def perturbed(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Adds noise to every parameter so that the zero-initialised branches contribute."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=generator))
    return model


def inputs(n: int = 4, channels: int = 3, size: int = 16):
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(n, channels, size, size, generator=generator)
    t = torch.tensor([0, 10, 500, 999])[:n]
    return x, t


@pytest.mark.parametrize(
    ("kwargs", "out_channels"),
    [({}, 3), ({"learn_sigma": True}, 6), ({"out_channels": 1}, 1), ({"num_classes": 5}, 3)],
)
def test_output_shape(kwargs, out_channels):
    model = UNetModel(**TINY, **kwargs)
    x, t = inputs()
    y = torch.tensor([0, 1, 4, 5]) if "num_classes" in kwargs else None
    assert model(x, t, y).shape == (4, out_channels, 16, 16)


@pytest.mark.parametrize(
    "kwargs", [{}, {"learn_sigma": True, "use_scale_shift_norm": True, "resblock_updown": True}]
)
def test_fresh_model_outputs_zeros(kwargs):
    model = UNetModel(**TINY, **kwargs)
    x, t = inputs()
    assert torch.equal(model(x, t), torch.zeros(4, model.out_channels, 16, 16))


def test_timestep_embedding_closed_form():
    # dim 4: frequencies 10000^(-0/2) = 1 and 10000^(-1/2) = 0.01; cos first, then sin.
    emb = timestep_embedding(torch.tensor([1, 1000]), 4)
    expected = torch.tensor(
        [
            [0.5403023059, 0.9999500004, 0.8414709848, 0.0099998333],
            [0.5623790762, -0.8390715291, 0.8268795405, -0.5440211109],
        ]
    )
    assert emb.dtype == torch.float32
    # float32: exp may land an ulp (~1e-7 relative) off the frequency 0.01, which moves the
    # argument 1000·0.01 and so sin(10) by up to ~1e-6; a wrong frequency, offset or cos/sin
    # order is off by ~1e-2 or more
    torch.testing.assert_close(emb, expected, atol=2e-6, rtol=0)
    odd = timestep_embedding(torch.tensor([0.5]), 5)
    assert odd.shape == (1, 5) and odd[0, -1] == 0
    assert odd[0, 0] == pytest.approx(math.cos(0.5)) and odd[0, 2] == pytest.approx(math.sin(0.5))


def test_attention_head_count_and_closed_form():
    by_channels = perturbed(AttentionBlock(64, num_head_channels=16)).double()
    by_heads = AttentionBlock(64, num_heads=4).double()
    by_heads.load_state_dict(by_channels.state_dict())
    assert by_channels.num_heads == by_heads.num_heads == 4
    x = torch.randn(2, 64, 4, 4, dtype=torch.float64)
    out = by_channels(x)
    torch.testing.assert_close(out, by_heads(x))

    # softmax(q kᵀ/√d) v per head, written out
    tokens = by_channels.norm(x).flatten(2).transpose(1, 2)
    q, k, v = by_channels.qkv(tokens).chunk(3, dim=-1)
    heads = [slice(16 * i, 16 * (i + 1)) for i in range(4)]
    attended = torch.cat(
        [torch.softmax(q[..., s] @ k[..., s].transpose(1, 2) / 4.0, -1) @ v[..., s] for s in heads],
        dim=-1,
    )
    expected = x + by_channels.proj_out(attended).transpose(1, 2).reshape(2, 64, 4, 4)
    # the fused kernel sums in another order: float64 rounding ~1e-15 at outputs ~3; a scale of
    # 1/d instead of 1/√d, or heads mixed up, moves outputs by ~0.1
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)


def test_class_embedding_and_null_class():
    model = perturbed(UNetModel(**TINY, num_classes=3)).eval()
    assert model.label_emb.num_embeddings == 4
    x, t = inputs()
    outputs = [model(x, t, torch.full((4,), label)) for label in range(4)]  # label 3 = null
    for i in range(4):
        for j in range(i):
            assert not torch.allclose(outputs[i], outputs[j])
    with pytest.raises(ValueError, match="class-conditional"):
        model(x, t)
    with pytest.raises(ValueError, match="unconditional"):
        UNetModel(**TINY)(x, t, torch.zeros(4, dtype=torch.long))


def test_channels_last_and_bf16_autocast_match_fp32():
    model = perturbed(UNetModel(**TINY, use_scale_shift_norm=True, num_classes=4)).eval()
    x, t = inputs()
    y = torch.tensor([0, 1, 2, 4])
    reference = model(x, t, y)
    model = model.to(memory_format=torch.channels_last)
    last = model(x.to(memory_format=torch.channels_last), t, y)
    # other kernels, other summation order: float32 rounding (eps 1.2e-7) random-walks over
    # sums of up to 3·3·64 terms and ~20 layers to ~3e-5 at outputs ~2 (allowed: 1e-3);
    # channels read as pixels would be off by O(1)
    torch.testing.assert_close(last, reference, atol=1e-3, rtol=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = model(x, t, y)
    assert low.dtype == torch.bfloat16
    # bf16 keeps 8 bits (rounding 3.9e-3) of every layer's output: ~20 layers add up to ~0.02
    # in norm; a broken cast or an overflow is O(1)
    assert (low.float() - reference).norm() / reference.norm() < 0.05


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_group_norm_statistics_are_float32_for_low_precision_inputs(dtype):
    """Far from zero mean (where low-precision sums of squares cancel) the output equals the
    float32 GroupNorm to within one ulp of the output's dtype."""
    norm = normalization(64)
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    x = (torch.randn(2, 64, 8, 8, generator=torch.Generator().manual_seed(0)) * 3 + 1000).to(dtype)
    out = norm(x)
    reference = norm(x.float())
    assert out.dtype == dtype
    # Both kernels keep float32 statistics but sum in different orders (~1e-5 relative once
    # the mean 1000 is subtracted), so an output next to a rounding midpoint may round the
    # other way: within one ulp of the largest output. Statistics in bf16 (which resolves only
    # 4 at 1000) or fp16 (whose sums overflow) are off by O(std), i.e. O(1) at the output
    ulp = torch.finfo(dtype).eps * 2 ** reference.abs().max().log2().floor()
    assert (out.float() - reference).abs().max() <= ulp


def test_gradient_checkpointing_gives_same_gradients():
    model = perturbed(UNetModel(**TINY, dropout=0.3, resblock_updown=True)).train()
    x, t = inputs()

    def gradients(use_checkpoint: bool):
        model.use_checkpoint = use_checkpoint
        model.zero_grad()
        torch.manual_seed(0)  # same dropout masks
        model(x, t).square().mean().backward()
        return [p.grad.clone() for p in model.parameters()]

    for plain, checkpointed in zip(gradients(False), gradients(True), strict=True):
        torch.testing.assert_close(checkpointed, plain)


def test_forward_traces_without_graph_breaks():
    model = UNetModel(**TINY, learn_sigma=True, num_classes=2).eval()
    x, t = inputs()
    explanation = torch._dynamo.explain(model)(x, t, torch.tensor([0, 1, 2, 0]))
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1
