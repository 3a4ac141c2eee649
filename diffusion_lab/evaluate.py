"""Evaluate a model: `python -m diffusion_lab.evaluate ckpt=<run dir> metrics=[fid,is,prc,nll]`
(add nll_ode for the probability-flow ODE likelihood).

Draws `num_samples` images with the `sample` command's generator (spread over `trainer.devices`),
one set per seed of `seeds=[...]`, or reads them from `samples=<file.npz>`; scores them against
cached reference statistics of the dataset, bounds the test-set NLL in bits/dim, and writes
`results.json` into the run dir.
"""

import json
import logging
import math
import time
import zipfile
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from torch.utils.data import DataLoader, Subset

from diffusion_lab import __version__
from diffusion_lab.checkpoints import checkpoint_step, load_module, resolve_checkpoint
from diffusion_lab.cli import to_plain, user_errors
from diffusion_lab.errors import ConfigError, DataNotFoundError
from diffusion_lab.evaluation import (
    across_seeds,
    bits_per_dim,
    dataset_name,
    image_features,
    mean_and_stderr,
    ode_bits_per_dim,
    reference_for,
    score,
    scores_of,
)
from diffusion_lab.evaluation.ode_likelihood import ESTIMATORS as ODE_ESTIMATORS
from diffusion_lab.evaluation.text import alignment_scores, check_clip_model, sample_prompts
from diffusion_lab.metrics import PRCSettings, build_feature_extractor
from diffusion_lab.progress import Bar, counted
from diffusion_lab.runs.data import load_datamodule
from diffusion_lab.runs.fit import instantiate_each, is_rank_zero
from diffusion_lab.sample import generate
from diffusion_lab.sampling import sample
from diffusion_lab.stopping import stop_when_told

log = logging.getLogger(__name__)


def evaluate(cfg: DictConfig) -> dict | None:
    """Runs the configured evaluation; returns what it wrote to results.json (None on ranks > 0)."""
    if not is_rank_zero():  # a process started by Lightning's DDP launcher: it only samples
        prompts = evaluation_prompts(cfg, load_module(cfg.ckpt))
        for seed in sample_seeds(cfg):
            generate(sample_config(cfg, seed, prompts))
        return None
    check_config(cfg)
    selected, names = list(cfg.metrics), scores_of(cfg.metrics)
    prc = PRCSettings.from_config(cfg.metrics.prc, "metrics.prc") if "prc" in selected else None
    device = metrics_device(cfg.device)
    # Everything that can fail fast (weights, checkpoint, data) comes before sampling.
    extractor = None
    if names:
        extractor = build_feature_extractor(cfg.features, cfg.inception_weights).to(device)
    module = load_module(cfg.ckpt) if cfg.ckpt is not None else None
    needs_reference = any(name != "is" for name in names)
    needs_test_split = "nll" in selected or "nll_ode" in selected
    text = "text_alignment" in selected
    datamodule = load_datamodule(cfg) if needs_reference or needs_test_split or text else None
    reference = None
    if needs_reference:
        reference = reference_for(
            datamodule,
            cfg.reference.split,
            extractor,
            cfg.cache_dir,
            cfg.feature_batch_size,
            prc,
            progress=cfg.progress,
        )

    prompts = evaluation_prompts(cfg, module)
    per_seed, protocol, seconds, num_samples = [], None, [], None
    generation = dict.fromkeys(("nfe", "sampler", "guidance", "seconds_per_image"))
    if not (names or text):
        log.info("only the NLL was asked for (metrics=%s): drawing no samples", selected)
    for seed in sample_seeds(cfg) if names or text else []:
        samples_path, generation = draw_samples(cfg, module, seed, prompts)
        images = read_samples(samples_path)
        scores = {}
        if names:
            generated = image_features(images, extractor, cfg.feature_batch_size, cfg.progress)
            scores, protocol = score(generated, reference, names, cfg.features, prc)
        if text:
            clip_model = cfg.metrics.text_alignment.clip_model
            scores |= alignment_scores(images, sample_prompts(samples_path), datamodule, clip_model)
        per_seed.append({"seed": seed, "metrics": scores})
        seconds.append(generation["seconds_per_image"])
        num_samples = len(images)

    metrics, seeds = over_seeds(per_seed) if per_seed else ({}, None)
    if "nll" in selected:
        metrics |= nll_of_test_split(module, datamodule, cfg, device)
    if "nll_ode" in selected:
        metrics |= nll_ode_of_test_split(module, datamodule, cfg, device)
    results = {
        "metrics": metrics,
        "num_samples": num_samples,
        "nfe": generation["nfe"],
        "sampler": generation["sampler"],
        "guidance": generation["guidance"],
        "features": cfg.features,
        "reference": None,
        "prc": protocol,
        "seeds": seeds,
        "ckpt": None if cfg.ckpt is None else str(resolve_checkpoint(cfg.ckpt).resolve()),
        "step": None if cfg.ckpt is None else checkpoint_step(cfg.ckpt),
        "version": __version__,
        "seconds_per_image": float(np.mean(seconds)) if generation["nfe"] else None,
    }
    if reference is not None:
        results["reference"] = {
            "dataset": dataset_name(datamodule),
            "split": cfg.reference.split,
            "num_images": reference.num_samples,
        }
    write_results(cfg, results)
    return results


