"""Quality against training step: evaluate's results over a run's EMA snapshots."""

from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

from diffusion_lab.figures.axes import value_scale
from diffusion_lab.figures.results import Result, ResultsError, by_sampler, metric_value


def plot_quality_vs_step(
    results: Sequence[Result], metrics: Sequence[str], path: str | Path | None = None
) -> Figure:
    """One panel per metric against the checkpoint's training step, one line per sampler (the
    results of `evaluate -m ckpt=<snapshot>,<snapshot>,...`). ResultsError for a result without
    a step (an export, or given samples)."""
    for result in results:
        if result.step is None:
            raise ResultsError(f"{result.path}: no training step (score checkpoints or snapshots)")
    fig = Figure(figsize=(4 * len(metrics), 3.2), layout="constrained")
    for ax, metric in zip(fig.subplots(1, len(metrics), squeeze=False)[0], metrics, strict=True):
        values = []
        for name, group in by_sampler(results).items():
            group = sorted(group, key=lambda r: r.step)
            values += [metric_value(r, metric) for r in group]
            ax.plot([r.step for r in group], values[-len(group) :], marker="o", label=name)
        ax.set_yscale(value_scale(values))
        ax.set_xlabel("training step")
        ax.set_ylabel(metric)
        ax.grid(True, alpha=0.3)
    fig.axes[0].legend(title="sampler")
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
