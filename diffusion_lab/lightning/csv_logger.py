"""Scalars as CSV in the run dir, appended to across resumes and requeues.

Lightning's CSVLogger deletes an existing `metrics.csv` when it starts in a non-empty folder, so a
resumed run would lose its history. This one appends; a key never seen before rewrites the file
once with the wider header, every earlier row kept.
"""

import csv
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import OmegaConf


class CSVLogger(Logger):
    """`<save_dir>/<name>/metrics.csv` (one row per logging step, column `step`) and
    `hparams.yaml` (the run's config).

    Args:
        save_dir: the run dir.
        name: the sub-folder.
        flush_logs_every_n_steps: rows kept in memory before they are written.
    """

    METRICS_FILE = "metrics.csv"

    def __init__(self, save_dir: str, name: str = "csv", flush_logs_every_n_steps: int = 100):
        super().__init__()
        self._save_dir = Path(save_dir)
        self._name = name
        self.flush_logs_every_n_steps = flush_logs_every_n_steps
        self.rows: list[dict[str, Any]] = []
        self.hparams: dict[str, Any] = {}

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> str:
        return ""

    @property
    def save_dir(self) -> str:
        return str(self._save_dir)

    @property
    def log_dir(self) -> str:
        return str(self._save_dir / self._name)

    @property
    def metrics_file(self) -> Path:
        return Path(self.log_dir) / self.METRICS_FILE

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """Merged into `hparams.yaml` (Lightning logs the module's, the run logs its config)."""
        Path(self.log_dir).mkdir(parents=True, exist_ok=True)
        self.hparams |= dict(params)
        OmegaConf.save(OmegaConf.create(self.hparams), Path(self.log_dir) / "hparams.yaml")

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        row = {k: v.item() if isinstance(v, torch.Tensor) else v for k, v in metrics.items()}
        self.rows.append({**row, "step": step if step is not None else len(self.rows)})
        if len(self.rows) >= self.flush_logs_every_n_steps:
            self.save()

    @rank_zero_only
    def save(self) -> None:
        if not self.rows:
            return
        path = self.metrics_file
        path.parent.mkdir(parents=True, exist_ok=True)
        header = []
        if path.is_file():
            with open(path, newline="") as f:
                header = next(csv.reader(f), [])
        keys = sorted(set(header).union(*self.rows))
        if path.is_file() and keys != sorted(header):
            with open(path, newline="") as f:
                earlier = list(csv.DictReader(f))
            self._write(path, "w", keys, earlier + self.rows)
        else:
            self._write(path, "a" if header else "w", header or keys, self.rows, header=not header)
        self.rows = []

    @staticmethod
    def _write(path: Path, mode: str, keys: list[str], rows: list, header: bool = True) -> None:
        with open(path, mode, newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            if header:
                writer.writeheader()
            writer.writerows(rows)

    @rank_zero_only
    def finalize(self, status: str) -> None:
        self.save()
