"""What only a GPU can check, marked `cuda`: `python -m pytest -m cuda tests/cuda` (and
benchmarks/gpu_check.py) runs it. Without CUDA each test is skipped at collection, with the
reason, so no fixture of theirs runs."""

import pytest
import torch

from diffusion_lab.lightning import DiffusionModule
from diffusion_lab.models.presets import preset_config

REASON = "needs a CUDA device (torch.cuda.is_available() is False)"
# attention and AdaGN: the layers with the reshapes and the reductions that differ by device
NET = preset_config("tiny", 16, 3, attention_resolutions=[8], use_scale_shift_norm=True)
DIFFUSION = {"schedule": "linear", "num_timesteps": 1000}
ADAM = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-3, "fused": None}


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    for item in items:
        if item.get_closest_marker("cuda"):
            item.add_marker(pytest.mark.skip(reason=REASON))


@pytest.fixture
def no_tf32():
    """Plain float32 matmuls and convolutions (cuDNN defaults to TF32's 10-bit mantissas)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.fixture
def make_module():
    """DiffusionModule(NET + switches) on the CPU, noise on every weight so that the
    zero-initialised output layers contribute, the same for the same seed."""

    def make(seed: int = 0, **switches) -> DiffusionModule:
        torch.manual_seed(seed)
        module = DiffusionModule({**NET, **switches}, DIFFUSION, ADAM)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in module.net.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=generator))
        return module

    return make


@pytest.fixture
def relative_error():
    """‖value − reference‖ / ‖reference‖ in float64; NaN, which passes no bound, for a NaN."""

    def error(value: torch.Tensor, reference: torch.Tensor) -> float:
        value, reference = value.detach().double().cpu(), reference.detach().double().cpu()
        return float((value - reference).norm() / reference.norm())

    return error
