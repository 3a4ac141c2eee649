"""What the command-line entry points share: one-line errors, quiet dependencies, plain
containers from configs."""

import contextlib
import logging
import os
import re
import sys
import warnings
from collections.abc import Iterator

from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf

from diffusion_lab.errors import LabError


def _user_error(exc: BaseException) -> LabError | None:
    """The `LabError` behind `exc`, looking through Hydra's instantiation wrappers."""
    while exc is not None:
        if isinstance(exc, LabError):
            return exc
        if not isinstance(exc, InstantiationException):
            return None
        exc = exc.__cause__
    return None


# action:message prefix:category, as PYTHONWARNINGS takes them (the runs' child processes too)
QUIET_WARNINGS = (
    "ignore:`isinstance(treespec:FutureWarning",  # Lightning's use of a deprecated torch API
    "ignore:Checkpoint directory:UserWarning",  # a resumed run's own checkpoints/ is not empty
    # loader workers are sized to the machine (`${lab.workers:}`); in-memory sets use none
    "ignore:The 'train_dataloader' does not have many workers:UserWarning",
    "ignore:The 'val_dataloader' does not have many workers:UserWarning",
)
CATEGORIES = {"FutureWarning": FutureWarning, "UserWarning": UserWarning}


class _DropAdvert(logging.Filter):
    """Lightning's "Tip: try installing litlogger" line at every start."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in str(record.msg)


def quiet_dependencies() -> None:
    """Silences what the dependencies print that is neither the user's nor the lab's to fix
    (`QUIET_WARNINGS`, Lightning's advert), here and in the processes a run starts."""
    for entry in QUIET_WARNINGS:
        action, message, category = entry.split(":")
        warnings.filterwarnings(action, re.escape(message), CATEGORIES[category])
    inherited = os.environ.get("PYTHONWARNINGS", "")
    if QUIET_WARNINGS[0] not in inherited:
        os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [inherited, *QUIET_WARNINGS]))
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropAdvert) for f in logger.filters):
            logger.addFilter(_DropAdvert())


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turns a `LabError` into `error: <message>` on stderr and exit status 1: no traceback wall.
    Also quiets the dependencies (`quiet_dependencies`)."""
    quiet_dependencies()
    try:
        yield
    except Exception as exc:
        error = _user_error(exc)
        if error is None:
            raise
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)


def to_plain(cfg: DictConfig) -> dict:
    """A resolved config node as plain dicts and lists (checkpoint-safe hyperparameters)."""
    return OmegaConf.to_container(cfg, resolve=True)
