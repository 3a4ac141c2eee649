"""The fidelity/diversity trade-off of a guidance-scale sweep: FID against Inception Score
(Ho & Salimans 2022, Fig. 4) and precision against recall (Dhariwal & Nichol 2021, Fig. 4)."""

from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

from diffusion_lab.figures.axes import value_scale
from diffusion_lab.figures.results import Result, ResultsError, by_sampler, metric_value
from diffusion_lab.metrics import metric_key

PANELS = (("is", "fid"), ("recall", "precision"))  # (x, y) per panel, before the features suffix


def plot_guidance_tradeoff(results: Sequence[Result], path: str | Path | None = None) -> Figure:
    """FID vs IS and precision vs recall, one line per sampler, each point labelled by its scale.

    Metric names follow each result's features (fid_digits for `digits`). Saves a PNG at `path`
    when given. Raises ResultsError for a result without a guidance scale or a needed metric.
    """
    for result in results:
        if result.guidance_scale is None:
            raise ResultsError(f"{result.path}: guidance.scale is missing or null")
    fig = Figure(figsize=(8, 3.4), layout="constrained")
    for ax, (x_name, y_name) in zip(fig.subplots(1, 2), PANELS, strict=True):
        all_y = []
        for name, group in by_sampler(results).items():
            group = sorted(group, key=lambda r: r.guidance_scale)
            xs = [metric_value(r, metric_key(x_name, r.features)) for r in group]
            ys = [metric_value(r, metric_key(y_name, r.features)) for r in group]
            all_y += ys
            ax.plot(xs, ys, marker="o", label=name)
            for x, y, r in zip(xs, ys, group, strict=True):
                ax.annotate(
                    f"{r.guidance_scale:g}",
                    (x, y),
                    textcoords="offset points",
                    xytext=(4, 4),
                    fontsize=8,
                    annotation_clip=False,  # a label above the highest point stays whole
                )
        ax.set_yscale(value_scale(all_y))
        ax.margins(x=0.12, y=0.15)  # room for the labels inside the axes
        ax.set_xlabel(metric_key(x_name, results[0].features))
        ax.set_ylabel(metric_key(y_name, results[0].features))
        ax.grid(True, alpha=0.3)
    fig.axes[0].legend(title="sampler (labels: scale)")
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
