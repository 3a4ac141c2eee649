"""Draw samples from a checkpoint: `python -m diffusion_lab.sample ckpt=<file or run dir> n=64`.

Writes `samples.npz` (uint8, the ADM evaluator's format) and `grid.png` into the run dir. With
`trainer.devices=N` (and e.g. `trainer=gpu`) the samples are spread over N devices. A
text-conditioned model samples `prompt="..."` or `prompts=[...]` (or a file of lines): sample i
gets prompt i mod P; the grid has one titled row per prompt.
"""

import math
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig
from torch.utils.data import DataLoader
from torchvision.utils import save_image

from diffusion_lab.checkpoints import load_module
from diffusion_lab.cli import to_plain, user_errors
from diffusion_lab.errors import ConfigError
from diffusion_lab.grids import save_titled_grid
from diffusion_lab.guidance import (
    CaptionClassifierFreeGuidance,
    ClassifierFreeGuidance,
    ClassifierGuidance,
    IgnoreLabels,
)
from diffusion_lab.lightning.classifier import load_classifier
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
    prompts = read_prompts(cfg, module.text_encoder is not None)
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
        prompts=prompts,
        text_encoder=module.text_encoder,
    )
    output_dir = Path(cfg.paths.output_dir)
    npz_path = output_dir / "samples.npz"
    trainer = instantiate(
        cfg.trainer,
        logger=False,
        callbacks=[NpzSampleWriter(npz_path, prompts)],
        enable_progress_bar=False,
    )
    indices = DataLoader(torch.arange(cfg.n), batch_size=cfg.batch_size)
    trainer.predict(generator, dataloaders=indices, return_predictions=False)
    if trainer.is_global_zero and cfg.grid_size > 0:
        write_grid(npz_path, output_dir / "grid.png", cfg.grid_size)
    return npz_path


def read_prompts(cfg: DictConfig, text_model: bool) -> list[str] | None:
    """`prompt`, or `prompts` (a list, or a file with one prompt a line); None without either."""
    prompt, prompts = cfg.get("prompt"), cfg.get("prompts")
    if prompt is not None and prompts is not None:
        raise ConfigError('give prompt="..." or prompts=[...] (or a file), not both')
    if isinstance(prompts, str):
        if not Path(prompts).is_file():
            raise ConfigError(f"prompts={prompts} is not a file (one prompt a line) or a list")
        prompts = [line.strip() for line in Path(prompts).read_text().splitlines()]
        prompts = [line for line in prompts if line]
    elif isinstance(prompts, ListConfig | list):
        prompts = [str(p) for p in prompts]
    elif prompt is not None:
        prompts = [str(prompt)]
    if prompts is not None and not prompts:
        raise ConfigError("prompts is empty: give at least one prompt")
    if text_model and prompts is None:
        raise ConfigError('this model is text-conditioned: give prompt="..." or prompts=[...]')
    if not text_model and prompts is not None:
        raise ConfigError(
            "prompt/prompts need a text-conditioned model (trained with text_encoder=)"
        )
    return prompts


def guided(module, guidance: DictConfig) -> tuple[torch.nn.Module, Any, int | None]:
    """The network to sample, its `cond_fn` and the number of classes K for the labels.

    Shared by `sample` and `evaluate`, which give sample i the label i mod K (balanced classes).
    none: the model as trained. cfg: ε̂ = ε_u + w·(ε_c − ε_u) with w = guidance.scale (Ho &
    Salimans 2022). classifier: s·∇ log p(y|x_t) from a `train_classifier` run, s =
    guidance.scale (Dhariwal & Nichol 2021); an unconditional model ignores the labels.
    """
    if guidance.name == "none":
        return module.net, None, module.num_classes
    if guidance.name == "cfg":
        if module.text_encoder is not None:
            with torch.no_grad():
                empty = module.text_encoder([""])
            return CaptionClassifierFreeGuidance(module.net, guidance.scale, empty), None, None
        if module.num_classes is None:
            raise ConfigError(
                "guidance=cfg needs a class-conditional model trained with label dropout "
                "(model.num_classes, cond_drop_prob > 0); use guidance=classifier or none"
            )
        net = ClassifierFreeGuidance(module.net, guidance.scale, module.num_classes)
        return net, None, module.num_classes
    if guidance.name == "classifier":
        classifier = load_classifier(guidance.classifier)
        check_classifier(module, classifier)
        net = module.net if module.num_classes is not None else IgnoreLabels(module.net)
        return net, ClassifierGuidance(classifier.net, guidance.scale), classifier.num_classes
    raise ConfigError(f"guidance.name must be one of none, cfg, classifier; got {guidance.name!r}")


def check_classifier(module, classifier) -> None:
    """ConfigError unless the classifier saw the model's noise schedule and classes."""
    same_schedule = torch.equal(
        classifier.diffusion.alphas_cumprod, module.diffusion.alphas_cumprod
    ) and (classifier.diffusion.rescale_timesteps == module.diffusion.rescale_timesteps)
    if not same_schedule:
        raise ConfigError(
            f"guidance.classifier was trained on the schedule {classifier.hparams.diffusion}, "
            f"the model on {module.hparams.diffusion}; train the classifier with the model's "
            f"schedule (schedule=..., schedule.num_timesteps=...)"
        )
    if module.num_classes not in (None, classifier.num_classes):
        raise ConfigError(
            f"guidance.classifier has {classifier.num_classes} classes, the model "
            f"model.num_classes={module.num_classes}"
        )


def write_grid(npz_path: Path, png_path: Path, count: int) -> None:
    """About `count` samples of an `.npz` as a PNG grid.

    With labels (`arr_1`): one row per class, count // K samples of that class per row (at least
    one); with prompts, the same per prompt, each row titled with its prompt. Without: the first
    `count` samples, square-ish.
    """
    arrays = np.load(npz_path)
    images = torch.from_numpy(arrays["arr_0"]).permute(0, 3, 1, 2)
    key = "prompt_index" if "prompt_index" in arrays else "arr_1"
    if key in arrays:
        labels = torch.from_numpy(arrays[key])
        num_classes = int(labels.max()) + 1
        nrow = max(count // num_classes, 1)
        rows = []
        for label in range(num_classes):
            row = images[labels == label][:nrow]
            blank = torch.full((nrow - len(row), *images.shape[1:]), 255, dtype=images.dtype)
            rows.append(torch.cat([row, blank]))
        images = torch.cat(rows)
        if "prompts" in arrays:
            titles = [str(p) for p in arrays["prompts"]][:num_classes]
            save_titled_grid(images.float() / 255, titles, png_path, nrow=nrow)
            return
    else:
        images = images[:count]
        nrow = math.ceil(math.sqrt(len(images)))
    save_image(images.float() / 255, png_path, nrow=nrow, padding=1)


@hydra.main(version_base="1.3", config_path="conf", config_name="sample")
def main(cfg: DictConfig) -> None:
    with user_errors():
        path = generate(cfg)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
