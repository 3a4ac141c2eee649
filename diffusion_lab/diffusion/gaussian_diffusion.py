"""The Gaussian diffusion process: q, the model's p_θ, and their losses.

Ho et al. 2020 (DDPM), Nichol & Dhariwal 2021 (Improved DDPM), Dhariwal & Nichol 2021 (guidance);
the API is improved-diffusion's. The process never owns the network: every method takes `model`,
called as model(x_t, t, **model_kwargs) with t the original integer timesteps [N].
Timestep index t = 0..T−1 stands for the paper's step t+1.
"""

import enum
import math

import torch

from diffusion_lab.diffusion.losses import (
    discretized_gaussian_log_likelihood,
    mean_flat,
    normal_kl,
)
from diffusion_lab.errors import ConfigError


class ModelMeanType(str, enum.Enum):
    """What the network predicts."""

    EPSILON = "epsilon"  # the noise ε (Ho et al. 2020, eq. 11)
    START_X = "start_x"  # the clean image x_0
    V = "v"  # v = √ᾱ_t·ε − √(1−ᾱ_t)·x_0 (Salimans & Ho 2022, §4)


class ModelVarType(str, enum.Enum):
    """Where the variance σ_t² of p_θ(x_{t−1} | x_t) comes from."""

    FIXED_SMALL = "fixed_small"  # β̃_t, the posterior's variance (Ho et al. 2020, §3.2)
    FIXED_LARGE = "fixed_large"  # β_t; β̃_1 at t = 0 for a better decoder likelihood
    LEARNED = "learned"  # the network outputs log σ_t² in C extra channels
    LEARNED_RANGE = "learned_range"  # it outputs v ∈ [−1, 1] (Nichol & Dhariwal 2021, eq. 15)


class LossType(str, enum.Enum):
    """The training objective."""

    SIMPLE = "simple"  # L_simple: MSE to the predicted target (Ho et al. 2020, eq. 14)
    VLB = "vlb"  # L_vlb = T·L_t in bits/dim, an estimate of the whole bound (eq. 5)
    HYBRID = "hybrid"  # L_simple + λ·L_vlb, λ = 0.001, L_vlb trains only σ (Improved DDPM §3.1)


def parse_choice(enum_type: type[enum.Enum], value, key: str):
    """`value` (a member or its string value) as a member of `enum_type`; else a ConfigError."""
    try:
        return enum_type(value)
    except ValueError:
        allowed = ", ".join(repr(member.value) for member in enum_type)
        raise ConfigError(f"{key}={value!r} is not allowed; choose one of {allowed}") from None


def check_loss_trains_variance(loss_type: LossType, model_var_type: ModelVarType) -> None:
    """A learned variance needs a loss with an L_vlb term, and only it can use `hybrid`."""
    learned = model_var_type in (ModelVarType.LEARNED, ModelVarType.LEARNED_RANGE)
    if loss_type == LossType.SIMPLE and learned:
        raise ConfigError(
            f"loss_type='simple' gives the learned variance (model_var_type="
            f"'{model_var_type.value}') no gradient; use loss_type 'hybrid' or 'vlb', or "
            f"model_var_type 'fixed_small' or 'fixed_large'"
        )
    if loss_type == LossType.HYBRID and not learned:
        raise ConfigError(
            f"loss_type='hybrid' adds L_vlb to train a learned variance, but model_var_type="
            f"'{model_var_type.value}' is fixed; use model_var_type 'learned_range' or "
            f"'learned', or loss_type 'simple'"
        )


