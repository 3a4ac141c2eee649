"""The overall progress bar: a rich bar in a terminal, log lines every 10 % otherwise."""

import io
import logging
import sys

import pytest
import torch

from diffusion_lab import progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def no_bars_kept(monkeypatch):
    monkeypatch.setattr(progress, "STARTED", [])


def test_in_a_terminal_a_rich_bar_counts_and_no_line_is_logged(monkeypatch, caplog):
    monkeypatch.setattr(sys, "stderr", Terminal())
    with caplog.at_level(logging.INFO), progress.Bar("sampling", 100, "samples") as bar:
        assert bar.live is not None
        for _ in range(10):
            bar.advance(10)
        assert bar.live.tasks[0].completed == 100 and bar.live.tasks[0].total == 100
    assert bar.live is None and caplog.records == []


def test_without_a_terminal_a_line_every_ten_percent(caplog):
    with caplog.at_level(logging.INFO), progress.Bar("NLL", 50, "images") as bar:
        for _ in range(50):
            bar.advance(1)
    counts = [int(r.getMessage().split("/")[0].split()[-1]) for r in caplog.records]
    assert counts == [1, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50]  # the first: an early rate
    assert caplog.records[-1].getMessage().startswith("NLL: 50/50 images (100%)")


def test_counted_advances_after_each_batch_is_used():
    bar = progress.Bar("features", 5, "images", enabled=False)
    seen = []
    batches = [torch.zeros(2, 1), (torch.zeros(2, 1), torch.zeros(2)), torch.zeros(1, 1)]
    for _ in progress.counted(batches, bar):  # tensors, or (images, labels)
        seen.append(bar.done)
    assert seen == [0, 2, 4] and bar.done == 5 and progress.STARTED == [bar]
