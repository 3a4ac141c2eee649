"""Sample-quality metrics: FID, Inception Score, improved precision/recall.

Typical use in evaluate.py or a FID callback (each rank draws the samples of `mine`):

extractor = build_feature_extractor(cfg.features, cfg.inception_weights).to(device)
reference = reference_stats("cifar10-train-32-inception", train_set, extractor, cfg.cache_dir)
mine = shard_indices(cfg.num_samples, world_size, rank)      # this rank's sample indices
features = Features.cat([extractor(images) for images in generated_batches])
generated = Features(gather_samples(features.features, cfg.num_samples),
                     gather_samples(features.logits, cfg.num_samples))
scores = compute_metrics(generated, reference, cfg.metrics)  # {"fid": ..., "is": ..., ...}
"""

from diffusion_lab.metrics.distributed import (
    batch_seed,
    gather_samples,
    per_sample_noise,
    shard_indices,
)
from diffusion_lab.metrics.extractors import FEATURE_EXTRACTORS, build_feature_extractor, metric_key
from diffusion_lab.metrics.features import FeatureExtractor, Features, file_sha256, to_uint8
from diffusion_lab.metrics.inception import InceptionFeatures, inception_weights_path
from diffusion_lab.metrics.prc import (
    PAPER_PRC,
    PRCSettings,
    PrecisionRecall,
    random_subset,
    subset_precision_recall,
)
from diffusion_lab.metrics.reference import (
    METRICS,
    ReferenceStats,
    compute_metrics,
    extract_features,
    image_batches,
    reference_stats,
)
from diffusion_lab.metrics.scores import (
    FeatureStats,
    frechet_distance,
    inception_score,
    kernel_inception_distance,
    precision_recall,
)
from diffusion_lab.metrics.small_nets import SmallConvNet, SmallNetFeatures

__all__ = [
    "FEATURE_EXTRACTORS",
    "METRICS",
    "PAPER_PRC",
    "PRCSettings",
    "PrecisionRecall",
    "FeatureExtractor",
    "FeatureStats",
    "Features",
    "InceptionFeatures",
    "ReferenceStats",
    "SmallConvNet",
    "SmallNetFeatures",
    "build_feature_extractor",
    "compute_metrics",
    "extract_features",
    "file_sha256",
    "frechet_distance",
    "kernel_inception_distance",
    "batch_seed",
    "gather_samples",
    "image_batches",
    "inception_score",
    "inception_weights_path",
    "metric_key",
    "per_sample_noise",
    "precision_recall",
    "random_subset",
    "reference_stats",
    "shard_indices",
    "subset_precision_recall",
    "to_uint8",
]
