"""Our ddpm_cifar10 U-Net vs diffusers' UNet2DModel built as google/ddpm-cifar10-32.

Another preset (`--preset tiny`) is compared with the UNet2DModel that the lab's converter makes
of it. Both networks get noise on every weight: zero-initialised layers (our output convolution)
would otherwise run on zeros, which can time faster than real weights.

Measures, in one process with the two models alternating (A B, B A, ...):
  - training-step throughput: forward + MSE + backward + AdamW step, images/s (median);
  - sampling-step throughput: one forward pass without gradients, images/s (median);
  - achieved GFLOP/s = forward FLOPs per image (FlopCounterMode, attention included) x images/s,
    x3 for training (backward ~ 2x forward), and its fraction of a measured matmul peak;
  - the first step of each (compilation with --compile), in seconds, apart from the timings;
  - peak memory. CPU: growth of the peak resident set size (VmHWM) of a fresh subprocess over
    two steps, from just after the model and inputs exist; for training it includes gradients
    and AdamW state (3 x 143 MB, the same for both models) besides activations and temporaries.
    Eager even with --compile (the compiler's own memory would swamp the model's).
    CUDA: torch.cuda.max_memory_allocated() over the warm-up steps minus the memory allocated
    before them (same content; the caching allocator's reserve is not counted).
CPU runs fp32 eager; CUDA runs bf16 autocast + channels_last + torch.compile. Each of the three
can be switched either way on either device (--bf16/--no-bf16, --channels-last/--no-channels-last,
--compile/--no-compile).

    pip install -e ".[bench]"
    python benchmarks/unet_benchmark.py --train-batch 32 --sample-batch 64 --repeats 5
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils import flop_counter

from diffusion_lab.models.presets import build_preset, preset_config

MODELS = ("ours", "diffusers")
OPTIONS = ("bf16", "channels_last", "compile")  # on by default with CUDA
IMAGE_SIZE, CHANNELS, DROPOUT = 32, 3, 0.1  # CIFAR-10; DDPM trains with dropout 0.1
# n of the n x n matmuls that measure a peak: enough to fill the device, quick to time
PEAK_SIZES = {
    "cuda": {"float32": 4096, "bfloat16": 8192},
    "cpu": {"float32": 2048, "bfloat16": 1024},
}

# https://huggingface.co/google/ddpm-cifar10-32/blob/main/config.json
DIFFUSERS_CONFIG = dict(
    sample_size=32,
    in_channels=3,
    out_channels=3,
    block_out_channels=(128, 256, 256, 256),
    layers_per_block=2,
    down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
    downsample_padding=0,
    flip_sin_to_cos=False,
    freq_shift=1,
    norm_eps=1e-6,
    norm_num_groups=32,
    attention_head_dim=None,
    mid_block_scale_factor=1,
    act_fn="silu",
    time_embedding_type="positional",
)


def diffusers_twin(preset: str) -> dict:
    """The UNet2DModel config (without dropout) of our `preset` at 32x32x3."""
    if preset == "ddpm_cifar10":
        return DIFFUSERS_CONFIG
    from diffusion_lab.interop.diffusers_config import diffusers_config  # imports Lightning

    config = diffusers_config(preset_config(preset, IMAGE_SIZE, CHANNELS), learn_sigma=False)
    return {k: v for k, v in config.items() if not k.startswith("_") and k != "dropout"}


class Diffusers(nn.Module):
    """UNet2DModel called like ours: model(x, t) -> tensor."""

    def __init__(self, config: dict):
        super().__init__()
        from diffusers import UNet2DModel

        self.net = UNet2DModel(**config, dropout=DROPOUT)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(x, t, return_dict=False)[0]


def build(name: str, preset: str, device: torch.device, channels_last: bool) -> nn.Module:
    torch.manual_seed(0)
    if name == "ours":
        model = build_preset(preset, IMAGE_SIZE, CHANNELS, dropout=DROPOUT)
    else:
        model = Diffusers(diffusers_twin(preset))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def num_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _sdpa_cpu_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    return flop_counter.sdpa_flop_count(query, key, value)


def forward_flops_per_image(model: nn.Module, device: torch.device) -> float:
    """FLOPs of one forward pass on one image (FlopCounterMode misses CPU SDPA: counted here)."""
    cpu_sdpa = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    x, t = torch.randn(1, CHANNELS, IMAGE_SIZE, IMAGE_SIZE, device=device), torch.tensor([10])
    counter = flop_counter.FlopCounterMode(
        display=False, custom_mapping={cpu_sdpa: _sdpa_cpu_flops}
    )
    with torch.no_grad(), counter:
        model(x, t.to(device))
    return float(counter.get_total_flops())


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak_gflops(device: torch.device, dtype: torch.dtype, n: int) -> float:
    """Best of a few n x n matmuls on random data, in GFLOP/s."""
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    a @ b
    best = float("inf")
    for _ in range(3 if device.type == "cpu" else 20):
        synchronize(device)
        start = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def matmul_peaks(device: torch.device, dtypes: list[str]) -> dict[str, float]:
    """matmul_peak_gflops per dtype name, at PEAK_SIZES' n for the device."""
    sizes = PEAK_SIZES[device.type]
    return {name: matmul_peak_gflops(device, getattr(torch, name), sizes[name]) for name in dtypes}


