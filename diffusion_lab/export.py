"""Export the EMA network of a checkpoint to safetensors.

`python -m diffusion_lab.export <checkpoint or run dir> [out.safetensors]`. The file holds the
network's tensors and, as metadata, the run's hyperparameters (JSON): no pickle anywhere.
`sample ckpt=`, `evaluate ckpt=` and `diffusion_lab.checkpoints.load_module` read it.
"""

import argparse
import json
import os
from pathlib import Path

from safetensors.torch import save_file

from diffusion_lab.checkpoints import lab_checkpoint, resolve_checkpoint
from diffusion_lab.cli import user_errors
from diffusion_lab.stopping import stop_when_told

PREFIX = "net."


def export_ema(checkpoint: str | Path, path: str | Path) -> Path:
    """Writes the network weights stored in `checkpoint` (EMA when trained with it) to `path`."""
    state = lab_checkpoint(checkpoint)
    weights = {
        name[len(PREFIX) :]: tensor.contiguous()
        for name, tensor in state["state_dict"].items()
        if name.startswith(PREFIX)
    }
    metadata = {"hyper_parameters": json.dumps(state["hyper_parameters"])}
    save_file(weights, str(path), metadata=metadata)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)  # the writer makes it private; an export is for sharing
    return Path(path)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m diffusion_lab.export", description=__doc__.splitlines()[0]
    )
    parser.add_argument("checkpoint", help="a .ckpt file or a run dir")
    parser.add_argument("out", nargs="?", help="output file (default: <run dir>/ema.safetensors)")
    args = parser.parse_args()
    with stop_when_told(), user_errors():
        checkpoint = resolve_checkpoint(args.checkpoint)
        out = args.out or checkpoint.parent.parent / "ema.safetensors"
        print(f"wrote {export_ema(checkpoint, out)}")


if __name__ == "__main__":
    main()
