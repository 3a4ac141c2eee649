"""Train the noisy classifier of classifier guidance: `python -m diffusion_lab.train_classifier`.

Runs like `train` (`runs.fit`): its own run dir, `last.ckpt` on stop signals, SLURM requeues and
`resume=<run dir>`.
"""

import sys

import hydra
import lightning.pytorch as pl
from omegaconf import DictConfig

from diffusion_lab.cli import to_plain, user_errors
from diffusion_lab.lightning.classifier import NoisyClassifierModule
from diffusion_lab.runs.fit import fit_run, own_environment
from diffusion_lab.runs.resume import continued, resume_in_place


def train_classifier(cfg: DictConfig) -> dict[str, float]:
    """Fits the classifier on noised images of the configured dataset; returns final metrics."""
    with own_environment():
        if cfg.seed is not None:
            pl.seed_everything(cfg.seed, workers=True)
        module = NoisyClassifierModule(
            net=to_plain(cfg.classifier),
            diffusion={
                "schedule": cfg.schedule.name,
                "num_timesteps": cfg.schedule.num_timesteps,
                "rescale_timesteps": cfg.schedule.get("rescale_timesteps", False),
            },
            optimizer=to_plain(cfg.optimizer),
            num_classes=cfg.data.num_classes,
            lr_schedule=cfg.lr_schedule,
        )
        return fit_run(cfg, module, "diffusion_lab.train_classifier")


@hydra.main(version_base="1.3", config_path="conf", config_name="train_classifier")
def main(cfg: DictConfig) -> None:
    with user_errors():
        train_classifier(continued(cfg, "train_classifier"))


def run() -> None:
    with user_errors():
        sys.argv = resume_in_place(sys.argv)
    main()


if __name__ == "__main__":
    run()
