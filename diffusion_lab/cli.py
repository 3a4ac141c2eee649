"""What the command-line entry points share: one-line errors, quiet dependencies, plain
containers from configs."""

import contextlib
import logging
import os
import re
import shutil
import sys
import time
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from diffusion_lab import config_errors
from diffusion_lab.errors import ConfigError, LabError

config_errors.install()  # before any entry point's @hydra.main runs


def _user_error(exc: BaseException) -> LabError | None:
    """The `LabError` behind `exc`, looking through Hydra's instantiation wrappers; a config key
    left `???` that the command needs is one too."""
    while exc is not None:
        if isinstance(exc, LabError):
            return exc
        if isinstance(exc, MissingMandatoryValue):
            return ConfigError(f"{exc.full_key} is required: pass {exc.full_key}=<value>")
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


def write_to_log_files(message: str) -> None:
    """`message` into the run's log files (`<run dir>/<command>.log`), not the console."""
    record = logging.LogRecord("diffusion_lab", logging.ERROR, "", 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.emit(record)


STARTED = time.time()  # when this process imported the lab, before Hydra made any run dir
# What a job that never got going can have written into its fresh run dir.
UNSTARTED = {".hydra", "config.yaml", "csv", "wandb"}


def discard_unused_run_dir() -> None:
    """Removes this job's run dir if this process created it (Hydra's `.hydra/` record is newer
    than the process) and it holds nothing but that record, the config, the logger's header and
    the log: a run that failed before it started leaves nothing behind. Any other dir stays."""
    if not HydraConfig.initialized():
        return
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    record = run_dir / ".hydra"
    if not record.is_dir() or record.stat().st_mtime < STARTED:
        return
    entries = list(run_dir.iterdir())
    written = [p for p in entries if p.name not in UNSTARTED and p.suffix != ".log"]
    if written or (run_dir / "csv" / "metrics.csv").exists():
        return
    shutil.rmtree(run_dir, ignore_errors=True)
    for parent in run_dir.parents:  # logs/<task>/runs/ that Hydra made for it, if now empty
        if parent == Path.cwd() or not parent.is_dir() or any(parent.iterdir()):
            break
        parent.rmdir()


def one_line(error: BaseException) -> str:
    """The message of `error`; for one re-raised from a DataLoader worker (its text then holds
    the worker's traceback), the original error's own message."""
    text = str(error)
    if "\nOriginal Traceback" not in text:
        return text
    return text.rstrip().rsplit("\n", 1)[-1].split(": ", 1)[-1]


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turns a `LabError` into `error: <message>` on stderr and exit status 1: no traceback wall
    (HYDRA_FULL_ERROR=1 keeps it). The message also goes into the run's log, and a run dir the
    job never used is removed. Also quiets the dependencies (`quiet_dependencies`)."""
    quiet_dependencies()
    try:
        yield
    except Exception as exc:
        error = _user_error(exc)
        write_to_log_files(traceback.format_exc() if error is None else f"error: {one_line(error)}")
        if error is not None:
            discard_unused_run_dir()
        if error is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"error: {one_line(error)}", file=sys.stderr)
        sys.exit(1)


def to_plain(cfg: DictConfig) -> dict:
    """A resolved config node as plain dicts and lists (checkpoint-safe hyperparameters)."""
    return OmegaConf.to_container(cfg, resolve=True)
