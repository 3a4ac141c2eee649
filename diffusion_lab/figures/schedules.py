"""Noise schedules side by side: ᾱ_t against t/T (Improved DDPM's Fig. 5) and the log-SNR
log(ᾱ_t / (1 − ᾱ_t)) (Kingma et al. 2021, §3)."""

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure


def log_snr(alphas_cumprod: np.ndarray) -> np.ndarray:
    """log SNR(t) = log(ᾱ_t / (1 − ᾱ_t)), the signal-to-noise ratio of q(x_t | x_0) in nats."""
    alphas_cumprod = np.asarray(alphas_cumprod, dtype=np.float64)
    return np.log(alphas_cumprod) - np.log1p(-alphas_cumprod)


def plot_schedules(
    alphas_cumprod: Mapping[str, np.ndarray], path: str | Path | None = None
) -> Figure:
    """ᾱ_t and log-SNR against t/T (t = 1..T), one line per named schedule; PNG at `path`."""
    fig = Figure(figsize=(8, 3.2), layout="constrained")
    left, right = fig.subplots(1, 2)
    for name, values in alphas_cumprod.items():
        values = np.asarray(values, dtype=np.float64)
        t_over_T = np.arange(1, len(values) + 1) / len(values)
        left.plot(t_over_T, values, label=name)
        right.plot(t_over_T, log_snr(values), label=name)
    left.set_ylabel(r"$\bar\alpha_t$")
    right.set_ylabel(r"$\log \mathrm{SNR} = \log(\bar\alpha_t / (1 - \bar\alpha_t))$")
    for ax in (left, right):
        ax.set_xlabel("t / T")
        ax.grid(True, alpha=0.3)
    left.legend(title="schedule")
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
