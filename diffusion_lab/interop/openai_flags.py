"""improved-diffusion's and guided-diffusion's command-line flags, as their READMEs print them,
turned into constructor arguments and the lab's diffusion settings the way their
`script_util.py` does (`create_model`, `create_classifier`, `create_gaussian_diffusion`)."""

import shlex
from typing import Any

from diffusion_lab.errors import ConfigError

CODEBASES = ("improved-diffusion", "guided-diffusion")
NUM_CLASSES = 1000  # script_util's: class_cond means ImageNet's classes

# Each codebase's `model_and_diffusion_defaults()`; guided-diffusion's with `classifier_defaults()`.
IMPROVED_DEFAULTS = {
    "image_size": 64,
    "num_channels": 128,
    "num_res_blocks": 2,
    "num_heads": 4,
    "num_heads_upsample": -1,
    "attention_resolutions": "16,8",
    "dropout": 0.0,
    "learn_sigma": False,
    "sigma_small": False,
    "class_cond": False,
    "diffusion_steps": 1000,
    "noise_schedule": "linear",
    "use_kl": False,
    "predict_xstart": False,
    "rescale_timesteps": True,
    "rescale_learned_sigmas": True,
    "use_checkpoint": False,
    "use_scale_shift_norm": True,
}
GUIDED_DEFAULTS = {
    **{k: v for k, v in IMPROVED_DEFAULTS.items() if k != "sigma_small"},
    "num_head_channels": -1,
    "channel_mult": "",
    "resblock_updown": False,
    "use_fp16": False,
    "use_new_attention_order": False,
    "rescale_timesteps": False,
    "rescale_learned_sigmas": False,
    "classifier_use_fp16": False,
    "classifier_width": 128,
    "classifier_depth": 2,
    "classifier_attention_resolutions": "32,16,8",
    "classifier_use_scale_shift_norm": True,
    "classifier_resblock_updown": True,
    "classifier_pool": "attention",
}
# How to sample or train, not what the network or the process is: the lab's sampler and training
# configs choose these, so they are accepted and ignored (except schedule_sampler, kept).
RUN_FLAGS = {
    "batch_size",
    "num_samples",
    "timestep_respacing",
    "use_ddim",
    "clip_denoised",
    "model_path",
    "classifier_path",
    "classifier_scale",
    "data_dir",
    "lr",
    "weight_decay",
    "lr_anneal_steps",
    "iterations",
    "anneal_lr",
    "microbatch",
    "ema_rate",
    "log_interval",
    "save_interval",
    "eval_interval",
    "resume_checkpoint",
    "fp16_scale_growth",
    "schedule_sampler",
}
SCHEDULE_SAMPLERS = {"uniform": "uniform", "loss-second-moment": "loss_aware"}

# script_util's channel multipliers by image size (guided-diffusion also takes --channel_mult).
IMPROVED_CHANNEL_MULT = {256: (1, 1, 2, 2, 4, 4), 64: (1, 2, 3, 4), 32: (1, 2, 2, 2)}
GUIDED_CHANNEL_MULT = {
    512: (0.5, 1, 1, 2, 2, 4, 4),
    256: (1, 1, 2, 2, 4, 4),
    128: (1, 1, 2, 3, 4),
    64: (1, 2, 3, 4),
}


def str2bool(value: str, flag: str) -> bool:
    """script_util's `str2bool`."""
    if value.lower() in ("yes", "true", "t", "y", "1"):
        return True
    if value.lower() in ("no", "false", "f", "n", "0"):
        return False
    raise ConfigError(f"flags: --{flag} {value!r}: a boolean flag takes True or False")


def split_flags(text: str) -> dict[str, str]:
    """`--name value` and `--name=value` pairs of a flags string, as raw strings."""
    try:
        tokens, given = shlex.split(text), {}
    except ValueError as exc:  # an unclosed quote
        raise ConfigError(f"flags: {exc}") from None
    while tokens:
        token = tokens.pop(0)
        if not token.startswith("--") or len(token) == 2:
            raise ConfigError(f"flags: expected --name value, got {token!r}")
        name, equals, value = token[2:].partition("=")
        if not equals:
            if not tokens or tokens[0].startswith("--"):
                raise ConfigError(f"flags: --{name} has no value")
            value = tokens.pop(0)
        given[name] = value
    return given


