"""A prepared GPU check for a short GPU window: correctness on the device first, then speed.

    python benchmarks/gpu_check.py --out gpu_check     # CUDA: at most 8 minutes, compiling included
    python benchmarks/gpu_check.py --out smoke --cpu-smoke   # the same path on the CPU, tiny preset

Parts, in order; each one's failure is recorded and the next still runs:
  device    name, datasheet bf16 dense rate, measured matmul rates, missing Python modules;
  tests     the `cuda`-marked tests (tests/cuda) through pytest: pass/fail counts;
  train     `python -m diffusion_lab.train` on the DDPM CIFAR-10 preset and synthetic 32x32 PNGs
            (data=folder), trainer=gpu (bf16-mixed), compiled, channels_last, fused Adam: images/s
            after warm-up, TFLOP/s, MFU, peak memory, first (compiling) step;
  compare   our training and sampling steps against diffusers' UNet2DModel in the same settings
            (unet_benchmark.py), alternating, with the ratio;
  sampling  images/s of ddpm (1000 steps), ddim@50 and dpm_solver@20 at batch 256.
The budget (465 s with CUDA, so that start-up and the report fit in 8 minutes) counts from the
check's start: each part gets at most what is left after the least the later parts need, and is
stopped there; a part that cannot get its own least is skipped with a line saying so. `--parts`
reruns some. Writes <out>/gpu_check.json, <out>/gpu_check.txt (the table) and one log per part;
scratch (images, the run dir, its checkpoint) goes to --work.
"""

import argparse
import dataclasses
import json
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import gpu_check_parts as parts

ORDER = ("tests", "train", "compare", "sampling")
IN_CHILD = {"sampling": parts.sampling_speed, "compare": parts.compare_with_diffusers}
RESERVE_S = 10  # for writing the results after the last part


def in_child(name: str, plan: parts.Plan, work: Path, log: Path, timeout: float) -> dict:
    """Runs part `name` in a process of its own (this script with --part): a crash, a hang or a
    broken CUDA context stays there."""
    command = [sys.executable, __file__, "--part", name, "--work", str(work)]
    command += ["--cpu-smoke"] if plan.mode == "cpu-smoke" else []
    returncode = parts.run_logged(command, log, timeout, parts.ROOT, parts.environment())
    if returncode != 0:
        lines = log.read_text().strip().splitlines() or ["no output"]
        raise parts.PartError(f"exited with {returncode}: {lines[-1]}")
    return json.loads((work / "parts" / f"{name}.json").read_text())


def runner(name: str, plan: parts.Plan, work: Path, out: Path) -> Callable[[float], dict]:
    """Part `name` as a function of its time limit."""
    log = out / f"{name}.log"
    if name == "tests":
        return lambda timeout: parts.cuda_tests(plan, work, log, timeout)
    if name == "train":
        return lambda timeout: parts.training_run(plan, work, log, timeout)
    return lambda timeout: in_child(name, plan, work, log, timeout)


def attempt(name: str, run: Callable[[float], dict], timeout: float) -> tuple[dict | None, dict]:
    """(what the part measured or None, its status: ok | failed | timeout, seconds, error)."""
    print(f"{name}: running, stopped after {timeout:.0f} s", flush=True)
    started = time.monotonic()
    result, status = None, {"status": "ok", "error": None}
    try:
        result = run(timeout)
    except parts.PartTimeout as error:
        status = {"status": "timeout", "error": str(error)}
    except parts.PartError as error:
        status = {"status": "failed", "error": str(error)}
    except Exception as error:  # a part's failure is a finding, not the end of the check
        traceback.print_exc()
        status = {"status": "failed", "error": f"{type(error).__name__}: {error}"}
    status |= {"seconds": time.monotonic() - started, "timeout_s": timeout}
    print(f"{name}: {status['status']} in {status['seconds']:.1f} s {status['error'] or ''}")
    return result, status


