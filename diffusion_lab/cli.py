"""What the command-line entry points share: one-line errors and plain containers from configs."""

import contextlib
import sys
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


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turns a `LabError` into `error: <message>` on stderr and exit status 1: no traceback wall."""
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
