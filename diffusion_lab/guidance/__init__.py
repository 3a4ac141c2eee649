"""Guidance at sampling time: classifier-free (Ho & Salimans 2022) and classifier (ADM §4)."""

from diffusion_lab.guidance.classifier import IgnoreLabels, classifier_cond_fn
from diffusion_lab.guidance.classifier_free import ClassifierFreeGuidance

__all__ = ["ClassifierFreeGuidance", "IgnoreLabels", "classifier_cond_fn"]