def check_config(cfg: DictConfig) -> None:
    """ConfigError for settings that cannot work, before anything is loaded."""
    if cfg.ckpt is None and cfg.samples is None:
        raise ConfigError("pass ckpt=<checkpoint or run dir> to sample, or samples=<file.npz>")
    for nll in ("nll", "nll_ode"):
        if nll in cfg.metrics and cfg.ckpt is None:
            raise ConfigError(
                f"metrics=[...,{nll}]: the NLL needs the model; pass ckpt=<checkpoint or run dir>"
            )
    if cfg.reference.split not in ("train", "test"):
        raise ConfigError(f"reference.split={cfg.reference.split!r}; allowed: train, test")
    for key in ("num_samples", "feature_batch_size"):
        value = cfg[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{key}={value!r} must be an integer >= 1")
    for nll in ("nll", "nll_ode"):
        num_images = cfg.metrics[nll].num_images if nll in cfg.metrics else None
        if num_images is not None and (not isinstance(num_images, int) or num_images < 2):
            raise ConfigError(
                f"metrics.{nll}.num_images={num_images!r} must be null or an integer >= 2"
            )
    if "nll_ode" in cfg.metrics and cfg.metrics.nll_ode.estimator not in ODE_ESTIMATORS:
        raise ConfigError(
            f"metrics.nll_ode.estimator={cfg.metrics.nll_ode.estimator!r}; "
            f"choose one of: {', '.join(ODE_ESTIMATORS)}"
        )
    if cfg.seeds is not None:
        check_seeds(cfg)
    if "text_alignment" in cfg.metrics:
        check_clip_model(cfg.metrics.text_alignment.clip_model)


def check_seeds(cfg: DictConfig) -> None:
    """`seeds=` is a list of at least two distinct integers >= 0, for samples drawn here."""
    if cfg.samples is not None:
        raise ConfigError("seeds=[...] draws one sample set per seed; samples= gives one set")
    seeds = list(cfg.seeds) if OmegaConf.is_list(cfg.seeds) else []
    integers = all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
    if len(seeds) < 2 or not integers or len(set(seeds)) != len(seeds):
        raise ConfigError(
            f"seeds={cfg.seeds!r} must be null or a list of at least two distinct integers >= 0 "
            "(e.g. seeds=[0,1,2]); for one sample set use seed=<int>"
        )


def sample_seeds(cfg: DictConfig) -> list[int]:
    """The seeds of the sample sets to draw: `seeds`, else the one `seed`."""
    return [cfg.seed] if cfg.seeds is None else list(cfg.seeds)


def over_seeds(per_seed: list[dict]) -> tuple[dict[str, float], dict | None]:
    """The scores results.json reports, and its `seeds` entry: a single set's scores and None,
    or the mean over the sets and every set's scores with their min, mean and std."""
    if len(per_seed) == 1:
        return dict(per_seed[0]["metrics"]), None
    spread = across_seeds([run["metrics"] for run in per_seed])
    seeds = {"seeds": [run["seed"] for run in per_seed], "per_seed": per_seed, **spread}
    return dict(spread["mean"]), seeds


def metrics_device(name: str) -> torch.device:
    """Where features and the NLL are computed: `auto` is the GPU when there is one."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def evaluation_prompts(cfg: DictConfig, module) -> list[str] | None:
    """A text model's prompts: `metrics.text_alignment.prompts`, else the training captions."""
    if module is None or module.text_encoder is None:
        return None
    given = cfg.metrics.text_alignment.prompts if "text_alignment" in cfg.metrics else None
    if given is not None:
        return [str(prompt) for prompt in given]
    return load_datamodule(cfg).captions()


def draw_samples(
    cfg: DictConfig, module, seed: int, prompts: list[str] | None = None
) -> tuple[Path, dict]:
    """The `.npz` of samples= as given, or of samples drawn now with `seed` (with `generate`, as
    the `sample` command does), and what results.json records of their drawing (null for given
    samples)."""
    if cfg.samples is not None:
        return Path(cfg.samples), dict.fromkeys(("nfe", "sampler", "guidance", "seconds_per_image"))
    started = time.perf_counter()
    path = generate(sample_config(cfg, seed, prompts))
    return path, {
        "nfe": nfe_per_batch(module, to_plain(cfg.sampler)),
        "sampler": to_plain(cfg.sampler),
        "guidance": {"name": cfg.guidance.name, "scale": cfg.guidance.get("scale")},
        "seconds_per_image": (time.perf_counter() - started) / cfg.num_samples,
    }


def sample_config(cfg: DictConfig, seed: int, prompts: list[str] | None = None) -> DictConfig:
    """The `sample` command's config for this evaluation's set of `seed`: n = num_samples, in the
    run dir, or in its `seed_<seed>/` when there are several seeds; a text model's prompts."""
    output_dir = Path(cfg.paths.output_dir)
    if cfg.seeds is not None:
        output_dir = output_dir / f"seed_{seed}"
    run = cfg.copy()
    with open_dict(run):
        run.n, run.seed, run.paths.output_dir = cfg.num_samples, seed, str(output_dir)
        run.prompts = prompts
    return run


def nfe_per_batch(module, sampler: dict) -> int:
    """Network evaluations per sample batch: the sampler's own count, run on a stand-in network."""
    net = module.hparams.net
    image_shape = (net["in_channels"], net["image_size"], net["image_size"])
    channels = image_shape[0] * (2 if module.diffusion.learns_sigma else 1)

    def zeros(x, t, **model_kwargs):
        return x.new_zeros((x.shape[0], channels, *x.shape[2:]))

    options = dict(sampler)
    name = options.pop("name")
    return sample(zeros, module.diffusion, (1, *image_shape), name, **options).nfe


def read_samples(path: Path) -> np.ndarray:
    """uint8 images [N, H, W, C] from `arr_0` of an `.npz` (as the ADM evaluator reads them)."""
    if not path.is_file():
        raise DataNotFoundError(f"samples={path} does not exist; pass an .npz of uint8 images")
    try:
        with np.load(path) as arrays:
            images = arrays["arr_0"]
    except (ValueError, OSError, KeyError, zipfile.BadZipFile):
        raise ConfigError(
            f"samples={path} is not an .npz of images; pass one whose arr_0 holds uint8 "
            "[N, H, W, C] (as `sample` writes)"
        ) from None
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ConfigError(
            f"samples={path}: arr_0 must be uint8 [N, H, W, C] with C = 1 or 3, "
            f"got {images.dtype} {list(images.shape)}"
        )
    return images


def nll_of_test_split(module, datamodule, cfg: DictConfig, device: torch.device) -> dict:
    """nll_bpd and nll_bpd_stderr over the test split (or its first `nll.num_images` images)."""
    nll = cfg.metrics.nll
    test_set = datamodule.reference_dataset("test")
    if nll.num_images is not None:
        test_set = Subset(test_set, range(min(nll.num_images, len(test_set))))
    torch.manual_seed(cfg.seed)  # the x_t ~ q(x_t | x_0) drawn for each term
    with Bar("NLL", len(test_set), "images", enabled=cfg.progress) as bar:
        bpd = bits_per_dim(
            module.diffusion,
            module.net.to(device),
            counted(DataLoader(test_set, batch_size=nll.batch_size), bar),
            device=device,
            class_conditional=module.num_classes is not None,
            clip_denoised=nll.clip_denoised,
            text_encoder=None if module.text_encoder is None else module.text_encoder.to(device),
        )
    mean, stderr = mean_and_stderr(bpd)
    return {"nll_bpd": mean, "nll_bpd_stderr": stderr}


def nll_ode_of_test_split(module, datamodule, cfg: DictConfig, device: torch.device) -> dict:
    """nll_ode_bpd and nll_ode_bpd_stderr by the probability-flow ODE, like nll_of_test_split."""
    if module.text_encoder is not None:
        raise ConfigError("metrics=[nll_ode] takes no text-conditioned model; use metrics=[nll]")
    nll = cfg.metrics.nll_ode
    test_set = datamodule.reference_dataset("test")
    if nll.num_images is not None:
        test_set = Subset(test_set, range(min(nll.num_images, len(test_set))))
    torch.manual_seed(cfg.seed)  # the dequantisation noise and the trace probes
    with Bar("ODE NLL", len(test_set), "images", enabled=cfg.progress) as bar:
        bpd = ode_bits_per_dim(
            module.net.to(device),
            module.diffusion,
            counted(DataLoader(test_set, batch_size=nll.batch_size), bar),
            device=device,
            class_conditional=module.num_classes is not None,
            rtol=nll.rtol,
            atol=nll.atol,
            estimator=nll.estimator,
        )
    mean, stderr = mean_and_stderr(bpd)
    return {"nll_ode_bpd": mean, "nll_ode_bpd_stderr": stderr}


def finite_json(value):
    """`value` with non-finite floats (heun's `s_tmax: .inf`) as the strings "inf", "-inf", "nan":
    strict JSON has no literal for them."""
    if isinstance(value, dict):
        return {key: finite_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def write_results(cfg: DictConfig, results: dict) -> None:
    """results.json in the run dir, and the scores to the configured loggers."""
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(finite_json(results), indent=2, allow_nan=False)
    (output_dir / "results.json").write_text(text + "\n")
    for logger in instantiate_each(cfg.logger):
        logger.log_hyperparams(to_plain(cfg))
        logger.log_metrics(results["metrics"], step=0)
        logger.finalize("success")


def report(results: dict) -> list[str]:
    """The lines printed at the end: the scores (the mean over seeds when there are several),
    what precision/recall compared, and each seed's scores with their min, mean and std."""
    lines = [json.dumps(results["metrics"])]
    if results["prc"] is not None:
        prc = results["prc"]
        lines.append(
            f"precision/recall: {prc['num_generated']} generated vs {prc['num_reference']} "
            f"reference features, k = {prc['k']}, subset seed {prc['seed']}"
        )
    if results["seeds"] is not None:
        seeds = results["seeds"]
        lines += [f"seed {run['seed']}: {json.dumps(run['metrics'])}" for run in seeds["per_seed"]]
        lines += [
            f"{name} over seeds: {json.dumps(seeds[name])}" for name in ("min", "mean", "std")
        ]
    return lines


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    with stop_when_told(), user_errors():
        if is_rank_zero():
            print(f"run dir: {cfg.paths.output_dir}")
        results = evaluate(cfg)
        if results is not None:
            print("\n".join(report(results)))
            print(f"wrote {Path(cfg.paths.output_dir) / 'results.json'}")


if __name__ == "__main__":
    main()
