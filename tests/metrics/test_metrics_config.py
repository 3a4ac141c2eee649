"""conf/metrics/: one file per `metrics=[...]` entry, each a metric the code computes."""

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from diffusion_lab import CONFIG_DIR
from diffusion_lab.evaluation import SAMPLE_METRICS
from diffusion_lab.metrics import FEATURE_EXTRACTORS, METRICS, PRCSettings


def test_each_metrics_file_configures_the_metric_it_is_named_after():
    files = sorted((CONFIG_DIR / "metrics").glob("*.yaml"))
    assert [f.stem for f in files] == [
        "fid",
        "is",
        "kid",
        "nll",
        "nll_ode",
        "prc",
        "text_alignment",
    ]
    for path in files:
        assert list(OmegaConf.load(path)) == [path.stem]
    assert {name for names in SAMPLE_METRICS.values() for name in names} == set(METRICS)


def test_evaluate_defaults_score_samples_with_inception_against_the_train_split():
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("evaluate", overrides=["paths.root_dir=/tmp"])
        every = compose("evaluate", overrides=["paths.root_dir=/tmp", "metrics=[fid,is,prc,nll]"])
    assert list(cfg.metrics) == ["fid", "is", "prc"]
    assert cfg.features == "inception" and cfg.features in FEATURE_EXTRACTORS
    assert cfg.inception_weights is None
    assert cfg.num_samples == 50_000 and cfg.reference.split == "train"
    assert cfg.seed == 0 and cfg.seeds is None  # one sample set
    # Kynkäänniemi et al.'s protocol: 50,000 generated against 50,000 reference features, k = 3
    prc = PRCSettings.from_config(cfg.metrics.prc, "metrics.prc")
    assert prc == PRCSettings(num_reference=50_000, num_generated=50_000, k=3, seed=0)
    assert list(every.metrics) == ["fid", "is", "prc", "nll"]
    assert every.metrics.nll.num_images is None  # the whole test split
