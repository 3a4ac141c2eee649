"""Text encoders: GLIDE's transformer pads invariantly and trains; frozen CLIP and T5 (tiny
random ones saved in the real file formats) load from local files, get no gradient, stay out of
optimizers and of the state dict a checkpoint saves, and stop in one line without weights."""

import copy
import json

import pytest
import torch
from text.texttools import CAPTIONS, randomise, tiny_encoder, tiny_text_unet

from diffusion_lab.errors import ConfigError, WeightsNotFoundError
from diffusion_lab.models.text import (
    ClipTextEncoder,
    T5TextEncoder,
    TransformerTextEncoder,
    build_text_encoder,
)


@pytest.fixture(scope="module")
def clip_weights(tmp_path_factory):
    """A 1-layer, 32-wide CLIP in open_clip's registry and its weights file (random)."""
    import open_clip

    folder = tmp_path_factory.mktemp("clip")
    config = {
        "embed_dim": 16,
        "vision_cfg": {
            "image_size": 16,
            "layers": 1,
            "width": 32,
            "patch_size": 8,
            "head_width": 16,
        },
        "text_cfg": {
            "context_length": 77,
            "vocab_size": 49408,
            "width": 32,
            "heads": 2,
            "layers": 1,
        },
    }
    (folder / "tiny-clip-test.json").write_text(json.dumps(config))
    open_clip.add_model_config(folder / "tiny-clip-test.json")
    torch.manual_seed(0)
    model = open_clip.create_model("tiny-clip-test")
    torch.save(model.state_dict(), folder / "open_clip_pytorch_model.bin")
    return folder / "open_clip_pytorch_model.bin"


@pytest.fixture(scope="module")
def t5_folder(tmp_path_factory):
    """A 1-layer, 16-wide T5 encoder and a word-level tokenizer, in save_pretrained's layout."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

    folder = tmp_path_factory.mktemp("t5")
    words = sorted({w for c in CAPTIONS for w in c.replace(",", " ,").split()})
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(words)}}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", 1)]
    )
    PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    ).save_pretrained(folder)
    torch.manual_seed(0)
    config = T5Config(vocab_size=len(vocab), d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2)
    T5EncoderModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(params=["clip", "t5"])
def frozen(request, clip_weights, t5_folder):
    if request.param == "clip":
        return ClipTextEncoder(weights=clip_weights, model_name="tiny-clip-test", width=32)
    return T5TextEncoder(path=t5_folder, width=16)


class TextToImage(torch.nn.Module):
    """What a LightningModule holds: a text encoder and the U-Net."""

    def __init__(self, encoder):
        super().__init__()
        self.text_encoder = encoder
        self.net = tiny_text_unet("cross_attention", text_channels=encoder.width)


def test_transformer_pads_invariantly():
    """Real tokens' states and the pooled state do not depend on the padding (float64: equal
    up to summation order, 1e-12)."""
    encoder = tiny_encoder().double()
    randomise(encoder)
    tokens, mask = encoder.tokenizer(CAPTIONS)
    longest = int(mask.sum(1).max())
    tight, full = (
        encoder.encode(tokens[:, :longest], mask[:, :longest]),
        encoder.encode(tokens, mask),
    )
    torch.testing.assert_close(full.tokens[:, :longest], tight.tokens, rtol=0, atol=1e-12)
    torch.testing.assert_close(full.pooled, tight.pooled, rtol=0, atol=1e-12)
    assert (full.tokens[:, longest:] == 0).all()
    assert full.pooled[0].sub(full.pooled[1]).abs().max() > 1e-3  # captions differ


def test_transformer_trains_and_is_in_the_state_dict():
    module = TextToImage(tiny_encoder())
    keys = module.state_dict().keys()
    assert "text_encoder.token_embedding.weight" in keys and module.text_encoder.trainable
    states = module.text_encoder(CAPTIONS)
    states.pooled.sum().backward()
    assert module.text_encoder.token_embedding.weight.grad.abs().sum() > 0


def test_frozen_encoder_gets_no_gradient_and_no_optimizer_slot(frozen):
    module = TextToImage(frozen)
    held = list(frozen.held.module.parameters())
    assert held and not frozen.trainable
    states = frozen(CAPTIONS)
    assert not states.tokens.requires_grad
    x = torch.randn(len(CAPTIONS), 3, 8, 8)
    randomise(module.net)
    module.net(x, torch.full((len(CAPTIONS),), 10.0), text=states).square().mean().backward()
    assert all(p.grad is None for p in held)
    optimizer = torch.optim.Adam(p for p in module.parameters() if p.requires_grad)
    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert in_optimizer and not in_optimizer & {id(p) for p in held}


def test_frozen_weights_are_not_in_the_checkpoint_and_come_back_from_the_file(frozen, tmp_path):
    module = TextToImage(frozen)
    state = module.state_dict()
    assert not [k for k in state if k.startswith("text_encoder")]
    torch.save(state, tmp_path / "module.pt")
    again = TextToImage(rebuild(frozen))
    again.load_state_dict(torch.load(tmp_path / "module.pt", weights_only=True), strict=True)
    for a, b in zip(
        frozen.held.module.parameters(), again.text_encoder.held.module.parameters(), strict=True
    ):
        assert torch.equal(a, b)
    torch.testing.assert_close(again.text_encoder(CAPTIONS).tokens, frozen(CAPTIONS).tokens)


def rebuild(frozen):
    """The same encoder built anew from its config, as a checkpoint's hyperparameters do."""
    if isinstance(frozen, ClipTextEncoder):
        return build_text_encoder(
            {
                "name": "clip",
                "weights": frozen.weights_path,
                "model_name": "tiny-clip-test",
                "width": 32,
            }
        )
    return build_text_encoder({"name": "t5", "path": frozen.folder, "width": 16})


