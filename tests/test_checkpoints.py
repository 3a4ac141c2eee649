"""Checkpoints load safely: tensors and plain values only, clear errors for bad files."""

import pickle
from pathlib import Path

import pytest
import torch

from diffusion_lab.checkpoints import load_checkpoint, resolve_checkpoint
from diffusion_lab.errors import CheckpointError


class RunsCodeWhenUnpickled:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_checkpoint_with_code_payload_is_refused_and_code_does_not_run(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": RunsCodeWhenUnpickled(marker)}, path)
    with pytest.raises(CheckpointError, match="evil.ckpt"):
        load_checkpoint(path)
    assert not marker.exists()
    pickle.loads(pickle.dumps(RunsCodeWhenUnpickled(marker)))  # the payload is real: it would run
    assert marker.exists()


def test_truncated_checkpoint_names_the_file(tmp_path):
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1000)}}, path)
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(CheckpointError, match="last.ckpt.*(truncated|corrupt)"):
        load_checkpoint(path)


def test_run_dir_resolves_to_last_checkpoint_or_fails_loudly(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        resolve_checkpoint(tmp_path)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"")
    assert resolve_checkpoint(tmp_path) == tmp_path / "checkpoints" / "last.ckpt"
