"""Distribution error against NFE for every sampler, on an analytic multimodal target.

The target is a mixture of 8 isotropic Gaussians in 16 dimensions (a 1x4x4 image: sharp modes,
unequal weights); its exact network (sampling/oracle.py) stands in for a trained one under the
DDPM schedule (linear, T=1000, ε-prediction), so every error is the sampler's. Error: sliced
2-Wasserstein distance (fixed random directions) between the samples and as many exact draws;
`exact` is that distance between two sets of exact draws (the floor of the estimate), and
`excess` = √max(0, W² − floor²) the part above it (finite-sample errors add in quadrature).
For the deterministic samplers, `ODE error` is the mean distance of the first `--ode-n`
endpoints to a 2000-level third-order solution of the same ODE from the same x_T.
Targets: the best sampler at 20 NFE matches ancestral DDPM at 1000 steps; heun at 35 NFE
beats DPM-Solver++(2M) at 20.

    python benchmarks/sampler_oracle.py                 # full table (a few minutes on one core)
    python benchmarks/sampler_oracle.py --n 2000        # smoke test
"""

import argparse
import time

import torch

from diffusion_lab.diffusion import GaussianDiffusion, get_named_beta_schedule
from diffusion_lab.sampling import sample, solvers
from diffusion_lab.sampling.oracle import GaussianMixture
from diffusion_lab.sampling.sigma import DiscreteSigmaDenoiser
from diffusion_lab.sampling.timesteps import noise_levels

SHAPE = (1, 4, 4)
# (label, sampler, steps per NFE target 10/20/35, options)
RUNS = [
    ("ddim", "ddim", (10, 20, 35), {}),
    ("dpm_solver 2M", "dpm_solver", (10, 20, 35), {}),
    ("dpm_solver 2M karras", "dpm_solver", (10, 20, 35), {"skip": "karras"}),
    ("dpm_solver 3M", "dpm_solver", (10, 20, 35), {"order": 3}),
    ("dpm_solver 3M karras", "dpm_solver", (10, 20, 35), {"order": 3, "skip": "karras"}),
    ("dpm_solver 2M SDE", "dpm_solver", (10, 20, 35), {"sde": True}),
    ("unipc bh2", "unipc", (10, 20, 35), {}),
    ("unipc bh2 karras", "unipc", (10, 20, 35), {"skip": "karras"}),
    ("heun", "heun", (5, 10, 18), {}),
]


def mixture(seed: int = 0) -> GaussianMixture:
    generator = torch.Generator().manual_seed(seed)
    means = torch.rand((8, *SHAPE), generator=generator, dtype=torch.float64) * 1.4 - 0.7
    stds = 0.05 + 0.1 * torch.rand(8, generator=generator, dtype=torch.float64)
    weights = torch.tensor([8, 7, 6, 5, 4, 3, 2, 1], dtype=torch.float64)
    return GaussianMixture(means, stds, weights)


def sliced_w2(x: torch.Tensor, y: torch.Tensor, directions: torch.Tensor) -> float:
    """√(mean over directions of W2² between the 1-D projections), equal sample counts."""
    px = (x.flatten(1) @ directions).sort(0).values
    py = (y.flatten(1) @ directions).sort(0).values
    return ((px - py) ** 2).mean().sqrt().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20000, help="samples per run")
    parser.add_argument("--directions", type=int, default=256, help="sliced W2 projections")
    parser.add_argument("--ode-n", type=int, default=2000, help="endpoints for the ODE error")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    target = mixture(args.seed)
    directions = torch.randn(16, args.directions, generator=torch.Generator().manual_seed(1))
    directions = (directions / directions.norm(dim=0)).double()
    exact = target.sample(args.n, torch.Generator().manual_seed(2))

    def error(images):
        return sliced_w2(images, exact, directions)

    print(f"{'sampler':<24}{'NFE':>5}{'sliced W2':>12}{'excess':>10}{'ODE error':>11}{'s':>7}")
    floor = error(target.sample(args.n, torch.Generator().manual_seed(3)))
    print(f"{'exact (floor)':<24}{'-':>5}{floor:>12.5f}{'-':>10}{'-':>11}{'-':>7}")
    ode = reference_ode(target, process("fixed_small"), args)

    def row(label, nfe, value, seconds, images=None):
        excess = max(0.0, value**2 - floor**2) ** 0.5
        gap = (
            "-"
            if images is None
            else f"{(images[: len(ode)] - ode).flatten(1).norm(dim=1).mean():.2e}"
        )
        print(f"{label:<24}{nfe:>5}{value:>12.5f}{excess:>10.5f}{gap:>11}{seconds:>7.1f}")

    results = {}
    for var_type in ("fixed_large", "fixed_small"):
        diffusion = process(var_type)
        start = time.perf_counter()
        out = run(target, diffusion, "ddpm", 1000, args)
        results["ddpm", 1000] = min(results.get(("ddpm", 1000), 1e9), error(out.images))
        row(f"ddpm ({var_type})", out.nfe, error(out.images), time.perf_counter() - start)
    diffusion = process("fixed_small")
    for label, name, steps, options in RUNS:
        for n in steps:
            start = time.perf_counter()
            out = run(target, diffusion, name, n, args, **options)
            results[label, out.nfe] = error(out.images)
            deterministic = images_if(not options.get("sde"), out.images)
            row(label, out.nfe, results[label, out.nfe], time.perf_counter() - start, deterministic)
    best = min((v, k[0]) for k, v in results.items() if k[1] == 20)
    print(f"best at 20 NFE: {best[1]} {best[0]:.5f}; ddpm@1000 (better variance) "
          f"{results['ddpm', 1000]:.5f}; heun@35 {results['heun', 35]:.5f} vs "
          f"dpm_solver 2M@20 {results['dpm_solver 2M', 20]:.5f}")  # fmt: skip


def images_if(condition: bool, images: torch.Tensor) -> torch.Tensor | None:
    return images if condition else None


def reference_ode(target, diffusion, args) -> torch.Tensor:
    """The ODE endpoints of the first `ode_n` x_T of `run`, on 2000 EDM levels (DPM-Solver++ 3M)."""
    view = DiscreteSigmaDenoiser(target.network(diffusion.alphas_cumprod), diffusion, None, False)
    generator = torch.Generator().manual_seed(args.seed + 10)
    noise = torch.randn((args.n, *SHAPE), generator=generator, dtype=torch.float64)[: args.ode_n]
    sigmas = noise_levels(view, 2000, "karras")
    return solvers.sample_dpmpp_3m(view, view.prior(noise, sigmas[0]), sigmas)


def process(var_type: str) -> GaussianDiffusion:
    betas = get_named_beta_schedule("linear", 1000)
    return GaussianDiffusion(betas=betas, model_mean_type="epsilon", model_var_type=var_type)


def run(target, diffusion, name, steps, args, **options):
    net = target.network(diffusion.alphas_cumprod)
    generator = torch.Generator().manual_seed(args.seed + 10)
    noise = torch.randn((args.n, *SHAPE), generator=generator, dtype=torch.float64)
    return sample(
        net, diffusion, noise.shape, name, steps, generator=generator, noise=noise,
        clip_denoised=False, **options,
    )  # fmt: skip


if __name__ == "__main__":
    main()