def test_frozen_encoder_caches_per_caption_and_follows_the_module(frozen):
    first = frozen(["a bright image", ""])
    assert set(frozen.cache) == {"a bright image", ""}
    again = frozen(["", "a bright image", "a bright image"])
    torch.testing.assert_close(again.pooled[1], first.pooled[0], rtol=0, atol=0)
    # the same states as encoding each caption alone: the cache and the batch's padding agree
    alone = frozen.encode_uncached([""])[0]
    torch.testing.assert_close(again.tokens[0, : len(alone[0])], alone[0])
    assert again.mask[0].sum() == len(alone[0])
    frozen.double()
    assert not frozen.cache and next(frozen.held.module.parameters()).dtype == torch.float64
    assert frozen(["a bright image"]).tokens.dtype == torch.float64
    frozen.float()
    shared = copy.deepcopy(frozen)  # EMA's copy: the frozen network is shared, not copied
    assert shared.held.module is frozen.held.module
    frozen.cache_size = 1
    frozen(CAPTIONS)
    assert list(frozen.cache) == [CAPTIONS[-1]]


def test_missing_weights_stop_in_one_line(tmp_path):
    with pytest.raises(WeightsNotFoundError) as clip:
        ClipTextEncoder(weights=tmp_path / "absent.bin")
    with pytest.raises(WeightsNotFoundError) as t5:
        T5TextEncoder(path=tmp_path / "absent")
    for err, key in ((clip, "text_encoder.weights"), (t5, "text_encoder.path")):
        message = str(err.value)
        assert "\n" not in message and key in message and "absent" in message
        assert "download" in message
    assert "vit_large_patch14_clip_224.openai" in str(clip.value)


def test_width_must_match_the_model(clip_weights, t5_folder):
    with pytest.raises(ConfigError, match="text_encoder.width=768.*32"):
        ClipTextEncoder(weights=clip_weights, model_name="tiny-clip-test")
    with pytest.raises(ConfigError, match="text_encoder.width=768.*16"):
        T5TextEncoder(path=t5_folder)


def test_registry_names_the_encoders():
    assert isinstance(
        build_text_encoder({"name": "transformer", "vocab": ["a"], "width": 8, "heads": 2}),
        TransformerTextEncoder,
    )
    with pytest.raises(ConfigError, match="text_encoder.name='bert'.*transformer, clip, t5"):
        build_text_encoder({"name": "bert"})
    with pytest.raises(ConfigError, match="text_encoder.vocab"):
        build_text_encoder({"name": "transformer", "vocab": None})
