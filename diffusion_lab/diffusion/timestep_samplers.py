"""Which timesteps a training batch sees: uniform, or importance-sampled by loss (Improved DDPM
§3.3). Every sampler returns weights 1/(T·p_t) so that the weighted loss stays unbiased."""

from abc import ABC, abstractmethod

import numpy as np
import torch
import torch.distributed as dist

from diffusion_lab.errors import ConfigError


class ScheduleSampler(ABC):
    """A distribution p over the timesteps 0..T−1 of `diffusion`."""

    def __init__(self, diffusion):
        self.num_timesteps = diffusion.num_timesteps

    @abstractmethod
    def weights(self) -> np.ndarray:
        """Unnormalised p_t, float64 [T], all positive."""

    def sample(self, batch_size: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        """(t LongTensor [batch_size], weights 1/(T·p_t) float32 [batch_size]) on `device`."""
        weights = self.weights()
        p = torch.from_numpy(weights / weights.sum())
        t = torch.multinomial(p, batch_size, replacement=True)
        return t.to(device), (1.0 / (self.num_timesteps * p[t])).float().to(device)

    def from_uniform(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`sample` by inverse transform of given uniforms u [n] in [0, 1): t is the first step
        whose cumulative p exceeds u. On u's device."""
        weights = self.weights()
        p = torch.from_numpy(weights / weights.sum())
        t = torch.searchsorted(torch.cumsum(p, 0), u.double().cpu(), right=True)
        t = t.clamp(max=self.num_timesteps - 1)
        return t.to(u.device), (1.0 / (self.num_timesteps * p[t])).float().to(u.device)

    @abstractmethod
    def state_dict(self) -> dict[str, torch.Tensor]:
        """What a checkpoint must keep: plain tensors."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restores `state_dict()`'s output."""


class UniformSampler(ScheduleSampler):
    """p_t = 1/T, weights 1 (Ho et al. 2020, Algorithm 1)."""

    def weights(self) -> np.ndarray:
        return np.ones(self.num_timesteps)

    def sample(self, batch_size: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        t = torch.randint(self.num_timesteps, (batch_size,), device=device)
        return t, torch.ones(batch_size, device=device)

    def from_uniform(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = (u.double() * self.num_timesteps).long().clamp(max=self.num_timesteps - 1)
        return t, torch.ones(len(u), device=u.device)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Nothing to restore: uniform sampling has no state."""


class LossAwareSampler(ScheduleSampler):
    """Improved DDPM §3.3: p_t ∝ √E[L_t²] over each t's last `history_per_term` losses, mixed
    with `uniform_prob` of the uniform distribution; uniform until every t has a full history.

    Every process must see the same losses: `update_with_local_losses` gathers them across
    DDP ranks when torch.distributed is initialised.
    """

    def __init__(self, diffusion, history_per_term: int = 10, uniform_prob: float = 0.001):
        super().__init__(diffusion)
        self.history_per_term = history_per_term
        self.uniform_prob = uniform_prob
        self.loss_history = np.zeros((self.num_timesteps, history_per_term), dtype=np.float64)
        self.loss_counts = np.zeros(self.num_timesteps, dtype=np.int64)

    def weights(self) -> np.ndarray:
        if not (self.loss_counts == self.history_per_term).all():
            return np.ones(self.num_timesteps)
        weights = np.sqrt(np.mean(self.loss_history**2, axis=-1))
        weights /= weights.sum()
        return weights * (1 - self.uniform_prob) + self.uniform_prob / self.num_timesteps

    def update_with_local_losses(self, local_ts: torch.Tensor, local_losses: torch.Tensor) -> None:
        """Records this process's (t, loss) pairs and, under DDP, every other process's."""
        ts, losses = local_ts.detach(), local_losses.detach()
        if dist.is_available() and dist.is_initialized():
            ts, losses = _all_gather_uneven(ts), _all_gather_uneven(losses)
        self.update_with_all_losses(ts.tolist(), losses.tolist())

    def update_with_all_losses(self, ts: list[int], losses: list[float]) -> None:
        """Appends each loss to its timestep's history, dropping the oldest when full."""
        for t, loss in zip(ts, losses, strict=True):
            count = self.loss_counts[t]
            if count == self.history_per_term:
                self.loss_history[t, :-1] = self.loss_history[t, 1:]
                self.loss_history[t, -1] = loss
            else:
                self.loss_history[t, count] = loss
                self.loss_counts[t] += 1

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {
            "loss_history": torch.from_numpy(self.loss_history.copy()),
            "loss_counts": torch.from_numpy(self.loss_counts.copy()),
        }

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        history = np.asarray(state["loss_history"], dtype=np.float64)
        if history.shape != self.loss_history.shape:
            raise ConfigError(
                f"the saved loss history has shape {history.shape} (timesteps, history), this "
                f"sampler needs {self.loss_history.shape}: num_timesteps must match the checkpoint"
            )
        self.loss_history = history.copy()
        self.loss_counts = np.asarray(state["loss_counts"], dtype=np.int64).copy()


def _all_gather_uneven(local: torch.Tensor) -> torch.Tensor:
    """The concatenation over ranks of each rank's 1-D `local`, whatever their lengths."""
    world_size = dist.get_world_size()
    size = torch.tensor([len(local)], device=local.device)
    sizes = [torch.zeros_like(size) for _ in range(world_size)]
    dist.all_gather(sizes, size)
    sizes = [int(s) for s in sizes]
    padded = torch.zeros(max(sizes), dtype=local.dtype, device=local.device)
    padded[: len(local)] = local
    gathered = [torch.zeros_like(padded) for _ in range(world_size)]
    dist.all_gather(gathered, padded)
    return torch.cat([part[:n] for part, n in zip(gathered, sizes, strict=True)])


SAMPLERS = {"uniform": UniformSampler, "loss_aware": LossAwareSampler}


def create_named_schedule_sampler(name: str, diffusion) -> ScheduleSampler:
    """The timestep sampler `name` ("uniform" or "loss_aware") for `diffusion`."""
    if name not in SAMPLERS:
        raise ConfigError(
            f"timestep_sampler={name!r} is not allowed; choose one of {', '.join(SAMPLERS)}"
        )
    return SAMPLERS[name](diffusion)
