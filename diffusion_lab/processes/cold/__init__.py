"""Cold diffusion (Bansal et al. 2022): degradations, their process and samplers."""

from diffusion_lab.processes.cold.degradations import DEGRADATIONS, create_degradation
from diffusion_lab.processes.cold.process import ColdProcess
from diffusion_lab.processes.cold.restore import Restoration, restore
from diffusion_lab.processes.cold.samplers import (
    COLD_SAMPLERS,
    cold_sample,
    sample_cold,
    sample_cold_naive,
)

__all__ = [
    "COLD_SAMPLERS",
    "DEGRADATIONS",
    "ColdProcess",
    "Restoration",
    "cold_sample",
    "create_degradation",
    "restore",
    "sample_cold",
    "sample_cold_naive",
]
