"""Find the checkpoints of one training run: a folder of checkpoints or a manifest file.

A *series* is the ordered list of :class:`~probekit.types.Checkpoint` (step, path) the evaluator
walks through. It is found in one of two ways:

* a **folder** whose entries follow one naming scheme (other entries are ignored):

  ==========================  =====================================================
  scheme                      written by
  ==========================  =====================================================
  ``ckpt-<step>.pt``          probekit's reference pipeline (``ckpt-00000250.pt``)
  ``Model_<step>[.ext]``      the code of Bonnaire et al. (2025)
  ``checkpoint-<step>/``      the diffusers / accelerate training examples
  ``step-<step>.npy|npz|pt|csv`` or ``step-<step>/``  samples generated per checkpoint
  ==========================  =====================================================

* a **manifest** (``.toml`` or ``.json``) mapping steps to paths, relative to the manifest's
  folder: ``{"250": "run/a.pt", "500": "run/b.pt"}`` (JSON), a ``[checkpoints]`` table
  (TOML: ``250 = "run/a.pt"``), or a JSON list of ``{"step": 250, "path": "run/a.pt"}``.

Steps are sorted numerically. An empty folder, a folder that mixes schemes, and two entries for
one step (``step-250.npy`` and ``step-0250.npy``) are errors that say how to fix them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from probekit.errors import InputFileError, ValidationError
from probekit.types import Checkpoint

if TYPE_CHECKING:
    from probekit.base import Adapter

#: File name of a reference-pipeline run's configuration, and the ``kind`` it declares.
REFERENCE_RUN_KIND = "probekit-reference-run"
#: Largest training step a series may hold (10^15: far beyond any training run, well inside
#: the 64-bit integers the run store keeps steps in). A larger number in a file name or a
#: manifest is refused in one line rather than overflowing SQLite.
MAX_STEP = 10**15


@dataclass(frozen=True)
class NamingScheme:
    """One way of naming the checkpoints of a series inside a folder."""

    #: How the scheme is shown to people (``"ckpt-<step>.pt"``).
    label: str
    #: Regular expression on the entry name; group ``step`` is the training step.
    pattern: re.Pattern
    #: Whether matching entries must be files (``True``), folders (``False``) or either (``None``).
    is_file: bool | None
    #: Adapter that usually reads this scheme (``None``: the user must say).
    default_adapter: str | None


SCHEMES: tuple[NamingScheme, ...] = (
    NamingScheme("ckpt-<step>.pt", re.compile(r"^ckpt-(?P<step>\d+)\.pt$"), True, None),
    NamingScheme("Model_<step>", re.compile(r"^Model_(?P<step>\d+)(\.[A-Za-z0-9]+)?$"), None, None),
    NamingScheme(
        "checkpoint-<step>/", re.compile(r"^checkpoint-(?P<step>\d+)$"), False, "diffusers"
    ),
    NamingScheme(
        "step-<step>.npy|npz|pt|csv or step-<step>/",
        re.compile(r"^step-(?P<step>\d+)(\.(npy|npz|pt|csv))?$"),
        None,
        "samples",
    ),
)

MANIFEST_SUFFIXES = (".toml", ".json")


@dataclass(frozen=True)
class Series:
    """The checkpoints of one training run, sorted by step.

    Attributes
    ----------
    source : str
        What the series was found from (folder, manifest, or a label such as ``module:function``).
    scheme : str
        The naming scheme (``"ckpt-<step>.pt"``), ``"manifest"`` or ``"steps"``.
    checkpoints : tuple of Checkpoint
        One per step, ascending.
    default_adapter : str or None
        The adapter that usually reads this scheme, when there is one.
    """

    source: str
    scheme: str
    checkpoints: tuple[Checkpoint, ...]
    default_adapter: str | None = None

    @property
    def steps(self) -> list[int]:
        """The training steps, ascending."""
        return [c.step for c in self.checkpoints]

    def __len__(self) -> int:
        return len(self.checkpoints)

    def select(self, steps: Iterable[int] | str | None) -> Series:
        """The sub-series of ``steps`` (see :func:`parse_steps` for the text form)."""
        if steps is None:
            return self
        selection = parse_steps(steps) if isinstance(steps, str) else _StepSelection(
            exact=tuple(_check_step(s, "steps") for s in steps), ranges=()
        )
        chosen = selection.apply(self.steps, source=self.source)
        by_step = {c.step: c for c in self.checkpoints}
        return Series(
            self.source, self.scheme, tuple(by_step[s] for s in chosen), self.default_adapter
        )


# -- step selection ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _StepSelection:
    exact: tuple[int, ...]
    ranges: tuple[tuple[int | None, int | None], ...]

    def apply(self, available: Sequence[int], *, source: str) -> list[int]:
        have = set(available)
        missing = [s for s in self.exact if s not in have]
        if missing:
            raise ValidationError(
                f"steps: every requested step must be in the series; step(s) "
                f"{', '.join(map(str, missing[:8]))} not in {source!r}, which has steps "
                f"{_short(available)}. Pick steps from that list."
            )
        chosen = set(self.exact)
        for low, high in self.ranges:
            chosen.update(
                s for s in available
                if (low is None or s >= low) and (high is None or s <= high)
            )
        if not chosen:
            raise ValidationError(
                f"steps: the selection matches no checkpoint of {source!r}; it has steps "
                f"{_short(available)}. Widen the range or list steps explicitly."
            )
        return sorted(chosen)


def parse_steps(text: str) -> _StepSelection:
    """Parse ``"250,500,1000"``, ``"1000:5000"`` (inclusive), ``":500"``, ``"2000:"`` or a mix.

    Raises :class:`~probekit.errors.ValidationError` for anything else.
    """
    exact: list[int] = []
    ranges: list[tuple[int | None, int | None]] = []
    parts = [p.strip() for p in str(text).split(",")]
    if not any(parts):
        raise ValidationError(
            f"steps: must be a comma-separated list of steps or ranges; got {text!r}. "
            "Example: --steps 250,500,1000 or --steps 1000:5000"
        )
    for part in parts:
        if not part:
            continue
        try:
            if ":" in part:
                low, _, high = part.partition(":")
                bounds = (int(low) if low.strip() else None, int(high) if high.strip() else None)
                for b in bounds:
                    if b is not None:
                        _check_step(b, "steps")
                ranges.append(bounds)
            else:
                exact.append(_check_step(int(part), "steps"))
        except ValidationError:
            raise
        except ValueError:
            raise ValidationError(
                f"steps: each item must be a step (250) or an inclusive range (1000:5000, :500, "
                f"2000:); got {part!r} in {text!r}."
            ) from None
    return _StepSelection(tuple(exact), tuple(ranges))


def _check_step(step: object, who: str) -> int:
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValidationError(f"{who}: a step must be a non-negative integer; got {step!r}.")
    if step > MAX_STEP:
        raise ValidationError(
            f"{who}: a step must be at most {MAX_STEP:.0e} (MAX_STEP); got {_digits(step)}."
        )
    return step


def _digits(step: int) -> str:
    text = str(step)
    return text if len(text) <= 24 else f"{text[:10]}...({len(text)} digits)"


def _step_of(text: str, entry: Path | str, where: str) -> int:
    """The step spelt in an entry's name; refuses numbers beyond :data:`MAX_STEP`."""
    step = int(text)
    if step > MAX_STEP:
        raise InputFileError(
            f"series: {where}: {str(entry)!r} names step {_digits(step)}, beyond the largest "
            f"step probekit accepts ({MAX_STEP:.0e}). Rename it with the real training step."
        )
    return step


