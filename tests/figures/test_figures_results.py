"""Loading evaluate's results.json files: grouping, order, and errors that name the file."""

import pytest

from diffusion_lab.errors import DataNotFoundError
from diffusion_lab.figures import (
    ResultsError,
    by_sampler,
    curve_metrics,
    format_table,
    load_result,
    load_results,
)

# (sampler, steps, nfe, fid): job dirs in Hydra's order, not NFE order
SWEEP = [
    ("heun", 10, 19, 4.0),
    ("ddim", 50, 50, 3.0),
    ("dpm_solver", 5, 5, 9.0),
    ("ddim", 5, 5, 20.0),
    ("heun", 5, 9, 8.0),
    ("ddim", 10, 10, 11.0),
    ("dpm_solver", 10, 10, 5.0),
]


@pytest.fixture
def sweep(write_result, tmp_path):
    for job, (name, steps, nfe, fid) in enumerate(SWEEP):
        write_result(str(job), sampler=name, steps=steps, nfe=nfe, metrics={"fid_digits": fid})
    return tmp_path / "multirun"


def test_results_grouped_by_sampler_and_sorted_by_nfe(sweep):
    groups = by_sampler(load_results([sweep]))
    assert list(groups) == ["ddim", "dpm_solver", "heun"]
    assert [(r.steps, r.nfe, r.metrics["fid_digits"]) for r in groups["ddim"]] == [
        (5, 5, 20.0),
        (10, 10, 11.0),
        (50, 50, 3.0),
    ]
    assert [r.nfe for r in groups["dpm_solver"]] == [5, 10]
    assert [(r.nfe, r.metrics["fid_digits"]) for r in groups["heun"]] == [(9, 8.0), (19, 4.0)]


def test_result_fields_follow_the_schema(write_result):
    metrics = {"fid": 3.5, "is": 9, "nll_bpd": None}  # null: a metric that was not computed
    path = write_result("0", sampler="ddim", steps=20, scale=2.5, metrics=metrics)
    result = load_result(path)
    assert (result.path, result.sampler, result.steps, result.nfe) == (path, "ddim", 20, 20)
    assert result.metrics == {"fid": 3.5, "is": 9.0}
    assert (result.guidance_scale, result.features) == (2.5, "digits")


def test_files_and_dirs_both_accepted(sweep):
    files = sorted(sweep.glob("*/results.json"))
    assert len(load_results(files[:2] + [sweep / "5"])) == 3


@pytest.mark.parametrize("key", ["metrics", "nfe", "sampler", "features"])
def test_missing_top_level_key_names_file_and_key(write_result, result_json, key):
    body = result_json()
    del body[key]
    path = write_result("3", body=body)
    with pytest.raises(ResultsError, match=f"{path}: missing key '{key}'"):
        load_results([path.parent.parent])


@pytest.mark.parametrize("key", ["name", "steps"])
def test_missing_sampler_key_names_file(write_result, result_json, key):
    body = result_json()
    del body["sampler"][key]
    path = write_result("0", body=body)
    with pytest.raises(ResultsError, match=f"{path}: missing key 'sampler.{key}'"):
        load_result(path)


def test_scores_of_given_samples_are_refused_with_the_reason(write_result, result_json):
    body = result_json()  # what evaluate writes for samples=<npz>: nothing about the drawing
    body.update(nfe=None, sampler=None, guidance=None, seconds_per_image=None)
    path = write_result("0", body=body)
    with pytest.raises(ResultsError, match=f"{path}: scores of given samples"):
        load_result(path)


def test_bad_json_names_file(tmp_path):
    path = tmp_path / "results.json"
    path.write_text('{"metrics": ')
    with pytest.raises(ResultsError, match=f"{path}: not valid JSON"):
        load_result(path)


def test_no_results_says_where_it_looked(tmp_path):
    with pytest.raises(DataNotFoundError, match=f"no results.json under {tmp_path}"):
        load_results([tmp_path])
    with pytest.raises(DataNotFoundError, match="does not exist"):
        load_results([tmp_path / "missing"])


def test_curve_metrics_are_common_and_skip_standard_errors(write_result):
    a = write_result("0", metrics={"fid": 1, "is": 2, "is_std": 0.1, "nll_bpd_stderr": 0.01})
    b = write_result("1", metrics={"fid": 1, "is": 2, "is_std": 0.1, "precision": 0.5})
    assert curve_metrics([load_result(a), load_result(b)]) == ["fid", "is"]


def test_table_rows_in_sampler_then_nfe_order(sweep):
    lines = format_table(load_results([sweep]), ["fid_digits"]).splitlines()
    assert lines[0].split() == ["sampler", "steps", "nfe", "scale", "fid_digits"]
    rows = [line.split() for line in lines[1:]]
    assert [(r[0], int(r[2]), float(r[4])) for r in rows] == [
        ("ddim", 5, 20.0),
        ("ddim", 10, 11.0),
        ("ddim", 50, 3.0),
        ("dpm_solver", 5, 9.0),
        ("dpm_solver", 10, 5.0),
        ("heun", 9, 8.0),
        ("heun", 19, 4.0),
    ]


def test_table_names_file_lacking_a_metric(write_result):
    path = write_result("0", metrics={"fid": 1.0})
    with pytest.raises(ResultsError, match=f"{path}: no metric 'recall'"):
        format_table([load_result(path)], ["fid", "recall"])
