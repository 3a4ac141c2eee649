"""Draw samples from a checkpoint: `python -m diffusion_lab.sample ckpt=<file or run dir> n=64`.

Writes `samples.npz` (uint8, the ADM evaluator's format) and `grid.png` into the run dir. With
`trainer.devices=N` (and e.g. `trainer=gpu`) the samples are spread over N devices. A
text-conditioned model samples `prompt="..."` or `prompts=[...]` (or a file of lines): sample i
gets prompt i mod P; the grid has one titled row per prompt.
`restore=true` (a cold model) restores the first n degraded validation images instead.
"""

import json
import math
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig
from torch.utils.data import DataLoader

from diffusion_lab.callbacks.progress import PredictionProgress
from diffusion_lab.checkpoints import load_module
from diffusion_lab.cli import to_plain, user_errors
from diffusion_lab.errors import ConfigError
from diffusion_lab.figures.strips import restoration_strip
from diffusion_lab.grids import class_rows, save_grid, save_titled_grid
from diffusion_lab.guidance import (
    CaptionClassifierFreeGuidance,
    ClassifierFreeGuidance,
    ClassifierGuidance,
    IgnoreLabels,
)
from diffusion_lab.lightning.classifier import load_classifier
from diffusion_lab.lightning.generation import NpzSampleWriter, SampleGenerator
from diffusion_lab.metrics import build_feature_extractor, to_uint8
from diffusion_lab.processes.cold import Restoration, restore
from diffusion_lab.runs.data import load_datamodule
from diffusion_lab.sampling import validate_sampler_config
from diffusion_lab.stopping import stop_when_told


def generate(cfg: DictConfig) -> Path:
    """Samples `cfg.n` images with the configured sampler; returns the path of the `.npz`."""
    if cfg.n <= 0 or cfg.batch_size <= 0:
        raise ConfigError(
            f"n and batch_size must be positive, got n={cfg.n}, batch_size={cfg.batch_size}"
        )
    module = load_module(cfg.ckpt)
    process = module.process
    validate_sampler_config(to_plain(cfg.sampler), process.num_timesteps, process.kind)
    if cfg.get("restore"):
        return restore_images(cfg, module)
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
        prompts=prompts,
        text_encoder=module.text_encoder,
    )
    output_dir = Path(cfg.paths.output_dir)
    npz_path = output_dir / "samples.npz"
    callbacks = [
        NpzSampleWriter(npz_path, prompts),
        PredictionProgress(cfg.n, enabled=cfg.progress),
    ]
    trainer = instantiate(cfg.trainer, logger=False, callbacks=callbacks, enable_progress_bar=False)
    indices = DataLoader(torch.arange(cfg.n), batch_size=cfg.batch_size)
    trainer.predict(generator, dataloaders=indices, return_predictions=False)
    if trainer.is_global_zero and cfg.grid_size > 0:
        write_grid(npz_path, output_dir / "grid.png", cfg.grid_size, cfg.get("grid_scale"))
    return npz_path


def restore_images(cfg: DictConfig, module) -> Path:
    """`restore=true`: the first n validation images (of `data=` or the run's dataset) degraded
    to level T and restored with the cold sampler, in batches of batch_size on the CPU.

    Writes `restorations.npz` (uint8 [n,H,W,C]: arr_0 restored, as `evaluate samples=` reads
    it, `originals` and `degraded` beside it), `restoration.json` (mean RMSE and SSIM of the
    restorations and of the degraded inputs; with `features=`, their FIDs against the originals)
    and `restoration.png` (a strip of the first grid_size images); returns the npz.
    """
    if not hasattr(module.process, "degrade"):
        raise ConfigError("restore=true needs a model of a degradation: train it with process=cold")
    datamodule = load_datamodule(cfg)
    datamodule.setup("validate")
    options = to_plain(cfg.sampler)
    generator = torch.Generator().manual_seed(cfg.seed)
    parts, count = [], 0
    for images, labels, *_ in datamodule.val_dataloader():
        images, labels = images[: cfg.n - count], labels[: cfg.n - count]
        noise = torch.randn(images.shape, generator=generator)  # the degradation's randomness
        for start in range(0, len(images), cfg.batch_size):
            rows = slice(start, start + cfg.batch_size)
            parts.append(restore(
                module.net, module.process, images[rows], options["name"], options["steps"],
                noise[rows], module.model_kwargs(labels[rows]),
                options["clip_denoised"],
            ))  # fmt: skip
        count += len(images)
        if count >= cfg.n:
            break
    fields = ("originals", "degraded", "restored")
    joined = {key: torch.cat([getattr(part, key) for part in parts]) for key in fields}
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    npz_path = output_dir / "restorations.npz"
    arrays = {key: to_uint8(joined[key]).permute(0, 2, 3, 1).numpy() for key in fields}
    np.savez(npz_path, arrays.pop("restored"), **arrays)
    restoration = Restoration(**joined, nfe=parts[0].nfe)
    metrics = restoration.metrics()
    if cfg.get("features"):
        metrics |= restoration.fids(build_feature_extractor(cfg.features))
    (output_dir / "restoration.json").write_text(json.dumps(metrics, indent=2) + "\n")
    if cfg.grid_size > 0:
        strip = restoration_strip(*joined.values(), columns=cfg.grid_size)
        strip.save(output_dir / "restoration.png")
    print(", ".join(f"{key} {value:.4f}" for key, value in metrics.items()))
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


def write_grid(npz_path: Path, png_path: Path, count: int, scale: int | None = None) -> None:
    """Samples of an `.npz` as a PNG grid, scaled up by `scale` (None: to ~512 px; grids.py).

    With labels (`arr_1`): one row per class of K samples of that class (`class_rows`); with
    prompts: one row per prompt of `count` // P samples, titled with it (the first `count`
    prompts, one sample each, when there are more). Without: the first `count` samples,
    square-ish.
    """
    arrays = np.load(npz_path)
    images = torch.from_numpy(arrays["arr_0"]).permute(0, 3, 1, 2).float() / 255
    if "prompts" in arrays:
        titles = [str(p) for p in arrays["prompts"]]
        per_row = max(count // len(titles), 1)
        shown = min(len(titles), max(count // per_row, 1))
        index = torch.from_numpy(arrays["prompt_index"]).long()
        images, nrow = class_rows(images[index < shown], index[index < shown], per_row)
        save_titled_grid(images, titles[:shown], png_path, nrow=nrow, scale=scale)
        return
    if "arr_1" in arrays:
        images, nrow = class_rows(images, torch.from_numpy(arrays["arr_1"]).long())
    else:
        images = images[:count]
        nrow = math.ceil(math.sqrt(len(images)))
    save_grid(images, png_path, nrow, scale)


@hydra.main(version_base="1.3", config_path="conf", config_name="sample")
def main(cfg: DictConfig) -> None:
    with stop_when_told(), user_errors():
        path = generate(cfg)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