def _short(values: Sequence[object], limit: int = 8) -> str:
    values = list(values)
    if len(values) <= limit:
        return "[" + ", ".join(map(str, values)) + "]"
    head = ", ".join(map(str, values[: limit - 2]))
    return f"[{head}, ..., {values[-1]}] ({len(values)} in all)"


# -- discovery ---------------------------------------------------------------------------------


def discover_series(source: str | Path, *, steps: Iterable[int] | str | None = None) -> Series:
    """Find the checkpoints in a folder or manifest file, optionally keeping only ``steps``.

    Parameters
    ----------
    source : path
        A folder of checkpoints named by one scheme of :data:`SCHEMES`, or a ``.toml``/``.json``
        manifest mapping steps to paths.
    steps : iterable of int, str or None
        Keep only these steps (``"250,500"``, ``"1000:5000"``; see :func:`parse_steps`).
    """
    path = Path(source)
    if not path.exists():
        raise InputFileError(
            f"series: {str(path)!r} does not exist. Pass a folder of checkpoints "
            f"({', '.join(s.label for s in SCHEMES)}) or a .toml/.json manifest."
        )
    from probekit.validation import check_input_path

    check_input_path(path, who="series", name="path")  # a pipe or device would never end
    if path.is_dir():
        series = _discover_folder(path)
    elif path.suffix.lower() in MANIFEST_SUFFIXES:
        series = _read_manifest(path)
    else:
        raise InputFileError(
            f"series: {str(path)!r} is a {path.suffix or 'suffix-less'} file; a series is a folder "
            "of checkpoints or a .toml/.json manifest mapping steps to paths."
        )
    return series.select(steps)


