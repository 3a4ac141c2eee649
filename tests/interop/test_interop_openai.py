"""from_openai: OpenAI's stored networks reproduced from their state dict and constructor
arguments alone; the key layout; the options it refuses."""

import pytest
import torch
from interoptools import OPENAI_FIXTURES, forward, load_fixture

from diffusion_lab.errors import ConfigError
from diffusion_lab.interop import from_openai, openai_net_config
from diffusion_lab.interop.openai_unet import qkv_from_legacy
from diffusion_lab.models import EncoderUNetModel, UNetModel
from diffusion_lab.models.blocks import AttentionBlock


@pytest.mark.parametrize("name", OPENAI_FIXTURES)
def test_fixture_output_is_reproduced(name):
    fixture = load_fixture(name)
    net = from_openai(fixture["state_dict"], **fixture["constructor"])
    assert not net.training
    assert isinstance(net, EncoderUNetModel if "classifier" in name else UNetModel)
    # The lab's label embedding has one more row (its null class); nothing else is added.
    extra = net.label_emb.embedding_dim if getattr(net, "label_emb", None) is not None else 0
    assert sum(p.numel() for p in net.parameters()) == fixture["params"] + extra
    torch.testing.assert_close(forward(net, fixture), fixture["output"], atol=1e-5, rtol=0)


def test_constructor_arguments_map_to_the_labs():
    fixture = load_fixture("iddpm_unet")
    config = openai_net_config(fixture["constructor"])
    # downsampling factor 2 at 32 px is the 16x16 resolution; 6 outputs = 3 means + 3 variances
    assert config["attention_resolutions"] == [16]
    assert (config["out_channels"], config["learn_sigma"]) == (3, True)
    assert config["_target_"] == "diffusion_lab.models.UNetModel"
    classifier = openai_net_config(load_fixture("adm_classifier")["constructor"], classifier=True)
    assert (classifier["out_channels"], classifier["pool"]) == (1000, "attention")


def test_null_class_row_is_zero_and_labels_keep_their_rows():
    fixture = load_fixture("adm_unet_cond")
    net = from_openai(fixture["state_dict"], **fixture["constructor"])
    rows = fixture["state_dict"]["label_emb.weight"].float()
    assert torch.equal(net.label_emb.weight[:-1], rows)
    assert not net.label_emb.weight[-1].any()


def test_new_attention_order_keeps_qkv_rows():
    """guided-diffusion's use_new_attention_order splits q, k, v before the heads, as the lab
    does: the same network stored in that order converts to the same outputs."""
    fixture = load_fixture("adm_unet_cond")
    reference = from_openai(fixture["state_dict"], **fixture["constructor"])
    reordered = dict(fixture["state_dict"])
    for name, module in reference.named_modules():
        if isinstance(module, AttentionBlock):
            for kind in ("weight", "bias"):
                key = f"{name}.qkv.{kind}"
                reordered[key] = qkv_from_legacy(reordered[key].float(), module.num_heads)
    new_order = {**fixture["constructor"], "use_new_attention_order": True}
    net = from_openai(reordered, **new_order)
    torch.testing.assert_close(forward(net, fixture), fixture["output"], atol=1e-5, rtol=0)


def test_legacy_order_is_undone():
    """Rows [heads, 3, d] become [3, heads, d]: row h·3d + j·d + c goes to j·heads·d + h·d + c."""
    heads, d = 2, 3
    legacy = torch.arange(3 * heads * d, dtype=torch.float32)
    expected = [h * 3 * d + j * d + c for j in range(3) for h in range(heads) for c in range(d)]
    assert qkv_from_legacy(legacy, heads).tolist() == expected


def test_weights_that_do_not_fit_the_arguments_are_named():
    fixture = load_fixture("iddpm_unet")
    wrong = {**fixture["constructor"], "model_channels": 64}
    with pytest.raises(ConfigError, match=r"do not fit.*wrong shape: input_blocks\.0\.0\.bias"):
        from_openai(fixture["state_dict"], **wrong)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"dims": 1}, "dims=1"),
        ({"conv_resample": False}, "conv_resample=False"),
        ({"channel_mult": (0.5, 1)}, r"channel_mult=\(0\.5, 1\)"),
        ({"num_heads_upsample": 2}, "num_heads_upsample=2"),
        ({"use_spatial_transformer": True}, r"no arguments \['use_spatial_transformer'\]"),
        ({"image_size": None}, r"\['image_size'\] are missing"),
    ],
)
def test_unsupported_options_are_refused_by_name(change, message):
    constructor = {**load_fixture("iddpm_unet")["constructor"], **change}
    if constructor["image_size"] is None:
        del constructor["image_size"]
    with pytest.raises(ConfigError, match=message):
        openai_net_config(constructor)


def test_spatial_pooling_is_refused():
    constructor = {**load_fixture("adm_classifier")["constructor"], "pool": "spatial"}
    with pytest.raises(ConfigError, match="pool='spatial'"):
        openai_net_config(constructor, classifier=True)
