"""diffusion_lab: denoising diffusion models as the papers define them, on Lightning + Hydra."""

__version__ = "0.1.0"