def autocast(device: torch.device, bf16: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()


def make_steps(model: nn.Module, args, device: torch.device) -> dict[str, Callable[[], None]]:
    """The training step and the sampling step of `model`, on fixed random inputs."""
    generator = torch.Generator(device).manual_seed(1)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format

    def batch(n: int):
        x = torch.randn(n, CHANNELS, IMAGE_SIZE, IMAGE_SIZE, device=device, generator=generator)
        t = torch.randint(0, 1000, (n,), device=device, generator=generator)
        return x.contiguous(memory_format=fmt), t

    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-4)
    net = torch.compile(model, dynamic=False) if args.compile else model  # static per batch size
    (x_train, t_train), (x_sample, t_sample) = batch(args.train_batch), batch(args.sample_batch)
    noise = torch.randn_like(x_train)

    def train() -> None:
        with autocast(device, args.bf16):
            loss = F.mse_loss(net(x_train, t_train).float(), noise)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    @torch.no_grad()
    def sample() -> None:
        with autocast(device, args.bf16):
            net(x_sample, t_sample)

    return {"train": train, "sample": sample}


def peak_rss_growth_mb(name: str, mode: str, args) -> float:
    """CPU: VmHWM growth of a fresh subprocess running two `mode` steps of `name`."""
    command = [
        sys.executable,
        __file__,
        "--memory-child",
        name,
        mode,
        "--threads",
        str(args.threads),
    ]
    command += ["--train-batch", str(args.train_batch), "--sample-batch", str(args.sample_batch)]
    command += ["--preset", args.preset]
    command += ["--bf16" if args.bf16 else "--no-bf16", "--no-compile"]
    command += ["--channels-last" if args.channels_last else "--no-channels-last"]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return float(output.strip().splitlines()[-1])


def vm_hwm_kb() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


def memory_child(name: str, mode: str, args) -> None:
    device = torch.device("cpu")
    step = make_steps(build(name, args.preset, device, args.channels_last), args, device)[mode]
    before = vm_hwm_kb()
    for _ in range(2):
        step()
    print((vm_hwm_kb() - before) / 1024)


