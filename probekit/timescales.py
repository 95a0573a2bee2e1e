"""tau_gen, tau_mem, the early-stopping window and the scaling fit across runs (DESIGN §5).

Pure functions on arrays: no file, no plot, no global state. Every estimate is a frozen dataclass
that says how it was obtained (level, mode, censoring) so reports can print it honestly.

Shared rules
------------
* **Crossing.** A curve ``y`` (oriented so that larger means "further along": ``f_mem`` for
  memorization, quality for generation) *crosses* ``level`` at the first checkpoint ``i`` with
  ``y[i] >= level`` **and** ``y[i + 1] >= level`` (it stays there at the next checkpoint), so a
  single blip that drops back does not count. At the last checkpoint there is no next one: a
  crossing found there is reported but flagged ``confirmed=False``.
* **Interpolation.** Between the bracketing checkpoints ``s0 < s1`` (``y0 < level <= y1``) the
  curve is taken as linear in ``log(step)``::

      log tau = log s0 + (level - y0) / (y1 - y0) * (log s1 - log s0)

  ``log 0`` is undefined, so when the lower bracket is step 0 the interpolation is linear in the
  step itself: ``tau = (level - y0) / (y1 - y0) * s1``.
* **Censoring.** ``status="from_first"``: the curve is at the level from the first checkpoint on,
  so tau is at most ``steps[0]`` (left-censored; ``step`` holds ``steps[0]``).
  ``status="never"``: it never crosses, tau is later than ``steps[-1]`` (right-censored; ``step``
  is ``None``).
* **Confidence interval.** The same rule applied to the CI-bound curves, at the same level: for
  tau_mem the upper bound of ``f_mem`` gives the early bound and the lower bound the late one;
  for tau_gen the optimistic and pessimistic bounds of the quality metric. The level itself is
  held fixed (its own uncertainty is not propagated).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pydantic

from probekit.base import Settings
from probekit.errors import ValidationError

#: Default memorization level: tau_mem is when f_mem reaches 1% (DESIGN §5).
MEM_LEVEL = 0.01
#: Default tolerance: tau_gen is when 90% of the quality improvement is achieved.
GEN_TOL = 0.1
#: The two ways to set the quality threshold of tau_gen.
GEN_MODES = ("relative", "absolute")

INTERPOLATION = "linear in log(step) between bracketing checkpoints; linear in step from step 0"
PERSISTENCE = "first checkpoint at the level that is still at the level at the next checkpoint"


class TimescaleSettings(Settings):
    """How a run's timescales are read off its curves (``config.json["timescales"]``).

    Floats must be finite. A ``gen_threshold`` given without ``gen_mode`` implies
    ``gen_mode="absolute"``; a threshold with ``gen_mode="relative"`` is refused (it would be
    ignored).
    """

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    mem_measure: str | None = pydantic.Field(
        None, description="probe whose headline (or NAME:FIELD) is f_mem (default: nn-ratio "
        "when the run has it, else the run's first probe whose role is 'memorization')",
        json_schema_extra={"metavar": "NAME[:FIELD]"},
    )
    mem_level: float = pydantic.Field(MEM_LEVEL, gt=0, le=1, description="tau_mem level of f_mem")
    quality_measure: str | None = pydantic.Field(
        None, description="metric (or NAME:FIELD) for tau_gen (default: the run's first metric "
        "whose role is 'quality')", json_schema_extra={"metavar": "NAME[:FIELD]"},
    )
    gen_tol: float = pydantic.Field(
        GEN_TOL, ge=0, lt=1, description="tau_gen at 1 - gen_tol of the quality improvement"
    )
    gen_mode: Literal["relative", "absolute"] = pydantic.Field(
        "relative", description="relative: this run's own improvement; absolute: gen_threshold"
    )
    gen_threshold: float | None = pydantic.Field(
        None, description="absolute quality level for tau_gen, in the metric's units "
        "(implies gen_mode=absolute)",
    )

    @pydantic.model_validator(mode="before")
    @classmethod
    def _threshold_implies_absolute(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("gen_threshold") is not None:
            if data.get("gen_mode") in (None, "absolute"):
                return {**data, "gen_mode": "absolute"}
            raise ValueError(
                "gen_threshold applies only with gen_mode='absolute'; drop gen_threshold, or "
                "set gen_mode to 'absolute'"
            )
        return data

    @pydantic.field_validator("mem_measure", "quality_measure")
    @classmethod
    def _measure_spec(cls, value: str | None) -> str | None:
        if value is None:
            return None
        name, _, fld = value.partition(":")
        if not name.strip() or (":" in value and not fld.strip()):
            raise ValueError(f"must be NAME or NAME:FIELD (e.g. nn-ratio:f_mem); got {value!r}")
        return value.strip()


def split_measure_spec(spec: str) -> tuple[str, str | None]:
    """``"nn-ratio:f_mem"`` → ``("nn-ratio", "f_mem")``; ``"nn-ratio"`` → ``("nn-ratio", None)``."""
    name, _, fld = spec.partition(":")
    return name, (fld or None)


# -- results -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Crossing:
    """Where one curve first reaches a level.

    Attributes
    ----------
    step : float or None
        Interpolated step; ``steps[0]`` when ``status == "from_first"``; ``None`` when never.
    status : {"crossed", "from_first", "never"}
        ``"from_first"`` is left-censored (tau <= steps[0]), ``"never"`` right-censored.
    index : int or None
        Index of the first checkpoint at the level (the upper bracket).
    confirmed : bool
        Whether the next checkpoint is at the level too (``False`` at the last checkpoint and
        for tau_gen's fallback to an unconfirmed crossing).
    """

    step: float | None
    status: str
    index: int | None
    confirmed: bool = True


@dataclass(frozen=True)
class TauEstimate:
    """A timescale with its confidence interval and everything needed to read it.

    Attributes
    ----------
    name : str
        ``"tau_mem"`` or ``"tau_gen"``.
    estimate : Crossing
        Crossing of the point-estimate curve.
    early, late : Crossing or None
        Crossings of the CI-bound curves (``None`` when the curve has no CI).
    level : float
        The level crossed, in the curve's own units (``f_mem``, or the quality metric's).
    first_step, last_step : float
        The observed step range.
    settings : dict
        Threshold, mode and orientation used (printed in reports).
    notes : tuple of str
        Caveats (unconfirmed crossing, no CI, no improvement, ...).
    """

    name: str
    estimate: Crossing
    early: Crossing | None
    late: Crossing | None
    level: float
    first_step: float
    last_step: float
    settings: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def value(self) -> float | None:
        """The interpolated step (``steps[0]`` if from the first checkpoint, ``None`` if never)."""
        return self.estimate.step

    @property
    def status(self) -> str:
        return self.estimate.status

    @property
    def ci(self) -> tuple[float | None, float | None]:
        """``(early, late)`` steps; ``None`` where a bound has no crossing or no CI.

        A ``None`` late bound with ``late.status == "never"`` means "later than the last step".
        """
        return (
            self.early.step if self.early is not None else None,
            self.late.step if self.late is not None else None,
        )

    def describe(self) -> str:
        """One line for people, e.g. ``tau_mem = 3.1e+04 (95% CI 2.2e+04 to 4.5e+04)``."""
        return f"{self.name} = {describe_crossing(self.estimate, self.last_step)}" + (
            ""
            if self.early is None or self.late is None
            else f" (95% CI {_bound_text(self.early, self.last_step, early=True)} to "
            f"{_bound_text(self.late, self.last_step, early=False)})"
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dictionary (``None`` for a missing value)."""
        return {
            "name": self.name,
            "value": self.value,
            "status": self.status,
            "confirmed": self.estimate.confirmed,
            "ci_low": self.ci[0],
            "ci_high": self.ci[1],
            "ci_low_status": None if self.early is None else self.early.status,
            "ci_high_status": None if self.late is None else self.late.status,
            "level": self.level,
            "first_step": self.first_step,
            "last_step": self.last_step,
            "text": self.describe(),
            "settings": dict(self.settings),
            "notes": list(self.notes),
            "estimate": asdict(self.estimate),
        }


