"""Text alignment and FID against the classifier-free guidance scale of a model trained on
captioned digits or Fashion-MNIST (`experiment=digits_text`, `fashion_mnist_text`).

Each scale is one `evaluate` run with `metrics=[text_alignment]` and `guidance=cfg`: samples for
the training captions in order, the class read back by the lab's small classifier and colour,
position and size from the pixels. FID (`fid_<digits|fmnist>_objects`) compares the objects
cropped out of the samples with those cropped out of the training images the same way (the
crops the classifier reads), on the same small net's features. The last row reads the
first --num-samples training images back against their own captions, the prompts the samples
were drawn for: the reader's ceiling.

    python -m diffusion_lab.train experiment=digits_text hydra.run.dir=runs/digits_text
    python benchmarks/text_guidance.py --ckpt runs/digits_text --scales 1,3 --num-samples 500
"""

import argparse
import json
import tempfile
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from torch.utils.data import DataLoader

from diffusion_lab import CONFIG_DIR
from diffusion_lab.evaluate import evaluate, read_samples
from diffusion_lab.metrics import FeatureStats, frechet_distance
from diffusion_lab.metrics.small_nets import SmallNetFeatures
from diffusion_lab.metrics.text_alignment import (
    NATIVE_SIZE,
    crop_objects,
    read_attributes,
    text_alignment,
)
from diffusion_lab.runs.data import load_datamodule

ATTRIBUTES = ("class", "colour", "position", "size", "all")


@torch.no_grad()
def object_stats(images: torch.Tensor, layout, extractor: SmallNetFeatures) -> FeatureStats:
    """Feature statistics of the objects cropped out of images [N, C, S, S] (uint8 or [-1, 1])."""
    stats = FeatureStats(extractor.num_features)
    for batch in images.split(500):
        size = NATIVE_SIZE[extractor.name]  # as text_alignment crops them
        crops = crop_objects(batch, read_attributes(batch, layout), layout, size)
        stats.update(extractor(crops).features)
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True, help="a text model's run dir or .ckpt")
    parser.add_argument("--scales", default="1,2,3,5", help="guidance scales, comma-separated")
    parser.add_argument("--num-samples", type=int, default=500)
    parser.add_argument("--sampler", default="ddim")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--out", type=Path, help="where the evaluate runs go (default: a temp dir)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    out = args.out or Path(tempfile.mkdtemp(prefix="text-guidance-"))
    rows, extractor, reference, layout, ceiling = [], None, None, None, None
    for scale in (float(s) for s in args.scales.split(",")):
        overrides = [
            f"ckpt={Path(args.ckpt).resolve()}", "metrics=[text_alignment]",
            f"num_samples={args.num_samples}", "guidance=cfg", f"guidance.scale={scale}",
            f"sampler={args.sampler}", f"sampler.steps={args.steps}", "progress=false",
            f"paths.output_dir={out / f'scale_{scale:g}'}", "logger=csv",
        ]  # fmt: skip
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose(config_name="evaluate", overrides=overrides)
        if reference is None:
            datamodule = load_datamodule(cfg)
            layout = datamodule.spec.layout
            extractor = SmallNetFeatures(datamodule.alignment_classifier)
            train = datamodule.dataset("train", augment=False)
            batches = list(DataLoader(train, batch_size=500))
            images = torch.cat([batch[0] for batch in batches])
            captions = [caption for batch in batches for caption in batch[2]]
            reference = object_stats(images, layout, extractor)
            real = slice(args.num_samples)
            ceiling = text_alignment(images[real], captions[real], datamodule.spec, extractor)
        results = evaluate(cfg)
        samples = torch.from_numpy(read_samples(out / f"scale_{scale:g}" / "samples.npz"))
        stats = object_stats(samples.permute(0, 3, 1, 2), layout, extractor)
        fid = frechet_distance(stats.mu, stats.sigma, reference.mu, reference.sigma)
        row = {"scale": scale, f"fid_{extractor.name}_objects": fid}
        for name in ATTRIBUTES:
            key = f"text_alignment_{name}"
            if key in results["metrics"]:
                row[name] = results["metrics"][key]
        row["seconds_per_image"] = results["seconds_per_image"]
        rows.append(row)
        print(json.dumps(row), flush=True)

    names = [name for name in ATTRIBUTES if name in rows[0]]
    fid_key = f"fid_{extractor.name}_objects"
    print(f"\n{args.num_samples} samples per scale, {args.sampler}@{args.steps}; alignment in %")
    print(f"{'scale':>5} " + " ".join(f"{n:>8}" for n in names) + f" {fid_key:>20}")
    for row in rows:
        cells = " ".join(f"{100 * row[n]:8.1f}" for n in names)
        print(f"{row['scale']:5g} {cells} {row[fid_key]:20.2f}")
    cells = " ".join(f"{100 * ceiling[n]:8.1f}" for n in names)
    print(f"{'real':>5} {cells} {'-':>20}   (training images, their own captions)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
