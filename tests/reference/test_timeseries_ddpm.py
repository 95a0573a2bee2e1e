"""The reference time-series DDPM: the image U-Net in series layout, the ts presets, a run that
evaluates through `probekit evaluate`, and fitting to a given training set (padding, cropping,
checkpoint choice, reuse)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from probekit import get_dataset
from probekit.cli import main
from probekit.errors import UnknownNameError, ValidationError
from probekit.reference.config import PRESETS, RunConfig, UNetConfig, preset
from probekit.reference.sweep import default_measures
from probekit.reference.timeseries import (
    SINES_LENGTH,
    TS_PRESETS,
    SeriesDDPMRecipe,
    fit_series_ddpm,
    padded_length,
    series_levels,
    series_run_config,
    series_unet,
)
from probekit.reference.train import list_checkpoints, network_sample_shape, train
from probekit.reference.unet import UNet
from probekit.reports import analyze_run, read_config, read_rows
from probekit.store import load_rows

TINY = SeriesDDPMRecipe(width=8, steps=40, checkpoint_every=10, eval_samples=24, ddim_steps=5)


def test_channels_last_is_the_conv_layout_transposed():
    cfg = series_unet(32, 3, width=8)
    assert cfg.dims == 1 and cfg.channels_last
    first = dataclasses.replace(cfg, channels_last=False)
    torch.manual_seed(0)
    last_net = UNet(cfg).eval()
    first_net = UNet(first).eval()
    first_net.load_state_dict(last_net.state_dict())
    x, t = torch.randn(5, 32, 3), torch.tensor([1, 10, 100, 500, 999])
    with torch.no_grad():
        out = last_net(x, t)
        reference = first_net(x.transpose(1, 2), t).transpose(1, 2)
    assert out.shape == (5, 32, 3)
    torch.testing.assert_close(out, reference, rtol=0, atol=0)


def test_channels_last_needs_series():
    with pytest.raises(ValidationError, match="channels_last needs dims=1"):
        UNetConfig(channels_last=True).validate()


def test_presets_are_listed_and_shaped_for_sines():
    assert set(TS_PRESETS) <= set(PRESETS)
    cfg = preset("ts-sines", n=16)
    assert network_sample_shape(cfg) == (SINES_LENGTH, 1)
    assert cfg.data.dataset == "sines" and cfg.data.settings()["n_train"] == 16
    assert RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert preset("ts-sines-small", n=16).unet.base_width == 16
    splits = get_dataset("sines")(cfg.data.settings()).load()
    assert splits.train.shape == (16, SINES_LENGTH, 1)
    low, high = cfg.sampler.clip
    assert low < splits.train.min() and splits.train.max() < high
    with pytest.raises(ValidationError, match="fixed by the preset"):
        preset("ts-sines", n=16, data_options={"n_timesteps": 32})
    with pytest.raises(UnknownNameError):
        preset("ts-nope", n=16)
    measures = default_measures("ts-sines")
    assert measures.probes[0] == "nn-ratio" and measures.metrics[0] == "discriminative-score"


@pytest.mark.parametrize(("length", "padded", "levels"),
                         [(64, 64, 3), (275, 276, 3), (150, 152, 3), (30, 32, 3), (10, 10, 2),
                          (9, 10, 2), (5, 5, 1)])
def test_padding_gives_a_network_that_fits(length, padded, levels):
    assert padded_length(length) == padded
    assert series_levels(padded) == levels
    net = UNet(series_unet(padded, 2, width=8))
    with torch.no_grad():
        assert net(torch.zeros(2, padded, 2), torch.tensor([1, 2])).shape == (2, padded, 2)


def _tiny_sines_config(n: int = 8) -> RunConfig:
    return series_run_config(
        preset_name="ts-sines-small", dataset="sines", n=n, length=32, channels=1, width=8,
        steps=20, dense_every=10, dense_until=20, n_samples=16, ddim_steps=5,
        data_options={"n_timesteps": 32, "n_holdout": 16, "normalization": "none"},
    )


def test_a_run_evaluates_through_probekit_evaluate(tmp_path, capsys):
    run = tmp_path / "run"
    outcome = train(_tiny_sines_config(), run, quiet=True)
    assert outcome.checkpoints == [0, 10, 20]
    code = main(["evaluate", str(run), "--probes", "nn-ratio,subsequence-match", "--metrics",
                 "ts-fd", "--set", "subsequence-match.window=8", "--quiet"])
    assert code == 0, capsys.readouterr().err
    rows = load_rows(run / "eval")
    assert {(r["step"], r["measure"]) for r in rows if r["field"] in
            ("f_mem", "f_copied_series", "ts_fd")} == {
        (s, m) for s in (0, 10, 20) for m in ("nn-ratio", "subsequence-match", "ts-fd")}
    kept = np.load(run / "eval" / "samples" / "step-00000020.npy")
    assert kept.shape[1:] == (32, 1)  # the time-series layout, not (channels, length)
    assert (run / "eval" / "report.html").exists()


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    torch.set_num_threads(1)
    train_series = get_dataset("ar-process")(n_train=12, n_holdout=4, n_timesteps=30).load().train
    work = tmp_path_factory.mktemp("ts-ddpm")
    return train_series, work, fit_series_ddpm(train_series, work, TINY)


def test_fit_pads_trains_and_picks_the_recommended_checkpoint(fitted):
    train_series, _, run = fitted
    assert (run.length, run.padded_length) == (30, 32)
    stored = np.load(run.run_dir / "train.npy")
    np.testing.assert_array_equal(stored[:, :30], train_series)
    np.testing.assert_array_equal(stored[:, 30:], np.repeat(train_series[:, -1:], 2, axis=1))
    assert run.steps == (0, 10, 20, 30, 40) and run.last_step == 40
    analysis = analyze_run(run.run_dir / "eval", read_config(run.run_dir / "eval"),
                           read_rows(run.run_dir / "eval"))
    assert run.best_step == analysis.window.recommended_step
    quality = dict(zip(analysis.quality.steps.tolist(), analysis.quality.value, strict=True))
    f_mem_high = dict(zip(analysis.f_mem.steps.tolist(), analysis.f_mem.ci_high, strict=True))
    safe = [s for s in run.steps if f_mem_high[s] < TINY.mem_level]
    assert quality[run.best_step] == min(quality[s] for s in safe)
    assert [s for s, _ in list_checkpoints(run.run_dir)] == sorted({run.best_step, 40})


def test_samples_are_cropped_seeded_and_the_run_is_reused(fitted):
    train_series, work, run = fitted
    a = run.sample(run.last_step, 6, seed=3)
    assert a.shape == (6, 30, 1) and a.dtype == np.float32
    np.testing.assert_array_equal(a, run.sample(run.last_step, 6, seed=3))
    assert not np.array_equal(a, run.sample(run.last_step, 6, seed=4))
    again = fit_series_ddpm(train_series, work, TINY)
    assert again.seconds == 0.0
    assert dataclasses.replace(again, seconds=run.seconds) == run
