"""Training callbacks: exponential moving average of the weights and sample grids."""

from diffusion_lab.callbacks.ema import EMA
from diffusion_lab.callbacks.sample_grid import SampleGrid

__all__ = ["EMA", "SampleGrid"]
