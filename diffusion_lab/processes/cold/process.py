"""The cold process: a deterministic degradation D(x_0, t) and a restoration network
R(x_t, t) ≈ x_0 trained with an L1 or L2 loss (Bansal et al. 2022, eq. 1)."""

from collections.abc import Iterable

import torch

from diffusion_lab.diffusion import create_named_schedule_sampler
from diffusion_lab.diffusion.losses import mean_flat
from diffusion_lab.errors import ConfigError
from diffusion_lab.processes.cold.degradations import create_degradation
from diffusion_lab.processes.cold.prior import ChannelMeanPrior

PRIOR_IMAGES = 10_000  # training images whose channel means the prior is fitted to

LOSSES = {"l1": lambda error: error.abs(), "l2": lambda error: error**2}


class ColdProcess:
    """Trains R to invert `degradation` at levels t = 1..T.

    Args:
        degradation: `conf/process/degradation/*.yaml`: `name` and its options.
        num_timesteps: T, the degradation levels (reference code: 20 on MNIST, 50 on CIFAR-10).
        loss: "l1" (the paper's) or "l2", the per-pixel error of R(D(x_0, t), t) to x_0.

    Like `GaussianDiffusion`, it never owns the network: `model(x_t, t, **model_kwargs)` with t
    the degradation levels [N] (long, 1..T) returns x̂_0 with x's shape. Training timestep
    index t = 0..T−1 stands for level t+1.
    """

    kind = "cold"
    learns_sigma = False

    def __init__(self, degradation: dict, num_timesteps: int = 20, loss: str = "l1"):
        if (
            isinstance(num_timesteps, bool)
            or not isinstance(num_timesteps, int)
            or num_timesteps < 1
        ):
            raise ConfigError(f"process.num_timesteps={num_timesteps!r} must be an integer >= 1")
        if loss not in LOSSES:
            raise ConfigError(f"process.loss={loss!r}; choose one of: {', '.join(LOSSES)}")
        self.num_timesteps = num_timesteps
        self.loss = loss
        self.degradation = create_degradation(num_timesteps, **dict(degradation))
        self.prior: ChannelMeanPrior | None = None

    def schedule_sampler(self, name: str):
        """The timestep sampler `name` (uniform | loss_aware) over this process's T steps."""
        return create_named_schedule_sampler(name, self)

    def prepare(self, batches: Iterable[torch.Tensor]) -> None:
        """Fits the prior of x_T to the channel means of the first training images, unless a
        checkpoint restored it."""
        if self.prior is not None:
            return
        images, count = [], 0
        for batch in batches:
            images.append(batch.cpu())
            count += len(batch)
            if count >= PRIOR_IMAGES:
                break
        self.prior = ChannelMeanPrior.fit(torch.cat(images)[:PRIOR_IMAGES])

    def x_T(self, noise: torch.Tensor) -> torch.Tensor:
        """The start of unconditional sampling for noise [N, C, H, W] (`ChannelMeanPrior`)."""
        if self.prior is None:
            raise ValueError("the cold process has no prior yet: it is fitted when training starts")
        return self.prior.x_T(noise)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The fitted prior, for the checkpoint."""
        return {} if self.prior is None else self.prior.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.prior = ChannelMeanPrior(**state) if state else None

    @property
    def diffusion(self) -> "ColdProcess":
        """What the samplers take: the process itself."""
        return self

    def degrade(self, x_start, t, noise=None) -> torch.Tensor:
        """D(x_0, t) at levels t [N] (0..T); `noise` is the row's draw (see `degradations`)."""
        return self.degradation(x_start, t, noise)

    def restore(self, model, x_t, t, model_kwargs=None) -> torch.Tensor:
        """R(x_t, t) = x̂_0 at levels t [N], in x_t's compute dtype (float32 at least)."""
        output = model(x_t, t, **(model_kwargs or {}))
        if output.shape != x_t.shape:
            raise ValueError(
                f"the restoration network output has shape {tuple(output.shape)}, "
                f"expected x_t's {tuple(x_t.shape)}"
            )
        return output.to(torch.promote_types(x_t.dtype, torch.float32))

    def training_losses(self, model, x_start, t, model_kwargs=None, noise=None):
        """Per-example losses [N] at timestep indices t: `loss` and `l1` or `l2`, the mean over
        pixels of |R(D(x_0, t+1), t+1) − x_0| (or its square)."""
        if noise is None:
            noise = torch.randn_like(x_start)
        level = t + 1
        x_t = self.degrade(x_start, level, noise)
        error = self.restore(model, x_t, level, model_kwargs) - x_start
        value = mean_flat(LOSSES[self.loss](error))
        return {"loss": value, self.loss: value}
