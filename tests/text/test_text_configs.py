"""The text configs compose: experiments digits_text and fashion_mnist_text, each text encoder."""

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from diffusion_lab import CONFIG_DIR
from diffusion_lab.models import UNetModel
from diffusion_lab.models.presets import TRAINING_SWITCHES
from diffusion_lab.models.text import TEXT_ENCODERS


def composed(tmp_path, *overrides):
    fixed = [f"paths.root_dir={tmp_path}", f"paths.output_dir={tmp_path}/run"]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[*fixed, *overrides])
    return OmegaConf.to_container(cfg, resolve=True)


def test_every_text_encoder_config_names_a_registered_encoder():
    names = {OmegaConf.load(p).name for p in (CONFIG_DIR / "text_encoder").glob("*.yaml")}
    assert names == set(TEXT_ENCODERS)


def test_digits_text_builds_its_text_unet(tmp_path):
    cfg = composed(tmp_path, "experiment=digits_text")
    assert cfg["data"]["_target_"].endswith("DigitsCaptionsDataModule")
    assert cfg["text_encoder"]["name"] == "transformer" and cfg["cond_drop_prob"] == 0.2
    net = {k: v for k, v in cfg["model"].items() if k not in TRAINING_SWITCHES}
    assert net.pop("_target_") == "diffusion_lab.models.UNetModel"
    unet = UNetModel(**net)
    assert unet.text_channels == cfg["text_encoder"]["width"] and hasattr(unet, "transformer_proj")


def test_fashion_mnist_text_takes_another_encoder(tmp_path):
    cfg = composed(tmp_path, "experiment=fashion_mnist_text", "text_encoder=t5")
    assert cfg["model"]["text_channels"] == 768 and cfg["data"]["image_size"] == 32
    assert cfg["text_encoder"]["path"].startswith(str(tmp_path))
