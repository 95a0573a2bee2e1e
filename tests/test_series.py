"""Series discovery: naming schemes, manifests, numeric order, step selection, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from probekit.errors import InputFileError, ValidationError
from probekit.series import (
    discover_series,
    parse_steps,
    read_reference_run,
    series_from_steps,
)


def touch(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        if name.endswith("/"):
            (folder / name.rstrip("/")).mkdir()
        else:
            (folder / name).write_bytes(b"x")


@pytest.mark.parametrize(
    ("names", "scheme_start", "adapter"),
    [
        (["ckpt-00000250.pt", "ckpt-00001000.pt", "ckpt-00000000.pt"], "ckpt-", None),
        (["Model_250", "Model_1000", "Model_0"], "Model_", None),
        (["Model_250.pt", "Model_1000.pt", "Model_0.pt"], "Model_", None),
        (["checkpoint-250/", "checkpoint-1000/", "checkpoint-0/"], "checkpoint-", "diffusers"),
        (["step-250.npy", "step-1000.npz", "step-0.npy"], "step-", "samples"),
        (["step-00250/", "step-01000/", "step-00000/"], "step-", "samples"),
    ],
)
def test_each_scheme_is_found_and_sorted_numerically(tmp_path, names, scheme_start, adapter):
    touch(tmp_path, *names, "config.json", "stats.jsonl", "notes/")
    series = discover_series(tmp_path)
    assert series.steps == [0, 250, 1000]  # numeric, not lexicographic ("1000" < "250")
    assert series.scheme.startswith(scheme_start)
    assert series.default_adapter == adapter
    assert [c.path.parent for c in series.checkpoints] == [tmp_path] * 3
    assert [c.step for c in series.checkpoints] == [int("".join(filter(str.isdigit, c.path.name)))
                                                    for c in series.checkpoints]


def test_numeric_sort_without_zero_padding(tmp_path):
    touch(tmp_path, *(f"ckpt-{s}.pt" for s in [9, 10, 100, 2, 1000000]))
    assert discover_series(tmp_path).steps == [2, 9, 10, 100, 1000000]


def test_files_and_folders_of_the_wrong_kind_are_ignored(tmp_path):
    # checkpoint-<step> must be a folder; ckpt-<step>.pt must be a file
    touch(tmp_path, "checkpoint-5", "ckpt-7.pt/", "ckpt-8.pt", ".ckpt-9.pt.tmp", "ckpt-x.pt")
    series = discover_series(tmp_path)
    assert series.steps == [8]


def test_empty_folder_is_an_error_that_lists_the_schemes(tmp_path):
    touch(tmp_path, "readme.txt")
    with pytest.raises(InputFileError, match=r"holds no checkpoints.*readme\.txt.*ckpt-<step>\.pt"):
        discover_series(tmp_path)


def test_mixed_schemes_are_an_error(tmp_path):
    touch(tmp_path, "ckpt-1.pt", "ckpt-2.pt", "step-1.npy")
    with pytest.raises(InputFileError, match=r"mixes naming schemes.*2 named 'ckpt-.*manifest"):
        discover_series(tmp_path)


@pytest.mark.parametrize("names", [["step-250.npy", "step-0250.npy"],
                                   ["step-250.npy", "step-250.npz"],
                                   ["Model_3", "Model_3.pt"]])
def test_two_entries_for_one_step_are_ambiguous(tmp_path, names):
    touch(tmp_path, *names, "step-1.npy" if names[0].startswith("step") else "Model_1")
    with pytest.raises(InputFileError, match=r"ambiguous: step (250|3) is given by"):
        discover_series(tmp_path)


def test_missing_source_and_wrong_file_type(tmp_path):
    with pytest.raises(InputFileError, match="does not exist"):
        discover_series(tmp_path / "nope")
    touch(tmp_path, "a.txt")
    with pytest.raises(InputFileError, match="manifest"):
        discover_series(tmp_path / "a.txt")


def test_json_manifest_forms_resolve_relative_paths(tmp_path):
    touch(tmp_path / "run", "a.pt", "b.pt", "c.pt")
    forms = [
        {"1000": "run/b.pt", "250": "run/a.pt", "20000": str(tmp_path / "run" / "c.pt")},
        {"checkpoints": {"1000": "run/b.pt", "250": "run/a.pt", "20000": "run/c.pt"}},
        [{"step": 1000, "path": "run/b.pt"}, {"step": 250, "path": "run/a.pt"},
         {"step": 20000, "path": "run/c.pt"}],
    ]
    for i, form in enumerate(forms):
        manifest = tmp_path / f"m{i}.json"
        manifest.write_text(json.dumps(form))
        series = discover_series(manifest)
        assert series.scheme == "manifest"
        assert series.steps == [250, 1000, 20000]
        assert [c.path.name for c in series.checkpoints] == ["a.pt", "b.pt", "c.pt"]
        assert all(c.path.exists() for c in series.checkpoints)


def test_toml_manifest(tmp_path):
    touch(tmp_path / "run", "a.pt", "b.pt")
    manifest = tmp_path / "series.toml"
    manifest.write_text('[checkpoints]\n500 = "run/b.pt"\n50 = "run/a.pt"\n')
    assert discover_series(manifest).steps == [50, 500]
    manifest.write_text('500 = "run/b.pt"\n50 = "run/a.pt"\n')
    assert discover_series(manifest).steps == [50, 500]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('{"250": "a.pt", "250": "b.pt"}', "more than once"),
        ('{"250": "a.pt", "0250": "b.pt"}', "ambiguous: step 250"),
        ('{"x": "a.pt"}', "non-negative integer; got 'x'"),
        ('[{"step": 2.5, "path": "a.pt"}]', "non-negative integer; got 2.5"),
        ('{"250": 3}', "non-empty string"),
        ('{"250": "missing.pt"}', "do not exist.*missing.pt"),
        ("{}", "lists no checkpoints"),
        ("[1, 2]", "must map steps to paths"),
        ("{not json", "cannot read manifest"),
    ],
)
def test_bad_manifests(tmp_path, text, match):
    touch(tmp_path, "a.pt", "b.pt")
    manifest = tmp_path / "m.json"
    manifest.write_text(text)
    with pytest.raises(InputFileError, match=match):
        discover_series(manifest)


def test_step_selection(tmp_path):
    touch(tmp_path, *(f"ckpt-{s:08d}.pt" for s in [0, 250, 500, 1000, 2000, 4000]))
    assert discover_series(tmp_path, steps="250,1000").steps == [250, 1000]
    assert discover_series(tmp_path, steps=[4000, 0]).steps == [0, 4000]
    assert discover_series(tmp_path, steps="500:2000").steps == [500, 1000, 2000]
    assert discover_series(tmp_path, steps=":250, 4000").steps == [0, 250, 4000]
    assert discover_series(tmp_path, steps="1001:").steps == [2000, 4000]
    with pytest.raises(ValidationError, match=r"step\(s\) 300 not in .*\[0, 250, 500"):
        discover_series(tmp_path, steps="250,300")
    with pytest.raises(ValidationError, match="matches no checkpoint"):
        discover_series(tmp_path, steps="5000:")
    with pytest.raises(ValidationError, match="inclusive range"):
        parse_steps("1e3")
    with pytest.raises(ValidationError, match="non-negative"):
        parse_steps("-5")
    with pytest.raises(ValidationError, match="comma-separated"):
        parse_steps(" ")


def test_series_from_steps():
    series = series_from_steps("500,0,250", label="pkg.mod:sample")
    assert series.steps == [0, 250, 500]
    assert {str(c.path) for c in series.checkpoints} == {"pkg.mod:sample"}
    with pytest.raises(ValidationError, match="one by one"):
        series_from_steps("0:500", label="x:y")
    with pytest.raises(ValidationError, match="must be given"):
        series_from_steps([], label="x:y")
    with pytest.raises(ValidationError, match="once"):
        series_from_steps([1, 1], label="x:y")


def test_read_reference_run(tmp_path):
    assert read_reference_run(tmp_path) is None
    (tmp_path / "config.json").write_text(json.dumps({"kind": "something-else"}))
    assert read_reference_run(tmp_path) is None
    (tmp_path / "config.json").write_text(json.dumps({"kind": "probekit-reference-run",
                                                      "dataset": "digits"}))
    assert read_reference_run(tmp_path)["dataset"] == "digits"
