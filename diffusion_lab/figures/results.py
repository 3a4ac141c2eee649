"""Reading the `results.json` files that `python -m diffusion_lab.evaluate` writes, one per run."""

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from diffusion_lab.errors import DataNotFoundError, LabError

REQUIRED = ("metrics", "nfe", "sampler", "features")
REQUIRED_SAMPLER = ("name", "steps")


class ResultsError(LabError, ValueError):
    """A results.json that cannot be plotted; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Result:
    """One evaluation: the sampler and its steps, network evaluations per sample, the scores."""

    path: Path
    sampler: str
    steps: int
    nfe: int
    metrics: dict[str, float]
    features: str
    guidance_scale: float | None = None
    step: int | None = None  # the training step of the checkpoint scored


def find_results(paths: Iterable[str | Path]) -> list[Path]:
    """results.json files: given directly, or every one below a directory (a Hydra multirun)."""
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(path.glob("**/results.json"))
        elif path.is_file():
            found.append(path)
        else:
            raise DataNotFoundError(f"{path} does not exist; pass a multirun dir or results.json")
    if not found:
        raise DataNotFoundError(
            f"no results.json under {', '.join(map(str, paths))}; run "
            "`python -m diffusion_lab.evaluate -m ...` there first"
        )
    return found


def load_result(path: str | Path) -> Result:
    """Parses one results.json; ResultsError naming the file for bad JSON or a missing key."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path}: not valid JSON ({exc})") from exc
    if "nfe" in data and data["nfe"] is None:
        raise ResultsError(
            f"{path}: scores of given samples (evaluate samples=<npz>) have no sampler or NFE "
            "to plot against; plot runs that drew their own samples"
        )
    missing = [key for key in REQUIRED if key not in data]
    if "sampler" not in missing:
        sampler = data["sampler"] if isinstance(data["sampler"], dict) else {}
        missing += [f"sampler.{key}" for key in REQUIRED_SAMPLER if key not in sampler]
    if missing:
        raise ResultsError(
            f"{path}: missing key {missing[0]!r}; a results.json needs "
            f"{', '.join(REQUIRED)} and sampler.name, sampler.steps"
        )
    guidance = data.get("guidance") or {}
    return Result(
        path=path,
        sampler=data["sampler"]["name"],
        steps=int(data["sampler"]["steps"]),
        nfe=int(data["nfe"]),
        metrics={k: float(v) for k, v in data["metrics"].items() if v is not None},  # null: not run
        features=data["features"],
        guidance_scale=guidance.get("scale"),
        step=data.get("step"),
    )


def load_results(paths: Iterable[str | Path]) -> list[Result]:
    """Every results.json found under `paths` (see `find_results`), parsed."""
    return [load_result(path) for path in find_results(paths)]


def by_sampler(results: Iterable[Result]) -> dict[str, list[Result]]:
    """Results grouped by sampler name (sorted), each group sorted by NFE, then guidance scale."""
    groups: dict[str, list[Result]] = {}
    for result in results:
        groups.setdefault(result.sampler, []).append(result)
    return {
        name: sorted(groups[name], key=lambda r: (r.nfe, r.steps, r.guidance_scale or 0.0))
        for name in sorted(groups)
    }


def metric_value(result: Result, name: str) -> float:
    """`result.metrics[name]`; ResultsError naming the file and the metrics it has otherwise."""
    if name not in result.metrics:
        raise ResultsError(
            f"{result.path}: no metric {name!r}; it has {', '.join(sorted(result.metrics))}"
        )
    return result.metrics[name]


def curve_metrics(results: Sequence[Result]) -> list[str]:
    """Metrics that every result has, without their standard errors (is_std, nll_bpd_stderr)."""
    common = set.intersection(*(set(r.metrics) for r in results))
    return sorted(m for m in common if not {"std", "stderr"} & set(m.split("_")))


def format_table(results: Iterable[Result], metrics: Sequence[str]) -> str:
    """A plain-text table: sampler, steps, nfe, guidance scale and `metrics`, one row per run."""
    header = ["sampler", "steps", "nfe", "scale", *metrics]
    rows = [
        [
            r.sampler,
            str(r.steps),
            str(r.nfe),
            "-" if r.guidance_scale is None else f"{r.guidance_scale:g}",
            *(f"{metric_value(r, m):.4g}" for m in metrics),
        ]
        for group in by_sampler(results).values()
        for r in group
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    align = [str.ljust] + [str.rjust] * (len(header) - 1)  # sampler names left, numbers right
    return "\n".join(
        "  ".join(a(cell, w) for a, cell, w in zip(align, row, widths, strict=True))
        for row in [header, *rows]
    )
