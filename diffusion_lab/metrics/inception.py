"""The standard FID Inception-v3 (TF 2015-12-05 weights, torch-fidelity's `inception-v3-compat`).

Weights are looked up before anything can try the network: a configured path, else torch's hub
cache; only then one download with a timeout, announced with its source and destination. Missing
weights raise `WeightsNotFoundError`.
"""

import hashlib
import logging
import os
import urllib.request
from pathlib import Path

import torch
from torch_fidelity.feature_extractor_inceptionv3 import (
    URL_INCEPTION_V3,
    FeatureExtractorInceptionV3,
)

from diffusion_lab.errors import WeightsNotFoundError
from diffusion_lab.metrics.features import FeatureExtractor, Features, to_uint8

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = URL_INCEPTION_V3
DOWNLOAD_TIMEOUT_S = 10.0  # per socket operation: a network that never answers fails, not hangs

log = logging.getLogger(__name__)


def inception_weights_path(configured: str | os.PathLike | None = None) -> Path:
    """The weights: `configured` (`inception_weights=`), else $TORCH_HOME/hub/checkpoints/."""
    if configured is not None:
        path = Path(configured).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(
                f"inception_weights={path} does not exist; put {INCEPTION_FILE} "
                f"(from {INCEPTION_URL}) there, or set it to null to use torch's hub cache"
            )
        return path
    path = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE
    if not path.is_file():
        log.warning(
            "downloading the FID Inception weights (92 MB) from %s to %s", INCEPTION_URL, path
        )
        try:
            download(INCEPTION_URL, path)
        except OSError as err:
            raise WeightsNotFoundError(
                f"Inception weights {INCEPTION_FILE} not in {path.parent} and the download "
                f"failed ({err}); copy it there (from {INCEPTION_URL}) "
                "or set inception_weights=<path>"
            ) from None
    return path


def download(url: str, path: Path) -> None:
    """Fetches `url` to `path` atomically; checks the name's sha256 prefix, as torch.hub does."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    sha256 = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            with open(partial, "wb") as f:
                while chunk := response.read(1 << 20):
                    sha256.update(chunk)
                    f.write(chunk)
        expected = path.stem.rsplit("-", 1)[-1]
        if not sha256.hexdigest().startswith(expected):
            raise OSError(f"checksum mismatch: sha256 {sha256.hexdigest()[:8]} != {expected}")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


class InceptionFeatures(FeatureExtractor):
    """2048-d pool features and 1008 unbiased logits of the FID Inception-v3 (Heusel et al. 2017).

    Images of any size are resized to 299x299 with TF1-compatible bilinear interpolation by
    torch-fidelity; grayscale images are repeated to three channels.
    """

    name = "inception"
    num_features = 2048

    def __init__(self, weights_path: str | os.PathLike | None = None):
        super().__init__()
        path = inception_weights_path(weights_path)
        self.weights_file = path
        # torch-fidelity unpickles with weights_only=False: first check the file holds only tensors.
        torch.load(path, map_location="cpu", weights_only=True)
        self.net = FeatureExtractorInceptionV3(
            "inception-v3-compat", ["2048", "logits_unbiased"], feature_extractor_weights_path=path
        )
        self.eval()

    def forward(self, images: torch.Tensor) -> Features:
        x = to_uint8(images)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        features, logits = self.net(x)
        return Features(features=features, logits=logits)
