"""Cold diffusion's samplers (Bansal et al. 2022, §3.2): from x_T down to level 0 through the
levels T = s_0 > s_1 > … > s_K = 0, one restoration per step (NFE = steps).

`restore(x, s) -> x̂_0` and `degrade(x_0, s) -> D(x_0, s)` take an integer level s; both are
closures over the network and the process (see `cold_sample`).
"""

from collections.abc import Callable

import torch

from diffusion_lab.errors import ConfigError

Restore = Callable[[torch.Tensor, int], torch.Tensor]


def levels(num_timesteps: int, steps: int) -> list[int]:
    """T = s_0 > … > s_steps = 0, as evenly spaced as integers allow."""
    spaced = torch.linspace(num_timesteps, 0, steps + 1, dtype=torch.float64).round().long()
    return spaced.tolist()


def sample_cold_naive(restore: Restore, degrade: Restore, x, schedule, callback=None):
    """Algorithm 1: x̂_0 = R(x_s, s), x_{s'} = D(x̂_0, s')."""
    for s, s_next in zip(schedule[:-1], schedule[1:], strict=True):
        pred_xstart = restore(x, s)
        x = degrade(pred_xstart, s_next)
        if callback is not None:
            callback(s, x, pred_xstart)
    return x


def sample_cold(restore: Restore, degrade: Restore, x, schedule, callback=None):
    """Algorithm 2 (the "improved" sampler): x̂_0 = R(x_s, s),
    x_{s'} = x_s − D(x̂_0, s) + D(x̂_0, s'). For a linear degradation D(x, s) = x + s·e it
    walks back exactly whatever R's errors; Algorithm 1 only as far as R is exact."""
    for s, s_next in zip(schedule[:-1], schedule[1:], strict=True):
        pred_xstart = restore(x, s)
        x = x - degrade(pred_xstart, s) + degrade(pred_xstart, s_next)
        if callback is not None:
            callback(s, x, pred_xstart)
    return x


COLD_SAMPLERS = {"cold": sample_cold, "cold_naive": sample_cold_naive}


def check_cold_sampler(sampler: str, steps: int, num_timesteps: int) -> None:
    """ConfigError naming sampler.name or sampler.steps and the allowed values."""
    if sampler not in COLD_SAMPLERS:
        raise ConfigError(
            f"sampler.name={sampler!r} does not sample the cold process; choose one of: "
            f"{', '.join(COLD_SAMPLERS)}"
        )
    integral = isinstance(steps, int) and not isinstance(steps, bool)
    if not integral or not 1 <= steps <= num_timesteps:
        raise ConfigError(
            f"sampler.steps={steps!r} must be an integer from 1 to process.num_timesteps="
            f"{num_timesteps}"
        )


@torch.no_grad()
def cold_sample(
    model,
    process,
    x_T: torch.Tensor,
    sampler: str = "cold",
    steps: int | None = None,
    noise: torch.Tensor | None = None,
    model_kwargs: dict | None = None,
    clip_denoised: bool = True,
    callback=None,
) -> tuple[torch.Tensor, int]:
    """(x_0 [N,C,H,W], NFE) from x_T = D(x_0, T) with the named sampler in `steps` steps
    (default T). `noise` fixes the degradation's randomness along the trajectory (the noise
    of `noise`, the centres of a random `inpaint`); x̂_0 is clipped to [−1, 1] when
    `clip_denoised`."""
    steps = process.num_timesteps if steps is None else steps
    check_cold_sampler(sampler, steps, process.num_timesteps)
    nfe = 0

    def restore(x, s):
        nonlocal nfe
        nfe += 1
        t = torch.full((x.shape[0],), s, dtype=torch.long, device=x.device)
        pred_xstart = process.restore(model, x, t, model_kwargs)
        return pred_xstart.clamp(-1, 1) if clip_denoised else pred_xstart

    def degrade(x0, s):
        t = torch.full((x0.shape[0],), s, dtype=torch.long, device=x0.device)
        return process.degrade(x0, t, noise)

    schedule = levels(process.num_timesteps, steps)
    x = COLD_SAMPLERS[sampler](restore, degrade, x_T, schedule, callback)
    return x, nfe
