"""LightningModule that trains a network with one process (`diffusion_lab.processes`).

Glue only: the math lives in `diffusion_lab.processes` and `diffusion_lab.diffusion`, the network in
`diffusion_lab.models`.
"""

import os
from functools import partial
from typing import Any

import lightning.pytorch as pl
import torch
from torch.optim.lr_scheduler import LambdaLR
from torchmetrics import MeanMetric

from diffusion_lab.checkpoints import rng_state, set_rng_state
from diffusion_lab.errors import ConfigError, TrainingDivergedError
from diffusion_lab.lightning.caption_dropout import drop_captions
from diffusion_lab.lightning.lr_schedules import check_schedule, lr_factor
from diffusion_lab.lightning.rows import draw_rows, global_rows, stream_seed
from diffusion_lab.models.presets import TRAINING_SWITCHES
from diffusion_lab.models.text import build_text_encoder
from diffusion_lab.processes import create_process
from diffusion_lab.targets import MODEL_PARTS, build

NUM_QUARTILES = 4


class DiffusionModule(pl.LightningModule):
    """Trains `net` to reverse the diffusion process described by `diffusion`.

    All arguments are plain containers (dicts, numbers, strings) so that checkpoints load with
    `weights_only=True` and `DiffusionModule.load_from_checkpoint(path)` rebuilds the run.

    Args:
        net: config of the network (with `_target_`), e.g. a `conf/model/*.yaml` preset, resolved.
            Its training switches are applied here, not passed to the network: `compile`
            (torch.compile the training step's forward) and `channels_last` (NHWC weights).
        diffusion: keyword arguments of `create_diffusion` (schedule, T, mean/var/loss types).
        optimizer: config of a partial optimizer (`_target_`, `_partial_: true`, lr, ...).
        warmup_steps: linear learning-rate warmup length in optimizer steps.
        lr_schedule: after warmup, constant, linear or cosine decay to 0 at `trainer.max_steps`.
        timestep_sampler: "uniform" or "loss_aware" (Improved DDPM §3.3).
        cond_drop_prob: probability of replacing a label by the null class, and a caption by ""
            (classifier-free guidance, Ho & Salimans 2022; GLIDE §3.2).
        max_nonfinite_steps: stop after this many consecutive steps with a NaN/inf loss (each
            such step is skipped and counted in `train/skipped_steps`).
        process: `conf/process/*.yaml` (name and options, `diffusion_lab.processes`); None:
            the Gaussian process of `diffusion` with uniform weighting.
        text_encoder: a conf/text_encoder/*.yaml (`name` and its options, the transformer's
            `vocab` filled in) for batches (image, label, caption); None: no captions.
    """

    def __init__(
        self,
        net: dict,
        diffusion: dict,
        optimizer: dict,
        warmup_steps: int = 0,
        timestep_sampler: str = "uniform",
        cond_drop_prob: float = 0.0,
        max_nonfinite_steps: int = 10,
        lr_schedule: str = "constant",
        process: dict | None = None,
        text_encoder: dict | None = None,
    ):
        super().__init__()
        net = dict(net)
        switches = {key: net.pop(key, False) for key in TRAINING_SWITCHES}
        for key, value in switches.items():
            if not isinstance(value, bool):
                raise ConfigError(f"model.{key}={value!r} must be true or false")
        # after the pops: hparams, and so checkpoints, hold the network's own config (the run's
        # config.yaml keeps the switches)
        self.save_hyperparameters()
        check_schedule(lr_schedule)
        self.process = create_process(process, diffusion)
        self.diffusion = self.process.diffusion  # what the samplers take
        self.net = build(net, MODEL_PARTS, "net", learn_sigma=self.process.learns_sigma)
        if switches["channels_last"]:
            self.net.to(memory_format=torch.channels_last)  # .to(device) keeps it
        self.compile_net = switches["compile"]
        self._compiled_forward = None  # set at fit start when compile_net
        self.schedule_sampler = self.process.schedule_sampler(timestep_sampler)
        self.num_classes = net.get("num_classes")
        size, channels = net["image_size"], net["in_channels"]  # the summary's FLOP count runs it
        self.example_input_array = {
            "x_t": torch.zeros(1, channels, size, size),
            "t": torch.zeros(1),
        }
        if self.num_classes is not None:
            self.example_input_array["y"] = torch.zeros(1, dtype=torch.long)
        self.text_encoder = None
        if text_encoder is not None:
            if net.get("text_channels") is None:
                raise ConfigError("a text_encoder needs model.text_channels=<its width>")
            self.text_encoder = build_text_encoder(text_encoder)
            with torch.no_grad():
                self.example_input_array["text"] = self.text_encoder([""])
        self.loss_by_quartile = torch.nn.ModuleList(MeanMetric() for _ in range(NUM_QUARTILES))
        self.skipped_steps = 0
        self.nonfinite_in_a_row = 0

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, **model_kwargs) -> torch.Tensor:
        return self.net(x_t, t, **model_kwargs)

    @property
    def train_net(self):
        """What the training step calls: the network's compiled forward with `compile`, else the
        network."""
        return self._compiled_forward or self.net

    def on_fit_start(self) -> None:
        """`compile`: only the training step's forward, held as a function, not a submodule, so
        `state_dict` keys, EMA's copy of the module, validation and sampling stay eager. Batch
        shapes are fixed (a smaller last batch compiles once more). Then the process fits what
        it needs from the training images (the cold process's prior of x_T)."""
        if self.compile_net:
            self._compiled_forward = torch.compile(self.net.forward, dynamic=False)
        if getattr(self._trainer, "datamodule", None) is not None:  # None: called alone
            self.process.prepare(self._train_images())

    def _train_images(self):
        """The training images, batch by batch, read only if the process asks (lazily)."""
        for batch in self.trainer.datamodule.train_dataloader():
            yield batch[0]

    def model_kwargs(
        self, batch: tuple, u_drop: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """The conditioning of a batch (image, label[, caption]) for the net: labels for a
        class-conditional net, the captions' TextStates for a text encoder; where the row's
        `u_drop` [N] is below `cond_drop_prob`, the null class and "" instead."""
        kwargs = {}
        drop = None if u_drop is None else u_drop < self.hparams.cond_drop_prob
        if self.num_classes is not None:
            labels = batch[1]
            if drop is not None:
                labels = torch.where(drop, torch.full_like(labels, self.num_classes), labels)
            kwargs["y"] = labels
        if self.text_encoder is not None:
            captions = list(batch[2])
            if u_drop is not None:
                captions = drop_captions(captions, u_drop, self.hparams.cond_drop_prob)
            kwargs["text"] = self.text_encoder(captions)
        return kwargs

    def training_step(self, batch: tuple, batch_idx: int) -> torch.Tensor | None:
        images = batch[0]
        micro_batch = batch_idx % self.accumulation
        t, weights, noise, u_drop = self._draw(images, micro_batch)
        model_kwargs = self.model_kwargs(batch, u_drop)
        self.seed_dropout(micro_batch)
        terms = self.process.training_losses(
            self.train_net, images, t, model_kwargs=model_kwargs, noise=noise
        )
        loss = (terms["loss"] * weights).mean()
        if self._skip_nonfinite(loss):
            return None  # Lightning skips backward and the optimizer step
        if hasattr(self.schedule_sampler, "update_with_local_losses"):
            self.schedule_sampler.update_with_local_losses(t, terms["loss"].detach())
        self.log("train/loss", loss, prog_bar=True, sync_dist=True)
        for name in ("mse", "vb"):
            if name in terms:
                self.log(f"train/{name}", terms[name].mean(), sync_dist=True)
        self._update_quartiles(t, terms["loss"].detach())
        return loss

    @property
    def accumulation(self) -> int:
        """Micro-batches per optimizer step (`trainer.accumulate_grad_batches`)."""
        return int(getattr(self.trainer, "accumulate_grad_batches", 1))

    def _draw(self, images: torch.Tensor, micro_batch: int = 0) -> tuple[torch.Tensor, ...]:
        """(t, weights, noise, u_drop) for this process's rows of the global batch, each row from
        its own (seed, step, row) stream (`lightning.rows`): N processes see the same
        (x_0, t, noise, label dropout) as one process with an N-times batch."""
        trainer = self.trainer
        rows = global_rows(images.shape[0], trainer.world_size, trainer.global_rank, micro_batch)
        u_t, u_drop, noise = draw_rows(self.seed, self.global_step, rows, images.shape[1:])
        t, weights = self.schedule_sampler.from_uniform(u_t.to(images.device))
        noise = noise.to(images.device, images.dtype, non_blocking=True)
        return t, weights, noise, u_drop.to(images.device)

    def seed_dropout(self, micro_batch: int = 0) -> None:
        """Dropout masks from a stream of this process's own, fixed by (seed, step, micro-batch,
        rank): ranks drop different units, and a resumed run drops what an uninterrupted one
        would."""
        key = (self.seed, self.global_step, micro_batch, "dropout", self.global_rank)
        torch.manual_seed(stream_seed(*key))

    @property
    def seed(self) -> int:
        """The run's seed (`seed_everything` sets it on every process)."""
        return int(os.environ.get("PL_GLOBAL_SEED", 0))

    def _skip_nonfinite(self, loss: torch.Tensor) -> bool:
        """True when the loss is NaN/inf on any process; too many in a row stop the run."""
        nonfinite = self.trainer.strategy.reduce_boolean_decision(
            not bool(torch.isfinite(loss)), all=False
        )
        if not nonfinite:
            self.nonfinite_in_a_row = 0
            return False
        self.skipped_steps += 1
        self.nonfinite_in_a_row += 1
        self.log("train/skipped_steps", float(self.skipped_steps))
        if self.nonfinite_in_a_row >= self.hparams.max_nonfinite_steps:
            raise TrainingDivergedError(
                f"the loss was not finite for {self.nonfinite_in_a_row} steps in a row "
                f"(at step {self.global_step}); lower optimizer.lr, check the data, or raise "
                f"max_nonfinite_steps (now {self.hparams.max_nonfinite_steps}); "
                f"the last good checkpoint is kept"
            )
        return True

    def _update_quartiles(self, t: torch.Tensor, losses: torch.Tensor) -> None:
        """Accumulates the loss by timestep quartile; logs it every logging interval."""
        quartile = (NUM_QUARTILES * t) // self.process.num_timesteps
        for q, metric in enumerate(self.loss_by_quartile):
            mask = (quartile == q).to(losses.dtype)
            metric.update(losses, weight=mask)
        if (self.global_step + 1) % self.trainer.log_every_n_steps == 0:
            for q, metric in enumerate(self.loss_by_quartile):
                value = metric.compute()  # synchronised across processes
                if torch.isfinite(value):
                    self.log(f"train/loss_q{q}", value, rank_zero_only=True)
                metric.reset()

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        grads = [p.grad for p in self.net.parameters() if p.grad is not None]
        if grads:
            self.log("train/grad_norm", torch.nn.utils.get_total_norm(grads))

    def validation_step(self, batch: tuple, batch_idx: int) -> None:
        """The training objective with t and noise fixed by `batch_idx`, so values compare."""
        images = batch[0]
        generator = torch.Generator(device=images.device).manual_seed(batch_idx)
        t = torch.randint(
            0,
            self.process.num_timesteps,
            (images.shape[0],),
            generator=generator,
            device=images.device,
        )
        noise = torch.randn(images.shape, generator=generator, device=images.device)
        terms = self.process.training_losses(
            self.net, images, t, model_kwargs=self.model_kwargs(batch), noise=noise
        )
        n = len(images)  # Lightning cannot tell it from a batch with captions
        self.log("val/loss", terms["loss"].mean(), prog_bar=True, sync_dist=True, batch_size=n)
        if "mse" in terms:
            self.log("val/mse", terms["mse"].mean(), sync_dist=True, batch_size=n)

    def configure_optimizers(self) -> dict[str, Any]:
        options = dict(self.hparams.optimizer)
        if "fused" in options and options["fused"] is None:  # null: the fused kernel on CUDA
            options["fused"] = self.device.type == "cuda"
        trainable = [p for p in self.parameters() if p.requires_grad]  # never a frozen encoder
        optimizer = build(options, MODEL_PARTS, "optimizer")(params=trainable)
        schedule = self.hparams.lr_schedule
        factor = partial(
            lr_factor,
            warmup_steps=int(self.hparams.warmup_steps),
            total_steps=0 if schedule == "constant" else self.trainer.max_steps,  # decay's end
            schedule=schedule,
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": LambdaLR(optimizer, factor), "interval": "step"},
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Adds the timestep sampler's loss history and the RNG states (rank 0's: every rank
        runs the same seeded streams), so a resumed run draws what an uninterrupted one would."""
        checkpoint["timestep_sampler"] = self.schedule_sampler.state_dict()
        checkpoint["rng_state"] = rng_state()
        checkpoint["skipped_steps"] = self.skipped_steps
        checkpoint["process"] = self.process.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "timestep_sampler" in checkpoint:
            self.schedule_sampler.load_state_dict(checkpoint["timestep_sampler"])
        if "rng_state" in checkpoint:
            set_rng_state(checkpoint["rng_state"])
        self.skipped_steps = checkpoint.get("skipped_steps", 0)
        self.process.load_state_dict(checkpoint.get("process", {}))
