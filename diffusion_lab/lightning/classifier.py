"""LightningModule for the noisy classifier of classifier guidance (Dhariwal & Nichol §4)."""

from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassAccuracy

from diffusion_lab.checkpoints import load_checkpoint
from diffusion_lab.diffusion import create_diffusion
from diffusion_lab.targets import MODEL_PARTS, build


class NoisyClassifierModule(pl.LightningModule):
    """Trains p_φ(y | x_t, t) on images noised by q(x_t | x_0) at uniformly drawn t.

    Args:
        net: config of the classifier network (`_target_`, e.g. EncoderUNetModel), resolved.
        diffusion: keyword arguments of `create_diffusion` (only the schedule matters here).
        optimizer: config of a partial optimizer.
        num_classes: number of classes.
    """

    def __init__(self, net: dict, diffusion: dict, optimizer: dict, num_classes: int):
        super().__init__()
        self.save_hyperparameters()
        self.diffusion = create_diffusion(**diffusion)
        self.net = build(net, MODEL_PARTS, "net")
        self.num_classes = num_classes
        self.train_accuracy = MulticlassAccuracy(num_classes)
        self.val_accuracy = MulticlassAccuracy(num_classes)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(x_t, t)

    def _noisy_logits(self, images, generator=None):
        t = torch.randint(
            0,
            self.diffusion.num_timesteps,
            (len(images),),
            device=images.device,
            generator=generator,
        )
        noise = torch.randn(images.shape, device=images.device, generator=generator)
        return self.net(self.diffusion.q_sample(images, t, noise=noise), t)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        images, labels = batch
        logits = self._noisy_logits(images)
        loss = F.cross_entropy(logits, labels)
        self.train_accuracy(logits, labels)
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/accuracy", self.train_accuracy)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, labels = batch
        generator = torch.Generator(device=images.device).manual_seed(batch_idx)
        logits = self._noisy_logits(images, generator)
        self.val_accuracy(logits, labels)
        self.log("val/loss", F.cross_entropy(logits, labels), sync_dist=True)
        self.log("val/accuracy", self.val_accuracy)

    def configure_optimizers(self) -> Any:
        return build(self.hparams.optimizer, MODEL_PARTS, "optimizer")(params=self.parameters())


def load_classifier(path: str) -> NoisyClassifierModule:
    """The classifier of a `train_classifier` checkpoint (file or run dir), in eval mode."""
    checkpoint = load_checkpoint(path)
    module = NoisyClassifierModule(**checkpoint["hyper_parameters"])
    module.load_state_dict(checkpoint["state_dict"])
    return module.eval()
