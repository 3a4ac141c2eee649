"""LightningModule for the noisy classifier of classifier guidance (Dhariwal & Nichol §4)."""

import os
from functools import partial
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch.optim.lr_scheduler import LambdaLR
from torchmetrics.classification import MulticlassAccuracy

from diffusion_lab.checkpoints import lab_checkpoint
from diffusion_lab.diffusion import create_diffusion
from diffusion_lab.lightning.lr_schedules import check_schedule, lr_factor
from diffusion_lab.lightning.rows import draw_rows, global_rows, stream_seed
from diffusion_lab.targets import MODEL_PARTS, build


class NoisyClassifierModule(pl.LightningModule):
    """Trains p_φ(y | x_t, t) on images noised by q(x_t | x_0) at uniformly drawn t.

    Args:
        net: config of the classifier network (`_target_`, e.g. EncoderUNetModel), resolved.
        diffusion: keyword arguments of `create_diffusion` (only the schedule matters here).
        optimizer: config of a partial optimizer.
        num_classes: number of classes.
        lr_schedule: constant, linear (guided-diffusion's `--anneal_lr True`) or cosine decay to 0
            at `trainer.max_steps`.
    """

    def __init__(
        self,
        net: dict,
        diffusion: dict,
        optimizer: dict,
        num_classes: int,
        lr_schedule: str = "constant",
    ):
        super().__init__()
        self.save_hyperparameters()
        check_schedule(lr_schedule)
        self.diffusion = create_diffusion(**diffusion)
        self.net = build(net, MODEL_PARTS, "net")
        self.num_classes = num_classes
        self.train_accuracy = MulticlassAccuracy(num_classes)
        self.val_accuracy = MulticlassAccuracy(num_classes)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(x_t, t)

    def _noisy_logits(self, images, t, noise):
        """Logits at x_t ~ q(x_t | x_0); the net sees the timesteps the guided model sees."""
        x_t = self.diffusion.q_sample(images, t, noise=noise)
        return self.net(x_t, self.diffusion._model_timesteps(t))

    def training_step(self, batch: tuple, batch_idx: int):
        """Cross-entropy at t ~ U{0..T-1}, x_t ~ q(x_t | x_0), drawn per global batch row; a
        captioned batch's captions are not read."""
        images, labels = batch[:2]
        trainer = self.trainer
        micro = batch_idx % trainer.accumulate_grad_batches
        rows = global_rows(len(images), trainer.world_size, trainer.global_rank, micro)
        seed = int(os.environ.get("PL_GLOBAL_SEED", 0))
        u_t, _, noise = draw_rows(seed, self.global_step, rows, images.shape[1:])
        t = (u_t * self.diffusion.num_timesteps).long().to(images.device)
        torch.manual_seed(stream_seed(seed, self.global_step, micro, "dropout", self.global_rank))
        logits = self._noisy_logits(images, t, noise.to(images.device, images.dtype))
        loss = F.cross_entropy(logits, labels)
        self.train_accuracy(logits, labels)
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/accuracy", self.train_accuracy)
        return loss

    def validation_step(self, batch: tuple, batch_idx: int) -> None:
        images, labels = batch[:2]
        generator = torch.Generator(device=images.device).manual_seed(batch_idx)
        n, device = len(images), images.device
        t = torch.randint(self.diffusion.num_timesteps, (n,), device=device, generator=generator)
        noise = torch.randn(images.shape, device=device, generator=generator)
        logits = self._noisy_logits(images, t, noise)
        self.val_accuracy(logits, labels)
        self.log("val/loss", F.cross_entropy(logits, labels), sync_dist=True, batch_size=n)
        self.log("val/accuracy", self.val_accuracy, batch_size=n)

    def configure_optimizers(self) -> Any:
        optimizer = build(self.hparams.optimizer, MODEL_PARTS, "optimizer")(
            params=self.parameters()
        )
        factor = partial(
            lr_factor,
            warmup_steps=0,
            total_steps=self.trainer.max_steps,
            schedule=self.hparams.lr_schedule,
        )
        scheduler = {"scheduler": LambdaLR(optimizer, factor), "interval": "step"}
        return {"optimizer": optimizer, "lr_scheduler": scheduler}


def load_classifier(path: str) -> NoisyClassifierModule:
    """The classifier of a `train_classifier` checkpoint (file or run dir), in eval mode."""
    checkpoint = lab_checkpoint(path)
    module = NoisyClassifierModule(**checkpoint["hyper_parameters"])
    module.load_state_dict(checkpoint["state_dict"])
    return module.eval()
