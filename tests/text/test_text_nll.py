"""The NLL bound reads captioned batches: a text model is given each image's own caption."""

import torch

from diffusion_lab.diffusion import create_diffusion
from diffusion_lab.evaluation import bits_per_dim


class Recorder(torch.nn.Module):
    """Predicts zero noise and records the captions' states it was given."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x, t, text=None):
        self.seen.append(text)
        return torch.zeros_like(x)


def test_captioned_batches_condition_on_their_own_captions():
    diffusion = create_diffusion(schedule="cosine", num_timesteps=4)
    images = torch.rand(2, 1, 4, 4) * 2 - 1
    captions = ["a red 3", "a blue 7"]
    encoded = []

    def encoder(batch):
        encoded.append(batch)
        return "states"

    model = Recorder()
    torch.manual_seed(0)
    with_text = bits_per_dim(
        diffusion, model, [(images, torch.zeros(2), captions)], text_encoder=encoder
    )
    assert encoded == [captions] and set(model.seen) == {"states"}
    model.seen.clear()
    torch.manual_seed(0)
    plain = bits_per_dim(diffusion, model, [(images, torch.zeros(2))])
    assert set(model.seen) == {None}
    # the recorder ignores the text: the same draws give the same bound (exactly)
    torch.testing.assert_close(with_text, plain, rtol=0, atol=0)
