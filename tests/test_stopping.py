"""`stop_when_told`, which `sample`, `evaluate`, `figures` and `export` run under."""

import os
import signal

import pytest

from diffusion_lab import progress
from diffusion_lab.stopping import stop_when_told


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_ends_the_block_with_128_plus_signal_and_a_report(
    capsys, monkeypatch, signum
):
    monkeypatch.setattr(progress, "STARTED", [])
    before = signal.getsignal(signum)
    with pytest.raises(SystemExit) as exit_, stop_when_told():
        bar = progress.Bar("sampling", 10, "samples", enabled=False)
        bar.advance(3)
        os.kill(os.getpid(), signum)
        pytest.fail("the block went on after the signal")
    assert exit_.value.code == 128 + signum
    err = capsys.readouterr().err
    assert f"stopped by {signal.Signals(signum).name}" in err
    assert "sampling: 3/10 samples (30%)" in err and "not saved" in err
    assert signal.getsignal(signum) == before


def test_handlers_are_restored_after_a_quiet_block():
    before = signal.getsignal(signal.SIGTERM)
    with stop_when_told():
        assert signal.getsignal(signal.SIGTERM) != before
    assert signal.getsignal(signal.SIGTERM) == before
