"""Train the noisy classifier of classifier guidance: `python -m diffusion_lab.train_classifier`."""

from pathlib import Path

import hydra
import lightning.pytorch as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from diffusion_lab.cli import to_plain, user_errors
from diffusion_lab.lightning.classifier import NoisyClassifierModule
from diffusion_lab.train import instantiate_each


def train_classifier(cfg: DictConfig) -> dict[str, float]:
    """Fits the classifier on noised images of the configured dataset; returns final metrics."""
    if cfg.seed is not None:
        pl.seed_everything(cfg.seed, workers=True)
    module = NoisyClassifierModule(
        net=to_plain(cfg.classifier),
        diffusion={"schedule": cfg.schedule.name, "num_timesteps": cfg.schedule.num_timesteps},
        optimizer=to_plain(cfg.optimizer),
        num_classes=cfg.data.num_classes,
    )
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, output_dir / "config.yaml", resolve=True)
    trainer = instantiate(
        cfg.trainer,
        callbacks=instantiate_each(cfg.callbacks),
        logger=instantiate_each(cfg.logger) or False,
        default_root_dir=str(output_dir),
    )
    trainer.fit(module, datamodule=instantiate(cfg.data))
    return {name: float(value) for name, value in trainer.callback_metrics.items()}


@hydra.main(version_base="1.3", config_path="conf", config_name="train_classifier")
def main(cfg: DictConfig) -> None:
    with user_errors():
        train_classifier(cfg)


if __name__ == "__main__":
    main()
