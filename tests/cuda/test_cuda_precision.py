"""bf16 mixed precision on the GPU: a training step is finite, its loss is float32's within
bf16's rounding, and Adam's fused kernel does the step."""

import pytest
import torch

pytestmark = pytest.mark.cuda


def batch(seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(8, 3, 16, 16, generator=generator).clamp(-1, 1)
    noise = torch.randn(x.shape, generator=generator)
    t = torch.randint(0, 1000, (8,), generator=generator)
    return x.cuda(), t.cuda(), noise.cuda()


def test_bf16_mixed_training_step_is_finite_and_matches_float32(
    make_module, no_tf32, relative_error
):
    module = make_module().cuda()
    x, t, noise = batch()
    with torch.no_grad():
        reference = module.diffusion.training_losses(module.net, x, t, noise=noise)["loss"].mean()
        output32 = module.net(x, t)
    optimizer = module.configure_optimizers()["optimizer"]
    assert optimizer.defaults["fused"] is True  # optimizer.fused: null is on with CUDA
    before = [p.detach().clone() for p in module.net.parameters()]
    with torch.autocast("cuda", dtype=torch.bfloat16):  # what trainer.precision=bf16-mixed does
        output = module.net(x, t)
        loss = module.diffusion.training_losses(module.net, x, t, noise=noise)["loss"].mean()
    loss.backward()
    optimizer.step()
    assert output.dtype == torch.bfloat16  # the convolutions did run in bf16
    # bf16 keeps 8 significant bits (rounding 2^-9 = 2e-3 per operand); through the U-Net's
    # ~20 layers the output lands ~1.6e-2 off float32 in relative norm (measured with this
    # network under the CPU's bf16 autocast), so 5e-2. The loss, a mean of 6,144 squared
    # errors, averages those roundings out (measured 3e-4), so 1e-2. An overflow or a layer
    # left out would move them by far more.
    assert relative_error(output, output32) < 5e-2
    assert torch.isfinite(loss) and abs(loss.item() - reference.item()) < 1e-2 * reference.item()
    grads = [p.grad for p in module.net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    after = list(module.net.parameters())
    assert all(torch.isfinite(p).all() for p in after)
    assert any(not torch.equal(a, b) for a, b in zip(after, before, strict=True))
