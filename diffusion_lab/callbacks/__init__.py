"""Training callbacks: EMA of the weights, last.ckpt and stop signals, sample grids, FID."""

from diffusion_lab.callbacks.ema import EMA
from diffusion_lab.callbacks.fid import FID
from diffusion_lab.callbacks.last_checkpoint import LastCheckpoint
from diffusion_lab.callbacks.progress import StepProgressBar
from diffusion_lab.callbacks.sample_grid import SampleGrid
from diffusion_lab.callbacks.snapshots import Snapshots

__all__ = ["EMA", "FID", "LastCheckpoint", "SampleGrid", "Snapshots", "StepProgressBar"]