def time_limit(name: str, plan: parts.Plan, selected: list[str], left: float) -> float | str:
    """The part's time limit, or why it is skipped."""
    later = sum(plan.needs[n] for n in selected[selected.index(name) + 1 :])
    limit = min(plan.caps[name], left - later)
    if limit < plan.needs[name]:
        return (
            f"skipped: {max(left, 0):.0f} s of the {plan.budget_s:.0f} s budget left, "
            f"{later:.0f} s of them kept for the later parts; it needs {plan.needs[name]:.0f} s"
        )
    return limit


def derive(report: dict, plan: parts.Plan) -> None:
    """MFU: achieved TFLOP/s over the datasheet's dense bf16 rate when the run is bf16 and the
    GPU is known, else over the matmul rate measured in this run in the run's dtype."""
    device = report.get("device") or {}
    measured = (device.get("matmul_tflops") or {}).get("bfloat16" if plan.bf16 else "float32")
    datasheet = device.get("datasheet_bf16_tflops") if plan.bf16 else None
    peak = datasheet or measured
    report["peak_tflops"] = peak
    report["peak_source"] = "datasheet" if datasheet else "measured matmul"
    train, compare = report.get("train"), report.get("compare")
    if train and peak:
        train["mfu"] = train["tflops"] / peak
        train["fraction_of_measured_matmul"] = train["tflops"] / measured
    if compare and peak:
        for mode in ("train", "sample"):
            for name in ("ours", "diffusers"):
                compare[f"{mode}_mfu_{name}"] = compare[f"{mode}_gflops_{name}"] / 1000 / peak


