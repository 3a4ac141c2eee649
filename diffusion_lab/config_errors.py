"""Hydra's own configuration errors as one `error:` line: a config group option that does not
exist (`sampler=nosuch`) or an override that does not parse, which Hydra reports before the
command's code runs. HYDRA_FULL_ERROR=1 keeps Hydra's report.

Hydra offers no hook for these, so `install` wraps its internal `run_and_report`, the one
function through which `@hydra.main` composes the config (tested for every command).
"""

import os
import sys

import hydra._internal.utils as hydra_utils
from hydra.errors import ConfigCompositionException, OverrideParseException

_hydra_run_and_report = hydra_utils.run_and_report


def one_line(exc: Exception) -> str:
    """The first line of Hydra's message, with the options it lists after "Available options"."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0]
    if isinstance(exc, OverrideParseException):
        return f"cannot parse the override {exc.override!r}: {text}"
    listed = next((i for i, line in enumerate(lines) if line.startswith("Available options")), None)
    if listed is None:
        return text
    options = []
    for line in lines[listed + 1 :]:
        if line.endswith(":"):  # "Config search path:"
            break
        options.append(line)
    return f"{text}; choose one of: {', '.join(options)}"


def _run_and_report(func):
    def reported():
        try:
            return func()
        except (ConfigCompositionException, OverrideParseException) as exc:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            print(f"error: {one_line(exc)}", file=sys.stderr)
            sys.exit(1)

    return _hydra_run_and_report(reported)


def install() -> None:
    """Makes `@hydra.main` report configuration errors as one line (idempotent)."""
    hydra_utils.run_and_report = _run_and_report
