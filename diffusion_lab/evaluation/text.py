"""Text alignment of prompt-conditioned samples (`metrics=[text_alignment]`): what the prompts
name, read back from the pixels and the lab's small classifier (`metrics.text_alignment`), and
the CLIP score (Hessel et al. 2021) with a local CLIP model."""

from pathlib import Path

import numpy as np
import torch

from diffusion_lab.errors import ConfigError
from diffusion_lab.metrics.small_nets import SmallNetFeatures
from diffusion_lab.metrics.text_alignment import clip_score, text_alignment
from diffusion_lab.models.text.frozen import require_file

CLIP_KEY = "metrics.text_alignment.clip_model"


def check_clip_model(clip_model: str | None) -> None:
    """Before sampling: one line saying what to download when the CLIP folder is missing."""
    if clip_model is not None:
        what = "a CLIP model folder (e.g. the hub repository openai/clip-vit-large-patch14)"
        require_file(Path(clip_model) / "config.json", CLIP_KEY, what)


def sample_prompts(npz_path: Path) -> list[str]:
    """Each sample's prompt, from the `prompts` and `prompt_index` that `sample` writes."""
    with np.load(npz_path) as arrays:
        if "prompts" not in arrays:
            raise ConfigError(
                f"metrics=[text_alignment]: {npz_path} holds no prompts; sample a text model"
            )
        prompts, index = arrays["prompts"].tolist(), arrays["prompt_index"].tolist()
    return [prompts[i] for i in index]


def alignment_scores(
    images: np.ndarray, prompts: list[str], datamodule, clip_model: str | None
) -> dict[str, float]:
    """`text_alignment_<class|colour|position|size|all>` for a captioned set whose captions the
    lab writes (its datamodule has a `spec`), and `clip_score` with `clip_model`."""
    pixels = torch.from_numpy(images).permute(0, 3, 1, 2)
    scores = {}
    spec = getattr(datamodule, "spec", None)
    if spec is not None:
        classifier = SmallNetFeatures(datamodule.alignment_classifier)
        measured = text_alignment(pixels, prompts, spec, classifier)
        scores = {f"text_alignment_{name}": value for name, value in measured.items()}
    elif clip_model is None:
        raise ConfigError(
            f"metrics=[text_alignment] reads attributes only of digits_captions and "
            f"fashion_mnist_captions; for other captions set {CLIP_KEY}=<CLIP model folder>"
        )
    if clip_model is not None:
        scores["clip_score"] = clip_score(pixels, prompts, clip_model)
    return scores