def typed(given: dict[str, str]) -> dict[str, Any]:
    """Flag values typed as script_util's argparse types them (by their default's type; the two
    codebases agree on every shared flag's type)."""
    types = {**IMPROVED_DEFAULTS, **GUIDED_DEFAULTS}
    values = {}
    for name, value in given.items():
        default = types.get(name, "")
        if isinstance(default, bool):
            values[name] = str2bool(value, name)
            continue
        try:
            values[name] = type(default)(value)
        except ValueError:
            kind = type(default).__name__
            raise ConfigError(f"flags: --{name} {value!r} must be of type {kind}") from None
    return values


def infer_codebase(given: dict[str, Any]) -> str:
    """The codebase whose script_util reads these flags the way their model was built.

    A flag only one codebase has decides; so does an image size only one table holds. Else the
    two agree unless the model has other than 1000 steps and leaves --rescale_timesteps to its
    default (improved-diffusion: True, guided-diffusion: False).
    """
    guided = sorted(given.keys() & (GUIDED_DEFAULTS.keys() - IMPROVED_DEFAULTS.keys()))
    improved = sorted(given.keys() & (IMPROVED_DEFAULTS.keys() - GUIDED_DEFAULTS.keys()))
    if guided and improved:
        raise ConfigError(
            f"flags: {improved} are improved-diffusion's, {guided} guided-diffusion's; "
            f"one model comes from one codebase"
        )
    if guided or improved:
        return "guided-diffusion" if guided else "improved-diffusion"
    image_size = given.get("image_size", IMPROVED_DEFAULTS["image_size"])
    if image_size in IMPROVED_CHANNEL_MULT.keys() ^ GUIDED_CHANNEL_MULT.keys():
        return "improved-diffusion" if image_size in IMPROVED_CHANNEL_MULT else "guided-diffusion"
    if given.get("diffusion_steps", 1000) != 1000 and "rescale_timesteps" not in given:
        raise ConfigError(
            "flags: improved-diffusion and guided-diffusion read these flags differently "
            "(--rescale_timesteps defaults to True in one, False in the other); pass "
            f"--codebase {' or '.join(CODEBASES)}"
        )
    return "guided-diffusion"


def parse_flags(text: str, codebase: str | None = None) -> dict[str, Any]:
    """Every flag of `codebase`'s scripts with its value (given or default), typed as
    script_util's argparse types them, and `codebase` (inferred from the flags when None)."""
    given = split_flags(text)
    if {"large_size", "small_size"} & given.keys():
        raise ConfigError(
            "flags: --large_size/--small_size are a super-resolution model's, which also takes "
            "a low-resolution image: the lab's U-Net has no such input"
        )
    given = typed(given)
    if codebase is None:
        codebase = infer_codebase(given)
    if codebase not in CODEBASES:
        raise ConfigError(f"codebase={codebase!r} is not one of {list(CODEBASES)}")
    defaults = IMPROVED_DEFAULTS if codebase == "improved-diffusion" else GUIDED_DEFAULTS
    unknown = sorted(given.keys() - defaults.keys() - RUN_FLAGS)
    if unknown:
        raise ConfigError(f"flags: {codebase} has no flags {['--' + name for name in unknown]}")
    return {"codebase": codebase, **defaults, **given}


