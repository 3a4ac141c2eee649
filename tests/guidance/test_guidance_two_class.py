"""Guidance on a tiny 2-class problem trained inside the test: two overlapping Gaussian blobs in
R² (as [N, 2, 1, 1] images). A conditional ε-network trained with label dropout and a noisy
classifier trained on x_t; samples are judged by the Bayes rule of the data (class 1 iff
x₀ > 0). Guidance must raise the fraction of samples in the requested class, with every sampler.
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from diffusion_lab.diffusion import create_diffusion
from diffusion_lab.guidance import ClassifierFreeGuidance, ClassifierGuidance
from diffusion_lab.models.blocks import timestep_embedding
from diffusion_lab.sampling import sample

NULL = 2  # the null label of classifier-free guidance
CENTRE, SPREAD = 0.5, 0.45  # class y ~ N((±0.5, 0), 0.45²·I): Bayes accuracy Φ(0.5/0.45) ≈ 0.87
SAMPLERS = {"ddpm": 25, "ddim": 10, "dpm_solver": 10, "heun": 12}
N = 2000


def blobs(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    labels = torch.randint(0, 2, (n,), generator=generator)
    centres = torch.stack([(2 * labels - 1) * CENTRE, torch.zeros(n)], dim=1)
    x = centres + SPREAD * torch.randn(n, 2, generator=generator)
    return x.view(n, 2, 1, 1), labels


class MLP(nn.Module):
    """x [N,2,1,1], t [N], optional labels y (NULL = none) -> [N, out, 1, 1]."""

    def __init__(self, out: int, num_labels: int = 0, width: int = 64):
        super().__init__()
        self.label_emb = nn.Embedding(num_labels, width) if num_labels else None
        self.inp = nn.Linear(2 + 32, width)
        self.body = nn.Sequential(nn.SiLU(), nn.Linear(width, width), nn.SiLU())
        self.out = nn.Linear(width, out)

    def forward(self, x, t, y=None):
        h = self.inp(torch.cat([x.flatten(1), timestep_embedding(t, 32)], dim=1))
        if self.label_emb is not None:
            h = h + self.label_emb(y)
        return self.out(self.body(h))


def train(model, loss_fn, steps: int) -> nn.Module:
    generator = torch.Generator().manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        loss = loss_fn(model, *blobs(256, generator), generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    diffusion = create_diffusion(num_timesteps=100)

    def denoising(model, x, labels, generator):  # L_simple with label dropout 0.2
        dropped = torch.rand(len(labels), generator=generator) < 0.2
        y = torch.where(dropped, torch.full_like(labels, NULL), labels)
        t = torch.randint(0, 100, (len(x),), generator=generator)
        noise = torch.randn(x.shape, generator=generator)
        net = lambda x_t, t_, **kw: model(x_t, t_, **kw).view(x_t.shape)  # noqa: E731
        return diffusion.training_losses(net, x, t, {"y": y}, noise)["loss"].mean()

    def classification(model, x, labels, generator):
        t = torch.randint(0, 100, (len(x),), generator=generator)
        x_t = diffusion.q_sample(x, t, noise=torch.randn(x.shape, generator=generator))
        return F.cross_entropy(model(x_t, t), labels)

    eps_net = train(MLP(2, num_labels=3), denoising, 1500)
    classifier = train(MLP(2), classification, 600)
    return diffusion, (lambda x, t, y: eps_net(x, t, y).view(x.shape)), classifier


def fraction_on_target(model, diffusion, sampler, cond_fn=None) -> float:
    labels = torch.arange(N) % 2
    images = sample(
        model,
        diffusion,
        (N, 2, 1, 1),
        sampler,
        SAMPLERS[sampler],
        generator=torch.Generator().manual_seed(1),
        clip_denoised=False,
        model_kwargs={"y": labels},
        cond_fn=cond_fn,
    ).images
    return ((images[:, 0, 0, 0] > 0).long() == labels).float().mean().item()


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_classifier_free_guidance_raises_class_fidelity(trained, sampler):
    diffusion, eps_net, _ = trained
    unguided = fraction_on_target(ClassifierFreeGuidance(eps_net, 1.0, NULL), diffusion, sampler)
    guided = fraction_on_target(ClassifierFreeGuidance(eps_net, 4.0, NULL), diffusion, sampler)
    assert 0.75 < unguided < 0.95  # the conditional model alone: near the Bayes accuracy 0.87
    assert guided > unguided + 0.05 and guided > 0.97


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_classifier_guidance_raises_class_fidelity(trained, sampler):
    """An unconditional model (the null label) steered by the noisy classifier."""
    diffusion, eps_net, classifier = trained
    unconditional = lambda x, t, y: eps_net(x, t, torch.full_like(y, NULL))  # noqa: E731
    unguided = fraction_on_target(
        unconditional, diffusion, sampler, ClassifierGuidance(classifier, 0.0)
    )
    guided = fraction_on_target(
        unconditional, diffusion, sampler, ClassifierGuidance(classifier, 4.0)
    )
    assert 0.4 < unguided < 0.6  # the mixture: either class half the time
    assert guided > 0.9
