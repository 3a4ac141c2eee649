"""Parameter counts of the U-Net presets: `python -m diffusion_lab.models.summary`."""

from diffusion_lab.models.presets import build_preset

# Each preset's natural dataset: (name, image_size, channels).
NATURAL_DATA = {
    "tiny": ("digits", 8, 1),
    "small": ("fashion_mnist", 32, 1),
    "ddpm_cifar10": ("cifar10", 32, 3),
    "iddpm_cifar10": ("cifar10", 32, 3),
    "adm_64": ("celeba", 64, 3),
}


def parameter_count(name: str, learn_sigma: bool = False) -> int:
    """Parameters of a preset on its natural dataset (built on the meta device: no memory)."""
    _, image_size, channels = NATURAL_DATA[name]
    model = build_preset(name, image_size, channels, device="meta", learn_sigma=learn_sigma)
    return sum(p.numel() for p in model.parameters())


def main() -> None:
    print(f"{'preset':<15}{'data':<24}{'fixed sigma':>14}{'learned sigma':>16}")
    for name, (data, image_size, channels) in NATURAL_DATA.items():
        shape = f"{data} {image_size}x{image_size}x{channels}"
        fixed, learned = parameter_count(name), parameter_count(name, learn_sigma=True)
        print(f"{name:<15}{shape:<24}{fixed:>14,}{learned:>16,}")


if __name__ == "__main__":
    main()
