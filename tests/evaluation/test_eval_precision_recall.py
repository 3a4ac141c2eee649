"""evaluate's precision/recall: the sizes asked for are the sizes compared, recorded in
results.json and printed; a reference cache too small for them is extended."""

import numpy as np
import torch
from evaluation.evaltools import compose_config
from torch.utils.data import TensorDataset

import diffusion_lab.evaluate as evaluate_module
import diffusion_lab.metrics.prc as prc_module
from diffusion_lab.data import DigitsDataModule
from diffusion_lab.evaluate import evaluate, report
from diffusion_lab.metrics import FeatureExtractor, Features, ReferenceStats, to_uint8


class Flatten(FeatureExtractor):
    """A stand-in feature network: an image's uint8 pixels are its features."""

    name = "flatten"
    num_features = 4

    def forward(self, images):
        x = to_uint8(images).flatten(1).float()
        return Features(features=x, logits=x)


class GaussianImages:
    """A stand-in datamodule whose splits hold 25,000 random grey 2x2 images."""

    image_size = 2

    def reference_settings(self) -> dict:
        return {"image_size": 2, "channels": 1, "range": [-1, 1]}

    def reference_files(self, split: str) -> list:
        return []

    def reference_dataset(self, split: str) -> TensorDataset:
        images = torch.rand(25_000, 1, 2, 2, generator=torch.Generator().manual_seed(0))
        return TensorDataset(images * 2 - 1)


def test_twenty_thousand_against_twenty_thousand_compares_those(tmp_path, monkeypatch):
    samples = np.random.default_rng(1).integers(0, 256, (30_000, 2, 2, 1), dtype=np.uint8)
    np.savez(tmp_path / "samples.npz", samples)
    monkeypatch.setattr(evaluate_module, "load_datamodule", lambda cfg: GaussianImages())
    monkeypatch.setattr(evaluate_module, "build_feature_extractor", lambda *args: Flatten())
    compared = []

    def spy(generated, real, k):  # 20k x 20k k-NN takes half a minute: only the sizes matter
        compared.append((len(generated), len(real), k))
        return 0.5, 0.5

    monkeypatch.setattr(prc_module, "precision_recall", spy)
    cfg = compose_config(
        "evaluate",
        tmp_path,
        f"samples={tmp_path / 'samples.npz'}",
        "features=digits",
        "metrics=[prc]",
        "metrics.prc.num_reference=20000",
        "metrics.prc.num_generated=20000",
    )
    results = evaluate(cfg)
    assert compared == [(20_000, 20_000, 3)]
    assert results["prc"] == {"num_reference": 20_000, "num_generated": 20_000, "k": 3, "seed": 0}
    assert results["reference"]["num_images"] == 25_000 and results["num_samples"] == 30_000
    assert (
        "precision/recall: 20000 generated vs 20000 reference features, k = 3" in report(results)[1]
    )


def test_evaluate_extends_a_reference_cache_too_small_for_the_sizes_asked(tmp_path):
    test_split = DigitsDataModule().reference_dataset("test").tensors[0]
    np.savez(tmp_path / "real.npz", to_uint8(test_split).permute(0, 2, 3, 1).numpy())
    score = [
        f"samples={tmp_path / 'real.npz'}",
        "data=digits",
        "features=digits",
        "metrics=[prc]",
        "reference.split=test",
        f"cache_dir={tmp_path / 'cache'}",
    ]
    small = evaluate(compose_config("evaluate", tmp_path / "a", *score, *sizes(40)))
    large = evaluate(compose_config("evaluate", tmp_path / "b", *score, *sizes(120)))
    assert small["prc"]["num_reference"] == 40 and large["prc"]["num_reference"] == 120
    [cached] = (tmp_path / "cache").iterdir()
    assert len(ReferenceStats.load(cached).features) == 120


def sizes(n: int) -> list[str]:
    return [f"metrics.prc.num_reference={n}", f"metrics.prc.num_generated={n}"]
