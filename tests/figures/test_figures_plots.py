"""Quality-vs-NFE, guidance trade-off and schedule plots: PNGs written, the plotted data right."""

import numpy as np
import pytest
from matplotlib import image

from diffusion_lab.diffusion import get_named_beta_schedule
from diffusion_lab.figures import (
    ResultsError,
    load_result,
    load_results,
    log_snr,
    plot_guidance_tradeoff,
    plot_quality_vs_nfe,
    plot_schedules,
)
from diffusion_lab.figures.axes import value_scale
from diffusion_lab.figures.steps import plot_quality_vs_step


def assert_png(path):
    pixels = image.imread(path)
    assert pixels.ndim == 3 and min(pixels.shape[:2]) > 100
    assert pixels[..., :3].std() > 0  # not a blank canvas


def lines_by_label(ax):
    return {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in ax.lines}


def test_quality_vs_nfe_one_line_per_sampler(write_result, tmp_path):
    for job, (name, steps, nfe) in enumerate([("heun", 5, 9), ("ddim", 20, 20), ("ddim", 5, 5)]):
        write_result(
            str(job),
            sampler=name,
            steps=steps,
            nfe=nfe,
            metrics={"fid_digits": 100 / nfe, "is_digits": nfe, "is_std_digits": 0.1},
        )
    out = tmp_path / "nfe.png"
    fig = plot_quality_vs_nfe(load_results([tmp_path / "multirun"]), path=out)
    assert_png(out)
    fid_ax, is_ax = fig.axes
    assert (fid_ax.get_ylabel(), is_ax.get_ylabel()) == ("fid_digits", "is_digits")
    assert fid_ax.get_xscale() == "log"
    assert lines_by_label(fid_ax) == {"ddim": ([5, 20], [20.0, 5.0]), "heun": ([9], [100 / 9])}


def test_quality_vs_nfe_chosen_metric_missing_names_file(write_result):
    path = write_result("0", metrics={"fid_digits": 3.0})
    with pytest.raises(ResultsError, match=f"{path}: no metric 'precision_digits'"):
        plot_quality_vs_nfe([load_result(path)], ["precision_digits"])


def guidance_sweep(write_result, scales, features="inception"):
    suffix = "" if features == "inception" else f"_{features}"
    for job, w in enumerate(scales):
        metrics = {
            "fid": 10 + w,
            "is": 5 + 2 * w,
            "precision": 0.5 + w / 10,
            "recall": 0.6 - w / 10,
        }
        metrics = {f"{k}{suffix}": v for k, v in metrics.items()}
        write_result(
            str(job), sampler="ddim", steps=20, scale=w, metrics=metrics, features=features
        )


@pytest.mark.parametrize("features", ["inception", "digits"])
def test_guidance_tradeoff_points_sorted_and_labelled_by_scale(write_result, tmp_path, features):
    guidance_sweep(write_result, [4.0, 0.0, 1.5], features)
    out = tmp_path / "guidance.png"
    fig = plot_guidance_tradeoff(load_results([tmp_path / "multirun"]), path=out)
    assert_png(out)
    fid_is, pr = fig.axes
    assert lines_by_label(fid_is)["ddim"] == ([5.0, 8.0, 13.0], [10.0, 11.5, 14.0])
    recall, precision = lines_by_label(pr)["ddim"]
    assert recall == pytest.approx([0.6, 0.45, 0.2]) and precision == pytest.approx(
        [0.5, 0.65, 0.9]
    )
    assert [t.get_text() for t in fid_is.texts] == ["0", "1.5", "4"]
    suffix = "" if features == "inception" else "_digits"
    assert (fid_is.get_xlabel(), fid_is.get_ylabel()) == (f"is{suffix}", f"fid{suffix}")
    assert (pr.get_xlabel(), pr.get_ylabel()) == (f"recall{suffix}", f"precision{suffix}")


def test_guidance_tradeoff_needs_a_scale(write_result):
    path = write_result("0", metrics={"fid": 1, "is": 1, "precision": 1, "recall": 1})
    with pytest.raises(ResultsError, match=f"{path}: guidance.scale is missing"):
        plot_guidance_tradeoff([load_result(path)])


def test_log_snr_pinned():
    assert log_snr(np.array([0.5, 0.9, 0.1])) == pytest.approx([0.0, np.log(9), -np.log(9)])


def test_schedule_plot_draws_alpha_bar_and_log_snr(tmp_path):
    alphas_cumprod = {
        name: np.cumprod(1 - get_named_beta_schedule(name, 100)) for name in ("linear", "cosine")
    }
    out = tmp_path / "schedules.png"
    fig = plot_schedules(alphas_cumprod, out)
    assert_png(out)
    left, right = fig.axes
    x, y = lines_by_label(left)["cosine"]
    assert x[0] == pytest.approx(0.01) and x[-1] == 1.0
    assert y == pytest.approx(alphas_cumprod["cosine"].tolist())
    assert lines_by_label(right)["linear"][1] == pytest.approx(
        log_snr(alphas_cumprod["linear"]).tolist()
    )


def test_quality_axes_go_log_when_the_values_span_more_than_three_times():
    assert value_scale([4.0, 6.0, 10.0]) == "linear"  # 2.5x: linear reads fine
    assert value_scale([4.0, 20.0, 40.0]) == "log"  # 10x: log, or 4-10 is squashed
    assert value_scale([-1.0, 5.0]) == "linear"  # not positive: no log axis


def test_quality_against_training_step_plots_each_snapshot(write_result, tmp_path):
    for step, fid in ((1000, 30.0), (2000, 12.0), (4000, 6.0)):
        write_result(f"s{step}", step=step, metrics={"fid_digits": fid})
    results = load_results([tmp_path / "multirun"])
    fig = plot_quality_vs_step(results, ["fid_digits"], tmp_path / "steps.png")
    assert_png(tmp_path / "steps.png")
    [line] = fig.axes[0].get_lines()
    assert list(line.get_xdata()) == [1000, 2000, 4000] and list(line.get_ydata()) == [30, 12, 6]
    assert fig.axes[0].get_yscale() == "log"  # 6 to 30: wider than 3x
    write_result("export", step=None)
    with pytest.raises(ResultsError, match="no training step"):
        plot_quality_vs_step(load_results([tmp_path / "multirun"]), ["fid_digits"])
