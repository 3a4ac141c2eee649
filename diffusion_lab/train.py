"""Train a diffusion model: `python -m diffusion_lab.train [group=option ...] [key=value ...]`.

Composes the config, builds the module and fits it as a run (`runs.fit`): data, callbacks,
loggers, trainer; `resume=<run dir>` continues a run in place.
"""

import os
import sys
from pathlib import Path

import hydra
import lightning.pytorch as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from diffusion_lab.cli import to_plain, user_errors
from diffusion_lab.errors import ConfigError
from diffusion_lab.lightning import DiffusionModule
from diffusion_lab.models.text.registry import needs_vocab, vocab_of
from diffusion_lab.runs.fit import RUN_DIR_ENV, fit_run, is_rank_zero, own_environment
from diffusion_lab.runs.resume import continued, resume_in_place
from diffusion_lab.sampling import validate_sampler_config
from diffusion_lab.targets import RUN_PARTS, check_targets

POSITIVE = (
    "trainer.max_steps",
    "max_nonfinite_steps",
    "callbacks.last_checkpoint.every_n_train_steps",
)


def check_steps(cfg: DictConfig) -> None:
    """Step counts must be positive integers (the model, schedule and sampler check the rest)."""
    for key in POSITIVE:
        value = OmegaConf.select(cfg, key)
        bad = isinstance(value, bool) or not isinstance(value, int) or value < 1
        if value is not None and bad:
            raise ConfigError(f"{key}={value!r} must be an integer >= 1")


def fill_vocab(cfg: DictConfig) -> None:
    """The transformer text encoder's words, from the datamodule's training captions, written
    into the config: the run's config.yaml and its checkpoints' hyper-parameters keep them."""
    if needs_vocab(cfg.get("text_encoder")):
        captions = instantiate(cfg.data).captions()
        cfg.text_encoder.vocab = vocab_of(captions, cfg.text_encoder.context_length)


def build_module(cfg: DictConfig) -> DiffusionModule:
    """The LightningModule from the model, schedule, loss, process, optimizer and text encoder
    groups."""
    diffusion = {
        "schedule": cfg.schedule.name,
        "num_timesteps": cfg.schedule.num_timesteps,
        "model_mean_type": cfg.loss.model_mean_type,
        "model_var_type": cfg.loss.model_var_type,
        "loss_type": cfg.loss.loss_type,
        "rescale_timesteps": cfg.schedule.get("rescale_timesteps", False),
    }
    return DiffusionModule(
        net=to_plain(cfg.model),
        diffusion=diffusion,
        optimizer=to_plain(cfg.optimizer),
        warmup_steps=cfg.warmup_steps,
        timestep_sampler=cfg.loss.timestep_sampler,
        cond_drop_prob=cfg.cond_drop_prob,
        max_nonfinite_steps=cfg.max_nonfinite_steps,
        lr_schedule=cfg.lr_schedule,
        process=to_plain(cfg.process) if "process" in cfg else None,
        text_encoder=to_plain(cfg.text_encoder) if cfg.get("text_encoder") else None,
    )


def train(cfg: DictConfig) -> dict[str, float]:
    """Fits the configured model and returns the final logged metrics."""
    with own_environment():
        if cfg.seed is not None:
            pl.seed_everything(cfg.seed, workers=True)
        check_steps(cfg)
        fill_vocab(cfg)
        module = build_module(cfg)  # validates model, schedule and loss before any data is read
        process = module.process
        validate_sampler_config(to_plain(cfg.sampler), process.num_timesteps, process.kind)
        return fit_run(cfg, module, "diffusion_lab.train")


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Trains; returns `optimized_metric`'s final value for a hyper-parameter search."""
    with user_errors():
        metrics = train(continued(cfg))
        return optimized(metrics, cfg.get("optimized_metric"))


def optimized(metrics: dict[str, float], name: str | None) -> float | None:
    """`metrics[name]`, or None without a name; ConfigError naming the logged ones if absent."""
    if name is None:
        return None
    if name not in metrics:
        raise ConfigError(
            f"optimized_metric={name!r} was not logged; logged: {', '.join(sorted(metrics))}"
        )
    return metrics[name]


def run() -> None:
    """The command. Lightning's DDP launcher re-runs it for ranks > 0: those skip Hydra (which
    would make a run dir per rank, or replay a whole multirun) and train with rank 0's saved
    config, in rank 0's run dir (Lightning #11300, lightning-hydra-template #393)."""
    run_dir = os.environ.get(RUN_DIR_ENV)
    with user_errors():
        if run_dir and not is_rank_zero():
            path = Path(run_dir) / "config.yaml"
            saved = OmegaConf.load(path)
            check_targets(saved, RUN_PARTS, str(path))
            train(saved)
            return
        sys.argv = resume_in_place(sys.argv)
    main()


if __name__ == "__main__":
    run()
