"""Class 1 of issue 16 beyond ``.npy`` samples: a corrupt ``.safetensors``, a pickled
``diffusion_pytorch_model.bin`` in a diffusers series, and a reference checkpoint that lacks
keys become one-line failure reasons (no torch or diffusers text, no advice to load pickles,
no ANSI codes, the payload never runs); the other checkpoints are evaluated, the exit code is
3, and a rerun after the fix ends like a clean run."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from .harness import run_cli

diffusers = pytest.importorskip("diffusers")
torch = pytest.importorskip("torch")


def _tiny_unet(seed):
    torch.manual_seed(seed)
    return diffusers.UNet2DModel(
        sample_size=8, in_channels=1, out_channels=1, layers_per_block=1,
        block_out_channels=(8, 16), norm_num_groups=4,
        down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
    )


class _Payload:
    def __reduce__(self):
        return (exec, ("import os; os.environ['PROBEKIT_TEST_PAYLOAD_RAN'] = '1'",))


def _rows(run):
    from probekit.store import load_rows

    return [{k: ("nan" if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
            for r in load_rows(run)]


def test_corrupt_and_unsafe_diffusers_checkpoints_fail_alone(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PROBEKIT_ALLOW_PICKLE", raising=False)
    monkeypatch.delenv("PROBEKIT_TEST_PAYLOAD_RAN", raising=False)
    torch.set_num_threads(1)
    series = tmp_path / "series"
    for step in (10, 20, 30):
        _tiny_unet(step).save_pretrained(series / f"checkpoint-{step}" / "unet")
    diffusers.DDPMScheduler(num_train_timesteps=1000, clip_sample=False).save_pretrained(
        series / "scheduler")
    pristine = tmp_path / "pristine"
    shutil.copytree(series, pristine)
    weights = series / "checkpoint-20" / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # truncated
    unsafe = series / "checkpoint-30" / "unet"
    state = dict(_tiny_unet(30).state_dict())
    state["payload"] = _Payload()
    (unsafe / "diffusion_pytorch_model.safetensors").unlink()
    torch.save(state, unsafe / "diffusion_pytorch_model.bin")
    rng = np.random.default_rng(0)
    np.save(tmp_path / "train.npy", rng.random((16, 1, 8, 8)).astype(np.float32))
    argv = ["evaluate", str(series), "--train", str(tmp_path / "train.npy"), "--probes",
            "nn-ratio", "--n-samples", "4", "--adapter-set", "num_inference_steps=2",
            "--out", str(tmp_path / "run"), "--quiet", "--no-report"]

    outcome = run_cli(argv)
    assert outcome.code == 3, outcome.stderr
    assert "Traceback" not in outcome.stderr and "\x1b" not in outcome.stderr
    assert "weights_only" not in outcome.stderr and "allow_pickle" not in outcome.stderr
    assert "unsafe serialization" not in outcome.stderr  # diffusers' log line, silenced
    assert len(outcome.lines) == 3, outcome.stderr  # two failed steps, then what to do
    step20, step30 = outcome.lines[:2]
    assert step20.startswith("probekit evaluate: step 20 failed: ")
    assert "not a valid safetensors file" in step20
    assert step30.startswith("probekit evaluate: step 30 failed: ")
    assert "refused to load" in step30 and "PROBEKIT_ALLOW_PICKLE=1" in step30
    assert "PROBEKIT_TEST_PAYLOAD_RAN" not in os.environ
    assert {r["step"] for r in _rows(tmp_path / "run")} == {10}

    # fix the files: the rerun evaluates only those and ends like a clean run
    shutil.rmtree(series)
    shutil.copytree(pristine, series)
    again = run_cli(argv)
    assert again.code == 0, again.stderr
    clean = run_cli([*argv[:-4], "--out", str(tmp_path / "clean"), "--quiet", "--no-report"])
    assert clean.code == 0, clean.stderr
    assert _rows(tmp_path / "run") == _rows(tmp_path / "clean")
    assert json.loads((tmp_path / "run" / "config.json").read_text())["steps"] == [10, 20, 30]
    from probekit.store import load_failures

    assert load_failures(tmp_path / "run") == []  # the fixed steps' failure records are gone


def test_incomplete_and_unsafe_reference_checkpoints_fail_alone(tmp_path, monkeypatch):
    import dataclasses

    from probekit.reference.config import preset
    from probekit.reference.train import list_checkpoints, train

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PROBEKIT_ALLOW_PICKLE", raising=False)
    monkeypatch.delenv("PROBEKIT_TEST_PAYLOAD_RAN", raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = preset("digits-small", n=8, steps=30, width=8)
        cfg = dataclasses.replace(
            cfg, schedule=dataclasses.replace(cfg.schedule, dense_every=10, dense_until=30),
            sampler=dataclasses.replace(cfg.sampler, ddim_steps=3, batch_size=16))
        run = tmp_path / "run"
        train(cfg, run, quiet=True)
        ckpts = dict(list_checkpoints(run))
        assert len(ckpts) >= 3, ckpts
        steps = sorted(ckpts)
        keyless, unsafe = ckpts[steps[1]], ckpts[steps[2]]
        pristine = {p: p.read_bytes() for p in (keyless, unsafe)}
        ckpt = torch.load(keyless, weights_only=True)
        del ckpt["config"]["preset"]  # the KeyError: 'preset' of issue 16
        torch.save(ckpt, keyless)
        ckpt = torch.load(unsafe, weights_only=True)
        ckpt["extra"] = _Payload()
        torch.save(ckpt, unsafe)
        argv = ["evaluate", str(run), "--probes", "nn-ratio", "--n-samples", "8", "--out",
                str(tmp_path / "eval"), "--quiet", "--no-report"]
        outcome = run_cli(argv)
        assert outcome.code == 3, outcome.stderr
        assert "Traceback" not in outcome.stderr and "\x1b" not in outcome.stderr
        assert "KeyError" not in outcome.stderr and "weights_only" not in outcome.stderr
        lines = outcome.lines
        assert len(lines) == 3, outcome.stderr
        assert lines[0].startswith(f"probekit evaluate: step {steps[1]} failed: ")
        assert "is incomplete: it lacks config.preset" in lines[0]
        assert lines[1].startswith(f"probekit evaluate: step {steps[2]} failed: ")
        assert "refused to load" in lines[1] and "PROBEKIT_ALLOW_PICKLE=1" in lines[1]
        assert "PROBEKIT_TEST_PAYLOAD_RAN" not in os.environ
        evaluated = {r["step"] for r in _rows(tmp_path / "eval")}
        assert evaluated == set(steps) - {steps[1], steps[2]}
        for path, data in pristine.items():  # fixed: the rerun evaluates only those two
            path.write_bytes(data)
        assert run_cli(argv).code == 0
        assert {r["step"] for r in _rows(tmp_path / "eval")} == set(steps)
    finally:
        torch.set_num_threads(threads)