def series_from_steps(steps: Iterable[int] | str, *, label: str) -> Series:
    """A series of bare steps, for adapters that need no files (``callable``).

    Every checkpoint's path is ``Path(label)``.
    """
    if isinstance(steps, str):
        selection = parse_steps(steps)
        if selection.ranges:
            raise ValidationError(
                f"steps: without checkpoint files, steps must be listed one by one; got "
                f"{steps!r}. Example: --steps 0,250,500,1000"
            )
        values = list(selection.exact)
    else:
        values = [_check_step(s, "steps") for s in steps]
    if not values:
        raise ValidationError(
            f"steps: {label!r} is not a folder or manifest, so the steps to evaluate must be "
            "given; got none. Example: --steps 0,250,500,1000"
        )
    duplicates = sorted({s for s in values if values.count(s) > 1})
    if duplicates:
        raise ValidationError(f"steps: each step must appear once; got {duplicates} twice.")
    checkpoints = tuple(Checkpoint(s, Path(label)) for s in sorted(values))
    return Series(label, "steps", checkpoints, None)


def _discover_folder(folder: Path) -> Series:
    found: dict[str, list[tuple[int, Path]]] = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        for scheme in SCHEMES:
            match = scheme.pattern.match(entry.name)
            if match is None:
                continue
            if scheme.is_file is not None and entry.is_file() != scheme.is_file:
                continue
            step = _step_of(match["step"], entry.name, f"folder {str(folder)!r}")
            found.setdefault(scheme.label, []).append((step, entry))
            break
    if not found:
        names = sorted(e.name for e in folder.iterdir() if not e.name.startswith("."))
        listing = _short(names, 6) if names else "nothing"
        raise InputFileError(
            f"series: folder {str(folder)!r} holds no checkpoints; found {listing}. Expected "
            f"entries named {', '.join(s.label for s in SCHEMES)}, or pass a .toml/.json "
            "manifest mapping steps to paths."
        )
    if len(found) > 1:
        counts = ", ".join(
            f"{len(v)} named {k!r} (e.g. {v[0][1].name})" for k, v in sorted(found.items())
        )
        raise InputFileError(
            f"series: folder {str(folder)!r} mixes naming schemes: {counts}. Put each series in "
            "its own folder, or list the checkpoints to use in a manifest (step -> path)."
        )
    ((label, entries),) = found.items()
    scheme = next(s for s in SCHEMES if s.label == label)
    _refuse_special(entries, where=f"folder {str(folder)!r}")
    checkpoints = _unique_steps(entries, where=f"folder {str(folder)!r}")
    return Series(str(folder), label, checkpoints, scheme.default_adapter)


def _refuse_special(entries: list[tuple[int, Path]], *, where: str) -> None:
    """A checkpoint must be a regular file or a folder: a named pipe, socket or device would
    make the evaluation wait forever when it is read."""
    from probekit.validation import special_file_kind

    for step, entry in entries:
        special = special_file_kind(entry)
        if special is not None:
            raise InputFileError(
                f"series: {where}: step {step} ({entry.name!r}) is {special}, not a regular "
                "file or folder; reading it could wait forever. Replace it with the checkpoint "
                "file."
            )


