"""Figures of the papers' kind: denoising and forward-process strips, schedules, quality vs NFE,
and guidance trade-offs from evaluate's results.json files (`python -m diffusion_lab.figures`)."""

from diffusion_lab.figures.guidance import plot_guidance_tradeoff
from diffusion_lab.figures.nfe import plot_quality_vs_nfe
from diffusion_lab.figures.results import (
    Result,
    ResultsError,
    by_sampler,
    curve_metrics,
    find_results,
    format_table,
    load_result,
    load_results,
)
from diffusion_lab.figures.schedules import log_snr, plot_schedules
from diffusion_lab.figures.strips import (
    Strip,
    degradation_strip,
    denoising_strip,
    forward_strip,
    restoration_strip,
)

__all__ = [
    "Result",
    "ResultsError",
    "Strip",
    "by_sampler",
    "curve_metrics",
    "degradation_strip",
    "denoising_strip",
    "find_results",
    "format_table",
    "forward_strip",
    "restoration_strip",
    "load_result",
    "load_results",
    "log_snr",
    "plot_guidance_tradeoff",
    "plot_quality_vs_nfe",
    "plot_schedules",
]
