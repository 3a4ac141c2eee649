"""Training callbacks: exponential moving average of the weights, sample grids, FID."""

from diffusion_lab.callbacks.ema import EMA
from diffusion_lab.callbacks.fid import FID
from diffusion_lab.callbacks.sample_grid import SampleGrid

__all__ = ["EMA", "FID", "SampleGrid"]