class GaussianDiffusion:
    """q(x_{1:T} | x_0) for a beta schedule, and the model's reverse process p_θ.

    Args:
        betas: β for each of the T steps, 1-D, each in (0, 1].
        model_mean_type, model_var_type, loss_type: enum members or their string values.

    Schedule constants are float64 CPU tensors [T]; each method gathers them on t's device
    (one cached copy per device, so no host round trip) and does its arithmetic in x's dtype,
    at least float32.
    """

    _TABLES = (
        "betas",
        "log_betas",
        "alphas_cumprod",
        "alphas_cumprod_prev",
        "alphas_cumprod_next",
        "sqrt_alphas_cumprod",
        "one_minus_alphas_cumprod",
        "sqrt_one_minus_alphas_cumprod",
        "log_one_minus_alphas_cumprod",
        "sqrt_recip_alphas_cumprod",
        "sqrt_recipm1_alphas_cumprod",
        "posterior_variance",
        "posterior_log_variance_clipped",
        "posterior_mean_coef1",
        "posterior_mean_coef2",
        "fixed_large_variance",
        "fixed_large_log_variance",
    )

    def __init__(
        self,
        *,
        betas,
        model_mean_type: ModelMeanType | str = ModelMeanType.EPSILON,
        model_var_type: ModelVarType | str = ModelVarType.FIXED_LARGE,
        loss_type: LossType | str = LossType.SIMPLE,
        rescale_timesteps: bool = False,
    ):
        self.rescale_timesteps = rescale_timesteps
        self.model_mean_type = parse_choice(ModelMeanType, model_mean_type, "model_mean_type")
        self.model_var_type = parse_choice(ModelVarType, model_var_type, "model_var_type")
        self.loss_type = parse_choice(LossType, loss_type, "loss_type")

        betas = torch.as_tensor(betas, dtype=torch.float64).cpu().clone()
        if betas.ndim != 1 or len(betas) == 0 or not ((betas > 0) & (betas <= 1)).all():
            raise ConfigError("betas must be a non-empty 1-D array with values in (0, 1]")
        self.num_timesteps = self.original_num_steps = len(betas)
        self.betas = betas
        self.log_betas = torch.log(betas)
        alphas = 1.0 - betas
        one, zero = torch.ones(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)
        self.alphas_cumprod = torch.cumprod(alphas, dim=0)
        self.alphas_cumprod_prev = torch.cat([one, self.alphas_cumprod[:-1]])
        self.alphas_cumprod_next = torch.cat([self.alphas_cumprod[1:], zero])

        # q(x_t | x_0) (Ho et al. 2020, eq. 4) and its inversions
        self.sqrt_alphas_cumprod = torch.sqrt(self.alphas_cumprod)
        self.one_minus_alphas_cumprod = 1.0 - self.alphas_cumprod
        self.sqrt_one_minus_alphas_cumprod = torch.sqrt(self.one_minus_alphas_cumprod)
        self.log_one_minus_alphas_cumprod = torch.log(self.one_minus_alphas_cumprod)
        self.sqrt_recip_alphas_cumprod = torch.sqrt(1.0 / self.alphas_cumprod)
        self.sqrt_recipm1_alphas_cumprod = torch.sqrt(1.0 / self.alphas_cumprod - 1.0)

        # q(x_{t−1} | x_t, x_0) (Ho et al. 2020, eqs. 6–7)
        denominator = self.one_minus_alphas_cumprod
        self.posterior_variance = betas * (1.0 - self.alphas_cumprod_prev) / denominator
        # β̃ is 0 at t = 0, so its log (and the t = 0 decoder variance) takes β̃ of step 2
        first = self.posterior_variance[1:2] if self.num_timesteps > 1 else betas[:1]
        self.posterior_log_variance_clipped = torch.log(
            torch.cat([first, self.posterior_variance[1:]])
        )
        self.posterior_mean_coef1 = betas * torch.sqrt(self.alphas_cumprod_prev) / denominator
        self.posterior_mean_coef2 = (
            (1.0 - self.alphas_cumprod_prev) * torch.sqrt(alphas) / denominator
        )
        self.fixed_large_variance = torch.cat([first, betas[1:]])
        self.fixed_large_log_variance = torch.log(self.fixed_large_variance)
        self._device_tables: dict[torch.device, dict[str, torch.Tensor]] = {}

    @property
    def learns_sigma(self) -> bool:
        """True when the network outputs 2C channels: the mean's C and the variance's C."""
        return self.model_var_type in (ModelVarType.LEARNED, ModelVarType.LEARNED_RANGE)

    # --- the forward process q --------------------------------------------------------------

    def q_mean_variance(self, x_start, t):
        """(mean, variance, log_variance) of q(x_t | x_0) = N(√ᾱ_t·x_0, (1−ᾱ_t)I) (eq. 4)."""
        mean = self._gather("sqrt_alphas_cumprod", t, x_start) * x_start
        variance = self._gather("one_minus_alphas_cumprod", t, x_start).expand_as(x_start)
        log_variance = self._gather("log_one_minus_alphas_cumprod", t, x_start)
        return mean, variance, log_variance.expand_as(x_start)

    def q_sample(self, x_start, t, noise=None):
        """x_t = √ᾱ_t·x_0 + √(1−ᾱ_t)·ε, a draw from q(x_t | x_0) (Ho et al. 2020, eq. 4)."""
        if noise is None:
            noise = torch.randn_like(x_start)
        return (
            self._gather("sqrt_alphas_cumprod", t, x_start) * x_start
            + self._gather("sqrt_one_minus_alphas_cumprod", t, x_start) * noise
        )

    def q_posterior_mean_variance(self, x_start, x_t, t):
        """(mean, variance, clipped log variance) of q(x_{t−1} | x_t, x_0) (eqs. 6–7)."""
        mean = (
            self._gather("posterior_mean_coef1", t, x_t) * x_start
            + self._gather("posterior_mean_coef2", t, x_t) * x_t
        )
        variance = self._gather("posterior_variance", t, x_t).expand_as(x_t)
        log_variance = self._gather("posterior_log_variance_clipped", t, x_t).expand_as(x_t)
        return mean, variance, log_variance

    # --- the reverse process p_θ -------------------------------------------------------------

    def p_mean_variance(
        self, model, x, t, clip_denoised=True, denoised_fn=None, model_kwargs=None
    ) -> dict[str, torch.Tensor]:
        """p_θ(x_{t−1} | x_t) as dict(mean, variance, log_variance, pred_xstart), all x's shape.

        The mean is the posterior's at x̂_0 (Ho et al. 2020, eq. 7); x̂_0 goes through
        `denoised_fn`, then is clipped to [−1, 1] when `clip_denoised`.
        """
        output = self._run_model(model, x, t, model_kwargs)
        return self._p_mean_variance(output, x, t, clip_denoised, denoised_fn)

    def _p_mean_variance(self, output, x, t, clip_denoised=True, denoised_fn=None):
        """p_mean_variance from the network's `output` at (x, t)."""
        channels = x.shape[1]
        if self.learns_sigma:
            output, var_values = torch.split(output, channels, dim=1)
            if self.model_var_type == ModelVarType.LEARNED:
                log_variance = var_values
            else:  # Improved DDPM eq. 15: log σ² = v·log β_t + (1−v)·log β̃_t, v = (out+1)/2
                frac = (var_values + 1) / 2
                min_log = self._gather("posterior_log_variance_clipped", t, x)
                max_log = self._gather("log_betas", t, x)
                log_variance = frac * max_log + (1 - frac) * min_log
            variance = torch.exp(log_variance)
        else:  # as improved-diffusion, fixed_small's variance at t = 0 is β̃ = 0, its log clipped
            variance_name, log_variance_name = {
                ModelVarType.FIXED_SMALL: ("posterior_variance", "posterior_log_variance_clipped"),
                ModelVarType.FIXED_LARGE: ("fixed_large_variance", "fixed_large_log_variance"),
            }[self.model_var_type]
            variance = self._gather(variance_name, t, x).expand_as(x)
            log_variance = self._gather(log_variance_name, t, x).expand_as(x)

        pred_xstart = self._predict_xstart(output, x, t)
        if denoised_fn is not None:
            pred_xstart = denoised_fn(pred_xstart)
        if clip_denoised:
            pred_xstart = pred_xstart.clamp(-1, 1)
        mean, _, _ = self.q_posterior_mean_variance(pred_xstart, x, t)
        return {
            "mean": mean,
            "variance": variance,
            "log_variance": log_variance,
            "pred_xstart": pred_xstart,
        }

    def _predict_xstart(self, output, x_t, t):
        """x̂_0 from the network's mean output, per model_mean_type."""
        if self.model_mean_type == ModelMeanType.EPSILON:
            return self._predict_xstart_from_eps(x_t, t, output)
        if self.model_mean_type == ModelMeanType.V:
            return self._predict_xstart_from_v(x_t, t, output)
        return output

    def _predict_xstart_from_eps(self, x_t, t, eps):
        """x_0 = x_t/√ᾱ_t − √(1/ᾱ_t − 1)·ε (inverting eq. 4)."""
        return (
            self._gather("sqrt_recip_alphas_cumprod", t, x_t) * x_t
            - self._gather("sqrt_recipm1_alphas_cumprod", t, x_t) * eps
        )

    def _predict_eps_from_xstart(self, x_t, t, pred_xstart):
        """ε = (x_t/√ᾱ_t − x_0)/√(1/ᾱ_t − 1)."""
        return (
            self._gather("sqrt_recip_alphas_cumprod", t, x_t) * x_t - pred_xstart
        ) / self._gather("sqrt_recipm1_alphas_cumprod", t, x_t)

    def _predict_xstart_from_v(self, x_t, t, v):
        """x_0 = √ᾱ_t·x_t − √(1−ᾱ_t)·v (Salimans & Ho 2022, §4)."""
        return (
            self._gather("sqrt_alphas_cumprod", t, x_t) * x_t
            - self._gather("sqrt_one_minus_alphas_cumprod", t, x_t) * v
        )

    def _get_v(self, x_start, noise, t):
        """v = √ᾱ_t·ε − √(1−ᾱ_t)·x_0 (Salimans & Ho 2022, §4)."""
        return (
            self._gather("sqrt_alphas_cumprod", t, x_start) * noise
            - self._gather("sqrt_one_minus_alphas_cumprod", t, x_start) * x_start
        )

    # --- classifier guidance (Dhariwal & Nichol 2021, §4) ------------------------------------

    def condition_mean(self, cond_fn, p_mean_var, x, t, model_kwargs=None):
        """Algorithm 1: the mean shifted by Σ·∇ log p(y | x_t), with ∇ from `cond_fn`."""
        gradient = cond_fn(x, self._model_timesteps(t), **(model_kwargs or {}))
        mean = p_mean_var["mean"]
        return mean + p_mean_var["variance"] * gradient.to(mean.dtype)

    def condition_score(self, cond_fn, p_mean_var, x, t, model_kwargs=None):
        """Algorithm 2: ε̂ ← ε̂ − √(1−ᾱ_t)·∇ log p(y | x_t); returns p_mean_var with the new
        pred_xstart and mean. Applied as the equal x̂_0 ← x̂_0 + (1−ᾱ_t)/√ᾱ_t·∇, with no float
        round trip through ε, so that a zero gradient changes nothing."""
        gradient = cond_fn(x, self._model_timesteps(t), **(model_kwargs or {}))
        pred_xstart = p_mean_var["pred_xstart"]
        sigma = self._gather("sqrt_one_minus_alphas_cumprod", t, x)
        shift = sigma**2 * self._gather("sqrt_recip_alphas_cumprod", t, x)  # (1−ᾱ_t)/√ᾱ_t
        out = dict(p_mean_var)
        out["pred_xstart"] = pred_xstart + shift * gradient.to(pred_xstart.dtype)
        out["mean"], _, _ = self.q_posterior_mean_variance(out["pred_xstart"], x, t)
        return out

    # --- losses and likelihood ---------------------------------------------------------------

    def training_losses(self, model, x_start, t, model_kwargs=None, noise=None):
        """Per-example losses [N] at timesteps t: `loss`, and `mse` and/or `vb` where used.

        simple: mse, the mean over non-batch dims of (target − output)², target ε, x_0 or v.
        vlb: vb = T·L_t in bits/dim (eq. 5), gradients through mean and variance.
        hybrid: mse + vb, vb = L_t·T/1000 (λ = 0.001 on T·L_t) with the mean output detached,
            so L_vlb trains only the variance (Improved DDPM §3.1).
        """
        check_loss_trains_variance(self.loss_type, self.model_var_type)
        if noise is None:
            noise = torch.randn_like(x_start)
        x_t = self.q_sample(x_start, t, noise=noise)
        output = self._run_model(model, x_t, t, model_kwargs)

        if self.loss_type == LossType.VLB:
            out = self._p_mean_variance(output, x_t, t, clip_denoised=False)
            vb = self._vb_terms_bpd(out, x_start, x_t, t) * self.num_timesteps
            return {"loss": vb, "vb": vb}

        terms = {}
        if self.learns_sigma:  # hybrid: L_vlb reaches the variance only
            mean_output, var_values = torch.split(output, x_t.shape[1], dim=1)
            frozen = torch.cat([mean_output.detach(), var_values], dim=1)
            out = self._p_mean_variance(frozen, x_t, t, clip_denoised=False)
            terms["vb"] = self._vb_terms_bpd(out, x_start, x_t, t) * (self.num_timesteps / 1000)
            output = mean_output
        target = {
            ModelMeanType.EPSILON: noise,
            ModelMeanType.START_X: x_start,
            ModelMeanType.V: self._get_v(x_start, noise, t),
        }[self.model_mean_type]
        terms["mse"] = mean_flat((target - output) ** 2)
        terms["loss"] = terms["mse"] + terms["vb"] if "vb" in terms else terms["mse"]
        return terms

    def _vb_terms_bpd(self, p_mean_var, x_start, x_t, t):
        """L_t in bits/dim [N] (Ho et al. 2020, eq. 5): KL(q(x_{t−1}|x_t,x_0) ‖ p_θ(x_{t−1}|x_t))
        for t > 0, the discretised decoder's −log p_θ(x_0 | x_1) at t = 0."""
        true_mean, _, true_log_variance = self.q_posterior_mean_variance(x_start, x_t, t)
        kl = normal_kl(true_mean, true_log_variance, p_mean_var["mean"], p_mean_var["log_variance"])
        decoder_nll = -discretized_gaussian_log_likelihood(
            x_start, means=p_mean_var["mean"], log_scales=0.5 * p_mean_var["log_variance"]
        )
        return torch.where(t == 0, mean_flat(decoder_nll), mean_flat(kl)) / math.log(2.0)

    def _prior_bpd(self, x_start):
        """L_T = KL(q(x_T | x_0) ‖ N(0, I)) in bits/dim [N]; it has no parameters."""
        t = torch.full(
            (x_start.shape[0],), self.num_timesteps - 1, dtype=torch.long, device=x_start.device
        )
        mean, _, log_variance = self.q_mean_variance(x_start, t)
        return mean_flat(normal_kl(mean, log_variance, 0.0, 0.0)) / math.log(2.0)

    @torch.no_grad()
    def calc_bpd_loop(self, model, x_start, clip_denoised=True, model_kwargs=None):
        """The whole variational bound L_0 + … + L_T in bits/dim (Ho et al. 2020, eq. 5).

        One x_t ~ q(x_t | x_0) per step, drawn from t = T−1 down to 0. Returns total_bpd and
        prior_bpd [N], and [N, T] tensors with column t for timestep t: vb (L_t), xstart_mse
        and mse (of ε̂ against the noise drawn).
        """
        vb, xstart_mse, mse = {}, {}, {}
        for step in range(self.num_timesteps - 1, -1, -1):
            t = torch.full((x_start.shape[0],), step, dtype=torch.long, device=x_start.device)
            noise = torch.randn_like(x_start)
            x_t = self.q_sample(x_start, t, noise=noise)
            out = self.p_mean_variance(
                model, x_t, t, clip_denoised=clip_denoised, model_kwargs=model_kwargs
            )
            vb[step] = self._vb_terms_bpd(out, x_start, x_t, t)
            xstart_mse[step] = mean_flat((out["pred_xstart"] - x_start) ** 2)
            eps = self._predict_eps_from_xstart(x_t, t, out["pred_xstart"])
            mse[step] = mean_flat((eps - noise) ** 2)

        def columns(terms):
            return torch.stack([terms[step] for step in range(self.num_timesteps)], dim=1)

        prior_bpd = self._prior_bpd(x_start)
        vb_columns = columns(vb)
        return {
            "total_bpd": vb_columns.sum(dim=1) + prior_bpd,
            "prior_bpd": prior_bpd,
            "vb": vb_columns,
            "xstart_mse": columns(xstart_mse),
            "mse": columns(mse),
        }

    # --- plumbing ----------------------------------------------------------------------------

    def _run_model(self, model, x, t, model_kwargs):
        """The network's output at original timesteps, in x's compute dtype (float32 at least,
        so bf16 autocast outputs are upcast before any process arithmetic)."""
        output = model(x, self._model_timesteps(t), **(model_kwargs or {}))
        channels = 2 * x.shape[1] if self.learns_sigma else x.shape[1]
        if output.shape != (x.shape[0], channels, *x.shape[2:]):
            raise ValueError(
                f"model output has shape {tuple(output.shape)}, expected {channels} channels "
                f"like x {tuple(x.shape)} (model_var_type='{self.model_var_type.value}'"
                f"{', learn_sigma=True doubles them' if self.learns_sigma else ''})"
            )
        return output.to(_compute_dtype(x.dtype))

    def _model_timesteps(self, t):
        """The network's timesteps for indices t: t, or t·1000/T with `rescale_timesteps`
        (improved-diffusion's default: its network always sees [0, 1000))."""
        return self._rescaled(t)

    def _rescaled(self, t):
        if self.rescale_timesteps:
            return t.float() * (1000.0 / self.original_num_steps)
        return t

    def _table(self, name: str, device: torch.device) -> torch.Tensor:
        """Constant `name` on `device`, copied there once."""
        tables = self._device_tables.get(device)
        if tables is None:
            tables = {key: getattr(self, key).to(device) for key in self._TABLES}
            self._device_tables[device] = tables
        return tables[name]

    def _gather(self, name: str, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Constant `name` at timesteps t [N] as [N, 1, …] in x's compute dtype."""
        values = self._table(name, t.device)[t].to(_compute_dtype(x.dtype))
        return values.view(-1, *([1] * (x.ndim - 1)))


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; float32, bf16 and fp16 compute in float32."""
    return torch.promote_types(dtype, torch.float32)
