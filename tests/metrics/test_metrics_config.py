"""conf/metrics/default.yaml names only metrics and feature networks the code knows."""

from pathlib import Path

from omegaconf import OmegaConf

from diffusion_lab.metrics import FEATURE_EXTRACTORS, METRICS

CONFIG = Path(__file__).parents[2] / "conf" / "metrics" / "default.yaml"


def test_default_metrics_config_matches_the_library():
    cfg = OmegaConf.load(CONFIG)
    assert set(cfg.metrics) <= set(METRICS)
    assert cfg.features in FEATURE_EXTRACTORS
    assert cfg.inception_weights is None
    assert cfg.num_samples == 50_000 and cfg.reference_split == "train"
    assert set(cfg) == {
        "metrics", "features", "inception_weights", "num_samples",
        "reference_split", "batch_size", "cache_dir",
    }  # fmt: skip
