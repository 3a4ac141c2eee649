"""`python -m diffusion_lab.figures RUNS... --kind nfe|guidance --out fig.png`: reads the
results.json files under RUNS (e.g. an evaluate multirun dir), prints a table, writes the PNG."""

import argparse
from collections.abc import Sequence

from diffusion_lab.cli import user_errors
from diffusion_lab.figures.guidance import plot_guidance_tradeoff
from diffusion_lab.figures.nfe import plot_quality_vs_nfe
from diffusion_lab.figures.results import curve_metrics, format_table, load_results
from diffusion_lab.figures.steps import plot_quality_vs_step
from diffusion_lab.metrics import METRICS, metric_key


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m diffusion_lab.figures", description=__doc__)
    parser.add_argument("runs", nargs="+", help="multirun dirs or results.json files")
    parser.add_argument(
        "--kind",
        choices=("nfe", "guidance", "fid_vs_step"),
        required=True,
        help="nfe: metrics vs NFE per sampler; guidance: FID/IS and P/R vs scale; "
        "fid_vs_step: metrics vs the training step of the checkpoints (snapshots) scored",
    )
    parser.add_argument("--out", required=True, help="PNG to write")
    parser.add_argument(
        "--metric",
        action="append",
        help="nfe, fid_vs_step: a metric to plot (repeatable; default: all)",
    )
    args = parser.parse_args(argv)
    if args.kind == "guidance" and args.metric:
        parser.error("--metric applies to --kind nfe and fid_vs_step (guidance plots FID, IS, P/R)")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    with user_errors():
        results = load_results(args.runs)
        if args.kind == "nfe":
            metrics = args.metric or curve_metrics(results)
            plot_quality_vs_nfe(results, metrics, args.out)
        elif args.kind == "fid_vs_step":
            metrics = args.metric or curve_metrics(results)
            plot_quality_vs_step(results, metrics, args.out)
        else:
            keys = (metric_key(name, results[0].features) for name in METRICS)
            metrics = [key for key in keys if key in results[0].metrics]
            plot_guidance_tradeoff(results, args.out)
        print(format_table(results, metrics))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
