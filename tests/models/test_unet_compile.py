"""torch.compile of the tiny preset as one graph (slow on CPU: Inductor codegen takes ~40 s)."""

import pytest
import torch

from diffusion_lab.models.presets import build_preset


@pytest.mark.slow
def test_tiny_preset_compiles_fullgraph_and_matches_eager():
    torch._dynamo.reset()
    model = build_preset("tiny", 16, 3, learn_sigma=True, num_classes=2).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x, t, y = torch.randn(2, 3, 16, 16), torch.tensor([5, 900]), torch.tensor([0, 2])
    compiled = torch.compile(model, fullgraph=True)
    torch.testing.assert_close(compiled(x, t, y), model(x, t, y), atol=1e-4, rtol=1e-4)
