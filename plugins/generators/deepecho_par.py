"""``deepecho``: the PAR model of the SDV project (deepecho's ``PARModel``, a probabilistic
autoregressive GRU) as a benchmark contestant that probekit did not write.

Optional: install the extra ``pip install 'probekit[generators]'``; without it ``fit`` is a
one-line :class:`~probekit.errors.MissingResourceError` naming the extra (in the benchmark: a
``failed`` row, the others go on).

Each training series becomes one PAR sequence (no context), each channel a ``continuous``
variable; ``sample(n, seed)`` draws ``n`` sequences of the training length. PAR fits with one
full-batch Adam step per epoch and samples step by step on the CPU, so it is slow: ``epochs``
defaults to 64 (deepecho's own default is 128), and the fitting time, settings, final loss and
deepecho's version are recorded (:meth:`describe_fit`). Fitting and sampling are seeded through
torch's generator inside ``torch.random.fork_rng``, so the global RNG is left as it was.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Iterator

import numpy as np
import pydantic

from probekit import Generator, Settings, hookimpl
from probekit.errors import MissingResourceError, NotPreparedError, ValidationError
from probekit.timeseries import check_series

INSTALL_HINT = "install the extra: pip install 'probekit[generators]' (or pip install deepecho)"


class DeepEchoSettings(Settings):
    epochs: int = pydantic.Field(64, ge=1, description="training epochs (one Adam step each)")
    sample_size: int = pydantic.Field(
        1, ge=1, description="draws per sequence; the most likely is kept (PAR's sample_size)"
    )
    seed: int = pydantic.Field(0, ge=0, description="seed of the network's initialization")
    threads: int | None = pydantic.Field(
        1, ge=1, description="torch CPU threads while fitting and sampling (None: torch's)"
    )


@contextlib.contextmanager
def _torch_state(threads: int | None, seed: int) -> Iterator[None]:
    """Seed torch (without touching the global RNG afterwards) and set its CPU threads."""
    import torch

    before = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if threads:
            torch.set_num_threads(threads)
        try:
            with warnings.catch_warnings():
                # deepecho's loss log concatenates pandas frames in a way pandas deprecates;
                # not ours to fix, and not a caveat about the numbers
                warnings.simplefilter("ignore", FutureWarning)
                yield
        finally:
            torch.set_num_threads(before)


class DeepEchoPAR(Generator):
    """deepecho's PAR (probabilistic autoregressive) model, fitted on the training series."""

    name = "deepecho"
    modality = "timeseries"
    description = "PAR model from the SDV project (deepecho; optional extra probekit[generators])"
    Settings = DeepEchoSettings
    settings: DeepEchoSettings

    def fit(self, train: np.ndarray) -> DeepEchoPAR:
        try:
            from deepecho import PARModel
        except ImportError:
            raise MissingResourceError(
                f"{self.name}: the deepecho package is not installed; {INSTALL_HINT}."
            ) from None
        train = check_series(train, who=self.name, name="train", min_samples=2)
        s = self.settings
        sequences = [{"context": [], "data": [list(map(float, x[:, c]))
                                              for c in range(x.shape[1])]} for x in train]
        started = time.perf_counter()
        with _torch_state(s.threads, s.seed):
            model = PARModel(epochs=s.epochs, sample_size=s.sample_size, cuda=False,
                             verbose=False)
            model.fit_sequences(sequences, [], ["continuous"] * train.shape[2])
        self.fit_seconds_ = time.perf_counter() - started
        self.model_ = model
        self.shape_ = train.shape[1:]
        losses = getattr(model, "loss_values", None)
        self.final_loss_ = (float(losses["Loss"].iloc[-1])
                            if losses is not None and len(losses) else None)
        return self

    def sample(self, n: int, seed: int) -> np.ndarray:
        if not hasattr(self, "model_"):
            raise NotPreparedError(f"{self.name}: call fit(train) before sample(n, seed).")
        if n < 1:
            raise ValidationError(f"{self.name}: n must be at least 1; got {n}.")
        t, c = self.shape_
        out = np.empty((n, t, c), dtype=np.float64)
        with _torch_state(self.settings.threads, seed):
            for i in range(n):
                data = self.model_.sample_sequence([], sequence_length=t)
                out[i] = np.asarray(data, dtype=np.float64).T
        return out.astype(np.float32)

    def describe_fit(self) -> dict:
        """What was fitted (for the benchmark's provenance)."""
        if not hasattr(self, "model_"):
            return {}
        from importlib import metadata

        return {"model": "deepecho.PARModel", "deepecho": metadata.version("deepecho"),
                "epochs": self.settings.epochs, "sample_size": self.settings.sample_size,
                "fit_seconds": self.fit_seconds_, "final_loss": self.final_loss_}


@hookimpl
def register_generators():
    return [DeepEchoPAR]
