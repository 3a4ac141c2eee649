"""`python -m diffusion_lab.convert`: converted checkpoints load where a run's do (load_module,
load_exported, sample, load_classifier, train ckpt_path=), and user mistakes are one line."""

import numpy as np
import pytest
import torch
from clitools import run_module
from fakedata import make_fake_image_folder
from hydra import compose, initialize_config_dir
from interoptools import forward, load_fixture, perturbed

from diffusion_lab import CONFIG_DIR
from diffusion_lab.checkpoints import load_exported, load_module
from diffusion_lab.convert import main
from diffusion_lab.interop import (
    from_openai,
    openai_net_config,
    write_classifier_checkpoint,
    write_diffusion_checkpoint,
)
from diffusion_lab.lightning.classifier import load_classifier
from diffusion_lab.train import train

# adm_unet_cond's constructor as guided-diffusion flags (its README's form).
ADM_FLAGS = (
    "--image_size 32 --num_channels 32 --num_res_blocks 1 --attention_resolutions 16 "
    "--channel_mult 1,2 --class_cond True --learn_sigma True --num_heads 4 "
    "--num_head_channels 16 --resblock_updown True --use_scale_shift_norm True --use_fp16 False"
)
LINEAR_HYBRID = {
    "schedule": "linear",
    "num_timesteps": 1000,
    "model_mean_type": "epsilon",
    "model_var_type": "learned_range",
    "loss_type": "hybrid",
    "rescale_timesteps": False,
}


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """adm_unet_cond converted by the command: (fixture, output folder, command result)."""
    fixture = load_fixture("adm_unet_cond")
    folder = tmp_path_factory.mktemp("openai")
    torch.save(fixture["state_dict"], folder / "model.pt")
    out = folder / "lab"
    result = run_module(
        "diffusion_lab.convert", "openai", str(folder / "model.pt"), "--flags", ADM_FLAGS,
        "--out", str(out),
    )  # fmt: skip
    return fixture, out, result


def test_openai_checkpoint_loads_as_a_module_and_as_exported_weights(converted):
    fixture, out, result = converted
    assert result.returncode == 0, result.stderr[-2000:]
    assert "956,486 parameters" in result.stdout
    module = load_module(out)
    assert module.hparams.diffusion == LINEAR_HYBRID
    assert module.hparams.optimizer["_target_"] == "torch.optim.Adam"
    assert "learn_sigma" not in module.hparams.net  # the diffusion decides it
    torch.testing.assert_close(forward(module.net, fixture), fixture["output"], atol=1e-5, rtol=0)
    exported = load_exported(out / "ema.safetensors")
    torch.testing.assert_close(forward(exported.net, fixture), fixture["output"], atol=1e-5, rtol=0)