def attention_factors(resolutions: str, image_size: int, flag: str) -> tuple[int, ...]:
    """script_util's `attention_ds`: image_size // res for each listed resolution."""
    try:
        return tuple(image_size // int(res) for res in resolutions.split(","))
    except ValueError:
        raise ConfigError(f"flags: --{flag} {resolutions!r} is not a list like 32,16,8") from None


def channel_multipliers(
    image_size: int, table: dict[int, tuple], channel_mult: str | None = None
) -> tuple:
    """`--channel_mult` if given (guided-diffusion's; None: no such flag), else by image size."""
    if channel_mult:
        try:
            return tuple(int(m) for m in channel_mult.split(","))
        except ValueError:
            raise ConfigError(
                f"flags: --channel_mult {channel_mult!r} is not like 1,2,3,4"
            ) from None
    if image_size not in table:
        hint = "" if channel_mult is None else ", or pass --channel_mult"
        raise ConfigError(
            f"flags: script_util has channel multipliers for image sizes {sorted(table)}, not "
            f"--image_size {image_size}{hint}"
        )
    return table[image_size]


def model_kwargs(flags: dict[str, Any]) -> dict[str, Any]:
    """The `UNetModel` keyword arguments `create_model` passes (with improved-diffusion's too,
    `image_size`: the lab needs it)."""
    improved = flags["codebase"] == "improved-diffusion"
    image_size = flags["image_size"]
    kwargs = {
        "image_size": image_size,
        "in_channels": 3,
        "model_channels": flags["num_channels"],
        "out_channels": 6 if flags["learn_sigma"] else 3,
        "num_res_blocks": flags["num_res_blocks"],
        "attention_resolutions": attention_factors(
            flags["attention_resolutions"], image_size, "attention_resolutions"
        ),
        "dropout": flags["dropout"],
        "channel_mult": (
            channel_multipliers(image_size, IMPROVED_CHANNEL_MULT)
            if improved
            else channel_multipliers(image_size, GUIDED_CHANNEL_MULT, flags["channel_mult"])
        ),
        "num_classes": NUM_CLASSES if flags["class_cond"] else None,
        "use_checkpoint": flags["use_checkpoint"],
        "num_heads": flags["num_heads"],
        "num_heads_upsample": flags["num_heads_upsample"],
        "use_scale_shift_norm": flags["use_scale_shift_norm"],
    }
    if improved:
        return kwargs
    guided = ("use_fp16", "num_head_channels", "resblock_updown", "use_new_attention_order")
    return {**kwargs, **{name: flags[name] for name in guided}}


def classifier_kwargs(flags: dict[str, Any]) -> dict[str, Any]:
    """The `EncoderUNetModel` keyword arguments guided-diffusion's `create_classifier` passes."""
    if flags["codebase"] != "guided-diffusion":
        raise ConfigError(
            "improved-diffusion has no noisy classifier; a classifier needs guided-diffusion's "
            "flags (--classifier_*)"
        )
    image_size = flags["image_size"]
    return {
        "image_size": image_size,
        "in_channels": 3,
        "model_channels": flags["classifier_width"],
        "out_channels": NUM_CLASSES,
        "num_res_blocks": flags["classifier_depth"],
        "attention_resolutions": attention_factors(
            flags["classifier_attention_resolutions"],
            image_size,
            "classifier_attention_resolutions",
        ),
        "channel_mult": channel_multipliers(image_size, GUIDED_CHANNEL_MULT),
        "use_fp16": flags["classifier_use_fp16"],
        "num_head_channels": 64,
        "use_scale_shift_norm": flags["classifier_use_scale_shift_norm"],
        "resblock_updown": flags["classifier_resblock_updown"],
        "pool": flags["classifier_pool"],
    }


def diffusion_kwargs(flags: dict[str, Any]) -> dict[str, Any]:
    """`create_gaussian_diffusion`'s process as the lab's `create_diffusion` keyword arguments.

    Its losses map to the lab's: RESCALED_KL (use_kl) is `vlb` (T·L_t); with a learned sigma,
    MSE and RESCALED_MSE are `hybrid`, whose L_vlb term the lab always weights by T/1000 (as
    RESCALED_MSE does; plain MSE weights it by 1, the same for T = 1000). The loss only matters
    when training, and `train` takes it from its own config. `--rescale_timesteps` (t·1000/T
    into the network) carries over; with T = 1000 it changes nothing and is left off.
    """
    steps = flags["diffusion_steps"]
    if flags["noise_schedule"] not in ("linear", "cosine"):
        raise ConfigError(
            f"flags: --noise_schedule {flags['noise_schedule']!r}: script_util knows 'linear' "
            f"and 'cosine'"
        )
    learn_sigma = flags["learn_sigma"]
    if learn_sigma:
        model_var_type = "learned_range"
    else:
        model_var_type = "fixed_small" if flags.get("sigma_small") else "fixed_large"
    if flags["use_kl"]:
        loss_type = "vlb"
    else:
        loss_type = "hybrid" if learn_sigma else "simple"
    return {
        "schedule": flags["noise_schedule"],
        "num_timesteps": steps,
        "model_mean_type": "start_x" if flags["predict_xstart"] else "epsilon",
        "model_var_type": model_var_type,
        "loss_type": loss_type,
        "rescale_timesteps": bool(flags["rescale_timesteps"]) and steps != 1000,
    }


def timestep_sampler(flags: dict[str, Any]) -> str:
    """The lab's `timestep_sampler` for `--schedule_sampler` (a training flag)."""
    name = flags.get("schedule_sampler", "uniform")
    if name not in SCHEDULE_SAMPLERS:
        raise ConfigError(
            f"flags: --schedule_sampler {name!r}: the lab has {list(SCHEDULE_SAMPLERS)}"
        )
    return SCHEDULE_SAMPLERS[name]
