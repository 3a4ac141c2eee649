"""`python -m diffusion_lab.figures`: a table on stdout, the PNG, one-line errors naming files."""

import pytest
from clitools import run_module
from matplotlib import image

from diffusion_lab.figures.__main__ import main


def test_nfe_table_and_png(write_result, tmp_path, capsys):
    write_result("0", sampler="dpm_solver", steps=10, metrics={"fid_digits": 2.0, "is_digits": 7})
    write_result("1", sampler="ddim", steps=10, metrics={"fid_digits": 4.0, "is_digits": 6})
    write_result("2", sampler="ddim", steps=5, metrics={"fid_digits": 9.0, "is_digits": 5})
    out = tmp_path / "fig.png"
    main([str(tmp_path / "multirun"), "--kind", "nfe", "--out", str(out), "--metric", "fid_digits"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["sampler", "steps", "nfe", "scale", "fid_digits"]
    assert [line.split() for line in lines[1:4]] == [
        ["ddim", "5", "5", "-", "9"],
        ["ddim", "10", "10", "-", "4"],
        ["dpm_solver", "10", "10", "-", "2"],
    ]
    assert lines[4] == f"wrote {out}"
    assert image.imread(out).shape[0] > 100


def test_guidance_table_lists_the_four_metrics(write_result, tmp_path, capsys):
    for job, w in enumerate([3.0, 1.0]):
        write_result(
            str(job),
            scale=w,
            features="inception",
            metrics={"fid": w, "is": 2 * w, "precision": 0.3, "recall": 0.4},
        )
    main([str(tmp_path / "multirun"), "--kind", "guidance", "--out", str(tmp_path / "g.png")])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "sampler",
        "steps",
        "nfe",
        "scale",
        "fid",
        "is",
        "precision",
        "recall",
    ]
    assert [line.split()[3] for line in lines[1:3]] == ["1", "3"]
    assert (tmp_path / "g.png").stat().st_size > 0


def test_bad_results_file_is_a_one_line_error(write_result, result_json, tmp_path, capsys):
    body = result_json()
    del body["nfe"]
    path = write_result("0", body=body)
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "multirun"), "--kind", "nfe", "--out", str(tmp_path / "x.png")])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == (
        f"error: {path}: missing key 'nfe'; a results.json needs metrics, nfe, sampler, features "
        "and sampler.name, sampler.steps\n"
    )
    assert not (tmp_path / "x.png").exists()


def test_module_runs_as_a_command(write_result, tmp_path):
    write_result("0", sampler="ddim", steps=5)
    out = tmp_path / "fig.png"
    proc = run_module(
        "diffusion_lab.figures", str(tmp_path / "multirun"), "--kind", "nfe", "--out", str(out)
    )
    assert proc.returncode == 0, proc.stderr
    assert "fid_digits" in proc.stdout and out.stat().st_size > 0


def test_metric_option_is_for_curve_plots_only(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path), "--kind", "guidance", "--out", "g.png", "--metric", "fid"])
    assert exit_info.value.code == 2
    assert "--metric applies to --kind nfe and fid_vs_step" in capsys.readouterr().err