def _unique_steps(entries: list[tuple[int, Path]], *, where: str) -> tuple[Checkpoint, ...]:
    by_step: dict[int, list[Path]] = {}
    for step, path in entries:
        by_step.setdefault(step, []).append(path)
    clashes = {s: p for s, p in by_step.items() if len(p) > 1}
    if clashes:
        step, paths = min(clashes.items())
        names = " and ".join(repr(p.name if p.parent == paths[0].parent else str(p)) for p in paths)
        more = f" ({len(clashes)} steps clash in all)" if len(clashes) > 1 else ""
        raise InputFileError(
            f"series: {where} is ambiguous: step {step} is given by {names}{more}. Keep one "
            "entry per step (move or rename the others)."
        )
    return tuple(Checkpoint(s, p[0]) for s, p in sorted(by_step.items()))


def _read_manifest(path: Path) -> Series:
    try:
        if path.suffix.lower() == ".toml":
            import tomllib

            with path.open("rb") as f:
                data = tomllib.load(f)
        else:
            data = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_no_duplicates)
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError and TOMLDecodeError
        raise InputFileError(
            f"series: cannot read manifest {str(path)!r}: {exc}. A manifest maps steps to paths, "
            'e.g. {"250": "ckpt-250.pt"} (JSON) or [checkpoints] 250 = "ckpt-250.pt" (TOML).'
        ) from None
    pairs = _manifest_pairs(data, path)
    entries: list[tuple[int, Path]] = []
    for key, value in pairs:
        if isinstance(key, int) and not isinstance(key, bool):
            step = key
        elif isinstance(key, str) and key.strip().isascii() and key.strip().isdigit():
            step = int(key) if len(key.strip()) <= 30 else MAX_STEP + 1
        else:
            step = -1
        if step > MAX_STEP:
            step = _step_of(str(step), f"step {str(key)[:40]}", f"manifest {str(path)!r}")
        if step < 0:
            raise InputFileError(
                f"series: manifest {str(path)!r}: every step must be a non-negative integer; "
                f"got {key!r}."
            )
        if not isinstance(value, str) or not value:
            raise InputFileError(
                f"series: manifest {str(path)!r}: the path of step {step} must be a non-empty "
                f"string; got {value!r}."
            )
        target = Path(value).expanduser()
        entries.append((step, target if target.is_absolute() else path.parent / target))
    if not entries:
        raise InputFileError(f"series: manifest {str(path)!r} lists no checkpoints.")
    checkpoints = _unique_steps(entries, where=f"manifest {str(path)!r}")
    _refuse_special([(c.step, c.path) for c in checkpoints if c.path.exists()],
                    where=f"manifest {str(path)!r}")
    missing = [c for c in checkpoints if not c.path.exists()]
    if missing:
        raise InputFileError(
            f"series: manifest {str(path)!r} lists {len(missing)} path(s) that do not exist, "
            f"e.g. step {missing[0].step}: {str(missing[0].path)!r}. Relative paths are read from "
            "the manifest's folder; fix or remove those entries."
        )
    return Series(str(path), "manifest", checkpoints, None)


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    keys = [k for k, _ in pairs]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise ValueError(f"key {repeated[0]!r} appears more than once")
    return dict(pairs)


def _manifest_pairs(data: object, path: Path) -> list[tuple[object, object]]:
    if isinstance(data, dict) and set(data) == {"checkpoints"}:
        data = data["checkpoints"]
    if isinstance(data, dict):
        return list(data.items())
    if isinstance(data, list) and all(isinstance(d, dict) and set(d) == {"step", "path"}
                                      for d in data):
        return [(d["step"], d["path"]) for d in data]
    raise InputFileError(
        f"series: manifest {str(path)!r} must map steps to paths (an object/table, optionally "
        'under "checkpoints", or a list of {"step": ..., "path": ...}); got '
        f"{type(data).__name__}."
    )


def read_reference_run(folder: str | Path) -> dict | None:
    """The ``config.json`` of a reference-pipeline run directory, or ``None`` if ``folder`` is
    not one (no such file, or another ``kind``)."""
    config = Path(folder) / "config.json"
    if not config.is_file():
        return None
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, OSError):
        return None
    if isinstance(data, dict) and data.get("kind") == REFERENCE_RUN_KIND:
        return data
    return None


# -- what a series argument means ----------------------------------------------------------------

#: Folder (inside a reference-pipeline run) that its evaluation goes to by default.
REFERENCE_EVAL_DIR = "eval"


