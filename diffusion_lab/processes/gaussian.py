"""The discrete Gaussian process as a peer process: `GaussianDiffusion`, unchanged, plus an
optional per-timestep weighting of its MSE (min-SNR-γ, Hang et al. 2023)."""

from diffusion_lab.diffusion import create_diffusion, create_named_schedule_sampler
from diffusion_lab.errors import ConfigError
from diffusion_lab.processes.weighting import check_weighting, target_weight


class GaussianProcess:
    """Trains the network of a `GaussianDiffusion` (DDPM / Improved DDPM).

    Args:
        diffusion: keyword arguments of `create_diffusion` (schedule, T, mean/var/loss types).
        weighting: "uniform" (L_simple, bit-for-bit today's loss), "min_snr" or "soft_min_snr".
        snr_gamma: γ of the min-SNR weightings (Hang et al. 2023: 5).
    """

    kind = "gaussian"

    def __init__(self, diffusion: dict, weighting: str = "uniform", snr_gamma: float = 5.0):
        check_weighting(weighting, snr_gamma)
        self.diffusion = create_diffusion(**diffusion)  # what the Gaussian samplers take
        if weighting != "uniform" and self.diffusion.loss_type.value == "vlb":
            raise ConfigError(
                f"loss.weighting={weighting!r} weights L_simple's MSE; loss_type='vlb' has none "
                f"(use loss=simple or loss=hybrid, or loss.weighting=uniform)"
            )
        self.weighting = weighting
        self.snr_gamma = float(snr_gamma)
        alphas_cumprod = self.diffusion.alphas_cumprod
        self.snr = alphas_cumprod / (1.0 - alphas_cumprod)  # SNR_t = ᾱ_t/(1−ᾱ_t), float64 [T]

    @property
    def num_timesteps(self) -> int:
        return self.diffusion.num_timesteps

    @property
    def learns_sigma(self) -> bool:
        return self.diffusion.learns_sigma

    def schedule_sampler(self, name: str):
        """The timestep sampler `name` (uniform | loss_aware) over this process's T steps."""
        return create_named_schedule_sampler(name, self)

    def prepare(self, batches) -> None:
        """Nothing to fit before training (the batches are not read)."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Nothing to restore."""

    def training_losses(self, model, x_start, t, model_kwargs=None, noise=None):
        """`GaussianDiffusion.training_losses` at (t, noise); with a min-SNR weighting, `loss` is
        w_t·mse (+ vb for hybrid) and `mse` stays unweighted."""
        terms = self.diffusion.training_losses(
            model, x_start, t, model_kwargs=model_kwargs, noise=noise
        )
        if self.weighting == "uniform":
            return terms
        snr = self.snr.to(t.device)[t]
        weight = target_weight(self.weighting, self.snr_gamma, snr, self.diffusion.model_mean_type)
        weighted = weight.to(terms["mse"].dtype) * terms["mse"]
        terms["loss"] = weighted + terms["vb"] if "vb" in terms else weighted
        return terms
