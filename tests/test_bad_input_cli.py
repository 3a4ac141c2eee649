"""Bad configuration values stop the run with one line naming the key, before any data is read."""

import pytest
from test_train_cli import run_train


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("sampler.steps=0", "sampler.steps"),
        ("sampler.steps=5000", "sampler.steps"),
        ("schedule.name=quadratic", "schedule"),
        ("data.image_size=10", "image_size"),
        ("model.attention_resolutions=[3]", "attention_resolutions"),
    ],
)
def test_invalid_value_is_named_before_data_is_read(tmp_path, override, key):
    # CIFAR-10 (the default data) is missing: an error about the value proves no data was read
    result = run_train(
        "model=tiny",
        "debug=fast",
        override,
        f"paths.data_dir={tmp_path / 'no-data'}",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and key in error[0], result.stderr[-2000:]
    assert "no-data" not in error[0]


def test_resume_without_checkpoint_fails_loudly(tmp_path):
    (tmp_path / "config.yaml").write_text("seed: 0\n")
    result = run_train(f"resume={tmp_path}", f"hydra.run.dir={tmp_path / 'new'}")
    assert result.returncode == 1
    assert "no checkpoint" in result.stderr and "Traceback" not in result.stderr
