"""What each part of the GPU check (gpu_check.py) measures: a function of the plan that returns a
JSON-ready dict, raising on failure. `tests` and `train` run a command; `sampling` and `compare`
are heavy device work that gpu_check.py runs in a process of their own."""

import importlib.util
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import unet_benchmark as bench
from PIL import Image

from diffusion_lab.diffusion import create_diffusion
from diffusion_lab.sampling import sample

ROOT = Path(__file__).resolve().parents[1]

# Dense bf16 tensor-core rates from the vendors' datasheets, TFLOP/s, by the name
# torch.cuda.get_device_name() gives (first match): a GPU not listed gets none, and MFU is then
# taken against the bf16 matmul rate measured in the same run.
BF16_DENSE_TFLOPS = (
    (r"\bH200 NVL\b", 835),
    (r"\bH200\b", 989),
    (r"\bH100 NVL\b", 835),
    (r"\bH100 PCIe\b", 756),
    (r"\bH100\b", 989),  # SXM: "NVIDIA H100 80GB HBM3"
    (r"\bA100\b", 312),
    (r"\bL40S\b", 362),
    (r"\bL40\b", 181),
    (r"\bL4\b", 121),
    (r"\bA10\b", 125),
)
# what the parts import; checked first, so a bare machine says what is missing in one line
MODULES = ("hydra", "omegaconf", "lightning", "torch_fidelity", "sklearn", "pytest", "diffusers")


@dataclass(frozen=True)
class Plan:
    """What a run measures. Seconds per part: `needs`, the least worth starting it with; `caps`,
    the most it may take."""

    mode: str  # "cuda" or "cpu-smoke"
    preset: str  # conf/model option trained, sampled and compared
    trainer: str  # conf/trainer option of the training run
    bf16: bool
    compile: bool
    channels_last: bool
    train_batch: int
    train_steps: int
    untimed_steps: int  # the first steps, left out of the timings (compilation, autotuning)
    batches_per_epoch: int
    sample_batch: int
    sample_repeats: int
    ddpm_timed_steps: int  # of ddpm's 1000 steps
    compare_repeats: int
    budget_s: float
    needs: dict
    caps: dict

    @property
    def device(self) -> torch.device:
        return torch.device("cuda" if self.mode == "cuda" else "cpu")


CUDA = Plan(
    mode="cuda",
    preset="ddpm_cifar10",
    trainer="gpu",
    bf16=True,
    compile=True,
    channels_last=True,
    train_batch=128,
    train_steps=300,
    untimed_steps=50,
    batches_per_epoch=40,
    sample_batch=256,
    sample_repeats=3,
    ddpm_timed_steps=50,
    compare_repeats=10,
    budget_s=465,
    needs={"tests": 60, "train": 90, "sampling": 20, "compare": 90},
    caps={"tests": 180, "train": 240, "sampling": 90, "compare": 300},
)
SMOKE = Plan(
    mode="cpu-smoke",
    preset="tiny",
    trainer="cpu",
    bf16=False,
    compile=False,  # Inductor's CPU codegen alone would take minutes
    channels_last=True,
    train_batch=4,
    train_steps=6,
    untimed_steps=2,
    batches_per_epoch=4,  # two epoch boundaries in six steps
    sample_batch=1,
    sample_repeats=1,
    ddpm_timed_steps=5,
    compare_repeats=2,
    budget_s=150,
    needs={"tests": 10, "train": 10, "sampling": 5, "compare": 10},
    caps={"tests": 60, "train": 60, "sampling": 30, "compare": 60},
)


class PartError(RuntimeError):
    """A part could not measure; the message says why in one line."""


class PartTimeout(PartError):
    """A part ran past the time left to it."""


def run_logged(command: list[str], log: Path, timeout: float, cwd: Path, env: dict) -> int:
    """Runs `command` with its output streamed to `log`; kills its whole process group (its
    children too) after `timeout` seconds."""
    with open(log, "w") as file:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=file, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise PartTimeout(f"stopped after {timeout:.0f} s; see {log.name}") from None


def environment() -> dict[str, str]:
    """The commands' environment: the checkout's package and benchmarks/ first on the path,
    unbuffered output, no bytecode written into the checkout, W&B offline."""
    path = [str(ROOT), str(ROOT / "benchmarks"), os.environ.get("PYTHONPATH", "")]
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, path)),
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "WANDB_MODE": "offline",
    }


