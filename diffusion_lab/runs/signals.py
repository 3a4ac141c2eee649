"""Stop signals: recorded by a handler that does nothing else, acted on between optimizer steps.

SIGTERM (preemption, `timeout`, Kubernetes), SIGINT (Ctrl-C), and SIGUSR1/SIGUSR2 (a scheduler's
warning before the time limit: Lightning's and submitit's conventions) all ask a run to stop
cleanly. A handler only records the first one; the training loop checks, on every process at the
same step, whether any process got one (see `LastCheckpoint`). A second Ctrl-C stops at once.
"""

import contextlib
import multiprocessing
import os
import signal
from collections.abc import Iterator

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2)


class StopSignals:
    """The first stop signal this process received (0: none), passed on to the processes it
    started for training (DDP spawn workers; not the daemonic data-loader workers)."""

    def __init__(self) -> None:
        self.received = 0

    def __call__(self, signum: int, frame) -> None:
        if signum == signal.SIGINT and self.received == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = self.received or signum
        for child in multiprocessing.active_children():
            if not child.daemon and child.pid is not None:
                os.kill(child.pid, signum)

    def install(self) -> None:
        """Makes this recorder the handler of every stop signal (main thread only)."""
        for signum in STOP_SIGNALS:
            signal.signal(signum, self)


RECEIVED = StopSignals()  # this process's recorder


@contextlib.contextmanager
def stop_signals() -> Iterator[StopSignals]:
    """Records stop signals while the block runs (from zero); restores the handlers after."""
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    RECEIVED.received = 0
    RECEIVED.install()
    try:
        yield RECEIVED
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name
