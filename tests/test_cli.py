"""The CLI: every bad input gets one line on stderr, exit code 2, no traceback, no output file."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from probekit.cli import build_parser, main


@pytest.fixture
def arrays(tmp_path):
    rng = np.random.default_rng(0)
    train = rng.normal(size=(40, 1, 6, 6)).astype(np.float32)
    samples = np.concatenate([train[:10] + 0.01, rng.normal(size=(10, 1, 6, 6))])
    np.save(tmp_path / "train.npy", train)
    np.save(tmp_path / "samples.npy", samples.astype(np.float32))
    return tmp_path


def run_probe(tmp_path, *extra, train="train.npy", samples="samples.npy"):
    return main(["probe", "nn-ratio", "--train", str(tmp_path / train),
                 "--samples", str(tmp_path / samples), "--json", str(tmp_path / "out.json"),
                 *extra])


def test_probe_writes_headline_ci_and_provenance(arrays, capsys):
    assert run_probe(arrays) == 0
    out = json.loads((arrays / "out.json").read_text())
    assert out["f_mem"] == pytest.approx(0.5)
    assert out["ci_low"] <= out["f_mem"] <= out["ci_high"]
    assert out["values"]["n_memorized"] == 10
    prov = out["provenance"]
    assert prov["measure"] == "nn-ratio" and prov["plugin"] == "nn-ratio"
    assert prov["settings"]["k"] == pytest.approx(1 / 3)
    assert prov["n_reference"] == 40 and prov["n_samples"] == 20
    assert "f_mem = 0.5" in capsys.readouterr().out


def test_settings_are_coerced(arrays):
    assert run_probe(arrays, "--set", "k=0.9", "--set", "seed=4") == 0
    out = json.loads((arrays / "out.json").read_text())
    assert out["provenance"]["settings"]["k"] == 0.9 and out["provenance"]["seed"] == 4


def _write_bad(tmp_path, case):
    rng = np.random.default_rng(1)
    if case == "missing file":
        return ("no_such.npy", "samples.npy"), "does not exist"
    if case == "unreadable file":
        (tmp_path / "bad.npy").write_bytes(b"not a numpy file")
        return ("bad.npy", "samples.npy"), "cannot read"
    if case == "unsupported type":
        (tmp_path / "train.txt").write_text("1 2 3")
        return ("train.txt", "samples.npy"), "unsupported file type"
    if case == "wrong number of dimensions":
        np.save(tmp_path / "flat.npy", rng.normal(size=40))
        return ("flat.npy", "samples.npy"), "2, 3 or 4 dimensions"
    if case == "nan":
        s = np.load(tmp_path / "samples.npy")
        s[3, 0, 0, 0] = np.nan
        np.save(tmp_path / "nan.npy", s)
        return ("train.npy", "nan.npy"), "must be finite; got NaN or inf in 1 of 20"
    if case == "inf in train":
        t = np.load(tmp_path / "train.npy")
        t[0, 0, 1, 1] = np.inf
        np.save(tmp_path / "inf.npy", t)
        return ("inf.npy", "samples.npy"), "must be finite"
    if case == "one training sample":
        np.save(tmp_path / "one.npy", rng.normal(size=(1, 1, 6, 6)))
        return ("one.npy", "samples.npy"), "at least 2 samples"
    if case == "shape mismatch":
        np.save(tmp_path / "other.npy", rng.normal(size=(5, 1, 7, 7)))
        return ("train.npy", "other.npy"), "same per-sample shape"
    if case == "npz with several arrays":
        np.savez(tmp_path / "two.npz", a=np.zeros((3, 2)), b=np.zeros((3, 2)))
        return ("two.npz", "samples.npy"), "holds 2 arrays"
    raise AssertionError(case)


BAD_CASES = ["missing file", "unreadable file", "unsupported type", "wrong number of dimensions",
             "nan", "inf in train", "one training sample", "shape mismatch",
             "npz with several arrays"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_is_one_clear_line(arrays, capsys, case):
    (train, samples), message = _write_bad(arrays, case)
    assert run_probe(arrays, train=train, samples=samples) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    assert not (arrays / "out.json").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["probe", "nn-ratoi"], "Did you mean 'nn-ratio'?"),
    (["probe", "nn-ratio", "--set", "kk=0.5"], "unknown option 'kk' (known options:"),
    (["probe", "nn-ratio", "--set", "k=2"], "option 'k' input should be less than 1"),
    (["probe", "nn-ratio", "--set", "k"], "--set must be KEY=VALUE"),
    (["probe", "nn-ratio", "--frobnicate"], "unrecognized arguments: --frobnicate"),
])
def test_bad_names_and_options(arrays, capsys, args, message):
    argv = [*args[:2], "--train", str(arrays / "train.npy"), "--samples",
            str(arrays / "samples.npy"), "--json", str(arrays / "out.json"), *args[2:]]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1, err
    assert not (arrays / "out.json").exists()


def test_image_folder_input(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for folder, n in (("train", 12), ("samples", 4)):
        (tmp_path / folder).mkdir()
        for i in range(n):
            pixels = (rng.random((8, 8)) * 255).astype(np.uint8)
            Image.fromarray(pixels, mode="L").save(tmp_path / folder / f"{i:03d}.png")
    # the samples are exact copies of four training images
    for i in range(4):
        (tmp_path / "samples" / f"{i:03d}.png").write_bytes(
            (tmp_path / "train" / f"{i:03d}.png").read_bytes())
    assert main(["probe", "nn-ratio", "--train", str(tmp_path / "train"), "--samples",
                 str(tmp_path / "samples")]) == 0
    assert "f_mem = 1" in capsys.readouterr().out


def test_npz_key_and_list(arrays, capsys):
    np.savez(arrays / "both.npz", train=np.load(arrays / "train.npy"),
             samples=np.load(arrays / "samples.npy"))
    assert main(["probe", "nn-ratio", "--train", f"{arrays / 'both.npz'}:train",
                 "--samples", f"{arrays / 'both.npz'}:samples"]) == 0
    assert main(["list", "probes"]) == 0
    assert "nn-ratio" in capsys.readouterr().out
    assert main(["plugins", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert {"name": "nn-ratio", "status": "loaded"}.items() <= next(
        r for r in records if r["name"] == "nn-ratio").items()


def test_every_command_has_help(capsys):
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    assert {"plugins", "list", "probe"} <= set(commands)
    for name in commands:
        assert main([name, "--help"]) == 0
        assert "usage:" in capsys.readouterr().out