def datasheet_bf16_tflops(name: str) -> float | None:
    return next((peak for pattern, peak in BF16_DENSE_TFLOPS if re.search(pattern, name)), None)


def device_info(plan: Plan) -> dict:
    """The device, its datasheet bf16 rate and its measured matmul rates (TFLOP/s, random data),
    and the Python modules missing here."""
    missing = [name for name in MODULES if importlib.util.find_spec(name) is None]
    info = {"torch": torch.__version__, "cuda": torch.version.cuda, "missing_modules": missing}
    info["threads"] = torch.get_num_threads()
    if plan.mode == "cuda":
        if not torch.cuda.is_available():
            raise PartError("no CUDA device (torch.cuda.is_available() is False): use --cpu-smoke")
        props = torch.cuda.get_device_properties(0)
        info |= {
            "name": props.name,
            "capability": f"{props.major}.{props.minor}",
            "memory_gb": props.total_memory / 1e9,
            "multiprocessors": props.multi_processor_count,
            "datasheet_bf16_tflops": datasheet_bf16_tflops(props.name),
        }
    else:
        info["name"] = platform.processor() or platform.machine()
        info |= dict.fromkeys(("capability", "memory_gb", "multiprocessors"))
        info["datasheet_bf16_tflops"] = None
    peaks = bench.matmul_peaks(plan.device, ["bfloat16", "float32"])
    info["matmul_tflops"] = {dtype: gflops / 1000 for dtype, gflops in peaks.items()}
    return info


def outcome_counts(log: Path) -> dict:
    """Counts of pytest -v's outcome lines in `log` (those of a run stopped midway too)."""
    text = log.read_text()
    outcomes = re.findall(
        r"^(tests/\S+::\S+) (PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS)", text, re.M
    )
    words = {"passed": "PASSED", "failed": "FAILED", "skipped": "SKIPPED", "errors": "ERROR"}
    counts = {key: sum(o == word for _, o in outcomes) for key, word in words.items()}
    counts["not_passed"] = sorted({test for test, o in outcomes if o in ("FAILED", "ERROR")})
    counts["skip_reasons"] = sorted(set(re.findall(r"^SKIPPED \[\d+\] \S+: (.+)$", text, re.M)))
    return counts


def cuda_tests(plan: Plan, work: Path, log: Path, timeout: float) -> dict:
    """Runs tests/cuda (the `cuda` marker) through pytest; counts each test's outcome."""
    command = [sys.executable, "-m", "pytest", "-m", "cuda", "tests/cuda", "-v", "-rs"]
    command += ["-p", "no:cacheprovider", f"--basetemp={work / 'pytest'}"]
    try:
        returncode = run_logged(command, log, timeout, ROOT, environment())
    except PartTimeout as stopped:
        counts = outcome_counts(log)
        raise PartTimeout(
            f"{stopped} ({counts['passed']} passed, {counts['failed']} failed)"
        ) from None
    counts = outcome_counts(log)
    if not any(counts[key] for key in ("passed", "failed", "skipped", "errors")):
        raise PartError(f"pytest exited with {returncode} and ran no test; see {log.name}")
    return {"returncode": returncode, **counts}


