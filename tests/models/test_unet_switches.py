"""The training-speed switches of `train`: `model.compile`, `model.channels_last` and
`optimizer.fused` reach the network and the optimizer, never the network's constructor, and
leave checkpoints as they were."""

import pytest
import torch
from hydra import compose, initialize_config_dir

from diffusion_lab import CONFIG_DIR
from diffusion_lab.errors import ConfigError
from diffusion_lab.lightning import DiffusionModule
from diffusion_lab.models.presets import TRAINING_SWITCHES, preset_config
from diffusion_lab.train import train

# attention and AdaGN: the layers whose reshapes channels_last could break
NET = preset_config("tiny", 16, 3, attention_resolutions=[8], use_scale_shift_norm=True)
DIFFUSION = {"schedule": "linear", "num_timesteps": 1000}
ADAM = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-3}


def module(optimizer: dict | None = None, **switches: bool) -> DiffusionModule:
    torch.manual_seed(0)
    return DiffusionModule({**NET, **switches}, DIFFUSION, optimizer or ADAM)


def perturbed(model: DiffusionModule) -> DiffusionModule:
    """Noise on every weight, so that the zero-initialised output layers contribute."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.net.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=generator))
    return model


def loss_and_grads(model: DiffusionModule) -> tuple[torch.Tensor, list[torch.Tensor]]:
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(4, 3, 16, 16, generator=generator)
    noise = torch.randn(x.shape, generator=generator)
    t = torch.tensor([0, 10, 500, 999])
    terms = model.diffusion.training_losses(model.train_net, x, t, noise=noise)
    loss = terms["loss"].mean()
    loss.backward()
    return loss.detach(), [p.grad for p in model.net.parameters()]


def test_preset_configs_leave_the_switches_to_the_module():
    assert not set(TRAINING_SWITCHES) & set(preset_config("ddpm_cifar10", 32, 3))


def test_switches_reach_the_network_not_its_constructor_nor_the_checkpoint():
    plain, switched = module(), module(compile=True, channels_last=True)
    assert switched.hparams.net == plain.hparams.net == NET  # what checkpoints store
    assert switched.compile_net and not plain.compile_net
    convs = [m.weight for m in switched.net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    assert not plain.net.input_blocks[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    assert switched.train_net is switched.net  # compiled only once fitting starts
    switched.on_fit_start()
    assert switched.train_net is not switched.net and callable(switched.train_net)
    assert list(switched.state_dict()) == list(plain.state_dict())  # no `_orig_mod.` keys


def test_a_switch_is_true_or_false():
    with pytest.raises(ConfigError, match="model.compile='yes' must be true or false"):
        module(compile="yes")


def test_channels_last_gives_the_contiguous_loss_and_gradients():
    contiguous = perturbed(module())
    channels_last = perturbed(module(channels_last=True))
    loss, grads = loss_and_grads(contiguous)
    loss_cl, grads_cl = loss_and_grads(channels_last)
    # float32 either way; only the convolution kernels' summation order may differ (oneDNN's NHWC
    # kernels): ~1e-7 relative per layer. Measured: the same loss to the bit, gradients within
    # 2e-7 (the largest is 0.2; biases that GroupNorm cancels have ~1e-8 of rounding noise, hence
    # atol). A wrong reshape under NHWC (attention's flatten/view) would scramble pixels and move
    # the loss and gradients by order 1.
    torch.testing.assert_close(loss_cl, loss, rtol=1e-5, atol=0)
    for grad_cl, grad in zip(grads_cl, grads, strict=True):
        torch.testing.assert_close(grad_cl, grad, rtol=1e-4, atol=1e-6)


def test_fused_null_means_the_fused_kernel_only_with_cuda():
    for fused, expected in ((None, False), (True, True), (False, False)):
        optimizer = module({**ADAM, "fused": fused}).configure_optimizers()["optimizer"]
        assert optimizer.defaults["fused"] is expected  # a CPU module: null is off
    optimizer = module(ADAM).configure_optimizers()["optimizer"]
    assert optimizer.defaults["fused"] is None  # no key: the optimizer's own default


def test_compiled_training_keeps_checkpoint_keys_and_ema(tmp_path, monkeypatch):
    compiled = []
    compile_ = torch.compile

    def recording(model, **kwargs):
        """torch.compile through Dynamo with an eager backend: Inductor's codegen would take a
        minute on 2 cores, and the wiring, not the kernels, is under test here."""

        def backend(graph, example_inputs):
            compiled.append(graph)
            return graph.forward

        return compile_(model, backend=backend, **kwargs)

    monkeypatch.setattr(torch, "compile", recording)
    overrides = [
        f"paths.root_dir={tmp_path}",
        f"paths.output_dir={tmp_path / 'run'}",
        "experiment=quickstart",
        "debug=fast",
        "model.compile=true",
        "model.channels_last=true",
    ]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        train(compose(config_name="train", overrides=overrides))
    assert compiled, "the training forward did not go through torch.compile"
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    eager = DiffusionModule(**ckpt["hyper_parameters"])
    assert list(ckpt["state_dict"]) == list(eager.state_dict())
    assert ckpt["current_model_state"].keys() == ckpt["state_dict"].keys()
    raw, ema = ckpt["current_model_state"], ckpt["state_dict"]
    assert any(not torch.equal(raw[k], ema[k]) for k in ema if k.startswith("net."))
    assert set(TRAINING_SWITCHES).isdisjoint(ckpt["hyper_parameters"]["net"])
