"""One overall progress bar per piece of long work: count, rate and time left.

In a terminal it is a rich bar; otherwise (a log file, a cluster job) a log line every
`LOG_EVERY_PERCENT` of the work; with `enabled=False` it is silent but still counts. Every bar
of the process is kept in `STARTED`, so a stopped command can say how far each got.
"""

import logging
import sys
import time
from collections.abc import Iterable, Iterator

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

log = logging.getLogger(__name__)

LOG_EVERY_PERCENT = 10.0


class RateColumn(ProgressColumn):
    """Items per second, in the task's unit."""

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:.1f} {task.fields['unit']}/s")


class Bar:
    """Counts `done` of `total` `unit`s of the work called `description`."""

    def __init__(self, description: str, total: int, unit: str, enabled: bool = True):
        self.description, self.total, self.unit = description, total, unit
        self.done = 0
        self.started = time.monotonic()
        self.line_every = max(1, round(total * LOG_EVERY_PERCENT / 100))
        self.next_line = 0  # the first line comes after the first item: an early rate and ETA
        self.live: Progress | None = None
        self.logs = enabled and not sys.stderr.isatty()
        if enabled and sys.stderr.isatty():
            self.live = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                RateColumn(),
                TimeRemainingColumn(),
            )
            self.live.add_task(description, total=total, unit=unit)
            self.live.start()
        STARTED.append(self)

    def advance(self, count: int) -> None:
        self.done += count
        if self.live is not None:
            self.live.update(self.live.task_ids[0], completed=self.done)
        elif self.logs and (self.done >= self.next_line or self.done == self.total):
            self.next_line = (self.done // self.line_every + 1) * self.line_every
            log.info("%s%s", self.summary(), self.rate())

    def rate(self) -> str:
        elapsed = time.monotonic() - self.started
        if self.done == 0 or elapsed <= 0:
            return ""
        per_second = self.done / elapsed
        left = (self.total - self.done) / per_second
        return f", {per_second:.1f} {self.unit}/s, {left:.0f} s left"

    def summary(self) -> str:
        """e.g. `sampling: 96/300 samples (32%)`."""
        percent = 100 * self.done / self.total if self.total else 100.0
        return f"{self.description}: {self.done}/{self.total} {self.unit} ({percent:.0f}%)"

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    def __enter__(self) -> "Bar":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


STARTED: list[Bar] = []  # every bar this process started, in order


def close_all() -> None:
    """Stops every bar still drawn (before a message is printed below them)."""
    for bar in STARTED:
        bar.close()


def counted(batches: Iterable, bar: Bar | None) -> Iterator:
    """`batches` (tensors, or tuples whose first item is the images), advancing `bar` by each
    batch's size once the consumer is done with it and asks for the next."""
    for batch in batches:
        yield batch
        if bar is not None:
            bar.advance(len(batch[0] if isinstance(batch, list | tuple) else batch))