def write_images(folder: Path, count: int, size: int = 32) -> Path:
    """`count` random RGB PNGs of size² pixels: the folder datamodule's real loading path."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for index in range(count):
        pixels = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{index:05d}.png")
    return folder


def train_command(plan: Plan, data: Path, run_dir: Path, steps_file: Path) -> list[str]:
    """The training entry point on `data` with the plan's switches and the step-time callback;
    no sample grid (the final one would sample for longer than the run trains)."""
    return [
        sys.executable,
        "-m",
        "diffusion_lab.train",
        f"model={plan.preset}",
        "data=folder",
        f"data.root={data}",
        f"data.image_size={bench.IMAGE_SIZE}",
        f"data.batch_size={plan.train_batch}",
        f"trainer={plan.trainer}",
        f"trainer.max_steps={plan.train_steps}",
        # full batches only: a smaller last batch would compile a second graph mid-run
        f"+trainer.limit_train_batches={plan.batches_per_epoch}",
        f"model.compile={str(plan.compile).lower()}",
        f"model.channels_last={str(plan.channels_last).lower()}",
        "callbacks.sample_grid=null",
        "+callbacks.step_times._target_=step_times.StepTimes",
        f"+callbacks.step_times.path={steps_file}",
        f"hydra.run.dir={run_dir}",
        f"paths.root_dir={run_dir.parent}",
    ]


def training_run(plan: Plan, work: Path, log: Path, timeout: float) -> dict:
    """A real training run through `python -m diffusion_lab.train`: throughput after warm-up,
    achieved TFLOP/s (FlopCounterMode: forward x 3 for forward and backward), peak memory."""
    count = plan.train_batch * (plan.batches_per_epoch + 8)  # the 5% validation split aside
    data = write_images(work / "images", count)
    run_dir, steps_file = work / "train_run", work / "train_steps.json"
    command = train_command(plan, data, run_dir, steps_file)
    returncode = run_logged(command, log, timeout, work, environment())
    if returncode != 0:
        raise PartError(f"the training command exited with {returncode}; see {log.name}")
    record = json.loads(steps_file.read_text())
    ends = record.pop("step_ends_s")
    durations = np.diff([0.0, *ends])[plan.untimed_steps :]
    median = float(np.median(durations))
    net = bench.build("ours", plan.preset, torch.device("cpu"), channels_last=False)
    flop = 3 * bench.forward_flops_per_image(net, torch.device("cpu"))
    images_per_s = plan.train_batch / median
    ckpt = torch.load(
        run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True, mmap=True
    )
    return {
        "preset": plan.preset,
        "parameters": bench.num_parameters(net),
        "batch": plan.train_batch,
        "steps": len(ends),
        "untimed_steps": plan.untimed_steps,
        "images_per_s": images_per_s,
        "images_per_s_window": plan.train_batch * len(durations) / float(durations.sum()),
        "step_ms_median": 1000 * median,
        "step_ms_spread": 1000 * float(np.percentile(durations, 90) - np.percentile(durations, 10)),
        "first_step_s": ends[0],
        "train_flop_per_image": flop,
        "tflops": images_per_s * flop / 1e12,
        **record,
        "batch_sizes": sorted(set(record["batch_sizes"])),
        # what a compiled network would add to the saved names (`net._orig_mod.`): none
        "checkpoint_keys_plain": set(ckpt["state_dict"]) == {f"net.{k}" for k in net.state_dict()},
    }


def sampling_speed(plan: Plan) -> dict:
    """Images/s of the `sample` command's samplers at the plan's batch, bf16 autocast with CUDA
    as trainer=gpu samples, eager. ddpm's 1000 steps are timed over `ddpm_timed_steps` respaced
    ancestral steps, which do the same work per step (one network call, one posterior draw), and
    scaled to 1000."""
    device = plan.device
    torch.backends.cudnn.benchmark = True  # as the sample command's trainer.benchmark
    net = bench.build("ours", plan.preset, device, channels_last=False).eval()
    diffusion = create_diffusion(schedule="linear", num_timesteps=1000)
    shape = (plan.sample_batch, bench.CHANNELS, bench.IMAGE_SIZE, bench.IMAGE_SIZE)
    result = {"batch": plan.sample_batch, "bf16": plan.bf16, "repeats": plan.sample_repeats}
    for name, steps, timed_steps in (
        ("ddpm", 1000, plan.ddpm_timed_steps),
        ("ddim", 50, 50),
        ("dpm_solver", 20, 20),
    ):
        generator = torch.Generator(device).manual_seed(0)

        def draw(name=name, timed_steps=timed_steps, generator=generator) -> None:
            with bench.autocast(device, plan.bf16):
                sample(net, diffusion, shape, name, timed_steps, generator=generator)

        draw()  # warm-up: cuDNN picks its kernels for these shapes
        seconds = statistics.median(bench.timed(draw, device) for _ in range(plan.sample_repeats))
        per_batch = seconds * steps / timed_steps
        result[name] = {
            "steps": steps,
            "timed_steps": timed_steps,
            "seconds_per_batch": per_batch,
            "images_per_s": plan.sample_batch / per_batch,
        }
    return result


def compare_with_diffusers(plan: Plan) -> dict:
    """unet_benchmark.py's comparison in the training run's settings (its table goes to the
    log)."""
    argv = ["--preset", plan.preset, "--device", plan.device.type]
    argv += ["--train-batch", str(plan.train_batch), "--sample-batch", str(plan.sample_batch)]
    argv += ["--repeats", str(plan.compare_repeats), "--skip-memory"]
    for option in bench.OPTIONS:
        argv.append(f"--{'' if getattr(plan, option) else 'no-'}{option.replace('_', '-')}")
    result = bench.run(bench.parse_args(argv))
    bench.report(result)
    return result
