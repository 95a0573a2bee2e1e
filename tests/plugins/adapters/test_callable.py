"""callable adapter: module:function and file.py:function specs, checked outputs."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from probekit import Checkpoint, get_adapter
from probekit.errors import InputFileError, ValidationError

SAMPLER = textwrap.dedent(
    """
    import numpy as np
    CALLS = []

    def generate(step, n, seed):
        CALLS.append((step, n, seed))
        noise = np.random.default_rng(seed).normal(size=(n, 1, 2, 2))
        return noise * np.exp(-step / 100.0)

    def wrong_count(step, n, seed):
        return np.zeros((n + 1, 1, 2, 2))

    def as_tensor(step, n, seed):
        import torch
        return torch.ones(n, 3, 2)

    NOT_A_FUNCTION = 3
    """
)


@pytest.fixture
def sampler_file(tmp_path):
    path = tmp_path / "my_sampler.py"
    path.write_text(SAMPLER)
    return path


def test_file_spec_calls_the_function_with_step_n_seed(sampler_file):
    adapter = get_adapter("callable")(function=f"{sampler_file}:generate")
    early = adapter.load(Checkpoint(0, sampler_file)).generate(5, seed=3)
    late = adapter.load(Checkpoint(100, sampler_file)).generate(5, seed=3)
    # same seed, same initial noise: the steps differ only by what the function does with it
    np.testing.assert_allclose(late, early * np.exp(-1.0))
    module = adapter.function_.__globals__
    assert module["CALLS"] == [(0, 5, 3), (100, 5, 3)]
    torch_out = get_adapter("callable")(function=f"{sampler_file}:as_tensor").load(
        Checkpoint(1, sampler_file)).generate(2, 0)
    assert isinstance(torch_out, np.ndarray) and torch_out.shape == (2, 3, 2)


def test_module_spec(sampler_file, monkeypatch):
    monkeypatch.syspath_prepend(str(sampler_file.parent))
    adapter = get_adapter("callable")(function="my_sampler:generate")
    assert adapter.load(Checkpoint(7, sampler_file)).generate(2, 0).shape == (2, 1, 2, 2)


@pytest.mark.parametrize(
    ("spec", "error", "match"),
    [
        ("no_colon", ValidationError, "must be 'module:function'"),
        ("mod:not an identifier", ValidationError, "must be 'module:function'"),
        ("surely_not_a_module_xyz:f", InputFileError, "cannot import module"),
        ("{dir}/missing.py:f", InputFileError, "does not exist"),
        ("{file}:nothing_here", ValidationError, "has no function 'nothing_here'"),
        ("{file}:NOT_A_FUNCTION", ValidationError, "has no function"),
    ],
)
def test_bad_specs(sampler_file, spec, error, match):
    spec = spec.format(dir=sampler_file.parent, file=sampler_file)
    with pytest.raises(error, match=match):
        get_adapter("callable")(function=spec)


def test_wrong_output_and_missing_setting(sampler_file):
    handle = get_adapter("callable")(function=f"{sampler_file}:wrong_count").load(
        Checkpoint(1, sampler_file))
    with pytest.raises(ValidationError, match=r"must return an array of 2 samples"):
        handle.generate(2, 0)
    with pytest.raises(ValidationError, match="function"):
        get_adapter("callable")()
