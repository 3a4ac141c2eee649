"""diffusion_lab: denoising diffusion models as the papers define them, on Lightning + Hydra."""

from diffusion_lab.config import CONFIG_DIR

__version__ = "0.1.0"
__all__ = ["CONFIG_DIR", "__version__"]
