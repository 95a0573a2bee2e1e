"""inception extractor: weights are found where pytorch-fid looks (or where the user says),
never downloaded; missing weights name the file and the place; grayscale equals replicated RGB;
the PNG mode is exactly the 8-bit round trip; features do not depend on the batch size.

The real weights cannot be fetched here, so a seeded random state dict with the same keys and
shapes stands in for them (``write_random_weights``).
"""

from __future__ import annotations

import hashlib
import urllib.request

import numpy as np
import pytest
import torch
from probekit_plugins.features import inception
from probekit_plugins.features.inception import (
    WEIGHTS_FILENAME,
    InceptionFeatures,
    quantize_to_uint8,
    save_png_folder,
    to_inception_input,
)

from probekit.errors import InputFileError, MissingResourceError, ValidationError


@pytest.fixture(scope="session")
def random_torch_home(tmp_path_factory):
    """A torch home whose hub cache holds seeded random Inception weights (shared by tests)."""
    home = tmp_path_factory.getbasetemp() / "torch-home-random-inception"
    path = home / "hub" / "checkpoints" / WEIGHTS_FILENAME
    if not path.exists():
        inception.write_random_weights(path, seed=0)
    return home


@pytest.fixture
def hub(random_torch_home, monkeypatch):
    """TORCH_HOME → the random weights; one torch thread (the CPUs are shared)."""
    monkeypatch.setenv("TORCH_HOME", str(random_torch_home))
    monkeypatch.delenv(inception.WEIGHTS_ENV, raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield random_torch_home / "hub" / "checkpoints" / WEIGHTS_FILENAME
    torch.set_num_threads(threads)


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to download fails the test loudly."""
    calls = []

    def forbidden(*args, **kwargs):
        calls.append(args)
        raise AssertionError(f"network access attempted: {args[:1]}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", forbidden)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", forbidden)
    monkeypatch.setattr(urllib.request, "urlopen", forbidden)
    return calls


def test_missing_weights_name_the_file_and_the_place(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    monkeypatch.delenv(inception.WEIGHTS_ENV, raising=False)
    expected = tmp_path / "empty" / "hub" / "checkpoints" / WEIGHTS_FILENAME
    with pytest.raises(MissingResourceError) as info:
        InceptionFeatures().extract(np.zeros((2, 3, 8, 8), np.float32))
    message = str(info.value)
    assert str(expected) in message
    assert inception.WEIGHTS_URL in message and inception.WEIGHTS_ENV in message
    assert "inception_weights.md" in message
    assert no_network == []


def test_user_path_and_env_var_take_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub-home"))
    user = tmp_path / "mine.pth"
    user.write_bytes(b"x")
    monkeypatch.setenv(inception.WEIGHTS_ENV, str(user))
    assert inception.resolve_weights_path() == (user, f"${inception.WEIGHTS_ENV}")
    other = tmp_path / "other.pth"
    other.write_bytes(b"x")
    assert inception.resolve_weights_path(str(other))[0] == other
    with pytest.raises(MissingResourceError, match="the `weights` setting"):
        inception.resolve_weights_path(str(tmp_path / "nope.pth"))
    monkeypatch.delenv(inception.WEIGHTS_ENV)
    with pytest.raises(MissingResourceError, match="from the torch hub cache"):
        inception.resolve_weights_path()
    assert inception.default_weights_path() == (
        tmp_path / "hub-home" / "hub" / "checkpoints" / WEIGHTS_FILENAME
    )


def test_weights_load_offline_and_hash_is_recorded(hub, no_network):
    import pytorch_fid.inception as pfi

    original = pfi.load_state_dict_from_url
    inception._MODELS.clear()  # force a fresh build
    extractor = InceptionFeatures(dims=64)
    feats = extractor.extract(np.random.default_rng(0).random((2, 3, 8, 8)).astype(np.float32))
    assert feats.shape == (2, 64)
    assert extractor.weights_sha256 == hashlib.sha256(hub.read_bytes()).hexdigest()
    assert pfi.load_state_dict_from_url is original  # the offline patch is scoped
    assert no_network == []


def test_unreadable_or_foreign_weights_are_input_errors(tmp_path, monkeypatch):
    monkeypatch.delenv(inception.WEIGHTS_ENV, raising=False)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(InputFileError, match="cannot read"):
        InceptionFeatures(weights=str(junk)).extract(np.zeros((1, 3, 8, 8), np.float32))
    foreign = tmp_path / "foreign.pth"
    torch.save({"conv.weight": torch.zeros(1)}, foreign)
    with pytest.raises(InputFileError, match="not pytorch-fid's Inception state dict"):
        InceptionFeatures(weights=str(foreign)).extract(np.zeros((1, 3, 8, 8), np.float32))


def test_png_mode_is_the_8bit_round_trip(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(1)
    x = rng.uniform(-1.2, 1.2, (3, 1, 5, 5))  # some values outside the range: clipped
    paths = save_png_folder(x, tmp_path, value_range=(-1, 1))
    read = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])  # pytorch-fid
    want = torch.from_numpy(read).permute(0, 3, 1, 2).float().div(255)  # ToTensor
    got = to_inception_input(x, value_range=(-1, 1), preprocessing="pytorch-fid-png")
    assert torch.equal(got, want)
    # float mode skips the quantization (and differs from it)
    flt = to_inception_input(x, value_range=(-1, 1), preprocessing="pytorch-fid-float")
    assert 0 < (flt - got).abs().max() <= 0.5 / 255 + 1e-7
    # rounding is floor(255 u + 0.5): 0.5/255 rounds up, just below rounds down
    u = np.array([0.0, 0.5 / 255, 0.49 / 255, 1.0, 1.5]).reshape(1, 1, 1, 5)
    assert quantize_to_uint8(u).ravel().tolist() == [0, 1, 0, 255, 255]


def test_grayscale_is_replicated_to_rgb(hub):
    rng = np.random.default_rng(2)
    gray = rng.random((3, 1, 8, 8)).astype(np.float32)
    extractor = InceptionFeatures(dims=64)
    np.testing.assert_array_equal(
        extractor.extract(gray), extractor.extract(np.repeat(gray, 3, axis=1))
    )
    with pytest.raises(ValidationError, match="1 \\(grayscale\\) or 3 \\(RGB\\) channels"):
        extractor.extract(np.zeros((2, 2, 8, 8), np.float32))


def test_pool3_features_do_not_depend_on_batch_size(hub):
    x = np.random.default_rng(3).random((3, 3, 8, 8)).astype(np.float32)
    one = InceptionFeatures(batch_size=1).extract(x)
    three = InceptionFeatures(batch_size=3).extract(x)
    assert one.shape == (3, 2048)
    assert one.std(axis=0).mean() > 1e-3  # the random network is not degenerate
    np.testing.assert_allclose(one, three, rtol=1e-5, atol=1e-6)


def test_optimized_network_computes_the_same_features(hub):
    x = np.random.default_rng(4).random((2, 1, 8, 8)).astype(np.float32)
    plain = InceptionFeatures(optimize=False).extract(x)
    fused = InceptionFeatures(optimize=True).extract(x)
    assert np.abs(plain).max() > 1  # a meaningful scale for the tolerance below
    np.testing.assert_allclose(fused, plain, rtol=1e-4, atol=1e-4 * np.abs(plain).max())


def test_settings_are_validated():
    with pytest.raises(ValidationError, match="value_range"):
        InceptionFeatures(value_range="1,0")
    with pytest.raises(ValidationError, match="preprocessing"):
        InceptionFeatures(preprocessing="clean")
    assert InceptionFeatures(value_range="-1,1").settings.value_range == (-1.0, 1.0)
    with pytest.raises(ValidationError, match="device"):
        InceptionFeatures(device="tpu:banana", weights=__file__)._load()
