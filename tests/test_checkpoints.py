"""Checkpoints load safely: tensors and plain values only, clear errors for bad files."""

import pickle
import subprocess
import sys
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


WRITER = """
import io, sys, time, torch
from diffusion_lab.checkpoints import AtomicCheckpointIO

writer, path = AtomicCheckpointIO(), sys.argv[1]
writer.save_checkpoint({"global_step": 1, "w": torch.ones(1000)}, path)
save = torch.save

def half_then_stall(obj, f, *args, **kwargs):  # a write the kill interrupts
    buffer = io.BytesIO()
    save(obj, buffer)
    f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    f.flush()
    print("writing", flush=True)
    time.sleep(120)

torch.save = half_then_stall
writer.save_checkpoint({"global_step": 2, "w": torch.zeros(1000)}, path)
"""


def test_a_kill_during_the_write_leaves_the_previous_checkpoint_readable(tmp_path):
    path = tmp_path / "last.ckpt"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout.readline().strip() == "writing"  # half of step 2's file is on disk
    writer.kill()  # SIGKILL: no handler, no cleanup
    writer.wait(30)
    previous = load_checkpoint(path)
    assert previous["global_step"] == 1 and torch.equal(previous["w"], torch.ones(1000))
