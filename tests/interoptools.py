"""For the interop tests: OpenAI's networks as stored fixtures (shared/fixtures/openai, next to
the repository) and randomly perturbed networks."""

from pathlib import Path

import pytest
import torch

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "openai"
OPENAI_FIXTURES = ("iddpm_unet", "adm_unet_cond", "adm_classifier")


def load_fixture(name: str) -> dict:
    """Fixture `name`: state_dict (float16), constructor, x, t, y, output; skips if absent."""
    path = FIXTURES / f"{name}.pt"
    if not path.is_file():
        pytest.skip(f"the OpenAI fixtures are not there ({path} is missing)")
    return torch.load(path, weights_only=True)


def forward(net: torch.nn.Module, fixture: dict) -> torch.Tensor:
    """The network's output on a fixture's input (labels for a class-conditional U-Net only)."""
    conditional = getattr(net, "label_emb", None) is not None
    with torch.no_grad():
        if conditional:
            return net(fixture["x"], fixture["t"], fixture["y"])
        return net(fixture["x"], fixture["t"])


def perturbed(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """`model` in eval mode with noise added to every parameter, so that zero-initialised
    layers contribute."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=generator))
    return model.eval()
