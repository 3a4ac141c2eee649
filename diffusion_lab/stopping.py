"""Commands that stop when told: SIGTERM (`timeout`, preemption, Kubernetes) or SIGINT (Ctrl-C)
ends `sample`, `evaluate`, `figures` and `export` within moments, saying what they had finished,
with exit status 128 + the signal's number. (`train` saves and resumes instead: runs/signals.py.)
"""

import contextlib
import signal
import sys
from collections.abc import Iterator

from diffusion_lab import progress

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Stopped(BaseException):
    """A stop signal arrived; not an `Exception`, so no error handler on the way swallows it."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _stop(signum: int, frame) -> None:
    raise Stopped(signum)


def report(stop: Stopped) -> list[str]:
    """What the stopped command prints: the signal, then how far each piece of work got."""
    lines = [f"stopped by {signal.Signals(stop.signum).name}"]
    lines += [f"  {bar.summary()}" for bar in progress.STARTED]
    if any(bar.done < bar.total for bar in progress.STARTED):
        lines.append("  unfinished work is not saved; files already written are kept")
    return lines


@contextlib.contextmanager
def stop_when_told() -> Iterator[None]:
    """Runs the block with SIGTERM and SIGINT raising `Stopped`; on one, prints `report` to
    stderr and exits 128 + signal. The previous handlers are restored after."""
    previous = {signum: signal.getsignal(signum) for signum in SIGNALS}
    for signum in SIGNALS:
        signal.signal(signum, _stop)
    try:
        yield
    except Stopped as stop:
        for signum in SIGNALS:  # a second signal must not cut the report short
            signal.signal(signum, signal.SIG_IGN)
        progress.close_all()
        print("\n".join(report(stop)), file=sys.stderr)
        sys.exit(128 + stop.signum)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