@dataclass(frozen=True)
class ResolvedSeries:
    """What a series argument means: the checkpoints to evaluate and the defaults it implies
    (a reference-pipeline run names its adapter, dataset, output folder and sample count)."""

    series: Series
    adapter: str | None
    adapter_settings: dict[str, Any]
    dataset: str | None
    dataset_settings: dict[str, Any] | None
    out: Path | None
    full: Series | None = None  # before --steps selected from it
    n_samples: int | None = None  # default of a reference run: what its training evaluated


def resolve_series(
    series: str | Path | Series | Sequence[int],
    *,
    adapter: str | None,
    adapter_settings: Mapping[str, Any] | None,
    steps: Iterable[int] | str | None,
) -> ResolvedSeries:
    """What to evaluate, with the defaults a reference-pipeline run directory implies."""
    adapter_settings = dict(adapter_settings or {})
    if isinstance(series, Series):
        return ResolvedSeries(series.select(steps), adapter or series.default_adapter,
                               adapter_settings, None, None, None)
    if not isinstance(series, str | Path):
        if steps is not None:
            raise ValidationError("evaluate: give the steps either as series or as steps.")
        return ResolvedSeries(series_from_steps(list(series), label="steps"), adapter,
                               adapter_settings, None, None, None)
    path = Path(series)
    if path.exists():
        reference = read_reference_run(path) if path.is_dir() else None
        full = discover_series(path)
        found = full.select(steps)
        if reference is not None:
            return ResolvedSeries(
                found, adapter or reference.get("adapter", "ddpm"), adapter_settings,
                reference.get("dataset"), reference.get("dataset_settings") or {},
                path / REFERENCE_EVAL_DIR, full, reference.get("n_samples"),
            )
        return ResolvedSeries(found, adapter or found.default_adapter, adapter_settings,
                               None, None, None, full)
    spec = str(series)
    if ":" in spec and (adapter in (None, "callable")):
        if adapter_settings.get("function", spec) != spec:
            raise ValidationError(
                f"evaluate: series {spec!r} and function={adapter_settings['function']!r} "
                "disagree; give the function once."
            )
        if steps is None:
            raise ValidationError(
                f"evaluate: series {spec!r} is a function, so --steps must list the steps to "
                "evaluate (e.g. --steps 0,250,500,1000)."
            )
        return ResolvedSeries(series_from_steps(steps, label=spec), "callable",
                               {**adapter_settings, "function": spec}, None, None, None)
    raise InputFileError(
        f"series: {spec!r} does not exist. Pass a folder of checkpoints, a .toml/.json manifest, "
        "a reference-pipeline run directory, or module:function with --adapter callable."
    )


def resolve_n_samples(n_samples: int | None, series: Series, adapter: Adapter) -> int:
    """``n_samples`` or, when not given, every stored sample (pre-generated samples: the
    smallest count over the whole series, whatever ``steps`` selects, so that evaluating a
    subset first and the rest later resolves the same number) or :data:`DEFAULT_N_SAMPLES`.

    A checkpoint that cannot be loaded here is left out of the count (the run records it as
    failed). Asking for more samples than a checkpoint holds is refused before anything is
    written.
    """
    from probekit.settings import DEFAULT_N_SAMPLES

    default = DEFAULT_N_SAMPLES

    counts: list[tuple[int, int]] = []
    for checkpoint in series.checkpoints:
        try:
            handle = adapter.load(checkpoint)
            available = getattr(handle, "n_available", None)
        except Exception:  # recorded as a failed checkpoint when the run reaches it
            continue
        if available is None:
            return default if n_samples is None else n_samples
        counts.append((int(available), checkpoint.step))
    if not counts:
        return default if n_samples is None else n_samples
    smallest, step = min(counts)
    if n_samples is None:
        return smallest
    if n_samples > smallest:
        raise ValidationError(
            f"evaluate: n_samples must be at most the samples stored per checkpoint; got "
            f"{n_samples}, but step {step} holds {smallest}. Pass --n-samples {smallest} or "
            "less, or store more samples."
        )
    return n_samples


def series_label(series: Series) -> str:
    if series.scheme == "steps":
        return series.source
    return str(Path(series.source).resolve())



__all__ = [
    "MAX_STEP",
    "REFERENCE_RUN_KIND",
    "SCHEMES",
    "NamingScheme",
    "Series",
    "discover_series",
    "parse_steps",
    "read_reference_run",
    "series_from_steps",
]
