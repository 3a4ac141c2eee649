"""`guided` (shared by sample and evaluate), class-row grids, and the CLI from training to
guided samples."""

import numpy as np
import pytest
import torch
from clitools import run_module
from omegaconf import OmegaConf
from PIL import Image

from diffusion_lab.errors import ConfigError
from diffusion_lab.grids import grid_scale
from diffusion_lab.guidance import ClassifierFreeGuidance, ClassifierGuidance, IgnoreLabels
from diffusion_lab.lightning import DiffusionModule
from diffusion_lab.lightning.classifier import NoisyClassifierModule
from diffusion_lab.models.presets import preset_config
from diffusion_lab.sample import guided, write_grid

TINY = preset_config("tiny", image_size=8, channels=1)
ENCODER = {
    **{k: v for k, v in TINY.items() if k != "num_classes"},
    "_target_": "diffusion_lab.models.EncoderUNetModel",
}
ADAM = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-3}


def model(num_classes=10, schedule="linear"):
    net = {**TINY, "num_classes": num_classes}
    return DiffusionModule(net, {"schedule": schedule, "num_timesteps": 50}, ADAM).eval()


def classifier_checkpoint(tmp_path, num_classes=10):
    net = {**ENCODER, "out_channels": num_classes}
    module = NoisyClassifierModule(
        net, {"schedule": "linear", "num_timesteps": 50}, ADAM, num_classes
    )
    path = tmp_path / f"classifier{num_classes}.ckpt"
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, path)
    return str(path)


def config(**kwargs):
    return OmegaConf.create(kwargs)


def test_guided_builds_each_kind_of_guidance(tmp_path):
    conditional, unconditional = model(), model(num_classes=None)
    net, cond_fn, num_classes = guided(conditional, config(name="none"))
    assert net is conditional.net and cond_fn is None and num_classes == 10
    net, cond_fn, num_classes = guided(conditional, config(name="cfg", scale=2.0))
    assert isinstance(net, ClassifierFreeGuidance) and (net.scale, net.null_label) == (2.0, 10)
    assert cond_fn is None and num_classes == 10
    ckpt = classifier_checkpoint(tmp_path)
    net, cond_fn, num_classes = guided(
        unconditional, config(name="classifier", classifier=ckpt, scale=3.0)
    )
    assert isinstance(net, IgnoreLabels) and isinstance(cond_fn, ClassifierGuidance)
    assert cond_fn.scale == 3.0 and num_classes == 10
    net, _, _ = guided(conditional, config(name="classifier", classifier=ckpt, scale=1.0))
    assert net is conditional.net


@pytest.mark.parametrize(
    ("module", "guidance", "message"),
    [
        (lambda: model(num_classes=None), {"name": "cfg", "scale": 2.0}, "class-conditional"),
        (lambda: model(schedule="cosine"), {"name": "classifier", "scale": 1.0}, "schedule"),
        (lambda: model(num_classes=3), {"name": "classifier", "scale": 1.0}, "10 classes"),
        (model, {"name": "clip", "scale": 1.0}, "none, cfg, classifier"),
    ],
)
def test_guided_rejects_what_cannot_work(tmp_path, module, guidance, message):
    guidance = config(classifier=classifier_checkpoint(tmp_path), **guidance)
    with pytest.raises(ConfigError, match=message):
        guided(module(), guidance)


def test_classifier_gradient_works_under_inference_mode():
    """Lightning's predict runs in inference mode; the gradient must still flow."""
    net = NoisyClassifierModule(
        {**ENCODER, "out_channels": 2},
        {"num_timesteps": 50},
        ADAM,
        2,
    ).net
    with torch.inference_mode():
        gradient = ClassifierGuidance(net, 1.0)(
            torch.randn(2, 1, 8, 8), torch.tensor([3, 40]), y=torch.tensor([0, 1])
        )
    assert gradient.shape == (2, 1, 8, 8) and gradient.abs().sum() > 0


def test_grid_has_one_row_per_class(tmp_path):
    labels = np.arange(20) % 4
    images = np.repeat(labels * 60, 4 * 4).reshape(20, 4, 4, 1).astype(np.uint8)
    np.savez(tmp_path / "samples.npz", images, labels)
    write_grid(tmp_path / "samples.npz", tmp_path / "grid.png", 12, scale=1)
    grid = np.asarray(Image.open(tmp_path / "grid.png").convert("L"))
    assert grid.shape == (4 * 5 + 1, 4 * 5 + 1)  # 4 rows (classes) of 4 (K), padding 1
    for row in range(4):
        cells = grid[1 + 5 * row : 5 * row + 5, 1:-1]
        assert (np.delete(cells, [4, 9, 14], axis=1) == row * 60).all()


@pytest.mark.parametrize(("n", "columns"), [(100, 10), (20, 2)])
def test_class_grid_has_k_columns_or_as_many_as_drawn(tmp_path, n, columns):
    labels = np.arange(n) % 10  # sample i has class i mod K, as `sample` draws them
    np.savez(tmp_path / "samples.npz", np.zeros((n, 8, 8, 1), np.uint8), labels)
    write_grid(tmp_path / "samples.npz", tmp_path / "grid.png", 64)  # grid_size does not cut rows
    width, height = Image.open(tmp_path / "grid.png").size
    scale = grid_scale(columns, 8, rows=10)
    assert (width, height) == ((columns * 9 + 1) * scale, (10 * 9 + 1) * scale)


@pytest.mark.slow
def test_cli_trains_conditional_and_classifier_then_samples_guided(tmp_path):
    """experiment=digits_cfg + train_classifier + sample with cfg and classifier (~40 s)."""

    def run(module, *overrides):
        result = run_module(f"diffusion_lab.{module}", *overrides, threads=1, cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]

    run("train", "experiment=digits_cfg", "debug=fast", f"hydra.run.dir={tmp_path}/model")
    run(
        "train_classifier",
        "data=digits",
        "data.batch_size=8",
        "trainer=cpu",
        "trainer.max_steps=2",
        "trainer.val_check_interval=2",
        "trainer.limit_val_batches=1",
        "classifier.model_channels=32",
        "classifier.channel_mult=[1,2]",
        "classifier.attention_resolutions=[]",
        "classifier.num_head_channels=32",
        f"hydra.run.dir={tmp_path}/classifier",
    )
    for name, extra in [
        ("cfg", []),
        ("classifier", [f"guidance.classifier={tmp_path}/classifier"]),
    ]:
        run(
            "sample",
            f"ckpt={tmp_path}/model",
            "n=20",
            "sampler.steps=3",
            "grid_size=20",
            "progress=false",
            f"guidance={name}",
            "guidance.scale=2",
            *extra,
            f"hydra.run.dir={tmp_path}/{name}",
        )
        samples = np.load(tmp_path / name / "samples.npz")
        assert samples["arr_0"].shape == (20, 8, 8, 1)
        assert (samples["arr_1"] == np.arange(20) % 10).all()
        s = grid_scale(2, 8, rows=10)  # 2 of each class per row, 10 rows: upscaled by the height
        assert Image.open(tmp_path / name / "grid.png").size == (s * (2 * 9 + 1), s * (10 * 9 + 1))
