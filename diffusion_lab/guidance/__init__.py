"""Guidance at sampling time: classifier-free (Ho & Salimans 2022) and classifier (ADM §4)."""

from diffusion_lab.guidance.caption_free import CaptionClassifierFreeGuidance
from diffusion_lab.guidance.classifier import ClassifierGuidance, IgnoreLabels
from diffusion_lab.guidance.classifier_free import ClassifierFreeGuidance

__all__ = [
    "CaptionClassifierFreeGuidance",
    "ClassifierFreeGuidance",
    "ClassifierGuidance",
    "IgnoreLabels",
]
