"""How a training run lives: its run dir and config, resuming, stop signals, SLURM requeues."""
