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

import platform
import sys
from collections.abc import Mapping, Sequence
from pathlib import PurePath
from typing import Any, Literal

import numpy as np
import pydantic

from probekit.base import Adapter, Measure, Metric, Probe, Settings, build_settings
from probekit.errors import ValidationError
from probekit.timescales import TimescaleSettings
from probekit.validation import describe

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
    prompts: str | None = pydantic.Field(
        None, description="conditional models: prompts to sample, a .txt file (one per line) or "
        ".jsonl ({\"prompt\": ..., \"n_samples\": 4} or {\"label\": 3}) (default: the "
        "training set's own captions or labels; labels drawn for an unlabelled set)",
        json_schema_extra={"metavar": "FILE"},
    )
    samples_per_prompt: int | None = pydantic.Field(
        None, ge=1, description="conditional models: samples per prompt (default: n_samples // "
        "number of prompts; the run samples their sum)",
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

    @pydantic.field_validator("cache_dir", "prompts", mode="before")
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



# -- measures from settings ------------------------------------------------------------------------


def make_settings(settings: EvaluationSettings | Mapping[str, Any] | None = None,
                  **overrides: Any) -> tuple[EvaluationSettings, list[Measure], Adapter | None]:
    """Validate ``settings`` plus keyword overrides into :class:`EvaluationSettings`.

    ``probes`` and ``metrics`` may also hold ready :class:`~probekit.Measure` instances and
    ``adapter`` an :class:`~probekit.Adapter` instance (for measures or adapters that are not
    registered): they are returned apart, and the settings record their names.
    """
    values = settings.model_dump() if isinstance(settings, EvaluationSettings) else \
        dict(settings or {})
    values.update(overrides)
    instances: list[Measure] = []
    for key, base in (("probes", Probe), ("metrics", Metric)):
        items = values.get(key)
        if items is None or isinstance(items, str):
            continue
        names = []
        for item in items:
            if isinstance(item, Measure):
                if not isinstance(item, base):
                    raise ValidationError(
                        f"evaluator: {key} must hold {key} (probekit.{base.__name__}); got the "
                        f"{type(item).__name__} {item.name!r}. Put it under the other argument."
                    )
                if item.name in values.get("measure_settings", {}):
                    raise ValidationError(
                        f"evaluator: settings for {item.name!r} were given both in the instance "
                        "and in measure_settings; give them in one place."
                    )
                instances.append(item)
            elif not isinstance(item, str):
                raise ValidationError(
                    f"evaluator: each of {key} must be a registered name or a "
                    f"probekit.{base.__name__}; got {describe(item)}."
                )
            names.append(item.name if isinstance(item, Measure) else item)
        values[key] = tuple(names)
    adapter = values.get("adapter")
    adapter_instance = None
    if isinstance(adapter, Adapter):
        if values.get("adapter_settings"):
            raise ValidationError(
                "evaluator: give adapter settings either in the instance or in "
                "adapter_settings, not both."
            )
        adapter_instance = adapter
        values["adapter"] = adapter.name
    elif adapter is not None and not isinstance(adapter, str):
        raise ValidationError(
            f"evaluator: adapter must be a registered name or a probekit.Adapter; got "
            f"{describe(adapter)}."
        )
    validated = build_settings(EvaluationSettings, "evaluator", values)
    assert isinstance(validated, EvaluationSettings)
    return validated, instances, adapter_instance


def build_measures(settings: EvaluationSettings, instances: Sequence[Measure] = ()
                   ) -> list[Measure]:
    """The measures of ``settings`` in order: registry names instantiated with their
    ``measure_settings``, or the ready instances of the same name."""
    from probekit.registry import get_metric, get_probe

    given = {m.name: m for m in instances}
    options = dict(settings.measure_settings)
    measures: list[Measure] = []
    for names, lookup in ((settings.probes, get_probe), (settings.metrics, get_metric)):
        for name in names:
            if name in given:
                measures.append(given[name])
            else:
                measures.append(lookup(name)(options.pop(name, None)))
    if not measures:
        raise ValidationError(
            "evaluator: probes and metrics must name at least one measure; got none. "
            "Example: --probes nn-ratio (see `probekit list probes`)."
        )
    names = [m.name for m in measures]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValidationError(f"evaluator: each measure may appear once; {repeated} repeat.")
    if options:
        raise ValidationError(
            f"evaluator: settings were given for {sorted(options)}, which are not among the "
            f"measures {names}. Add them to --probes/--metrics or fix the name."
        )
    return measures


def measure_config(measure: Measure) -> dict[str, Any]:
    """A measure's entry in ``config.json["measures"]``."""
    cls = type(measure)
    return {
        "name": measure.name,
        "kind": "probe" if isinstance(measure, Probe) else "metric",
        "role": cls.role,
        "headline": cls.headline,
        "higher_is_better": bool(cls.higher_is_better),
        "requires": list(cls.requires),
        "settings": measure.settings.model_dump(mode="json"),
        "plugin": cls.plugin,
        "version": cls.plugin_version,
    }


def versions(measures: Sequence[Measure], adapter: Adapter | None) -> dict[str, Any]:
    from probekit import __version__

    versions: dict[str, Any] = {
        "probekit": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
    }
    if "torch" in sys.modules:
        versions["torch"] = sys.modules["torch"].__version__
    plugins = {type(m).plugin: type(m).plugin_version for m in measures}
    if adapter is not None:
        plugins[type(adapter).plugin] = type(adapter).plugin_version
    versions["plugins"] = dict(sorted(plugins.items()))
    return versions



__all__ = [
    "DEFAULT_N_SAMPLES",
    "EXECUTORS",
    "N_KEEP",
    "EvaluationSettings",
    "build_measures",
    "make_settings",
    "measure_config",
    "versions",
]
