"""``callable``: a user function ``function(step, n, seed) -> array`` generates the samples.

The quickest way to plug any sampler in: ``--adapter callable --adapter-set
function=my_package.sampling:generate`` (or ``path/to/file.py:generate``). The function loads
the checkpoint of ``step`` itself and must draw the same initial noise for the same ``seed`` at
every step, so that curves compare like with like.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydantic

from probekit import Adapter, Checkpoint, ModelHandle, Settings, hookimpl
from probekit.errors import InputFileError, ValidationError
from probekit.validation import describe


class CallableAdapterSettings(Settings):
    function: str = pydantic.Field(
        description="module:function or path/to/file.py:function, called as function(step, n, seed)"
    )


def load_function(spec: str) -> Callable:
    """Import ``module:function`` or ``path/to/file.py:function``."""
    target, sep, attribute = spec.rpartition(":")
    if not sep or not target or not attribute.isidentifier():
        raise ValidationError(
            f"callable: function must be 'module:function' or 'path/to/file.py:function'; got "
            f"{spec!r}. Example: --adapter-set function=my_package.sampling:generate"
        )
    if target.endswith(".py") or "/" in target or "\\" in target:
        module = _module_from_file(Path(target), spec)
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise InputFileError(
                f"callable: cannot import module {target!r} of {spec!r}: {exc}. Is it installed "
                "or on PYTHONPATH? A file path (path/to/file.py:function) works too."
            ) from None
    function = getattr(module, attribute, None)
    if not callable(function):
        raise ValidationError(
            f"callable: {target!r} has no function {attribute!r}; got {describe(function)}. "
            "Check the name after the colon."
        )
    return function


def _module_from_file(path: Path, spec: str):
    path = path.expanduser().resolve()
    if not path.is_file():
        raise InputFileError(f"callable: file {str(path)!r} of {spec!r} does not exist.")
    name = "probekit_user_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


class CallableHandle(ModelHandle):
    """One step of a user sampling function."""

    def __init__(self, function: Callable, step: int, spec: str):
        self.function = function
        self.step = step
        self.spec = spec

    def generate(self, n: int, seed: int) -> np.ndarray:
        out = self.function(self.step, n, seed)
        if hasattr(out, "detach") and hasattr(out, "cpu"):  # torch tensor
            out = out.detach().cpu().numpy()
        out = np.asarray(out)
        if out.ndim < 2 or len(out) != n:
            raise ValidationError(
                f"callable: {self.spec}(step={self.step}, n={n}, seed={seed}) must return an "
                f"array of {n} samples; got {describe(out)}. Return (n, channels, height, width) "
                "images or (n, n_timesteps, n_channels) series."
            )
        return out


class CallableAdapter(Adapter):
    """Calls ``function(step, n, seed)`` to generate the samples of each step."""

    name = "callable"
    modality = "any"
    description = "a user function module:function(step, n, seed) -> samples"
    can_predict_noise = False
    Settings = CallableAdapterSettings
    settings: CallableAdapterSettings

    def __init__(self, settings=None, **overrides):
        super().__init__(settings, **overrides)
        self.function_ = load_function(self.settings.function)

    def load(self, checkpoint: Checkpoint) -> CallableHandle:
        return CallableHandle(self.function_, checkpoint.step, self.settings.function)

    # an adapter travels to worker processes (probekit.executors): send the spec, not the
    # function (a function of a module loaded from a file cannot be pickled by reference)
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("function_", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.function_ = load_function(self.settings.function)


@hookimpl
def register_adapters():
    return [CallableAdapter]
