"""Lightning glue: the module that trains a network with a Gaussian diffusion process."""

from diffusion_lab.lightning.module import DiffusionModule

__all__ = ["DiffusionModule"]
