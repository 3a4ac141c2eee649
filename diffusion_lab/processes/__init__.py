"""Processes, peers that train one network each: how data is corrupted, what the network
predicts and the loss. `create_process` builds the one a config names."""

from diffusion_lab.errors import ConfigError
from diffusion_lab.processes.gaussian import GaussianProcess


def _gaussian(diffusion: dict, **options) -> GaussianProcess:
    return GaussianProcess(diffusion, **options)


def _cold(diffusion: dict, **options):
    from diffusion_lab.processes.cold import ColdProcess  # its degradations import more

    return ColdProcess(**options)


def _edm(diffusion: dict, **options):
    from diffusion_lab.processes.edm import EDMProcess

    return EDMProcess(**options)


PROCESSES = {"gaussian": _gaussian, "cold": _cold, "edm": _edm}


def create_process(process: dict | None, diffusion: dict):
    """The process `process` names (`conf/process/*.yaml`: `name` plus its options); None is
    the Gaussian process with uniform weighting (runs from before processes existed).
    `diffusion` holds `create_diffusion`'s keywords from the schedule and loss groups."""
    options = dict(process or {"name": "gaussian"})
    name = options.pop("name", None)
    if name not in PROCESSES:
        raise ConfigError(
            f"process.name={name!r} is not a process; choose one of: {', '.join(PROCESSES)}"
        )
    return PROCESSES[name](diffusion, **options)
