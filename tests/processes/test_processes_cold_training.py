"""A tiny cold-diffusion run on the 8x8 digits: the L1 loss falls and Algorithm 2 restores
blurred digits closer to the originals (RMSE, SSIM) than the blurred inputs are."""

import torch
from sklearn.datasets import load_digits

from diffusion_lab.models import UNetModel
from diffusion_lab.processes import create_process
from diffusion_lab.processes.cold import restore

T = 5


def digits() -> torch.Tensor:
    images = torch.from_numpy(load_digits().images).float() / 16 * 2 - 1
    return images.unsqueeze(1)  # [1797, 1, 8, 8] in [-1, 1]


def test_a_tiny_deblurring_run_learns_to_restore():
    torch.manual_seed(0)
    data = digits()
    train, held_out = data[:1600], data[1600:1664]
    process = create_process(
        {
            "name": "cold",
            "num_timesteps": T,
            "degradation": {"name": "blur", "kernel_size": 3, "kernel_std": 1.0},
        },
        {},
    )
    net = UNetModel(
        image_size=8,
        in_channels=1,
        model_channels=32,
        channel_mult=(1, 2),
        num_res_blocks=1,
        attention_resolutions=(),
    )
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
    losses = []
    for _ in range(50):
        batch = train[torch.randint(len(train), (32,))]
        t = torch.randint(T, (32,))
        loss = process.training_losses(net, batch, t)["loss"].mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    # measured: mean L1 of the first 10 steps ≈0.52, of the last 10 ≈0.25
    assert sum(losses[-10:]) < 0.7 * sum(losses[:10])

    net.eval()
    restoration = restore(net, process, held_out, "cold")
    assert restoration.nfe == T
    metrics = restoration.metrics()
    # measured after 50 steps: RMSE ≈0.29 blurred, ≈0.17 restored; SSIM ≈0.38 and ≈0.84
    assert metrics["rmse"] < 0.85 * metrics["rmse_degraded"]
    assert metrics["ssim"] > metrics["ssim_degraded"] + 0.1