def test_sample_draws_from_the_converted_checkpoint(converted, tmp_path):
    _, out, _ = converted
    result = run_module(
        "diffusion_lab.sample", f"ckpt={out}", "n=2", "batch_size=2", "sampler.steps=2",
        "trainer=cpu", "progress=false", "grid_size=0", f"hydra.run.dir={tmp_path}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    samples = np.load(tmp_path / "samples.npz")
    assert samples["arr_0"].shape == (2, 32, 32, 3) and samples["arr_1"].tolist() == [0, 1]


def test_converted_checkpoint_back_to_diffusers(converted, tmp_path):
    diffusers = pytest.importorskip("diffusers")
    fixture, out, _ = converted
    result = run_module(
        "diffusion_lab.convert", "to-diffusers", str(out), "--out", str(tmp_path / "hub")
    )
    assert result.returncode == 0, result.stderr[-2000:]
    unet = diffusers.UNet2DModel.from_pretrained(tmp_path / "hub", subfolder="unet").eval()
    with torch.no_grad():
        output = unet(fixture["x"], fixture["t"], class_labels=fixture["y"]).sample
    # the same float32 network as the lab's, up to summation order (see test_interop_diffusers)
    torch.testing.assert_close(output, fixture["output"], atol=1e-5, rtol=1e-5)


def test_diffusers_folder_converts_with_scheduler_options(tmp_path):
    diffusers = pytest.importorskip("diffusers")
    config = {
        "sample_size": 16,
        "block_out_channels": (32, 64),
        "layers_per_block": 1,
        "down_block_types": ("DownBlock2D", "AttnDownBlock2D"),
        "up_block_types": ("AttnUpBlock2D", "UpBlock2D"),
    }
    reference = perturbed(diffusers.UNet2DModel(**config))
    reference.save_pretrained(tmp_path / "hub" / "unet")  # a pipeline's layout, no scheduler
    result = run_module(
        "diffusion_lab.convert", "diffusers", str(tmp_path / "hub"), "--out", str(tmp_path / "lab"),
        "--beta_schedule", "squaredcos_cap_v2", "--prediction_type", "v_prediction",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    module = load_module(tmp_path / "lab")
    assert module.hparams.diffusion["schedule"] == "cosine"
    assert module.hparams.diffusion["model_mean_type"] == "v"
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([999, 17])
    with torch.no_grad():
        expected = reference(x, t).sample
        torch.testing.assert_close(module.net(x, t), expected, atol=1e-5, rtol=1e-5)


def test_classifier_checkpoint_loads_with_load_classifier(tmp_path):
    fixture = load_fixture("adm_classifier")
    net = from_openai(fixture["state_dict"], **fixture["constructor"])
    config = openai_net_config(fixture["constructor"], classifier=True)
    write_classifier_checkpoint(tmp_path, net, config, LINEAR_HYBRID)
    classifier = load_classifier(str(tmp_path))
    assert classifier.num_classes == 1000
    assert classifier.hparams.diffusion == {"schedule": "linear", "num_timesteps": 1000}
    torch.testing.assert_close(
        forward(classifier.net, fixture), fixture["output"], atol=1e-5, rtol=0
    )


def test_train_fine_tunes_from_a_converted_checkpoint(tmp_path):
    """ckpt_path= loads the weights; optimizer, LR warmup and EMA start afresh at step 0."""
    fixture = load_fixture("iddpm_unet")
    net = from_openai(fixture["state_dict"], **fixture["constructor"])
    config = openai_net_config(fixture["constructor"])
    ckpt = write_diffusion_checkpoint(tmp_path / "converted", net, config, LINEAR_HYBRID)
    make_fake_image_folder(tmp_path / "images", size=(32, 32))
    overrides = [
        f"paths.root_dir={tmp_path}",
        f"paths.output_dir={tmp_path / 'run'}",
        "experiment=quickstart",
        "debug=fast",
        "trainer.max_steps=2",
        "data=folder",
        f"data.root={tmp_path / 'images'}",
        "data.image_size=32",
        # the converted network's architecture, as `model` overrides
        "model=tiny",
        "model.attention_resolutions=[16]",
        "model.num_heads=4",
        "model.num_head_channels=-1",
        "model.use_scale_shift_norm=true",
        "loss=hybrid",
        f"ckpt_path={ckpt}",
    ]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        train(compose(config_name="train", overrides=overrides))
    trained = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert trained["global_step"] == 2
    # Two warm-up steps (lr ≤ 1e-5) leave the converted weights nearly where they were; a fresh
    # network's output convolution would still be almost zero.
    start, after = net.out_conv.weight, trained["current_model_state"]["net.out_conv.weight"]
    assert start.abs().max() > 0.01
    torch.testing.assert_close(after, start, atol=1e-3, rtol=0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["openai", "{fixture}", "--flags", ADM_FLAGS], "is not a state dict"),
        (["openai", "{missing}", "--flags", ADM_FLAGS], "no file"),
        (["openai", "{model}", "--flags", "--image_size 48"], "not --image_size 48"),
        (["openai", "{model}", "--flags", ADM_FLAGS, "--out", "{full}"], "already exists"),
        (["diffusers", "{empty}"], "not a diffusers folder"),
        (["to-diffusers", "{missing}", "--out", "{new}"], "no checkpoint"),
        (["convert"], "invalid choice"),
    ],
)
def test_user_mistakes_are_one_line_and_exit_1(tmp_path, capsys, args, message):
    fixture = load_fixture("adm_unet_cond")
    paths = {
        "fixture": tmp_path / "fixture.pt",
        "model": tmp_path / "model.pt",
        "missing": tmp_path / "missing.pt",
        "full": tmp_path / "full",
        "empty": tmp_path / "empty",
        "new": tmp_path / "new",
    }
    torch.save(fixture, paths["fixture"])
    torch.save(fixture["state_dict"], paths["model"])
    (paths["full"] / "checkpoints").mkdir(parents=True)
    paths["empty"].mkdir()
    with pytest.raises(SystemExit) as exited:
        main([arg.format(**paths) for arg in args])
    assert exited.value.code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
