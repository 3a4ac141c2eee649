"""The paper recipes compose to the settings their sources publish, gradient clipping included."""

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from diffusion_lab import CONFIG_DIR

# The published settings, key by key (each recipe file's comment names its source).
DDPM = {  # Ho et al. 2020, App. B; diffusion_tf scripts/run_cifar.py
    "schedule.name": "linear",
    "schedule.num_timesteps": 1000,
    "schedule.rescale_timesteps": False,
    "loss.loss_type": "simple",
    "loss.model_mean_type": "epsilon",
    "loss.model_var_type": "fixed_large",
    "model.model_channels": 128,
    "model.channel_mult": [1, 2, 2, 2],
    "model.num_res_blocks": 2,
    "model.attention_resolutions": [16],
    "model.dropout": 0.1,
    "optimizer._target_": "torch.optim.Adam",
    "optimizer.lr": 2e-4,
    "optimizer.weight_decay": 0.0,
    "warmup_steps": 5000,
    "data.batch_size": 128,
    "data.random_flip": True,
    "trainer.max_steps": 800000,
    "trainer.gradient_clip_val": 1.0,
    "callbacks.ema.decay": 0.9999,
}
IDDPM = {  # improved-diffusion README (CIFAR-10 flags), script_util.py defaults, train_util.py
    "schedule.name": "cosine",
    "schedule.num_timesteps": 4000,
    "schedule.rescale_timesteps": True,
    "loss.loss_type": "hybrid",
    "loss.model_mean_type": "epsilon",
    "loss.model_var_type": "learned_range",
    "loss.timestep_sampler": "uniform",
    "model.model_channels": 128,
    "model.channel_mult": [1, 2, 2, 2],
    "model.num_res_blocks": 3,
    "model.attention_resolutions": [16, 8],
    "model.num_heads": 4,
    "model.use_scale_shift_norm": True,
    "model.dropout": 0.3,
    "optimizer.lr": 1e-4,
    "optimizer.weight_decay": 0.0,
    "warmup_steps": 0,
    "data.batch_size": 128,
    "data.random_flip": False,
    "trainer.max_steps": 500000,
    "trainer.gradient_clip_val": None,
    "callbacks.ema.decay": 0.9999,
}
RECIPES = {
    "default": DDPM,  # plain `python -m diffusion_lab.train`
    "ddpm_cifar10": DDPM,
    "cifar10_cfg": {**DDPM, "cond_drop_prob": 0.1, "model.num_classes": 10},  # Ho & Salimans
    "iddpm_cifar10": IDDPM,
    "cifar10_classifier": {  # Improved DDPM's net trained as guided-diffusion's train_util.py
        **{k: v for k, v in IDDPM.items() if not k.startswith(("schedule.", "data.random"))},
        "schedule.name": "cosine",
        "schedule.num_timesteps": 1000,
        "model.resblock_updown": True,
        "model.num_head_channels": 64,
    },
    "celeba64": {  # DDIM's data, ADM's 64x64 network and training code
        "data.image_size": 64,
        "model.model_channels": 192,
        "model.channel_mult": [1, 2, 3, 4],
        "model.num_res_blocks": 3,
        "model.attention_resolutions": [32, 16, 8],
        "model.num_head_channels": 64,
        "model.resblock_updown": True,
        "model.use_scale_shift_norm": True,
        "schedule.name": "cosine",
        "loss.loss_type": "hybrid",
        "optimizer.lr": 1e-4,
        "warmup_steps": 0,
        "trainer.gradient_clip_val": None,
        "callbacks.ema.decay": 0.9999,
    },
}
CLASSIFIER = {  # guided-diffusion README (128x128 classifier flags), classifier_train.py
    "optimizer._target_": "torch.optim.AdamW",
    "optimizer.lr": 3e-4,
    "optimizer.weight_decay": 0.05,
    "lr_schedule": "linear",
    "data.batch_size": 256,
    "trainer.max_steps": 300000,
    "trainer.gradient_clip_val": None,
    "classifier.model_channels": 128,
    "classifier.num_res_blocks": 2,
    "classifier.pool": "attention",
    "classifier.resblock_updown": True,
    "classifier.use_scale_shift_norm": True,
}


def composed(config_name: str, overrides: list[str], tmp_path) -> dict:
    fixed = [f"paths.root_dir={tmp_path}", f"paths.output_dir={tmp_path}"]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=fixed + overrides)
    return OmegaConf.to_container(cfg, resolve=True)


def differences(cfg: dict, published: dict) -> dict:
    found = {key: OmegaConf.select(OmegaConf.create(cfg), key) for key in published}
    return {key: (found[key], value) for key, value in published.items() if found[key] != value}


@pytest.mark.parametrize("recipe", RECIPES)
def test_each_paper_recipe_composes_to_its_published_settings(recipe, tmp_path):
    overrides = [] if recipe == "default" else [f"experiment={recipe}"]
    cfg = composed("train", overrides, tmp_path)
    assert differences(cfg, RECIPES[recipe]) == {}  # {key: (composed, published)}


def test_the_noisy_classifier_trains_as_guided_diffusion_does(tmp_path):
    assert differences(composed("train_classifier", [], tmp_path), CLASSIFIER) == {}


def test_every_recipe_file_names_its_source_and_its_clipping():
    for recipe in RECIPES.keys() - {"default"}:
        text = (CONFIG_DIR / "experiment" / f"{recipe}.yaml").read_text()
        assert "| setting" in text or "| from" in text, f"{recipe}.yaml has no settings table"
        assert "clip" in text, f"{recipe}.yaml does not say how it clips gradients"


def test_the_classifier_learning_rate_decays_linearly_to_zero():
    """guided-diffusion's set_annealed_lr: lr·(1 − step/iterations)."""
    from types import SimpleNamespace

    from diffusion_lab.lightning.classifier import NoisyClassifierModule
    from diffusion_lab.models.presets import preset_config

    encoder = {
        k: v
        for k, v in preset_config("tiny", 8, 1).items()
        if k not in ("_target_", "num_classes", "dropout", "use_checkpoint")
    }
    module = NoisyClassifierModule(
        net={"_target_": "diffusion_lab.models.EncoderUNetModel", **encoder, "out_channels": 2},
        diffusion={"num_timesteps": 100},
        optimizer={"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 3e-4},
        num_classes=2,
        lr_schedule="linear",
    )
    module.trainer = SimpleNamespace(max_steps=300)
    setup = module.configure_optimizers()
    optimizer, scheduler = setup["optimizer"], setup["lr_scheduler"]["scheduler"]
    rates = []
    for _ in range(300):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[0] == pytest.approx(3e-4) and rates[150] == pytest.approx(1.5e-4)
    assert rates[-1] == pytest.approx(1e-6)  # 3e-4 · (1 − 299/300)
