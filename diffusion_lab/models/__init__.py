"""Denoising networks: the DDPM/ADM U-Net and ADM's noisy-image classifier."""

from diffusion_lab.models.encoder_unet import EncoderUNetModel
from diffusion_lab.models.unet import UNetModel

__all__ = ["EncoderUNetModel", "UNetModel"]
