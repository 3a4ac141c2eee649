"""Export the EMA network of a checkpoint to safetensors, and load it back.

`python -m diffusion_lab.export <checkpoint or run dir> [out.safetensors]`. The file holds the
network's tensors and, as metadata, the run's hyperparameters (JSON): no pickle anywhere.
"""

import argparse
import json
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import load_file, save_file

from diffusion_lab.checkpoints import load_checkpoint, resolve_checkpoint
from diffusion_lab.cli import user_errors
from diffusion_lab.targets import MODEL_PARTS, check_targets

PREFIX = "net."


def export_ema(checkpoint: str | Path, path: str | Path) -> Path:
    """Writes the network weights stored in `checkpoint` (EMA when trained with it) to `path`."""
    state = load_checkpoint(checkpoint)
    weights = {
        name[len(PREFIX) :]: tensor.contiguous()
        for name, tensor in state["state_dict"].items()
        if name.startswith(PREFIX)
    }
    metadata = {"hyper_parameters": json.dumps(state["hyper_parameters"])}
    save_file(weights, str(path), metadata=metadata)
    return Path(path)


def load_exported(path: str | Path):
    """The `DiffusionModule` (network and diffusion process) of an exported file, in eval mode."""
    from diffusion_lab.lightning import DiffusionModule

    with safe_open(str(path), framework="pt") as f:
        hyper_parameters = json.loads(f.metadata()["hyper_parameters"])
    check_targets(hyper_parameters, MODEL_PARTS, str(path), "hyper_parameters")
    module = DiffusionModule(**hyper_parameters)
    module.net.load_state_dict(load_file(str(path)))
    return module.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a .ckpt file or a run dir")
    parser.add_argument("out", nargs="?", help="output file (default: <run dir>/ema.safetensors)")
    args = parser.parse_args()
    with user_errors():
        checkpoint = resolve_checkpoint(args.checkpoint)
        out = args.out or checkpoint.parent.parent / "ema.safetensors"
        print(f"wrote {export_ema(checkpoint, out)}")


if __name__ == "__main__":
    main()
