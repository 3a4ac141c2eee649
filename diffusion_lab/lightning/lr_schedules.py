"""Learning-rate factors by optimizer step: linear warmup, then constant, linear or cosine decay."""

import math
from typing import Literal

from diffusion_lab.errors import ConfigError

Schedule = Literal["constant", "linear", "cosine"]
SCHEDULES = ("constant", "linear", "cosine")


def check_schedule(schedule: str) -> None:
    if schedule not in SCHEDULES:
        raise ConfigError(f"lr_schedule={schedule!r} is not one of {', '.join(SCHEDULES)}")


def lr_factor(step: int, warmup_steps: int, total_steps: int, schedule: Schedule) -> float:
    """The factor on the base lr at optimizer step `step` (0-based).

    Warmup: (step + 1)/warmup_steps up to 1 (DDPM's linear warmup). After it, with
    p = (step − warmup)/(total − warmup) in [0, 1]: constant 1; linear 1 − p (guided-diffusion's
    `--anneal_lr`, with no warmup); cosine (1 + cos πp)/2 (Loshchilov & Hutter 2017, no restarts).
    """
    warmup = min(1.0, (step + 1) / max(warmup_steps, 1))
    progress = min(1.0, max(0.0, (step - warmup_steps) / max(total_steps - warmup_steps, 1)))
    if schedule == "linear":
        return warmup * (1.0 - progress)
    if schedule == "cosine":
        return warmup * 0.5 * (1.0 + math.cos(math.pi * progress))
    return warmup
