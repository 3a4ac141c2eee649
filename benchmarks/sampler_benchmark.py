"""Sample quality against network evaluations (NFE) for every sampler, on sklearn's 8x8 digits.

Trains the tiny U-Net (DDPM: linear schedule, T=1000, ε-prediction, L_simple) for a fixed budget,
or loads a training-CLI checkpoint (`--ckpt`, e.g. from `python -m diffusion_lab.train
experiment=quickstart`), then draws the same number of samples with each sampler and prints
FID on the shipped digits classifier's features (`fid_digits`) and wall time per image.
Target: DPM-Solver++ at 20 NFE within 10 % of ancestral sampling at 1000 steps.

    python benchmarks/sampler_benchmark.py                      # full run
    python benchmarks/sampler_benchmark.py --train-steps 20 --num-samples 64 \\
        --runs ddpm:20,dpm_solver:5                             # smoke test

A run is `sampler:steps`, optionally with sampler options: `dpm_solver:20:order=3`,
`dpm_solver:20:sde=true`, `unipc:10:skip=karras`. A checkpoint of any process (e.g. `loss=edm`)
works; runs of samplers that do not sample its process are skipped with a line saying so.
"""

import argparse
import copy
import json
import time
from pathlib import Path

import torch
from sklearn.datasets import load_digits

from diffusion_lab.checkpoints import load_module
from diffusion_lab.diffusion import create_diffusion
from diffusion_lab.errors import ConfigError
from diffusion_lab.metrics import FeatureStats, build_feature_extractor, frechet_distance
from diffusion_lab.models.presets import build_preset, preset_config
from diffusion_lab.sampling import sample, validate_sampler
from diffusion_lab.sampling.registry import process_kind

DEFAULT_RUNS = (
    "ddpm:1000,ddpm:100,ddim:50,ddim:20,dpm_solver:20,dpm_solver:10,dpm_solver:20:order=3,"
    "dpm_solver:10:order=3,dpm_solver:20:sde=true,unipc:20,unipc:10,heun:18,heun:10"
)
NET = preset_config("tiny", image_size=8, channels=1)
DIFFUSION = {"schedule": "linear", "num_timesteps": 1000, "model_mean_type": "epsilon"}


def digits() -> torch.Tensor:
    """The 1,797 sklearn digits as [N, 1, 8, 8] floats in [-1, 1]."""
    images = torch.tensor(load_digits().images, dtype=torch.float32)
    return (images / 16 * 2 - 1).unsqueeze(1)


def train(images, steps, batch_size, lr, seed, device):
    """Plain DDPM training (Ho et al. 2020, Algorithm 1) with Adam, warmup and an EMA of 0.999."""
    torch.manual_seed(seed)
    diffusion = create_diffusion(**DIFFUSION)
    net = build_preset("tiny", image_size=8, channels=1, device=device)
    ema = copy.deepcopy(net).requires_grad_(False)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    warmup = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / 200))
    for step in range(steps):
        x_start = images[torch.randint(len(images), (batch_size,))].to(device)
        t = torch.randint(diffusion.num_timesteps, (batch_size,), device=device)
        loss = diffusion.training_losses(net, x_start, t)["loss"].mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        warmup.step()
        decay = min(0.999, (1 + step) / (10 + step))
        with torch.no_grad():
            for averaged, current in zip(ema.parameters(), net.parameters(), strict=True):
                averaged.lerp_(current, 1 - decay)
        if step % 500 == 0 or step == steps - 1:
            print(f"step {step:6d}  loss {loss.item():.4f}", flush=True)
    return ema.eval(), diffusion


def save(net, path: Path) -> None:
    """A checkpoint that `load_trained` (and the training CLI's loader) reads back."""
    hyper_parameters = {
        "net": NET,
        "diffusion": DIFFUSION,
        "optimizer": {"_target_": "torch.optim.Adam", "_partial_": True},
    }
    state_dict = {f"net.{k}": v.cpu() for k, v in net.state_dict().items()}
    torch.save({"hyper_parameters": hyper_parameters, "state_dict": state_dict}, path)


