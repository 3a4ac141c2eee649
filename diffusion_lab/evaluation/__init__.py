"""Evaluation of trained models: test-set NLL (VLB and probability-flow ODE), reference
statistics, sample scores.

`python -m diffusion_lab.evaluate` puts these together; `diffusion_lab.callbacks.FID` uses the
reference statistics during training.
"""

from diffusion_lab.evaluation.nll import bits_per_dim, mean_and_stderr
from diffusion_lab.evaluation.ode_likelihood import ode_bits_per_dim, ode_bpd
from diffusion_lab.evaluation.reference import (
    PREPROCESSING_VERSION,
    cache_name,
    dataset_name,
    reference_for,
    reference_key,
)
from diffusion_lab.evaluation.scoring import SAMPLE_METRICS, image_features, score, scores_of
from diffusion_lab.evaluation.seeds import across_seeds

__all__ = [
    "PREPROCESSING_VERSION",
    "SAMPLE_METRICS",
    "across_seeds",
    "bits_per_dim",
    "cache_name",
    "dataset_name",
    "image_features",
    "mean_and_stderr",
    "ode_bits_per_dim",
    "ode_bpd",
    "reference_for",
    "reference_key",
    "score",
    "scores_of",
]
