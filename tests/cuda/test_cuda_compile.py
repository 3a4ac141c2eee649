"""torch.compile on the GPU: the training step's compiled forward (model.compile=true, Inductor's
Triton kernels) computes the eager network's output and gradients."""

import copy

import pytest
import torch

pytestmark = pytest.mark.cuda


@pytest.mark.parametrize("bf16", [False, True], ids=["float32", "bf16-channels_last"])
def test_compiled_training_forward_gives_the_eager_output_and_gradients(
    bf16, make_module, no_tf32, relative_error
):
    torch._dynamo.reset()
    module = make_module(channels_last=bf16).cuda()
    module.on_fit_start()  # compiles the training forward, as at the start of a fit
    eager = copy.deepcopy(module.net)
    reference = copy.deepcopy(module.net).double().to(memory_format=torch.contiguous_format)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(4, 3, 16, 16, generator=generator).cuda()
    t = torch.tensor([0, 10, 500, 999]).cuda()
    cotangent = torch.randn(4, 3, 16, 16, generator=generator).cuda()

    def output_and_grads(forward, net, dtype=torch.float32):
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            out = forward(x.to(dtype), t)
        out.backward(cotangent.to(out.dtype))
        return out, torch.cat([p.grad.flatten() for p in net.parameters()])

    compiled = output_and_grads(module.train_net, module.net)
    plain = output_and_grads(eager, eager)
    exact = output_and_grads(reference, reference, torch.float64)
    # Against float64 (relative norm; measured with this network on the CPU): float32 lands
    # 1e-6 off on the output, 2e-6 on the gradients, so 1e-4, which any wrong fusion, layout or
    # kernel exceeds by far; the compiled and eager float32 paths differ only in summation
    # order. bf16 (8 significant bits per operand) lands 1.5e-2 off on the output and 2.3e-2
    # on the gradients under autocast, so 8e-2 for either path.
    bound = 8e-2 if bf16 else 1e-4
    for got, want in zip(compiled, exact, strict=True):
        assert relative_error(got, want) < bound
    for got, want in zip(plain, exact, strict=True):
        assert relative_error(got, want) < bound
    if not bf16:
        for got, want in zip(compiled, plain, strict=True):
            assert relative_error(got, want) < 1e-4
