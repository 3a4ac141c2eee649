"""diffusers' scheduler config (scheduler_config.json) <-> the lab's diffusion settings (the
keyword arguments of `create_diffusion`)."""

import math
from typing import Any

from diffusion_lab.errors import ConfigError

# DDPMScheduler's defaults: what diffusers uses for a missing key.
SCHEDULER_DEFAULTS = {
    "num_train_timesteps": 1000,
    "beta_start": 0.0001,
    "beta_end": 0.02,
    "beta_schedule": "linear",
    "trained_betas": None,
    "prediction_type": "epsilon",
    "rescale_betas_zero_snr": False,
}
MEAN_TYPES = {"epsilon": "epsilon", "sample": "start_x", "v_prediction": "v"}
# diffusers' fixed_large is β_t at every step, the lab's takes β̃_1 at t = 0 (improved-diffusion's,
# for the decoder likelihood); learned_range interpolates towards log β̃_t, clipped at t = 0
# differently. Both differ only at t = 0, where DDPM sampling adds no noise.
VAR_TYPES = {
    "fixed_small": "fixed_small",
    "fixed_small_log": "fixed_small",
    "fixed_large": "fixed_large",
    "fixed_large_log": "fixed_large",
    "learned_range": "learned_range",
}


def linear_betas(num_timesteps: int) -> tuple[float, float]:
    """β_1 and β_T of the lab's linear schedule: 1e-4 and 0.02, scaled by 1000/T."""
    scale = 1000 / num_timesteps
    return scale * 1e-4, scale * 0.02


def diffusion_from_scheduler(scheduler: dict[str, Any], learn_sigma: bool) -> dict[str, Any]:
    """The lab's diffusion settings for a scheduler config; ConfigError for a schedule, output or
    variance the lab's processes do not have. `learn_sigma`: the UNet outputs 2x its input
    channels (a missing variance_type then means learned_range, else DDPMScheduler's
    fixed_small)."""
    s = {**SCHEDULER_DEFAULTS, **scheduler}
    steps = int(s["num_train_timesteps"])
    if s["trained_betas"] is not None or s["rescale_betas_zero_snr"]:
        key = "trained_betas" if s["trained_betas"] is not None else "rescale_betas_zero_snr"
        raise ConfigError(f"{key} is set: the lab's processes use named schedules only")
    if s["beta_schedule"] == "squaredcos_cap_v2":
        schedule = "cosine"
    elif s["beta_schedule"] == "linear":
        schedule = "linear"
        expected = linear_betas(steps)
        given = (float(s["beta_start"]), float(s["beta_end"]))
        if not all(math.isclose(a, b, rel_tol=1e-6) for a, b in zip(given, expected, strict=True)):
            raise ConfigError(
                f"beta_start={given[0]}, beta_end={given[1]} over {steps} steps: the lab's linear "
                f"schedule runs from {expected[0]:.6g} to {expected[1]:.6g} (1e-4 and 0.02, scaled "
                f"by 1000/T)"
            )
    else:
        raise ConfigError(
            f"beta_schedule={s['beta_schedule']!r}: the lab has diffusers' 'linear' and "
            f"'squaredcos_cap_v2' (its 'cosine'); diffusers' 'sigmoid' is not the lab's"
        )
    if s["prediction_type"] not in MEAN_TYPES:
        raise ConfigError(
            f"prediction_type={s['prediction_type']!r} is not one of {list(MEAN_TYPES)}"
        )
    variance_type = s.get("variance_type") or ("learned_range" if learn_sigma else "fixed_small")
    if variance_type not in VAR_TYPES:
        raise ConfigError(
            f"variance_type={variance_type!r}: the lab reads {list(VAR_TYPES)} (diffusers' "
            f"'learned' is σ², the lab's log σ²)"
        )
    if (variance_type == "learned_range") != learn_sigma:
        raise ConfigError(
            f"variance_type={variance_type!r}, but the UNet's out_channels "
            f"{'are' if learn_sigma else 'are not'} twice its in_channels"
        )
    return {
        "schedule": schedule,
        "num_timesteps": steps,
        "model_mean_type": MEAN_TYPES[s["prediction_type"]],
        "model_var_type": VAR_TYPES[variance_type],
        "loss_type": "hybrid" if learn_sigma else "simple",
    }


def scheduler_from_diffusion(diffusion: dict[str, Any]) -> dict[str, Any]:
    """The DDPMScheduler config of the lab's diffusion settings; ConfigError if it has none."""
    steps = int(diffusion.get("num_timesteps", 1000))
    schedule = diffusion.get("schedule", "linear")
    if diffusion.get("rescale_timesteps"):
        raise ConfigError(
            "the model sees t·1000/T (rescale_timesteps): diffusers passes its UNet2DModel the "
            "integer timestep itself, so such a network does not convert to diffusers"
        )
    if schedule == "linear":
        beta_start, beta_end = linear_betas(steps)
        betas = {"beta_schedule": "linear", "beta_start": beta_start, "beta_end": beta_end}
    elif schedule == "cosine":
        betas = {"beta_schedule": "squaredcos_cap_v2"}
    else:
        raise ConfigError(
            f"schedule={schedule!r}: diffusers' schedulers have no such schedule (their "
            f"'sigmoid' is a different one)"
        )
    mean_type = diffusion.get("model_mean_type", "epsilon")
    var_type = diffusion.get("model_var_type", "fixed_large")
    if var_type == "learned":
        raise ConfigError(
            "model_var_type='learned': diffusers reads a learned variance as σ² or as "
            "'learned_range', not as the lab's log σ²"
        )
    prediction_type = {value: key for key, value in MEAN_TYPES.items()}[mean_type]
    return {
        "_class_name": "DDPMScheduler",
        "num_train_timesteps": steps,
        **betas,
        "variance_type": var_type,
        "prediction_type": prediction_type,
        "clip_sample": True,
    }
