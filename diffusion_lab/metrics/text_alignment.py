"""Does a sample show what its prompt says? Measured offline for the captioned digits and
Fashion-MNIST sets: the class with the lab's small classifier, colour, position and size from
the pixels; and, with local CLIP weights, the CLIP score (Hessel et al. 2021).

How an image is read (`read_attributes`): intensity is the largest channel, in [0, 1] (every
tint has a largest component of 1, so this is the grey object); the object is the pixels above
FOREGROUND × the image's brightest. Size: the nearer of the layout's two sides to the longer
side of the object's bounding box. Position: the intensity-weighted centroid's larger offset
from the canvas centre. Colour: the nearest tint to the object's intensity-weighted mean colour,
scaled to a largest component of 1. Class (`crop_objects`): the square of the read size's side
centred on the bounding box, clamped to the canvas, its intensity resized (bilinear,
antialiased) to the classifier's native size — 8x8 digits, 28x28 Fashion-MNIST.
"""

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from diffusion_lab.data.attributes import COLOURS, Attributes, Layout
from diffusion_lab.data.captions import CaptionSpec
from diffusion_lab.errors import LabError
from diffusion_lab.metrics.features import to_uint8
from diffusion_lab.metrics.small_nets import SmallNetFeatures

FOREGROUND = 0.25  # of the brightest pixel: the real objects' boxes come out exact (tested)
NATIVE_SIZE = {"digits": 8, "fmnist": 28}


def intensity(images: torch.Tensor) -> torch.Tensor:
    """Images [N, C, S, S] (uint8, or float in [-1, 1]) -> their largest channel [N, S, S]."""
    return to_uint8(images).float().amax(dim=1) / 255


def _box(v: torch.Tensor) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right) bounds (inclusive) of the pixels above the threshold."""
    rows, cols = torch.nonzero(v > FOREGROUND * v.max(), as_tuple=True)
    if v.max() <= 0 or len(rows) == 0:
        return None
    return int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())


def read_attributes(images: torch.Tensor, layout: Layout) -> list[Attributes]:
    """Each image's colour (None for grey images), position and size; all None for a blank."""
    v_all = intensity(images)
    colours = torch.tensor(list(COLOURS.values()))
    read = []
    for image, v in zip(to_uint8(images).float() / 255, v_all, strict=True):
        box = _box(v)
        if box is None:
            read.append(Attributes())
            continue
        top, bottom, left, right = box
        side = max(bottom - top, right - left) + 1
        size = "small" if abs(side - layout.small) < abs(side - layout.large) else "large"
        weights = v * (v > FOREGROUND * v.max())
        centre = torch.arange(layout.canvas, dtype=v.dtype) + 0.5 - layout.canvas / 2
        dy = float((weights.sum(1) * centre).sum() / weights.sum())
        dx = float((weights.sum(0) * centre).sum() / weights.sum())
        if abs(dx) >= abs(dy):
            position = "left" if dx < 0 else "right"
        else:
            position = "top" if dy < 0 else "bottom"
        colour = None
        if image.shape[0] == 3:
            mean = (image * weights).sum(dim=(1, 2)) / weights.sum()
            distance = ((colours - mean / mean.max()) ** 2).sum(dim=1)
            colour = list(COLOURS)[int(distance.argmin())]
        read.append(Attributes(colour=colour, position=position, size=size))
    return read


def crop_objects(
    images: torch.Tensor, read: Sequence[Attributes], layout: Layout, out_size: int
) -> torch.Tensor:
    """Each image's object as the classifier sees it: grey [N, 1, out_size, out_size] in [-1, 1]."""
    crops = []
    for v in intensity(images):
        box = _box(v)
        crops.append((v, box))
    out = []
    for (v, box), attributes in zip(crops, read, strict=True):
        side = layout.side(attributes.size)
        if box is None:
            crop = v[:side, :side]
        else:
            top, bottom, left, right = box
            y0 = min(max((top + bottom + 1 - side) // 2, 0), layout.canvas - side)
            x0 = min(max((left + right + 1 - side) // 2, 0), layout.canvas - side)
            crop = v[y0 : y0 + side, x0 : x0 + side]
        resized = F.interpolate(
            crop[None, None], size=out_size, mode="bilinear", antialias=True, align_corners=False
        )
        out.append(resized[0].clamp(0, 1) * 2 - 1)
    return torch.stack(out)


@torch.no_grad()
def text_alignment(
    images: torch.Tensor,
    prompts: Sequence[str],
    spec: CaptionSpec,
    classifier: SmallNetFeatures | None = None,
) -> dict[str, float]:
    """Accuracy of each thing the prompts name, in [0, 1]: `class` (with `classifier`, the
    `digits` or `fmnist` small net), `colour`, `position`, `size`, and `all` (every named one
    right at once). An attribute no prompt names is left out."""
    if len(images) != len(prompts):
        raise ValueError(f"{len(images)} images but {len(prompts)} prompts")
    targets = [spec.parse(p) for p in prompts]
    read = read_attributes(images, spec.layout)
    correct: dict[str, list[bool]] = {}
    all_right = [True] * len(prompts)
    for name in spec.attributes:
        for i, ((_, target), got) in enumerate(zip(targets, read, strict=True)):
            wanted = getattr(target, name)
            if wanted is not None:
                ok = getattr(got, name) == wanted
                correct.setdefault(name, []).append(ok)
                all_right[i] &= ok
    if classifier is not None:
        crops = crop_objects(images, read, spec.layout, NATIVE_SIZE[classifier.name])
        predicted = classifier(crops.to(classifier.device)).logits.argmax(dim=1).tolist()
        for i, ((label, _), guess) in enumerate(zip(targets, predicted, strict=True)):
            if label is not None:
                correct.setdefault("class", []).append(guess == label)
                all_right[i] &= guess == label
    scores = {name: sum(oks) / len(oks) for name, oks in correct.items()}
    scores["all"] = sum(all_right) / len(all_right)
    return scores


def clip_score(
    images: torch.Tensor, prompts: Sequence[str], model_dir: str | Path, batch_size: int = 64
) -> float:
    """torchmetrics' CLIPScore, 100·max(cos(image, prompt), 0) averaged, with the CLIP model in
    `model_dir` (transformers' layout, e.g. a downloaded openai/clip-vit-large-patch14);
    WeightsNotFoundError when it is missing. Grey images are repeated to RGB."""
    from torchmetrics.multimodal.clip_score import CLIPScore

    from diffusion_lab.models.text.frozen import require_file

    folder = require_file(
        Path(model_dir) / "config.json",
        "metrics.clip_model",
        "a CLIP model folder (e.g. the hub repository openai/clip-vit-large-patch14)",
    ).parent
    try:
        from transformers import CLIPModel, CLIPProcessor
    except ImportError:
        raise LabError(
            "the CLIP score needs transformers: pip install 'diffusion_lab[text]'"
        ) from None

    def load():
        return (
            CLIPModel.from_pretrained(folder, local_files_only=True),
            CLIPProcessor.from_pretrained(folder, local_files_only=True),
        )

    metric = CLIPScore(model_name_or_path=load)
    pixels = to_uint8(images)
    if pixels.shape[1] == 1:
        pixels = pixels.expand(-1, 3, -1, -1)
    for start in range(0, len(pixels), batch_size):
        metric.update(pixels[start : start + batch_size], list(prompts[start : start + batch_size]))
    return float(metric.compute())
