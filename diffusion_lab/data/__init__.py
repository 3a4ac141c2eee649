"""LightningDataModules: batches of (images float32 [N, C, H, W] in [-1, 1], labels int64 [N]);
the captioned ones add the captions, N strings."""

from diffusion_lab.data.captioned import CaptionedDataModule
from diffusion_lab.data.celeba import CelebADataModule
from diffusion_lab.data.cifar10 import CIFAR10DataModule
from diffusion_lab.data.digits import DigitsDataModule
from diffusion_lab.data.digits_captions import DigitsCaptionsDataModule
from diffusion_lab.data.fashion_mnist import FashionMNISTDataModule
from diffusion_lab.data.fashion_mnist_captions import FashionMNISTCaptionsDataModule
from diffusion_lab.data.folder import ImageFolderDataModule
from diffusion_lab.data.folder_captions import CaptionedImageFolderDataModule

__all__ = [
    "CIFAR10DataModule",
    "CaptionedDataModule",
    "CaptionedImageFolderDataModule",
    "CelebADataModule",
    "DigitsCaptionsDataModule",
    "DigitsDataModule",
    "FashionMNISTCaptionsDataModule",
    "FashionMNISTDataModule",
    "ImageFolderDataModule",
]
