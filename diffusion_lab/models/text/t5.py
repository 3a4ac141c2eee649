"""T5's encoder as a frozen text encoder (Raffel et al. 2020), as Imagen conditions on it
(Saharia et al. 2022), through transformers, from a local model folder."""

from pathlib import Path

import torch

from diffusion_lab.errors import ConfigError, LabError
from diffusion_lab.models.text.frozen import FrozenTextEncoder, Held, require_file


class T5TextEncoder(FrozenTextEncoder):
    """Captions -> T5 encoder's last hidden states [L, width] (its final layer norm applied) and
    their mean as pooled (Imagen pools T5's states for the timestep embedding).

    Args:
        path: a folder in transformers' `save_pretrained` layout: config.json, the weights
            (model.safetensors) and the tokenizer (spiece.model or tokenizer.json); nothing is
            downloaded.
        width: the encoder's d_model (t5-v1_1-base 768, -xl 2048, -xxl 4096); checked.
        max_length: tokens per caption at most, the end token included (Imagen: 128).
        cache_size: captions whose states are kept.
    """

    def __init__(
        self,
        *,
        path: str | Path | None,
        width: int = 768,
        max_length: int = 128,
        cache_size: int = 1024,
    ):
        super().__init__(width, cache_size)
        folder = require_file(
            None if path is None else Path(path) / "config.json",
            "text_encoder.path",
            "a T5 encoder folder (e.g. the hub repository google/t5-v1_1-base: config.json, "
            "model.safetensors, spiece.model)",
        ).parent
        try:
            from transformers import AutoTokenizer, T5EncoderModel
        except ImportError:
            raise LabError(
                "text_encoder=t5 needs transformers: pip install 'diffusion_lab[text]'"
            ) from None
        model = T5EncoderModel.from_pretrained(folder, local_files_only=True)
        if model.config.d_model != width:
            raise ConfigError(
                f"text_encoder.width={width}, but the T5 encoder in {folder} has d_model="
                f"{model.config.d_model}; set text_encoder.width to it"
            )
        self.held = Held(model)
        self.folder = folder
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.max_length = max_length

    def encode_uncached(self, captions: list[str]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        model = self.held.module
        batch = self.tokenizer(
            captions,
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        ).to(model.device)
        # some tokenizers also return token_type_ids, which T5 does not take
        states = model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        ).last_hidden_state
        lengths = batch["attention_mask"].sum(dim=1).tolist()
        return [(states[i, :n], states[i, :n].mean(dim=0)) for i, n in enumerate(lengths)]
