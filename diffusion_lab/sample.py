"""Draw samples from a checkpoint: `python -m diffusion_lab.sample ckpt=<file or run dir> n=64`.

Writes `samples.npz` (uint8, the ADM evaluator's format) and `grid.png` into the run dir. With
`trainer.devices=N` (and e.g. `trainer=gpu`) the samples are spread over N devices.
"""

import math
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch.utils.data import DataLoader
from torchvision.utils import save_image

from diffusion_lab.checkpoints import load_module
from diffusion_lab.cli import to_plain, user_errors
from diffusion_lab.errors import ConfigError
from diffusion_lab.guidance import ClassifierFreeGuidance, IgnoreLabels, classifier_cond_fn
from diffusion_lab.lightning.classifier import NoisyClassifierModule
from diffusion_lab.lightning.generation import NpzSampleWriter, SampleGenerator
from diffusion_lab.sampling import validate_sampler_config


def generate(cfg: DictConfig) -> Path:
    """Samples `cfg.n` images with the configured sampler; returns the path of the `.npz`."""
    if cfg.n <= 0 or cfg.batch_size <= 0:
        raise ConfigError(
            f"n and batch_size must be positive, got n={cfg.n}, batch_size={cfg.batch_size}"
        )
    module = load_module(cfg.ckpt)
    validate_sampler_config(to_plain(cfg.sampler), module.diffusion.num_timesteps)
    net_cfg = module.hparams.net
    net, cond_fn, num_classes = guided(module, cfg.guidance)
    generator = SampleGenerator(
        net,
        module.diffusion,
        (net_cfg["in_channels"], net_cfg["image_size"], net_cfg["image_size"]),
        sampler=to_plain(cfg.sampler),
        seed=cfg.seed,
        num_classes=num_classes,
        cond_fn=cond_fn,
        progress=cfg.progress,
    )
    output_dir = Path(cfg.paths.output_dir)
    npz_path = output_dir / "samples.npz"
    trainer = instantiate(
        cfg.trainer, logger=False, callbacks=[NpzSampleWriter(npz_path)], enable_progress_bar=False
    )
    indices = DataLoader(torch.arange(cfg.n), batch_size=cfg.batch_size)
    trainer.predict(generator, dataloaders=indices, return_predictions=False)
    if trainer.is_global_zero and cfg.grid_size > 0:
        write_grid(npz_path, output_dir / "grid.png", cfg.grid_size)
    return npz_path


def guided(module, guidance: DictConfig) -> tuple[torch.nn.Module, Any, int | None]:
    """The network to sample, the `cond_fn` and the number of classes to draw labels from."""
    if guidance.name == "none":
        return module.net, None, module.num_classes
    if guidance.name == "cfg":
        if module.num_classes is None:
            raise ConfigError("guidance=cfg needs a class-conditional model (model.num_classes)")
        net = ClassifierFreeGuidance(module.net, guidance.scale, module.num_classes)
        return net, None, module.num_classes
    if guidance.name == "classifier":
        classifier = load_module(guidance.classifier, NoisyClassifierModule)
        net = module.net if module.num_classes is not None else IgnoreLabels(module.net)
        cond_fn = classifier_cond_fn(classifier.net, guidance.scale)
        return net, cond_fn, classifier.hparams.num_classes
    raise ConfigError(f"guidance.name must be one of none, cfg, classifier; got {guidance.name!r}")


def write_grid(npz_path: Path, png_path: Path, count: int) -> None:
    """The first `count` samples of an `.npz` as a square-ish PNG grid."""
    images = torch.from_numpy(np.load(npz_path)["arr_0"][:count]).permute(0, 3, 1, 2)
    save_image(images.float() / 255, png_path, nrow=math.ceil(math.sqrt(len(images))), padding=1)


@hydra.main(version_base="1.3", config_path="../conf", config_name="sample")
def main(cfg: DictConfig) -> None:
    with user_errors():
        path = generate(cfg)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
