"""evaluate's text alignment: the prompts come back from the npz `sample` writes, and the real
captioned digits score as their captions say (wrong prompts do not)."""

import numpy as np
import pytest
from torch.utils.data import DataLoader

from diffusion_lab.data import DigitsCaptionsDataModule
from diffusion_lab.errors import ConfigError, WeightsNotFoundError
from diffusion_lab.evaluation.text import alignment_scores, check_clip_model, sample_prompts
from diffusion_lab.metrics.features import to_uint8


def test_each_sample_gets_its_prompt_from_the_npz(tmp_path):
    path = tmp_path / "samples.npz"
    images = np.zeros((3, 4, 4, 3), dtype=np.uint8)
    np.savez(path, images, prompts=np.array(["a red 3", "a blue 7"]), prompt_index=[0, 1, 0])
    assert sample_prompts(path) == ["a red 3", "a blue 7", "a red 3"]
    np.savez(path, images)
    with pytest.raises(ConfigError, match="no prompts"):
        sample_prompts(path)


def test_real_digits_align_with_their_captions_and_not_with_others():
    datamodule = DigitsCaptionsDataModule()
    test = datamodule.dataset("test", augment=False)
    images, _, captions = next(iter(DataLoader(test, batch_size=len(test))))
    pixels = to_uint8(images).permute(0, 2, 3, 1).numpy()
    right = alignment_scores(pixels, list(captions), datamodule, None)
    wrong = alignment_scores(pixels, list(captions[1:] + captions[:1]), datamodule, None)
    # the ground truth reads back exactly for the rendered attributes (test_text_alignment);
    # the class, from 5-pixel small digits, at ~83%
    assert right["text_alignment_colour"] == right["text_alignment_position"] == 1.0
    assert right["text_alignment_class"] >= 0.75 and right["text_alignment_all"] >= 0.75
    # shifted prompts: chance (colour 1/6, class 1/10), far below
    assert wrong["text_alignment_all"] < 0.2 and wrong["text_alignment_class"] < 0.3


def test_a_missing_clip_model_names_the_key(tmp_path):
    check_clip_model(None)
    with pytest.raises(WeightsNotFoundError, match="metrics.text_alignment.clip_model"):
        check_clip_model(str(tmp_path / "clip"))