def timed(step: Callable[[], None], device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    step()
    synchronize(device)
    return time.perf_counter() - start


def run(args) -> dict:
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    models = {name: build(name, args.preset, device, args.channels_last) for name in MODELS}
    params = {name: num_parameters(model) for name, model in models.items()}
    if params["ours"] != params["diffusers"]:
        raise SystemExit(f"parameter counts differ: {params}")
    flops = {name: forward_flops_per_image(model, device) for name, model in models.items()}
    steps = {name: make_steps(model, args, device) for name, model in models.items()}

    cuda = device.type == "cuda"
    memory = {f"{mode}_peak_mb_{name}": None for name in MODELS for mode in ("train", "sample")}
    first_steps = {}
    for name in MODELS:  # warm-up (and compilation); on CUDA, measures memory meanwhile
        for mode in ("train", "sample"):
            synchronize(device)
            if cuda:
                torch.cuda.reset_peak_memory_stats(device)
                before = torch.cuda.memory_allocated(device)
            first_steps[f"{mode}_first_step_s_{name}"] = timed(steps[name][mode], device)
            # CUDA's memory covers a second step: the first creates AdamW's state
            for _ in range(max(args.warmup, 2 if cuda else 1) - 1):
                steps[name][mode]()
            if cuda:
                grown = torch.cuda.max_memory_allocated(device) - before
                memory[f"{mode}_peak_mb_{name}"] = grown / 2**20
    if not cuda and not args.skip_memory:
        for name in MODELS:
            for mode in ("train", "sample"):
                memory[f"{mode}_peak_mb_{name}"] = peak_rss_growth_mb(name, mode, args)

    seconds = {(name, mode): [] for name in MODELS for mode in ("train", "sample")}
    for repeat in range(args.repeats):
        order = MODELS if repeat % 2 == 0 else MODELS[::-1]
        for mode in ("train", "sample"):
            for name in order:
                seconds[name, mode].append(timed(steps[name][mode], device))

    peaks = matmul_peaks(device, ["float32", "bfloat16"] if cuda or args.bf16 else ["float32"])
    peak = peaks["bfloat16" if args.bf16 else "float32"]  # the dtype the runs use
    result = {
        "device": str(device),
        "preset": args.preset,
        "threads": torch.get_num_threads(),
        "autocast": "bf16" if args.bf16 else "fp32",
        "channels_last": args.channels_last,
        "compile": args.compile,
        "train_batch": args.train_batch,
        "sample_batch": args.sample_batch,
        "repeats": args.repeats,
        **{f"matmul_peak_gflops_{dtype}": gflops for dtype, gflops in peaks.items()},
        **{f"parameters_{name}": params[name] for name in MODELS},
        **{f"forward_gflop_per_image_{name}": flops[name] / 1e9 for name in MODELS},
        **memory,
        **first_steps,
    }
    for (name, mode), times in seconds.items():
        batch = args.train_batch if mode == "train" else args.sample_batch
        images_per_s = batch / statistics.median(times)
        gflops = images_per_s * flops[name] * (3 if mode == "train" else 1) / 1e9
        result[f"{mode}_images_per_s_{name}"] = images_per_s
        result[f"{mode}_gflops_{name}"] = gflops
        result[f"{mode}_fraction_of_matmul_peak_{name}"] = gflops / peak
    for mode in ("train", "sample"):
        ours, theirs = result[f"{mode}_images_per_s_ours"], result[f"{mode}_images_per_s_diffusers"]
        result[f"{mode}_speed_ratio_ours_over_diffusers"] = ours / theirs
    return result


def report(result: dict) -> None:
    print(
        f"{result['preset']} on {result['device']} ({result['threads']} threads), "
        f"{result['autocast']}, "
        f"channels_last={result['channels_last']}, compile={result['compile']}, "
        f"train batch {result['train_batch']}, sample batch {result['sample_batch']}, "
        f"{result['repeats']} repeats (medians)"
    )
    for key in (key for key in result if key.startswith("matmul_peak")):
        print(f"{key}: {result[key]:.1f}")
    dtype = result["autocast"]
    print(f"fraction_of_matmul_peak: of the {dtype} matmul peak (model FLOP utilisation)")
    print(f"{'':<34}{'ours':>14}{'diffusers':>14}{'ours/diffusers':>16}")
    rows = ["parameters", "forward_gflop_per_image"]
    rows += [
        f"{mode}_{what}"
        for mode in ("train", "sample")
        for what in ("images_per_s", "gflops", "fraction_of_matmul_peak", "peak_mb", "first_step_s")
    ]
    for row in rows:
        if result[f"{row}_ours"] is None:  # CPU memory with --skip-memory
            continue
        ours, theirs = result[f"{row}_ours"], result[f"{row}_diffusers"]
        digits = 0 if row == "parameters" else 3
        print(f"{row:<34}{ours:>14,.{digits}f}{theirs:>14,.{digits}f}{ours / theirs:>16.3f}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (`argv`, default sys.argv), with the device-dependent defaults filled."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="ddpm_cifar10", help="our U-Net preset (conf/model)")
    parser.add_argument("--train-batch", type=int, default=32)
    parser.add_argument("--sample-batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per model and mode")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per model and mode")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    for option in OPTIONS:
        parser.add_argument(
            f"--{option.replace('_', '-')}",
            action=argparse.BooleanOptionalAction,
            help="default: on with CUDA, off on CPU",
        )
    parser.add_argument("--skip-memory", action="store_true", help="CPU: skip the subprocesses")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument(
        "--memory-child", nargs=2, metavar=("MODEL", "MODE"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    for option in OPTIONS:
        if getattr(args, option) is None:
            setattr(args, option, args.device.startswith("cuda"))
    return args


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_child:
        memory_child(*args.memory_child, args)
        return
    result = run(args)
    report(result)
    if args.json:
        with open(args.json, "w") as file:
            json.dump(result, file, indent=2)


if __name__ == "__main__":
    main()
