"""What the packaged Hydra configs need from Python: where they live and their resolvers.

`${lab.cwd:}` is the directory a command was started from. Unlike `${hydra:runtime.cwd}` it
resolves before any Hydra job exists, so a multirun can place its sweep dir below it.
`${lab.run_name:}` names a run dir: the start time, or the job under SLURM (`runs.slurm`).
`${lab.workers:4}` is a data-loader worker count: at most 4, and no more than the cores left
beside the training process. `${lab.groups:data,model}` lists the options of config groups, for a
command's `--help`. `${lab.best_metric:...}` is what best.ckpt minimises. `${lab.cpu_precision:}`
is bf16-mixed on a CPU with native bf16, else 32-true.
"""

import os
from pathlib import Path

from omegaconf import OmegaConf

CONFIG_DIR = Path(__file__).resolve().parent / "conf"


def group_options(group: str) -> list[str]:
    """The options of a config group shipped in the package, e.g. `model` -> [adm_64, ...]."""
    return sorted(path.stem for path in (CONFIG_DIR / group).glob("*.yaml"))


def groups_help(*groups: str) -> str:
    """One line per group: `model: adm_64, ddpm_cifar10, ...`."""
    return "\n".join(f"{group}: {', '.join(group_options(group))}" for group in groups)


def loader_workers(most: int) -> int:
    """`most` worker processes, or fewer: one core stays with the training process."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(0, min(int(most), (cores or 1) - 1))


def cpu_precision() -> str:
    """ "bf16-mixed" on a CPU with native bf16 arithmetic (AVX512-BF16 or AMX, read from
    /proc/cpuinfo's flags), else "32-true": elsewhere bf16 runs many times slower than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return "32-true"
    return "bf16-mixed" if {"avx512_bf16", "amx_bf16"} & set(flags) else "32-true"


def best_metric(fid) -> str:
    from diffusion_lab.callbacks.fid import best_metric

    return best_metric(fid)


def register_resolvers() -> None:
    """Registers the `lab.*` resolvers (idempotent)."""
    from diffusion_lab.runs.slurm import run_name

    resolvers = {
        "lab.cwd": os.getcwd,
        "lab.run_name": run_name,
        "lab.workers": loader_workers,
        "lab.groups": groups_help,
        "lab.best_metric": best_metric,
        "lab.cpu_precision": cpu_precision,
    }
    for name, resolver in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)


register_resolvers()
