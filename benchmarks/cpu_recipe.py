"""Sample quality of a Fashion-MNIST run against two real-data references, on the lab's own
Fashion-MNIST features (`fid_fmnist`), all at the same sample size:

- the floor: `--num-samples` real test images against the training set's statistics;
- the noisy reference: the same test images with Gaussian noise of σ = `--noise-std` added on
  the models' [−1, 1] scale (σ = 0.1 there is 0.05 on the [0, 1] scale), clipped to [−1, 1];
- the model: as many EMA samples from `--ckpt` (a class-conditional run draws every class
  equally often, with classifier-free guidance at `--guidance-scale`).

It prints the three FIDs and whether the model is nearer the floor than the noisy reference
(the CPU recipe's target, `experiment=fashion_mnist_cpu`):

    python -m diffusion_lab.train experiment=fashion_mnist_cpu hydra.run.dir=runs/fashion_mnist_cpu
    python benchmarks/cpu_recipe.py --ckpt runs/fashion_mnist_cpu --sampler dpm_solver --steps 20 \
        --guidance-scale 2
"""

import argparse
import json
import time
from pathlib import Path

import torch

from diffusion_lab.checkpoints import load_module
from diffusion_lab.data import FashionMNISTDataModule
from diffusion_lab.guidance.classifier_free import ClassifierFreeGuidance
from diffusion_lab.metrics import FeatureStats, build_feature_extractor, frechet_distance
from diffusion_lab.sampling import sample


@torch.no_grad()
def stats_of(images: torch.Tensor, extractor, batch_size: int = 500) -> FeatureStats:
    stats = FeatureStats(extractor.num_features)
    for batch in images.split(batch_size):
        stats.update(extractor(batch).features)
    return stats


def split_images(datamodule, split: str) -> torch.Tensor:
    dataset = datamodule.dataset(split, augment=False)
    loader = torch.utils.data.DataLoader(dataset, batch_size=1000)
    return torch.cat([images for images, _ in loader])


@torch.no_grad()
def model_samples(module, num_samples, sampler, steps, batch_size, seed, scale) -> torch.Tensor:
    net = module.net.eval()
    generator = torch.Generator().manual_seed(seed)
    config = module.hparams.net
    shape = (config["in_channels"], config["image_size"], config["image_size"])
    num_classes = getattr(net, "num_classes", None)
    if num_classes:
        net = ClassifierFreeGuidance(net, scale, null_label=num_classes)
    batches = []
    for indices in torch.arange(num_samples).split(batch_size):
        labels = {"y": indices % num_classes} if num_classes else {}
        out = sample(
            net, module.diffusion, (len(indices), *shape), sampler, steps,
            generator=generator, model_kwargs=labels,
        )  # fmt: skip
        batches.append(out.images)
    return torch.cat(batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True, help="a Fashion-MNIST run dir or .ckpt")
    parser.add_argument("--data-root", default="data", help="the folder holding FashionMNIST/raw")
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--noise-std", type=float, default=0.1)
    parser.add_argument("--sampler", default="ddim")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--guidance-scale", type=float, default=1.0, help="w (conditional runs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    datamodule = FashionMNISTDataModule(root=args.data_root, batch_size=args.batch_size)
    extractor = build_feature_extractor("fmnist")
    reference = stats_of(split_images(datamodule, "train"), extractor)
    generator = torch.Generator().manual_seed(args.seed)
    test = split_images(datamodule, "test")
    real = test[torch.randperm(len(test), generator=generator)[: args.num_samples]]
    noisy = (real + args.noise_std * torch.randn(real.shape, generator=generator)).clamp(-1, 1)
    start = time.perf_counter()
    module = load_module(args.ckpt)
    generated = model_samples(
        module, args.num_samples, args.sampler, args.steps, args.batch_size, args.seed,
        scale=args.guidance_scale,
    )  # fmt: skip
    seconds = time.perf_counter() - start

    def fid(images: torch.Tensor) -> float:
        stats = stats_of(images, extractor)
        return frechet_distance(stats.mu, stats.sigma, reference.mu, reference.sigma)

    results = {
        "num_samples": args.num_samples,
        "fid_fmnist_real_floor": fid(real),
        f"fid_fmnist_real_noise_{args.noise_std:g}": fid(noisy),
        "fid_fmnist_model": fid(generated),
        "sampler": f"{args.sampler}@{args.steps}",
        "guidance_scale": args.guidance_scale,
        "sampling_seconds": seconds,
    }
    floor = results["fid_fmnist_real_floor"]
    noisy_fid = results[f"fid_fmnist_real_noise_{args.noise_std:g}"]
    model = results["fid_fmnist_model"]
    nearer = abs(model - floor) < abs(model - noisy_fid)
    print(f"fid_fmnist at {args.num_samples} images (train-set statistics as the reference):")
    print(f"  real test images (floor)         {floor:8.3f}")
    print(f"  real + N(0, {args.noise_std:g}^2) noise          {noisy_fid:8.3f}")
    print(f"  model ({results['sampler']})           {model:8.3f}")
    print(
        f"model is nearer the {'floor' if nearer else 'noisy reference'} "
        f"({'meets' if nearer else 'misses'} the target); sampling took {seconds:.0f} s"
    )
    if args.json:
        args.json.write_text(json.dumps(results | {"meets_target": nearer}, indent=2) + "\n")


if __name__ == "__main__":
    main()
