"""EncoderUNetModel, ADM's noisy classifier: logits shape, pooling heads, input gradients."""

import pytest
import torch

from diffusion_lab.models import EncoderUNetModel

# conf/train_classifier.yaml's classifier at a test width.
CLASSIFIER = dict(
    image_size=16,
    in_channels=3,
    model_channels=32,
    out_channels=10,
    num_res_blocks=1,
    attention_resolutions=[8, 4],
    channel_mult=[1, 2, 2],
    num_head_channels=32,
    use_scale_shift_norm=True,
    resblock_updown=True,
)


@pytest.mark.parametrize("pool", ["attention", "adaptive"])
def test_logits_shape_and_input_gradient(pool):
    model = EncoderUNetModel(**CLASSIFIER, pool=pool)
    x = torch.randn(3, 3, 16, 16, requires_grad=True)
    logits = model(x, torch.tensor([0, 100, 999]))
    assert logits.shape == (3, 10)
    if pool == "adaptive":
        assert torch.equal(logits, torch.zeros(3, 10))  # zero-initialised head
    else:
        (grad,) = torch.autograd.grad(logits.log_softmax(-1)[:, 2].sum(), x)
        assert grad.shape == x.shape and grad.abs().sum() > 0


def test_timestep_changes_logits():
    model = EncoderUNetModel(**CLASSIFIER).eval()
    with torch.no_grad():  # fresh residual branches are zero, so t would not matter yet
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x = torch.randn(1, 3, 16, 16).expand(2, -1, -1, -1)
    logits = model(x, torch.tensor([0, 900]))
    assert not torch.allclose(logits[0], logits[1])


def test_classifier_config_parameter_count():
    # conf/train_classifier.yaml on CIFAR-10 (ADM's classifier head, attention pooling)
    cifar = dict(image_size=32, model_channels=128, num_res_blocks=2, channel_mult=[1, 2, 2, 2])
    with torch.device("meta"):
        model = EncoderUNetModel(
            **{**CLASSIFIER, **cifar, "attention_resolutions": [16, 8], "num_head_channels": 64}
        )
    assert sum(p.numel() for p in model.parameters()) == 17_312_778
