"""Cold diffusion's degradations D(x_0, t), t = 0..T, D(x_0, 0) = x_0 (Bansal et al. 2022, §3).

Each is a pure function of (x_0, t, noise): `noise` [N, C, H, W] is the row's standard Gaussian
draw, the randomness of the degradations that have some (`noise` adds it, a random-centre
`inpaint` takes its centre from it); the others ignore it. Images are [N, C, H, W], t a long
tensor [N]. `DEGRADATIONS` maps a `process/degradation=` name to its class.
"""

import math

import torch
import torch.nn.functional as F

from diffusion_lab.diffusion import get_named_beta_schedule
from diffusion_lab.errors import ConfigError


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConfigError(
            f"process.degradation.{key}={value!r}; choose one of: {', '.join(allowed)}"
        )
    return value


def _rows(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """t [N] as [N, 1, 1, 1] in x's dtype, for broadcasting."""
    return t.to(x.dtype).view(-1, *([1] * (x.ndim - 1)))


def _highest(t: torch.Tensor) -> int:
    """The highest level in t [N] (0 for an empty batch): steps beyond it change no row."""
    return int(t.max()) if t.numel() else 0


def _select(rows: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a where the row's flag rows [N] is true, else b."""
    return torch.where(rows.view(-1, *([1] * (a.ndim - 1))), a, b)


def gaussian_kernel(size: int, std: float) -> torch.Tensor:
    """A normalised 2-D Gaussian [size, size], float64: its entries sum to one."""
    offsets = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    one_d = torch.exp(-(offsets**2) / (2 * std**2))
    kernel = torch.outer(one_d, one_d)
    return kernel / kernel.sum()


class Blur:
    """x_t = k_t * … * k_1 * x_0: a Gaussian kernel per step, applied t times (the reference
    code's `blur_routine`): std σ (constant), σ·t (incremental) or e^{σ·(t−1)} (exponential).
    `discrete`: the last step T is the per-channel image mean (the paper's §4.1 generation)."""

    def __init__(
        self,
        num_timesteps: int,
        kernel_size: int = 11,
        kernel_std: float = 7.0,
        routine: str = "constant",
        padding: str = "circular",
        discrete: bool = False,
    ):
        _choice("routine", routine, ("constant", "incremental", "exponential"))
        self.padding = _choice("padding", padding, ("circular", "reflect"))
        if kernel_size < 1 or kernel_size % 2 == 0 or not kernel_std > 0:
            raise ConfigError(
                f"process.degradation.kernel_size={kernel_size!r} must be odd and >= 1, "
                f"kernel_std={kernel_std!r} > 0"
            )
        stds = {
            "constant": lambda step: kernel_std,
            "incremental": lambda step: kernel_std * step,
            "exponential": lambda step: math.exp(kernel_std * (step - 1)),
        }[routine]
        self.num_timesteps = num_timesteps
        self.discrete = discrete
        self.kernels = [gaussian_kernel(kernel_size, stds(s)) for s in range(1, num_timesteps + 1)]

    def blur(self, x: torch.Tensor, step: int) -> torch.Tensor:
        """One step: x convolved with k_step per channel."""
        kernel = self.kernels[step - 1].to(x)
        half = kernel.shape[-1] // 2
        padded = F.pad(x, (half, half, half, half), mode=self.padding)
        weight = kernel.expand(x.shape[1], 1, *kernel.shape)
        return F.conv2d(padded, weight, groups=x.shape[1])

    def __call__(self, x0: torch.Tensor, t: torch.Tensor, noise=None) -> torch.Tensor:
        x = x0
        for step in range(1, _highest(t) + 1):
            x = _select(t >= step, self.blur(x, step), x)
        if self.discrete:
            mean = x0.mean(dim=(2, 3), keepdim=True).expand_as(x)
            x = _select(t == self.num_timesteps, mean, x)
        return x


class Inpaint:
    """x_t = M_t·x_0 + (1 − M_t)·fill, M_t = Π_{s≤t} (1 − g_s): each step multiplies in a
    Gaussian hole g_s of std σ·s (peak 1) about the centre, so the masks lie in [0, 1] and only
    shrink with t (the reference code's Gaussian mask). `centre`: the image centre (fixed) or
    per image uniform, Φ of the row's first two noise values (random)."""

    def __init__(
        self, num_timesteps: int, kernel_std: float = 0.5, centre: str = "fixed", fill=0.0
    ):
        self.centre = _choice("centre", centre, ("fixed", "random"))
        if not kernel_std > 0:
            raise ConfigError(f"process.degradation.kernel_std={kernel_std!r} must be > 0")
        self.num_timesteps = num_timesteps
        self.kernel_std = kernel_std
        self.fill = fill

    def centres(self, x: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        """(row, column) centres [N, 2] in pixels."""
        size = torch.tensor(x.shape[2:], dtype=x.dtype, device=x.device)
        if self.centre == "fixed":
            return ((size - 1) / 2).expand(x.shape[0], 2)
        uniform = torch.special.ndtr(noise.flatten(1)[:, :2].to(x.dtype))
        return uniform * (size - 1)

    def mask(self, x: torch.Tensor, t: torch.Tensor, noise=None) -> torch.Tensor:
        """M_t [N, 1, H, W] in [0, 1]."""
        rows = torch.arange(x.shape[2], dtype=x.dtype, device=x.device)
        cols = torch.arange(x.shape[3], dtype=x.dtype, device=x.device)
        centre = self.centres(x, noise)
        r2 = (rows.view(1, -1, 1) - centre[:, 0].view(-1, 1, 1)) ** 2 + (
            cols.view(1, 1, -1) - centre[:, 1].view(-1, 1, 1)
        ) ** 2
        mask = torch.ones_like(r2)
        for step in range(1, _highest(t) + 1):
            hole = torch.exp(-r2 / (2 * (self.kernel_std * step) ** 2))
            mask = _select(t >= step, mask * (1 - hole), mask)
        return mask.unsqueeze(1)

    def __call__(self, x0: torch.Tensor, t: torch.Tensor, noise=None) -> torch.Tensor:
        mask = self.mask(x0, t, noise)
        return mask * x0 + (1 - mask) * self.fill


class Pixelate:
    """x_t: x_0 averaged over 2^t × 2^t blocks, up-sampled with nearest (super-resolution,
    the paper's §4.3 "resolution downsampling")."""

    def __init__(self, num_timesteps: int):
        self.num_timesteps = num_timesteps

    def __call__(self, x0: torch.Tensor, t: torch.Tensor, noise=None) -> torch.Tensor:
        if x0.shape[-1] % 2**self.num_timesteps or x0.shape[-2] % 2**self.num_timesteps:
            raise ConfigError(
                f"process.num_timesteps={self.num_timesteps}: pixelate needs images whose "
                f"sides divide by 2^T, got {tuple(x0.shape[-2:])}"
            )
        x = x0
        for step in range(1, _highest(t) + 1):
            block = 2**step
            coarse = F.avg_pool2d(x0, block)
            pixelated = F.interpolate(coarse, scale_factor=block, mode="nearest")
            x = _select(t == step, pixelated, x)
        return x


class Decolorize:
    """x_t = (1 − t/T)·x_0 + (t/T)·grey(x_0), grey the channel mean (the paper's §4.4)."""

    def __init__(self, num_timesteps: int):
        self.num_timesteps = num_timesteps

    def __call__(self, x0: torch.Tensor, t: torch.Tensor, noise=None) -> torch.Tensor:
        grey = x0.mean(dim=1, keepdim=True).expand_as(x0)
        w = _rows(t, x0) / self.num_timesteps
        return (1 - w) * x0 + w * grey


class Noise:
    """The hot baseline: x_t = √ᾱ_t·x_0 + √(1 − ᾱ_t)·ε with DDPM's schedule over T steps,
    ᾱ_0 = 1 (Ho et al. 2020, eq. 4); ε is the row's noise, fixed along a trajectory."""

    def __init__(self, num_timesteps: int, schedule: str = "linear"):
        betas = get_named_beta_schedule(schedule, num_timesteps)
        alphas_cumprod = torch.cumprod(1 - torch.as_tensor(betas, dtype=torch.float64), 0)
        self.num_timesteps = num_timesteps
        self.alphas_cumprod = torch.cat([torch.ones(1, dtype=torch.float64), alphas_cumprod])

    def __call__(self, x0: torch.Tensor, t: torch.Tensor, noise=None) -> torch.Tensor:
        if noise is None:
            raise ValueError("the noise degradation needs the row's noise ε")
        abar = _rows(self.alphas_cumprod.to(t.device)[t], x0)
        return abar.sqrt() * x0 + (1 - abar).sqrt() * noise


DEGRADATIONS = {
    "blur": Blur,
    "inpaint": Inpaint,
    "pixelate": Pixelate,
    "decolorize": Decolorize,
    "noise": Noise,
}


def create_degradation(num_timesteps: int, name: str | None = None, **options):
    """The degradation `name` over `num_timesteps` steps with its options."""
    if name not in DEGRADATIONS:
        raise ConfigError(
            f"process.degradation.name={name!r} is not a degradation; choose one of: "
            f"{', '.join(DEGRADATIONS)}"
        )
    return DEGRADATIONS[name](num_timesteps, **options)
