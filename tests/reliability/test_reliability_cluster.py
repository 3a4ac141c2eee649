"""Cluster configuration: the SLURM launcher composes into valid submitit parameters, trainer=ddp
takes its process layout from SLURM, W&B groups the jobs of a sweep, last.ckpt ends at the end."""

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf
from reliability.reltools import checkpoint, config, run_command

from diffusion_lab import CONFIG_DIR
from diffusion_lab.runs.fit import is_rank_zero, wandb_group
from diffusion_lab.train import train


def compose_train(*overrides: str, hydra: bool = False):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=hydra)


def test_slurm_launcher_composes_into_submitit_parameters(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from submitit.slurm.slurm import SlurmExecutor, _make_sbatch_string

    cfg = compose_train(
        "hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.gpus_per_node=4",
        "hydra.launcher.nodes=2", hydra=True,
    )  # fmt: skip
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    raw = OmegaConf.to_container(launcher)
    for key in ("submitit_folder", "name", "_target_"):  # these need a running Hydra job
        raw.pop(key)
    params = OmegaConf.to_container(OmegaConf.create(raw), resolve=True)
    assert (params["partition"], params["nodes"], params["tasks_per_node"]) == ("gpu", 2, 4)
    assert params["signal_delay_s"] > 0 and params["max_num_timeout"] == 0  # the lab requeues
    # the sbatch script submitit writes from them (it rejects any key it does not know)
    params.pop("max_num_timeout")  # the executor's, not sbatch's
    names = SlurmExecutor._equivalence_dict()
    sbatch = _make_sbatch_string(
        command="python -m diffusion_lab.train",
        folder=tmp_path,
        **{names.get(k, k): v for k, v in params.items() if v is not None},
    )
    for line in ("--partition=gpu", "--nodes=2", "--ntasks-per-node=4", "--gpus-per-node=4"):
        assert f"#SBATCH {line}" in sbatch
    # USR2 to every task (no "B:"): the signal the lab's stop handler listens to
    assert f"#SBATCH --signal=USR2@{params['signal_delay_s']}" in sbatch


def test_ddp_trainer_takes_devices_and_nodes_from_slurm(monkeypatch):
    assert (compose_train("trainer=ddp").trainer.devices, 1) == (-1, 1)
    monkeypatch.setenv("SLURM_NTASKS_PER_NODE", "4")
    monkeypatch.setenv("SLURM_NNODES", "2")
    trainer = compose_train("trainer=ddp").trainer
    assert (trainer.devices, trainer.num_nodes) == (4, 2)


def test_wandb_groups_the_jobs_of_a_sweep():
    sweep = "logs/quickstart/multiruns/2026-01-02_03-04-05"
    cfg = compose_train(
        "experiment=quickstart", "hydra.mode=MULTIRUN", f"hydra.sweep.dir={sweep}", hydra=True
    )
    assert wandb_group(cfg) == "quickstart"  # outside a Hydra job: the task name
    HydraConfig.instance().set_config(cfg)
    try:
        assert wandb_group(cfg) == "quickstart/2026-01-02_03-04-05"
    finally:
        HydraConfig.instance().cfg = None


def test_last_checkpoint_is_written_at_the_final_step(tmp_path):
    periodic = ["trainer.max_steps=6", "callbacks.last_checkpoint.every_n_train_steps=4"]
    train(config(tmp_path, *periodic))
    assert checkpoint(tmp_path / "run")["global_step"] == 6
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == [
        "best.ckpt",
        "last.ckpt",
    ]


@pytest.mark.parametrize(
    ("env", "zero"),
    [
        ({}, True),
        ({"LOCAL_RANK": "1"}, False),  # a process started by Lightning's launcher
        ({"SLURM_PROCID": "0", "LOCAL_RANK": "1"}, False),  # ... inside a SLURM allocation
        ({"RANK": "4", "LOCAL_RANK": "0"}, False),  # torchrun, second node
        ({"SLURM_PROCID": "0", "RANK": "0", "LOCAL_RANK": "0", "NODE_RANK": "0"}, True),
    ],
)
def test_only_global_rank_zero_writes(monkeypatch, env, zero):
    for key in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert is_rank_zero() == zero


def test_submitit_local_multirun_runs_each_job_in_its_own_dir_and_wandb_run(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    wandb = ["logger=wandb", "logger.wandb.offline=true"]
    result = run_command("-m", "hydra/launcher=submitit_local", "seed=0,1", *wandb, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    [sweep] = (tmp_path / "logs" / "quickstart" / "multiruns").iterdir()
    ids = set()
    for job in ("0", "1"):
        assert checkpoint(sweep / job)["global_step"] == 4
        [run] = (sweep / job / "wandb").glob("offline-run-*")
        ids.add(run.name.rsplit("-", 1)[1])
        assert f"seed: {job}" in (sweep / job / "config.yaml").read_text()
    assert len(ids) == 2  # a W&B run of its own for each job
