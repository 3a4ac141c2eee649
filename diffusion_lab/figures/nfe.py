"""Sample quality against the number of network evaluations, one line per sampler (e.g. the
DDIM paper's Table 1 or DPM-Solver's Fig. 3 as curves)."""

from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, LogLocator

from diffusion_lab.figures.axes import value_scale
from diffusion_lab.figures.results import Result, by_sampler, curve_metrics, metric_value


def plot_quality_vs_nfe(
    results: Sequence[Result], metrics: Sequence[str] | None = None, path: str | Path | None = None
) -> Figure:
    """One panel per metric (default: every metric all results have), NFE on a log axis, the
    metric on a log axis too when its values span more than 3× (`axes.value_scale`).

    Saves a PNG at `path` when given. Raises ResultsError if a result lacks a metric.
    """
    metrics = list(metrics or curve_metrics(results))
    fig = Figure(figsize=(4 * len(metrics), 3.2), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics, strict=True):
        values = []
        for name, group in by_sampler(results).items():
            nfes = [r.nfe for r in group]
            values += [metric_value(r, metric) for r in group]
            ax.plot(nfes, values[-len(group) :], marker="o", label=name)
        ax.set_yscale(value_scale(values))
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))  # 5, 10, 20, 50, ...
        ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.minorticks_off()
        ax.set_xlabel("network evaluations (NFE)")
        ax.set_ylabel(metric)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(title="sampler")
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
