"""The Inception-v3 path, offline: random weights run end to end; missing weights fail fast."""

import math
import socket
import time

import pytest
import torch
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

from diffusion_lab.errors import WeightsNotFoundError
from diffusion_lab.metrics import build_feature_extractor, inception
from diffusion_lab.metrics.inception import INCEPTION_FILE


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory) -> str:
    """A state dict with the real file's keys and shapes but random values (He-scaled convs)."""
    path = tmp_path_factory.mktemp("inception") / INCEPTION_FILE
    empty = path.with_name("empty.pth")
    torch.save({}, empty)
    load = FeatureExtractorInceptionV3.load_state_dict
    FeatureExtractorInceptionV3.load_state_dict = lambda self, state_dict: None
    try:
        state = FeatureExtractorInceptionV3(
            "x", ["2048"], feature_extractor_weights_path=empty
        ).state_dict()
    finally:
        FeatureExtractorInceptionV3.load_state_dict = load
    g = torch.Generator().manual_seed(0)
    for key, value in state.items():
        if key.endswith("weight") and value.dim() > 1:
            fan_in = value[0].numel()
            state[key] = torch.randn(value.shape, generator=g) * math.sqrt(2 / fan_in)
        elif value.is_floating_point():
            state[key] = torch.rand(value.shape, generator=g) * 0.2 + (
                0.9 if "var" in key else -0.1
            )
    torch.save(state, path)
    return str(path)


def test_inception_features_and_logits_match_torch_fidelity_on_random_weights(random_weights):
    extractor = build_feature_extractor("inception", inception_weights=random_weights)
    extractor.train()  # as a LightningModule would: must stay in eval mode
    assert not extractor.net.training and extractor.num_features == 2048
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        ours = extractor(images)
        reference = FeatureExtractorInceptionV3(
            "inception-v3-compat",
            ["2048", "logits_unbiased"],
            feature_extractor_weights_path=random_weights,
        )
        features, logits = reference(((images + 1) * 127.5).round().to(torch.uint8))
    assert ours.features.shape == (2, 2048) and ours.logits.shape == (2, 1008)
    assert ours.features.std() > 0 and torch.isfinite(ours.logits).all()
    torch.testing.assert_close(ours.features, features)
    torch.testing.assert_close(ours.logits, logits)


def test_missing_configured_weights_fail_at_once(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="inception_weights=.*nope.pth"):
        build_feature_extractor("inception", inception_weights=tmp_path / "nope.pth")


def test_missing_weights_without_network_fail_within_seconds(tmp_path, monkeypatch, caplog):
    # A server that accepts connections and never answers: the worst network; it must not hang us.
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    for proxy in (
        "http_proxy",
        "https_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ):
        monkeypatch.delenv(proxy, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(
        inception, "INCEPTION_URL", f"http://127.0.0.1:{server.getsockname()[1]}/w.pth"
    )
    monkeypatch.setattr(inception, "DOWNLOAD_TIMEOUT_S", 1.0)
    start = time.monotonic()
    try:
        with pytest.raises(WeightsNotFoundError) as error:
            build_feature_extractor("inception")
    finally:
        server.close()
    assert time.monotonic() - start < 5
    message = str(error.value)
    assert "\n" not in message and INCEPTION_FILE in message
    assert str(tmp_path / "hub" / "checkpoints") in message
    assert list((tmp_path / "hub" / "checkpoints").iterdir()) == []  # no partial file left behind
    # the attempt said what it fetched, from where, to where
    assert inception.INCEPTION_URL in caplog.text and str(tmp_path / "hub") in caplog.text


def test_weights_in_torch_hub_cache_are_found_without_configuration(tmp_path, monkeypatch):
    cached = tmp_path / "hub" / "checkpoints" / INCEPTION_FILE
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(inception, "download", pytest.fail)  # found, so never downloaded
    assert inception.inception_weights_path() == cached
