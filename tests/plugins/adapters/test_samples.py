"""samples adapter: first n stored samples per step, any supported file type, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from probekit import Checkpoint, get_adapter
from probekit.errors import InputFileError, ValidationError
from probekit.series import discover_series


def test_reads_each_step_file_type(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {s: rng.normal(size=(6, 1, 4, 4)).astype(np.float32) for s in (0, 10, 20)}
    np.save(tmp_path / "step-0.npy", arrays[0])
    np.savez(tmp_path / "step-10.npz", samples=arrays[10])
    folder = tmp_path / "step-20"
    folder.mkdir()
    pixels = (rng.random((6, 4, 4)) * 255).astype(np.uint8)
    for i, img in enumerate(pixels):
        Image.fromarray(img).save(folder / f"{i:03d}.png")
    adapter = get_adapter("samples")()
    handles = {c.step: adapter.load(c) for c in discover_series(tmp_path).checkpoints}
    np.testing.assert_array_equal(handles[0].generate(4, seed=0), arrays[0][:4])
    np.testing.assert_array_equal(handles[10].generate(6, seed=1), arrays[10])
    np.testing.assert_allclose(handles[20].generate(6, seed=0)[:, 0], pixels / 255.0)
    assert handles[0].n_available == 6
    assert not adapter.can_predict_noise
    with pytest.raises(NotImplementedError, match="cannot predict noise"):
        handles[0].predict_noise(arrays[0], np.zeros(6, int))


def test_the_seed_cannot_change_stored_samples(tmp_path):
    np.save(tmp_path / "step-1.npy", np.arange(8.0).reshape(2, 1, 2, 2))
    handle = get_adapter("samples")().load(Checkpoint(1, tmp_path / "step-1.npy"))
    np.testing.assert_array_equal(handle.generate(2, seed=0), handle.generate(2, seed=99))


def test_too_few_samples_and_bad_files(tmp_path):
    np.save(tmp_path / "step-1.npy", np.zeros((3, 1, 2, 2)))
    handle = get_adapter("samples")().load(Checkpoint(1, tmp_path / "step-1.npy"))
    with pytest.raises(ValidationError, match=r"holds 3 and 5 were asked for.*--n-samples 3"):
        handle.generate(5, seed=0)
    np.savez(tmp_path / "step-2.npz", a=np.zeros((3, 2, 2)), b=np.ones((3, 2, 2)))
    with pytest.raises(InputFileError, match="holds 2 arrays"):
        get_adapter("samples")().load(Checkpoint(2, tmp_path / "step-2.npz")).generate(1, 0)
    keyed = get_adapter("samples")(key="b").load(Checkpoint(2, tmp_path / "step-2.npz"))
    assert keyed.generate(2, 0).tolist() == np.ones((2, 2, 2)).tolist()
    with pytest.raises(ValidationError, match="unknown option 'keys'"):
        get_adapter("samples")(keys="b")
