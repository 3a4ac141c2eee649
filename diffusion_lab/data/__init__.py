"""LightningDataModules: batches of (images float32 [N, C, H, W] in [-1, 1], labels int64 [N])."""

from diffusion_lab.data.celeba import CelebADataModule
from diffusion_lab.data.cifar10 import CIFAR10DataModule
from diffusion_lab.data.digits import DigitsDataModule
from diffusion_lab.data.fashion_mnist import FashionMNISTDataModule
from diffusion_lab.data.folder import ImageFolderDataModule

__all__ = [
    "CIFAR10DataModule",
    "CelebADataModule",
    "DigitsDataModule",
    "FashionMNISTDataModule",
    "ImageFolderDataModule",
]
