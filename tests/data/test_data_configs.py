"""conf/data/*.yaml: every option instantiates its datamodule, reading no data, keys documented."""

import re

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from diffusion_lab import CONFIG_DIR

CONF = CONFIG_DIR / "data"
OPTIONS = sorted(p.stem for p in CONF.glob("*.yaml"))


def test_every_datamodule_has_an_option():
    assert OPTIONS == [
        "celeba",
        "cifar10",
        "digits",
        "digits_captions",
        "fashion_mnist",
        "fashion_mnist_captions",
        "folder",
        "folder_captions",
    ]


@pytest.mark.parametrize("option", OPTIONS)
def test_option_instantiates_with_its_geometry(tmp_path, option):
    data = OmegaConf.load(CONF / f"{option}.yaml")
    cfg = OmegaConf.create({"paths": {"data_dir": str(tmp_path / "absent")}, "data": data})
    dm = instantiate(cfg.data)  # no data exists: constructing must not read any
    assert type(dm).__name__ == cfg.data._target_.rsplit(".", 1)[1]
    geometry = (dm.image_size, dm.channels, dm.num_classes)
    assert geometry == (cfg.data.image_size, cfg.data.channels, cfg.data.num_classes)
    assert dm.batch_size == cfg.data.batch_size and dm.num_workers == cfg.data.num_workers


def test_cifar10_batch_is_ddpms():
    assert OmegaConf.load(CONF / "cifar10.yaml").batch_size == 128  # Ho et al. 2020, App. B


@pytest.mark.parametrize("option", OPTIONS)
def test_every_key_has_a_comment(option):
    for line in (CONF / f"{option}.yaml").read_text().splitlines():
        if re.match(r"^\w+:", line) and not line.startswith("_target_"):
            assert "#" in line, f"{option}.yaml: {line!r} has no comment"
