"""The one settings model of an evaluation, declared once.

:class:`EvaluationSettings` is what ``probekit evaluate``'s flags, :func:`probekit.evaluate_series`
and :class:`probekit.SeriesEvaluator` accept (as keyword arguments or an instance), what
``config.json`` records under ``"settings"``, and what ``probekit list --settings evaluate``
prints. The flags and their help are generated from it (:mod:`probekit.cliargs`), so a default
or a constraint is stated in exactly one place.

What an evaluation *reads* — the series, the training and held-out data, the run directory — and
how a call *behaves* (``overwrite``, ``quiet``, ``reports``) are arguments of the functions, not
settings: they do not change the numbers.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any, Literal

import pydantic

from probekit.base import Settings
from probekit.timescales import TimescaleSettings

#: Generated samples per checkpoint when ``n_samples`` is not given (pre-generated samples:
#: as many as every checkpoint holds).
DEFAULT_N_SAMPLES = 1000
#: Generated samples kept per checkpoint in ``samples/`` for the reports' pictures.
N_KEEP = 64
#: Executors a checkpoint series can be evaluated with (DESIGN §8).
EXECUTORS = ("serial", "processes", "ray")


def _names(value: Any) -> Any:
    """``"nn-ratio, kid"`` → ``("nn-ratio", "kid")``; sequences pass through."""
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return value


class EvaluationSettings(Settings):
    """Everything that decides what an evaluation computes, and how it is executed.

    Examples
    --------
    >>> EvaluationSettings(probes="nn-ratio", metrics="fd", n_samples=500).probes
    ('nn-ratio',)
    """

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    # -- what is measured -------------------------------------------------------------------
    probes: tuple[str, ...] = pydantic.Field(
        (), description="memorization probes, comma-separated (e.g. nn-ratio,loss-gap)",
        json_schema_extra={"cli": "csv", "metavar": "NAMES"},
    )
    metrics: tuple[str, ...] = pydantic.Field(
        (), description="quality metrics, comma-separated (e.g. fd,kid)",
        json_schema_extra={"cli": "csv", "metavar": "NAMES"},
    )
    measure_settings: dict[str, dict[str, Any]] = pydantic.Field(
        default_factory=dict, description="settings per measure (e.g. --set nn-ratio.k=0.5)",
        json_schema_extra={"flag": "--set", "cli": "key_value", "nested": True,
                           "metavar": "MEASURE.KEY=VALUE"},
    )
    # -- how checkpoints are loaded and sampled ----------------------------------------------
    adapter: str | None = pydantic.Field(
        None, description="how to load checkpoints (`probekit list adapters`; default: implied "
        "by the series)", json_schema_extra={"metavar": "NAME"},
    )
    adapter_settings: dict[str, Any] = pydantic.Field(
        default_factory=dict, description="adapter setting (e.g. --adapter-set "
        "num_inference_steps=50)",
        json_schema_extra={"flag": "--adapter-set", "cli": "key_value"},
    )
    dataset: str | None = pydantic.Field(
        None, description="a registered dataset instead of --train/--holdout",
        json_schema_extra={"metavar": "NAME"},
    )
    dataset_settings: dict[str, Any] = pydantic.Field(
        default_factory=dict, description="dataset setting (e.g. --dataset-set n_train=256)",
        json_schema_extra={"flag": "--dataset-set", "cli": "key_value"},
    )
    n_samples: int | None = pydantic.Field(
        None, ge=1, description="samples per checkpoint (default: all stored samples; a "
        f"reference run's own n_samples; else {DEFAULT_N_SAMPLES} generated)",
    )
    seed: int = pydantic.Field(
        0, ge=0, le=2**63 - 1, description="seed of the initial noise, the same at every "
        "checkpoint",
    )
    n_keep: int = pydantic.Field(
        N_KEEP, ge=0, description="generated samples kept per checkpoint for the report",
    )
    # -- how the curves are read ------------------------------------------------------------
    timescales: TimescaleSettings = pydantic.Field(
        default_factory=TimescaleSettings, description="how reports read tau_gen and tau_mem",
    )
    # -- the reference-state cache ----------------------------------------------------------
    cache: bool = pydantic.Field(
        True, description="cache prepared reference state on disk",
        json_schema_extra={"negative_help": "prepare measures without the on-disk cache"},
    )
    cache_dir: str | None = pydantic.Field(
        None, description="reference-state cache folder (default: RUN/cache/reference)",
        json_schema_extra={"metavar": "DIR"},
    )
    # -- execution (DESIGN §8) --------------------------------------------------------------
    executor: Literal["serial", "processes", "ray"] = pydantic.Field(
        "serial", description="where checkpoints are evaluated: this process, a local process "
        "pool, or Ray (a local instance, or --ray-address)",
    )
    workers: int | None = pydantic.Field(
        None, ge=1, le=4096, description="processes of the pool (default: one per core)",
    )
    ray_address: str | None = pydantic.Field(
        None, description="Ray cluster to join: auto or ray://HOST:PORT (default: start a "
        "local instance)", json_schema_extra={"metavar": "ADDRESS"},
    )
    cpus_per_task: float = pydantic.Field(
        1.0, gt=0, le=1024, description="CPUs Ray reserves per checkpoint task",
    )
    gpus_per_task: float = pydantic.Field(
        0.0, ge=0, le=64, description="GPUs Ray reserves per checkpoint task",
    )
    max_retries: int = pydantic.Field(
        3, ge=0, le=100, description="Ray: times a task whose worker died is retried",
    )

    _probes = pydantic.field_validator("probes", "metrics", mode="before")(_names)

    @pydantic.field_validator("cache_dir", mode="before")
    @classmethod
    def _path_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, PurePath) else value

    @pydantic.field_validator("probes", "metrics")
    @classmethod
    def _no_repeats(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        repeated = sorted({n for n in value if value.count(n) > 1})
        if repeated:
            raise ValueError(f"each measure may appear once; {repeated} repeat")
        return value

    @pydantic.model_validator(mode="after")
    def _executor_options(self) -> EvaluationSettings:
        if self.workers is not None and self.executor != "processes":
            raise ValueError(
                f"workers applies to executor='processes'; got executor={self.executor!r}. "
                "Add --executor processes, or drop --workers"
            )
        if self.ray_address is not None and self.executor != "ray":
            raise ValueError(
                f"ray_address applies to executor='ray'; got executor={self.executor!r}. "
                "Add --executor ray, or drop --ray-address"
            )
        if self.cache_dir is not None and not self.cache:
            raise ValueError("cache_dir was given with cache=False (--no-cache); choose one")
        return self

    def identity(self) -> dict[str, Any]:
        """The settings that change the numbers (compared when a run is resumed)."""
        return {"n_samples": self.n_samples, "seed": self.seed}


__all__ = ["DEFAULT_N_SAMPLES", "EXECUTORS", "N_KEEP", "EvaluationSettings"]
