"""Convert pretrained checkpoints to and from the lab's format.

    python -m diffusion_lab.convert openai <model.pt> --flags "<the README's flags>" [--out DIR]
    python -m diffusion_lab.convert diffusers <folder> [--out DIR]
    python -m diffusion_lab.convert to-diffusers <lab checkpoint or run dir> --out FOLDER

`openai` and `diffusers` write DIR/checkpoints/last.ckpt (and, for a diffusion model,
DIR/ema.safetensors): DIR then works wherever a run dir does (`sample ckpt=DIR`,
`evaluate ckpt=DIR`, `guidance.classifier=DIR`, `train ckpt_path=DIR/checkpoints/last.ckpt`).
"""

import argparse
from pathlib import Path
from typing import Any

import torch

from diffusion_lab.checkpoints import load_checkpoint
from diffusion_lab.cli import user_errors
from diffusion_lab.errors import CheckpointError, ConfigError
from diffusion_lab.interop import (
    CODEBASES,
    classifier_kwargs,
    diffusion_kwargs,
    from_diffusers,
    from_openai,
    is_classifier,
    model_kwargs,
    openai_net_config,
    parse_flags,
    timestep_sampler,
    to_diffusers,
    write_classifier_checkpoint,
    write_diffusion_checkpoint,
)

PROG = "python -m diffusion_lab.convert"
SCHEDULER_OPTIONS = ("beta_schedule", "num_train_timesteps", "prediction_type", "variance_type")


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one `error: ...` line and exit status 1, like the rest."""

    def error(self, message: str):
        raise ConfigError(f"{message} (see {self.prog} --help)")


def fresh_dir(path: Path) -> Path:
    """`path`, which must not exist or be an empty folder: nothing already written is touched."""
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise ConfigError(f"--out {path} already exists and is not empty; choose another folder")
    return path


def read_openai_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """An improved-/guided-diffusion `.pt` (a plain state dict), loaded with `weights_only=True`."""
    if not path.is_file():
        raise CheckpointError(f"no file {path}")
    state_dict = load_checkpoint(path)
    if not isinstance(state_dict, dict) or not all(
        isinstance(value, torch.Tensor) for value in state_dict.values()
    ):
        raise CheckpointError(f"{path} is not a state dict (a dict of tensors)")
    return state_dict


def convert_openai(model: Path, flags_text: str, codebase: str | None, out: Path) -> Path:
    state_dict = read_openai_state_dict(model)
    classifier = is_classifier(state_dict)
    if classifier and codebase is None:
        codebase = "guided-diffusion"  # the only one with a noisy classifier
    flags = parse_flags(flags_text, codebase)
    diffusion = diffusion_kwargs(flags)
    if classifier:
        kwargs = classifier_kwargs(flags)
        net = from_openai(state_dict, **kwargs)
        config = openai_net_config(kwargs, classifier=True)
        path = write_classifier_checkpoint(out, net, config, diffusion)
        report(path, net, f"guidance=classifier guidance.classifier={out} ckpt=<the model>")
    else:
        kwargs = model_kwargs(flags)
        net = from_openai(state_dict, **kwargs)
        config = openai_net_config(kwargs)
        path = write_diffusion_checkpoint(out, net, config, diffusion, timestep_sampler(flags))
        report(path, net, f"ckpt={out}", diffusion)
    return path


def convert_diffusers(folder: Path, out: Path, scheduler: dict[str, Any]) -> Path:
    net, config, diffusion = from_diffusers(folder, **scheduler)
    path = write_diffusion_checkpoint(out, net, config, diffusion)
    report(path, net, f"ckpt={out}", diffusion)
    return path


def convert_to_diffusers(checkpoint: Path, out: Path) -> Path:
    state = load_checkpoint(checkpoint)
    hyper_parameters = state["hyper_parameters"]
    weights = {
        name.removeprefix("net."): tensor
        for name, tensor in state["state_dict"].items()
        if name.startswith("net.")
    }
    to_diffusers(out, hyper_parameters["net"], weights, hyper_parameters["diffusion"])
    print(f"wrote {out} (UNet2DModel in unet/, DDPMScheduler in scheduler/)")
    return out


def report(
    path: Path, net: torch.nn.Module, sample_args: str, diffusion: dict | None = None
) -> None:
    parameters = sum(p.numel() for p in net.parameters())
    print(f"wrote {path}: {type(net).__name__}, {parameters:,} parameters")
    if diffusion is not None:
        print(f"diffusion: {diffusion}")
    print(f"sample with: python -m diffusion_lab.sample {sample_args}")


def build_parser() -> Parser:
    parser = Parser(prog=PROG, description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    openai = commands.add_parser("openai", help="an improved- or guided-diffusion .pt")
    openai.add_argument("model", type=Path, help="the .pt file (a state dict)")
    openai.add_argument(
        "--flags",
        required=True,
        help='the model\'s flags as its README prints them, e.g. "--image_size 64 ..."',
    )
    openai.add_argument(
        "--codebase",
        choices=CODEBASES,
        help="whose script_util reads the flags (inferred unless the two would differ)",
    )
    openai.add_argument("--out", type=Path, help="output folder (default: <model>-lab)")

    diffusers = commands.add_parser("diffusers", help="a diffusers UNet2DModel folder")
    diffusers.add_argument("folder", type=Path)
    diffusers.add_argument("--out", type=Path, help="output folder (default: <folder>-lab)")
    scheduler = diffusers.add_argument_group(
        "scheduler", "replace scheduler_config.json's values (or DDPMScheduler's defaults)"
    )
    scheduler.add_argument("--beta_schedule", choices=("linear", "squaredcos_cap_v2"))
    scheduler.add_argument("--num_train_timesteps", type=int)
    scheduler.add_argument("--prediction_type", choices=("epsilon", "sample", "v_prediction"))
    scheduler.add_argument("--variance_type")

    back = commands.add_parser("to-diffusers", help="a lab checkpoint as a diffusers folder")
    back.add_argument("checkpoint", type=Path, help="a .ckpt file or a run dir")
    back.add_argument("--out", type=Path, required=True, help="output folder (new)")
    return parser


def main(argv: list[str] | None = None) -> None:
    with user_errors():
        args = build_parser().parse_args(argv)
        if args.command == "openai":
            out = fresh_dir(args.out or args.model.with_name(f"{args.model.stem}-lab"))
            convert_openai(args.model, args.flags, args.codebase, out)
        elif args.command == "diffusers":
            out = fresh_dir(args.out or args.folder.with_name(f"{args.folder.name}-lab"))
            scheduler = {key: getattr(args, key) for key in SCHEDULER_OPTIONS}
            convert_diffusers(args.folder, out, scheduler)
        else:
            convert_to_diffusers(args.checkpoint, fresh_dir(args.out))


if __name__ == "__main__":
    main()