def describe_crossing(c: Crossing, last_step: float) -> str:
    """Human text of one crossing: a step, ``<= s0 (from the first checkpoint)`` or ``never``."""
    if c.status == "never":
        return f"never (not reached by the last step, {_fmt(last_step)})"
    if c.status == "from_first":
        return f"<= {_fmt(c.step)} (from the first checkpoint)"
    return _fmt(c.step) + ("" if c.confirmed else " (unconfirmed)")


def _bound_text(c: Crossing, last_step: float, *, early: bool) -> str:
    if c.status == "never":
        return f"> {_fmt(last_step)}"
    if c.status == "from_first":
        return f"<= {_fmt(c.step)}"
    return _fmt(c.step)


def _fmt(step: float | None) -> str:
    if step is None:
        return "n/a"
    return f"{step:.0f}" if abs(step) < 1e7 else f"{step:.3g}"


# -- validation ----------------------------------------------------------------------------------


def _check_curve(
    steps: Any, values: Any, *, who: str, name: str
) -> tuple[np.ndarray, np.ndarray]:
    """Steps as a strictly increasing non-negative float array and finite values of one length."""
    s = np.asarray(steps, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    if s.ndim != 1 or len(s) == 0:
        raise ValidationError(
            f"{who}: steps must be a non-empty 1-d sequence of checkpoint steps; got shape "
            f"{s.shape}. Pass one step per checkpoint."
        )
    if y.shape != s.shape:
        raise ValidationError(
            f"{who}: {name} must have one value per step ({len(s)}); got shape {y.shape}."
        )
    if not np.isfinite(s).all() or (s < 0).any() or (np.diff(s) <= 0).any():
        raise ValidationError(
            f"{who}: steps must be finite, >= 0 and strictly increasing; got {s[:6].tolist()}"
            f"{' ...' if len(s) > 6 else ''}. Sort the checkpoints and drop duplicates."
        )
    if not np.isfinite(y).all():
        raise ValidationError(
            f"{who}: {name} must be finite; got NaN or inf at steps "
            f"{s[~np.isfinite(y)][:6].tolist()}. Drop those checkpoints first."
        )
    return s, y


def _optional_bound(values: Any, steps: np.ndarray) -> np.ndarray | None:
    """A CI-bound curve, or ``None`` when missing or incomplete (any NaN)."""
    if values is None:
        return None
    b = np.asarray(values, dtype=np.float64)
    if b.shape != steps.shape:
        raise ValidationError(
            f"timescales: a CI bound must have one value per step ({len(steps)}); got shape "
            f"{b.shape}."
        )
    return b if np.isfinite(b).all() else None


# -- the crossing rule ---------------------------------------------------------------------------


def interpolate_crossing(s0: float, y0: float, s1: float, y1: float, level: float) -> float:
    """Step at which the segment ``(s0, y0) -> (s1, y1)`` reaches ``level`` (``y0 < level <= y1``),
    linear in ``log(step)``, or linear in step when ``s0 == 0``."""
    frac = (level - y0) / (y1 - y0)
    if s0 <= 0:
        return float(frac * s1 + (1 - frac) * s0)
    return float(math.exp(math.log(s0) + frac * (math.log(s1) - math.log(s0))))


def first_crossing(
    steps: Any, values: Any, level: float, *, allow_unconfirmed: bool = False
) -> Crossing:
    """First step at which ``values`` reaches ``level`` and stays there at the next checkpoint.

    Parameters
    ----------
    steps, values : 1-d arrays
        Checkpoint steps (strictly increasing) and the curve; larger values are "further along".
    level : float
        The level to reach (``>=``).
    allow_unconfirmed : bool
        When no confirmed crossing exists, fall back to the first checkpoint at the level
        (flagged ``confirmed=False``). Used for quality curves, whose best checkpoint always
        reaches the relative target even when it is an isolated peak.
    """
    s, y = _check_curve(steps, values, who="first_crossing", name="values")
    at = y >= level
    confirmed = at[:-1] & at[1:]
    hits = np.flatnonzero(confirmed)
    if len(hits):
        return _crossing_at(s, y, level, int(hits[0]), confirmed=True)
    if at[-1]:  # reached at the last checkpoint: nothing to confirm it with
        return _crossing_at(s, y, level, len(s) - 1, confirmed=False)
    if allow_unconfirmed and at.any():
        return _crossing_at(s, y, level, int(np.flatnonzero(at)[0]), confirmed=False)
    return Crossing(step=None, status="never", index=None, confirmed=True)


def _crossing_at(
    s: np.ndarray, y: np.ndarray, level: float, i: int, *, confirmed: bool
) -> Crossing:
    if i == 0:
        return Crossing(step=float(s[0]), status="from_first", index=0, confirmed=confirmed)
    # y[i - 1] < level here: otherwise the crossing would have been found at i - 1.
    step = interpolate_crossing(s[i - 1], y[i - 1], s[i], y[i], level)
    return Crossing(step=step, status="crossed", index=i, confirmed=confirmed)


def _notes_for(c: Crossing, what: str) -> list[str]:
    if c.status != "never" and not c.confirmed:
        return [
            f"{what}: the crossing at checkpoint {c.index} is not confirmed by the next "
            "checkpoint (last checkpoint, or an isolated peak)."
        ]
    return []


# -- tau_mem -------------------------------------------------------------------------------------


def estimate_tau_mem(
    steps: Sequence[float] | np.ndarray,
    f_mem: Sequence[float] | np.ndarray,
    *,
    ci_low: Sequence[float] | np.ndarray | None = None,
    ci_high: Sequence[float] | np.ndarray | None = None,
    mem_level: float = MEM_LEVEL,
) -> TauEstimate:
    """tau_mem: first step at which ``f_mem >= mem_level`` and stays there at the next checkpoint.

    The CI comes from the bootstrap CI of ``f_mem``: the ``ci_high`` curve crosses first (early
    bound), the ``ci_low`` curve last (late bound).
    """
    s, y = _check_curve(steps, f_mem, who="estimate_tau_mem", name="f_mem")
    if not 0 < mem_level <= 1:
        raise ValidationError(
            f"estimate_tau_mem: mem_level must be in (0, 1]; got {mem_level!r}. The default "
            f"is {MEM_LEVEL} (1% of samples memorized)."
        )
    low, high = _optional_bound(ci_low, s), _optional_bound(ci_high, s)
    estimate = first_crossing(s, y, mem_level)
    notes = _notes_for(estimate, "tau_mem")
    early = late = None
    if low is None or high is None:
        notes.append("tau_mem: f_mem has no complete bootstrap CI; no CI for tau_mem.")
    else:
        early = first_crossing(s, high, mem_level)
        late = first_crossing(s, low, mem_level)
    return TauEstimate(
        name="tau_mem",
        estimate=estimate,
        early=early,
        late=late,
        level=float(mem_level),
        first_step=float(s[0]),
        last_step=float(s[-1]),
        settings={
            "mem_level": float(mem_level),
            "rule": PERSISTENCE,
            "interpolation": INTERPOLATION,
            "ci": "crossings of the f_mem bootstrap CI bounds (upper: early, lower: late)",
        },
        notes=tuple(notes),
    )


# -- tau_gen -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QualityThreshold:
    """An absolute quality level for tau_gen, in the metric's own units, and where it came from."""

    value: float
    gen_tol: float
    higher_is_better: bool
    source: str
    step_range: tuple[float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "gen_tol": self.gen_tol,
            "higher_is_better": self.higher_is_better,
            "source": self.source,
            "step_range": None if self.step_range is None else list(self.step_range),
        }


def improvement_level(
    values: Sequence[float] | np.ndarray, *, higher_is_better: bool, gen_tol: float = GEN_TOL
) -> float:
    """The quality level at which ``1 - gen_tol`` of the improvement from the first value to the
    best one is achieved, in the metric's own units."""
    q = np.asarray(values, dtype=np.float64)
    best = q.max() if higher_is_better else q.min()
    return float(q[0] + (1.0 - gen_tol) * (best - q[0]))


def _check_gen_tol(gen_tol: float, who: str) -> None:
    if not 0 <= gen_tol < 1:
        raise ValidationError(
            f"{who}: gen_tol must be in [0, 1); got {gen_tol!r}. The default {GEN_TOL} means "
            "tau_gen is when 90% of the quality improvement is achieved."
        )


def estimate_tau_gen(
    steps: Sequence[float] | np.ndarray,
    quality: Sequence[float] | np.ndarray,
    *,
    higher_is_better: bool,
    gen_tol: float = GEN_TOL,
    mode: str = "relative",
    threshold: float | None = None,
    ci_low: Sequence[float] | np.ndarray | None = None,
    ci_high: Sequence[float] | np.ndarray | None = None,
) -> TauEstimate:
    """tau_gen: first step at which the quality metric reaches its target level.

    Parameters
    ----------
    steps, quality : 1-d arrays
        Checkpoint steps and the quality metric (e.g. FID, lower is better).
    higher_is_better : bool
        Orientation of the metric.
    gen_tol : float
        ``mode="relative"``: the target is ``1 - gen_tol`` of the improvement from the first
        checkpoint to the best one of this run.
    mode : {"relative", "absolute"}
        ``"absolute"`` uses ``threshold`` (metric units), e.g. one level common to several runs
        (see :func:`common_quality_threshold`), so that longer runs do not get a later tau_gen
        only because their best checkpoint is better.
    threshold : float, optional
        Required for ``mode="absolute"``; ignored (must be ``None``) otherwise.
    ci_low, ci_high : 1-d arrays, optional
        CI of the metric per checkpoint; the optimistic bound gives the early tau_gen, the
        pessimistic one the late tau_gen (target held fixed).

    Notes
    -----
    Crossings follow the module rules; when no crossing is confirmed by the next checkpoint (an
    isolated best checkpoint) the first unconfirmed one is used and flagged.
    """
    who = "estimate_tau_gen"
    s, q = _check_curve(steps, quality, who=who, name="quality")
    _check_gen_tol(gen_tol, who)
    if mode not in GEN_MODES:
        raise ValidationError(f"{who}: mode must be one of {GEN_MODES}; got {mode!r}.")
    notes: list[str] = []
    if mode == "absolute":
        if threshold is None or not math.isfinite(threshold):
            raise ValidationError(
                f"{who}: mode='absolute' needs a finite threshold in the metric's units; got "
                f"{threshold!r}. Use common_quality_threshold(...) or mode='relative'."
            )
        target = float(threshold)
    else:
        if threshold is not None:
            raise ValidationError(
                f"{who}: threshold is only used with mode='absolute'; got threshold="
                f"{threshold!r} with mode='relative'. Drop it or set mode='absolute'."
            )
        target = improvement_level(q, higher_is_better=higher_is_better, gen_tol=gen_tol)
        if target == q[0]:
            notes.append("tau_gen: the quality never improves on the first checkpoint.")
    sign = 1.0 if higher_is_better else -1.0
    low, high = _optional_bound(ci_low, s), _optional_bound(ci_high, s)
    estimate = first_crossing(s, sign * q, sign * target, allow_unconfirmed=True)
    notes += _notes_for(estimate, "tau_gen")
    early = late = None
    if low is None or high is None:
        notes.append("tau_gen: the quality metric has no complete CI; no CI for tau_gen.")
    else:
        optimistic, pessimistic = (high, low) if higher_is_better else (low, high)
        early = first_crossing(s, sign * optimistic, sign * target, allow_unconfirmed=True)
        late = first_crossing(s, sign * pessimistic, sign * target, allow_unconfirmed=True)
    return TauEstimate(
        name="tau_gen",
        estimate=estimate,
        early=early,
        late=late,
        level=target,
        first_step=float(s[0]),
        last_step=float(s[-1]),
        settings={
            "gen_mode": mode,
            "gen_tol": float(gen_tol),
            "gen_threshold": target,
            "higher_is_better": bool(higher_is_better),
            "rule": PERSISTENCE + " (else the first unconfirmed one, flagged)",
            "interpolation": INTERPOLATION,
            "ci": "crossings of the metric's CI bounds at the same threshold",
        },
        notes=tuple(notes),
    )


def common_quality_threshold(
    runs: Sequence[tuple[float, Sequence[float], Sequence[float]]],
    *,
    higher_is_better: bool,
    gen_tol: float = GEN_TOL,
) -> QualityThreshold:
    """One absolute quality threshold for comparing runs with different ``n`` (DESIGN §5).

    The ``1 - gen_tol`` improvement level of the largest-``n`` run, measured over the step range
    common to all runs ``[max first step, min last step]``.

    Parameters
    ----------
    runs : sequence of (n, steps, quality)
        One entry per run.
    """
    who = "common_quality_threshold"
    _check_gen_tol(gen_tol, who)
    if not runs:
        raise ValidationError(f"{who}: runs must hold at least one (n, steps, quality); got none.")
    curves = []
    for n, steps, quality in runs:
        s, q = _check_curve(steps, quality, who=who, name="quality")
        curves.append((float(n), s, q))
    start = max(s[0] for _, s, _ in curves)
    stop = min(s[-1] for _, s, _ in curves)
    if start > stop:
        raise ValidationError(
            f"{who}: the runs share no step range (latest first step {start:g} > earliest last "
            f"step {stop:g}). Evaluate overlapping checkpoints, or pass a threshold yourself."
        )
    n_ref, s, q = max(curves, key=lambda c: c[0])
    inside = (s >= start) & (s <= stop)
    value = improvement_level(q[inside], higher_is_better=higher_is_better, gen_tol=gen_tol)
    return QualityThreshold(
        value=value,
        gen_tol=float(gen_tol),
        higher_is_better=bool(higher_is_better),
        source=f"{1 - gen_tol:.0%}-improvement level of the largest-n run (n={n_ref:g}) over "
        f"the common step range [{start:g}, {stop:g}]",
        step_range=(float(start), float(stop)),
    )


# -- window and recommended checkpoint ---------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """The early-stopping window ``[tau_gen, tau_mem)`` and the recommended checkpoint.

    Attributes
    ----------
    start, end : float or None
        ``tau_gen`` and ``tau_mem`` steps (``end=None``: no memorization within the run, the
        window stays open past the last step; ``start=None``: no quality measure or tau_gen).
    empty : bool
        True when memorization starts no later than good quality is reached (or from the first
        checkpoint, or the quality never reaches its level); ``empty_reason`` says which.
    checkpoints : list of int
        Observed checkpoint steps inside the window.
    recommended_step : int or None
        Best-quality checkpoint whose ``f_mem`` CI upper bound is below ``mem_level``.
    recommended_index : int or None
        Its index in ``steps``.
    basis : str
        How the recommended checkpoint was chosen.
    notes : tuple of str
    """

    start: float | None
    end: float | None
    empty: bool
    checkpoints: list[int]
    recommended_step: int | None
    recommended_index: int | None
    basis: str
    notes: tuple[str, ...] = ()
    empty_reason: str | None = None

    def describe(self) -> str:
        if self.empty:
            return f"empty: {self.empty_reason}"
        start = "start of the run" if self.start is None else _fmt(self.start)
        end = "beyond the last checkpoint" if self.end is None else _fmt(self.end)
        return f"[{start}, {end})"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["notes"] = list(self.notes)
        out["text"] = self.describe()
        return out


def early_stopping_window(
    steps: Sequence[float] | np.ndarray,
    f_mem_ci_high: Sequence[float] | np.ndarray,
    *,
    tau_gen: TauEstimate | None,
    tau_mem: TauEstimate,
    quality: Sequence[float] | np.ndarray | None = None,
    higher_is_better: bool | None = None,
    mem_level: float = MEM_LEVEL,
) -> Window:
    """Window ``[tau_gen, tau_mem)`` and the checkpoint to keep.

    The recommended checkpoint is the best-quality checkpoint whose ``f_mem`` CI upper bound is
    below ``mem_level`` (ties: the earliest). Without a quality curve it is the latest such
    checkpoint (said in ``basis``). Pass the point ``f_mem`` as ``f_mem_ci_high`` when there is
    no CI, and say so.
    """
    s, upper = _check_curve(steps, f_mem_ci_high, who="early_stopping_window", name="f_mem_ci_high")
    notes: list[str] = []
    start = None if tau_gen is None or tau_gen.status == "never" else tau_gen.value
    if tau_gen is not None and tau_gen.status == "never":
        notes.append("window: the quality never reaches the tau_gen threshold.")
    end = None if tau_mem.status == "never" else tau_mem.value
    empty_reason = None
    if tau_gen is not None and tau_gen.status == "never":
        empty_reason = "the quality never reaches the tau_gen level"
    elif tau_mem.status == "from_first":
        empty_reason = "the model copies from the first checkpoint on"
    elif start is not None and end is not None and start >= end:
        empty_reason = "tau_mem <= tau_gen: the model copies before it generates well"
    empty = empty_reason is not None
    lo = -math.inf if start is None else start
    hi = math.inf if end is None else end
    inside = [int(v) for v in s if lo <= v < hi] if not empty else []

    safe = np.flatnonzero(upper < mem_level)
    if quality is not None:
        if higher_is_better is None:
            raise ValidationError(
                "early_stopping_window: higher_is_better is required with quality."
            )
        _, q = _check_curve(s, quality, who="early_stopping_window", name="quality")
        basis = "best quality among checkpoints with f_mem CI upper bound < mem_level"
        if len(safe):
            goodness = q[safe] if higher_is_better else -q[safe]
            pick = int(safe[int(np.argmax(goodness))])  # argmax: earliest of ties
        else:
            pick = None
    else:
        basis = "latest checkpoint with f_mem CI upper bound < mem_level (no quality measure)"
        pick = int(safe[-1]) if len(safe) else None
    if pick is None:
        notes.append(
            f"window: no checkpoint has an f_mem CI upper bound below {mem_level}; "
            "no checkpoint is recommended."
        )
    elif start is not None and s[pick] < start:
        notes.append("window: the recommended checkpoint comes before tau_gen.")
    return Window(
        start=start,
        end=end,
        empty=bool(empty),
        empty_reason=empty_reason,
        checkpoints=inside,
        recommended_step=None if pick is None else int(s[pick]),
        recommended_index=pick,
        basis=basis,
        notes=tuple(notes),
    )


# -- onset of a sampling-free signal (loss gap) --------------------------------------------------


def estimate_onset(
    steps: Sequence[float] | np.ndarray,
    values: Sequence[float] | np.ndarray,
    *,
    ci_low: Sequence[float] | np.ndarray | None = None,
    level: float = 0.0,
) -> Crossing:
    """First step at which a signal (e.g. the loss gap, holdout − train) is above ``level``
    beyond doubt: its CI lower bound (the value itself when there is no CI) is ``> level`` and
    stays so at the next checkpoint. Interpolated like tau_mem."""
    s, y = _check_curve(steps, values, who="estimate_onset", name="values")
    low = _optional_bound(ci_low, s)
    curve = y if low is None else low
    # strictly above: nudge the level by the smallest representable step
    return first_crossing(s, curve, float(np.nextafter(level, np.inf)))


# -- scaling across runs -------------------------------------------------------------------------


@dataclass(frozen=True)
class ScalingFit:
    """tau_mem against the training-set size across runs (DESIGN §5).

    Attributes
    ----------
    n, tau_mem : list of float
        The runs used (those with a crossed tau_mem), sorted by ``n``.
    slope, slope_ci, intercept, r2 :
        OLS fit of ``log tau_mem = intercept + slope * log n``; ``slope_ci`` is the 95% t
        interval from the regression standard error (needs >= 3 runs, else ``None``).
    linear_coef, linear_coef_ci :
        ``c`` in ``tau_mem = c * n``, fitted in log space with the slope fixed at 1 (geometric
        mean of ``tau_mem / n``), with a 95% t interval (needs >= 2 runs).
    tau_mem_over_n_cv :
        Coefficient of variation of ``tau_mem / n`` (0 when the ``f_mem(step / n)`` curves
        collapse perfectly).
    tau_gen, tau_gen_mean, tau_gen_cv :
        tau_gen per run (same order as the input) and its spread across ``n`` (coefficient of
        variation, ``std(ddof=1) / mean``).
    excluded : list of dict
        Runs left out of the fit and why (tau_mem never reached or censored).
    """

    n: list[float]
    tau_mem: list[float]
    slope: float | None
    slope_ci: tuple[float, float] | None
    intercept: float | None
    r2: float | None
    linear_coef: float | None
    linear_coef_ci: tuple[float, float] | None
    tau_mem_over_n_cv: float | None
    tau_gen: list[float | None]
    tau_gen_mean: float | None
    tau_gen_cv: float | None
    excluded: list[dict[str, Any]]
    method: dict[str, str]
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("slope_ci", "linear_coef_ci"):
            out[key] = None if out[key] is None else list(out[key])
        out["notes"] = list(self.notes)
        return _finite_or_none(out)


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_none(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def fit_scaling(
    n: Sequence[float] | np.ndarray,
    tau_mem: Sequence[TauEstimate | float | None],
    *,
    tau_gen: Sequence[TauEstimate | float | None] | None = None,
    confidence: float = 0.95,
) -> ScalingFit:
    """Fit ``log tau_mem = a + b log n`` and ``tau_mem = c n`` across runs; tau_gen spread.

    Runs whose tau_mem is not an interior crossing (``"never"`` or ``"from_first"``) are
    censored and left out of the fits (listed in ``excluded``): using their bound as a value
    would bias the slope.
    """
    from scipy import stats as sps

    n_arr = np.asarray(n, dtype=np.float64)
    if n_arr.ndim != 1 or len(n_arr) != len(tau_mem):
        raise ValidationError(
            f"fit_scaling: n and tau_mem must have one entry per run; got {len(n_arr)} n and "
            f"{len(tau_mem)} tau_mem."
        )
    if not (np.isfinite(n_arr).all() and (n_arr > 0).all()):
        raise ValidationError(f"fit_scaling: n must be positive; got {n_arr.tolist()}.")
    used_n, used_tau, excluded = [], [], []
    for n_i, t in zip(n_arr, tau_mem, strict=True):
        value, status = _tau_value(t)
        if status == "crossed" and value is not None and value > 0:
            used_n.append(float(n_i))
            used_tau.append(float(value))
        else:
            excluded.append({"n": float(n_i), "status": status, "value": value})
    order = np.argsort(used_n, kind="stable")
    x_n = np.asarray(used_n)[order]
    y_t = np.asarray(used_tau)[order]
    notes: list[str] = []
    slope = slope_ci = intercept = r2 = c = c_ci = over_cv = None
    k = len(x_n)
    if len(np.unique(x_n)) >= 2:
        x, y = np.log(x_n), np.log(y_t)
        fit = sps.linregress(x, y)
        slope, intercept = float(fit.slope), float(fit.intercept)
        resid = y - (intercept + slope * x)
        ss_tot = float(((y - y.mean()) ** 2).sum())
        r2 = 1.0 - float((resid**2).sum()) / ss_tot if ss_tot > 0 else 1.0
        if k >= 3:
            t = float(sps.t.ppf(0.5 + confidence / 2, k - 2))
            slope_ci = (slope - t * float(fit.stderr), slope + t * float(fit.stderr))
        else:
            notes.append("scaling: 2 runs fit a line exactly; the slope has no CI (needs >= 3).")
    else:
        notes.append("scaling: fewer than 2 distinct n with a crossed tau_mem; no log-log fit.")
    if k >= 1:
        log_c = np.log(y_t / x_n)
        c = float(np.exp(log_c.mean()))
        if k >= 2:
            t = float(sps.t.ppf(0.5 + confidence / 2, k - 1))
            half = t * float(log_c.std(ddof=1)) / math.sqrt(k)
            c_ci = (float(np.exp(log_c.mean() - half)), float(np.exp(log_c.mean() + half)))
            ratio = y_t / x_n
            over_cv = float(ratio.std(ddof=1) / ratio.mean())
    if excluded:
        notes.append(
            f"scaling: {len(excluded)} run(s) left out of the fit (tau_mem censored): "
            + ", ".join(f"n={e['n']:g} ({e['status']})" for e in excluded)
        )
    gen_values: list[float | None] = []
    if tau_gen is not None:
        if len(tau_gen) != len(n_arr):
            raise ValidationError(
                f"fit_scaling: tau_gen must have one entry per run ({len(n_arr)}); got "
                f"{len(tau_gen)}."
            )
        for t in tau_gen:
            value, status = _tau_value(t)
            gen_values.append(value if status == "crossed" else None)
    finite_gen = np.asarray([v for v in gen_values if v is not None], dtype=np.float64)
    gen_mean = float(finite_gen.mean()) if len(finite_gen) else None
    gen_cv = (
        float(finite_gen.std(ddof=1) / finite_gen.mean())
        if len(finite_gen) >= 2 and finite_gen.mean() > 0
        else None
    )
    if tau_gen is not None and len(finite_gen) < len(gen_values):
        notes.append("scaling: tau_gen spread uses only the runs with a crossed tau_gen.")
    return ScalingFit(
        n=x_n.tolist(),
        tau_mem=y_t.tolist(),
        slope=slope,
        slope_ci=slope_ci,
        intercept=intercept,
        r2=r2,
        linear_coef=c,
        linear_coef_ci=c_ci,
        tau_mem_over_n_cv=over_cv,
        tau_gen=gen_values,
        tau_gen_mean=gen_mean,
        tau_gen_cv=gen_cv,
        excluded=excluded,
        method={
            "log_log": "OLS of log tau_mem on log n; slope CI = t interval (k-2 dof) from the "
            "regression standard error of the slope",
            "linear": "c = geometric mean of tau_mem / n (log-space fit, slope fixed at 1); CI = "
            "t interval (k-1 dof) of mean log(tau_mem / n)",
            "tau_gen_cv": "std(ddof=1) / mean of tau_gen over runs with a crossed tau_gen",
            "censoring": "runs whose tau_mem is 'never' or 'from_first' are left out",
            "confidence": f"{confidence:.0%}",
        },
        notes=tuple(notes),
    )


def _tau_value(t: TauEstimate | float | None) -> tuple[float | None, str]:
    if isinstance(t, TauEstimate):
        return t.value, t.status
    if t is None or not math.isfinite(float(t)):
        return None, "never"
    return float(t), "crossed"


def collapse_axis(steps: Sequence[float] | np.ndarray, n: float) -> np.ndarray:
    """``step / n``: the axis on which ``f_mem`` curves of runs with different ``n`` collapse
    when ``tau_mem ∝ n``."""
    if not n > 0:
        raise ValidationError(f"collapse_axis: n must be positive; got {n!r}.")
    return np.asarray(steps, dtype=np.float64) / float(n)


__all__ = [
    "GEN_MODES",
    "GEN_TOL",
    "MEM_LEVEL",
    "Crossing",
    "QualityThreshold",
    "ScalingFit",
    "TauEstimate",
    "TimescaleSettings",
    "Window",
    "collapse_axis",
    "common_quality_threshold",
    "early_stopping_window",
    "estimate_onset",
    "estimate_tau_gen",
    "estimate_tau_mem",
    "first_crossing",
    "fit_scaling",
    "improvement_level",
    "interpolate_crossing",
    "split_measure_spec",
]