def parse_option(pair: str) -> tuple[str, object]:
    """`order=3` -> ("order", 3), `sde=true` -> ("sde", True), `skip=karras` -> ("skip", "karras")
    (JSON values, else the string)."""
    key, value = pair.split("=", 1)
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def load_trained(path, device):
    """(net, diffusion) of a training-CLI checkpoint: its `net.` weights (EMA) and schedule."""
    module = load_module(path)
    return module.net.to(device).eval(), module.diffusion


@torch.no_grad()
def fid_digits(images, extractor, reference: FeatureStats) -> float:
    stats = FeatureStats(extractor.num_features)
    for batch in images.split(500):
        stats.update(extractor(batch.to(extractor.device)).features)
    return frechet_distance(stats.mu, stats.sigma, reference.mu, reference.sigma)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", help="training-CLI checkpoint (or run dir) to load instead")
    parser.add_argument("--save-ckpt", type=Path, help="where to save the trained net")
    parser.add_argument("--train-steps", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--sample-batch", type=int, default=1000)
    parser.add_argument("--runs", default=DEFAULT_RUNS, help="sampler:steps,...")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    images = digits()
    if args.ckpt:
        net, diffusion = load_trained(args.ckpt, args.device)
    else:
        net, diffusion = train(
            images, args.train_steps, args.batch_size, args.lr, args.seed, args.device
        )
        if args.save_ckpt:
            save(net, args.save_ckpt)
    extractor = build_feature_extractor("digits").to(args.device)
    reference = FeatureStats(extractor.num_features)
    with torch.no_grad():
        reference.update(extractor(images.to(args.device)).features)
    num_classes = getattr(net, "num_classes", None)

    results = []
    print(f"{'sampler':>22} {'steps':>5} {'NFE':>5} {'fid_digits':>10} {'ms/image':>9}")
    for run in args.runs.split(","):
        name, steps, *pairs = run.split(":")
        options = dict(parse_option(pair) for pair in pairs)
        label = " ".join([name, *pairs])
        try:
            kind = process_kind(diffusion)
            validate_sampler(name, int(steps), diffusion.num_timesteps, kind=kind, **options)
        except ConfigError as error:
            print(f"{label:>22} skipped: {error}", flush=True)
            continue
        generator = torch.Generator(args.device).manual_seed(args.seed)
        start, batches, nfe = time.perf_counter(), [], 0
        for indices in torch.arange(args.num_samples, device=args.device).split(args.sample_batch):
            labels = {"y": indices % num_classes} if num_classes else {}
            shape = (len(indices), *images.shape[1:])
            out = sample(
                net,
                diffusion,
                shape,
                name,
                int(steps),
                generator=generator,
                model_kwargs=labels,
                **options,
            )
            batches.append(out.images)
            nfe = out.nfe
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        ms = 1000 * (time.perf_counter() - start) / args.num_samples
        fid = fid_digits(torch.cat(batches), extractor, reference)
        results.append({"sampler": name, "options": options, "steps": int(steps), "nfe": nfe})
        results[-1].update(fid_digits=fid, ms_per_image=ms)
        print(f"{label:>22} {steps:>5} {nfe:>5} {fid:>10.3f} {ms:>9.2f}", flush=True)

    fids = {(r["sampler"], r["steps"]): r["fid_digits"] for r in results if not r["options"]}
    if ("ddpm", 1000) in fids and ("dpm_solver", 20) in fids:
        ratio = fids["dpm_solver", 20] / fids["ddpm", 1000]
        verdict = "meets" if ratio <= 1.1 else "misses"
        print(f"dpm_solver@20 / ddpm@1000 fid_digits = {ratio:.3f} ({verdict} the 1.10 target)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
