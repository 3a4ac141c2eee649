"""The dataset of a command: `data=` if given, else the one a checkpoint's run trained on."""

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from diffusion_lab.checkpoints import resolve_checkpoint
from diffusion_lab.errors import ConfigError, DataNotFoundError
from diffusion_lab.targets import RUN_PARTS, check_targets


def load_datamodule(cfg: DictConfig):
    """The datamodule of `data=`, else of the checkpoint's training run (its config.yaml)."""
    data = cfg.get("data")
    if data is None:
        if cfg.ckpt is None:
            raise ConfigError("samples= without ckpt= needs the dataset: pass data=<name>")
        saved = resolve_checkpoint(cfg.ckpt).parents[1] / "config.yaml"
        if not saved.is_file():
            raise DataNotFoundError(
                f"no training config at {saved} to read the dataset from; pass data=<name>"
            )
        data = OmegaConf.load(saved).data
        check_targets(data, RUN_PARTS, str(saved), "data")
    datamodule = instantiate(data)
    datamodule.prepare_data()
    return datamodule