def number(value, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def training_lines(t: dict) -> list[str]:
    switches = f"{t['precision']}, compiled={t['compiled']}, channels_last={t['channels_last']}"
    rows = (
        (f"images/s, median of the steps after {t['untimed_steps']}", t["images_per_s"], 1),
        ("images/s, mean of those steps", t["images_per_s_window"], 1),
        ("step ms, median", t["step_ms_median"], 2),
        ("step ms, p90 - p10", t["step_ms_spread"], 2),
        ("TFLOP/s achieved", t["tflops"], 3),
        ("MFU", t.get("mfu"), 3),
        (f"peak memory MB ({t['memory_kind']})", t["peak_memory_mb"], 0),
        ("first step s (compilation)", t["first_step_s"], 1),
    )
    return [
        f"training: {t['preset']} via python -m diffusion_lab.train, batch {t['batch']}, "
        f"{switches}, fused={t['fused']}",
        *(f"  {label:<40}{number(value, digits):>12}" for label, value, digits in rows),
    ]


def sampling_lines(s: dict) -> list[str]:
    lines = [f"sampling: batch {s['batch']}, bf16={s['bf16']}, eager; images/s"]
    for name in ("ddpm", "ddim", "dpm_solver"):
        run = s[name]
        timed = f" (timed {run['timed_steps']} steps)" if name == "ddpm" else ""
        label = f"{name}@{run['steps']}{timed}"
        lines.append(f"  {label:<40}{number(run['images_per_s'], 2):>12}")
    return lines


def compare_lines(c: dict) -> list[str]:
    title = f"ours / diffusers ({c['preset']})"
    lines = [f"{title:<42}{'ours':>12}{'diffusers':>12}"]
    for mode in ("train", "sample"):
        for what in ("images_per_s", "mfu", "peak_mb", "first_step_s"):
            row = f"{mode}_{what}"
            ours, theirs = c[f"{row}_ours"], c[f"{row}_diffusers"]
            lines.append(f"  {row:<40}{number(ours, 3):>12}{number(theirs, 3):>12}")
    for mode in ("train", "sample"):
        ratio = c[f"{mode}_speed_ratio_ours_over_diffusers"]
        lines.append(f"  {mode + ' speed, ours / diffusers':<40}{ratio:>12.3f}")
    return lines


def table(report: dict) -> str:
    """The results as text: parts, training, ours against diffusers, sampling."""
    device = report.get("device") or {}
    measured = ", ".join(f"{k} {v:.4g}" for k, v in (device.get("matmul_tflops") or {}).items())
    peak = report.get("peak_tflops")
    lines = [
        f"GPU check ({report['mode']}): {device.get('name', '?')}, torch {device.get('torch')}, "
        f"{report['elapsed_s']:.0f} s of a {report['budget_s']:.0f} s budget",
        f"peak for MFU: {'-' if peak is None else f'{peak:.4g}'} TFLOP/s "
        f"({report.get('peak_source')}); measured matmul TFLOP/s: {measured}",
    ]
    if device.get("missing_modules"):
        lines.append(f"missing Python modules: {', '.join(device['missing_modules'])}")
    lines += ["", f"{'part':<10}{'status':<9}{'s':>7}  note"]
    for name, status in report["parts"].items():
        note = status.get("error") or status.get("reason") or ""
        if name == "tests" and report.get("tests"):
            t = report["tests"]
            note = f"{t['passed']} passed, {t['failed']} failed, {t['skipped']} skipped, "
            note += f"{t['errors']} errors {' '.join(t['not_passed'])}"
        lines.append(f"{name:<10}{status['status']:<9}{number(status.get('seconds')):>7}  {note}")
    for section, describe in (
        ("train", training_lines),
        ("compare", compare_lines),
        ("sampling", sampling_lines),
    ):
        if report.get(section):
            lines += ["", *describe(report[section])]
    return "\n".join(lines)


def check(plan: parts.Plan, selected: list[str], out: Path, work: Path) -> dict:
    """Runs the parts within the plan's budget; returns the report."""
    started = time.monotonic()
    report = {"mode": plan.mode, "budget_s": plan.budget_s, "plan": dataclasses.asdict(plan)}
    report["parts"] = {}
    report["device"], report["parts"]["device"] = attempt(
        "device",
        lambda timeout: parts.device_info(plan),
        plan.budget_s,  # quick, in this process
    )
    for name in selected:
        if report["device"] is None and plan.mode == "cuda":
            limit = "skipped: no device"
        else:
            limit = time_limit(
                name, plan, selected, plan.budget_s - RESERVE_S - time.monotonic() + started
            )
        if isinstance(limit, str):
            print(f"{name}: {limit}", flush=True)
            report["parts"][name] = {"status": "skipped", "reason": limit, "seconds": None}
            report[name] = None
            continue
        report[name], report["parts"][name] = attempt(name, runner(name, plan, work, out), limit)
    report["elapsed_s"] = time.monotonic() - started
    derive(report, plan)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="where gpu_check.json, the table and logs go")
    parser.add_argument("--work", type=Path, help="scratch dir (default: a new temporary one)")
    parser.add_argument("--cpu-smoke", action="store_true", help="the CPU path, tiny and fast")
    parser.add_argument("--budget-s", type=float, help="seconds for the whole check")
    parser.add_argument("--parts", default=",".join(ORDER), help=f"some of {','.join(ORDER)}")
    parser.add_argument("--part", choices=sorted(IN_CHILD), help=argparse.SUPPRESS)
    args = parser.parse_args()
    plan = parts.SMOKE if args.cpu_smoke else parts.CUDA
    if args.budget_s is not None:
        plan = dataclasses.replace(plan, budget_s=args.budget_s)
    work = (args.work or Path(tempfile.mkdtemp(prefix="gpu-check-"))).resolve()
    if args.part:  # a part's own process
        result = IN_CHILD[args.part](plan)
        (work / "parts").mkdir(parents=True, exist_ok=True)
        (work / "parts" / f"{args.part}.json").write_text(json.dumps(result, indent=2))
        return
    if args.out is None:
        parser.error("--out is required")
    selected = [name for name in ORDER if name in args.parts.split(",")]
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    report = check(plan, selected, out, work)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
    text = table(report)
    (out / "gpu_check.txt").write_text(text + "\n")
    print(text)
    failed = [name for name, status in report["parts"].items() if status["status"] != "ok"]
    tests = report.get("tests") or {}
    sys.exit(1 if failed or tests.get("failed") or tests.get("errors") else 0)


if __name__ == "__main__":
    main()
