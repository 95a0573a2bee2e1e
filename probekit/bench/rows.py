"""Rows of the benchmark and where they are kept: one JSON file per row, written atomically as
soon as the row is finished, so an interrupted or crashed run keeps every finished row and a
rerun with the same settings skips them (like ``probekit evaluate`` skips finished
checkpoints). A row is reused only when its *key* — a fingerprint of the dataset's data and
settings, the measures and their settings, the generator and its settings, ``n_samples`` and
the seed — is unchanged; failed rows are always retried.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from probekit.types import Provenance, Result, _jsonable

#: Statuses of a row: a generator's finished row, a row of real series, or ``failed: <why>``.
OK, REFERENCE, FAILED = "ok", "reference", "failed"


@dataclass
class Row:
    """One generator (or a set of real series) on one dataset."""

    dataset: str  # the dataset's label
    generator: str  # the generator's key, or REAL_ROW / TRAIN_ROW
    status: str = OK  # "ok", "reference" (rows of real series) or "failed: <reason>"
    kind: str = ""  # registry name of the generator ("real" for rows of real series)
    results: dict[str, Result] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)  # measure -> one-line reason
    seconds: dict[str, float] = field(default_factory=dict)  # fit, sample, measures
    warnings: list[str] = field(default_factory=list)
    fit_info: dict[str, Any] = field(default_factory=dict)
    examples: np.ndarray | None = None  # a few samples, for the plot
    key: str = ""  # fingerprint of everything that determines the row
    reused: bool = False  # read back from an earlier run

    @property
    def failed(self) -> bool:
        return self.status.startswith(FAILED)

    @property
    def complete(self) -> bool:
        """Finished with every measure: reusable by a rerun."""
        return not self.failed and not self.failures

    def to_record(self) -> dict[str, Any]:
        """Plain JSON (results without their per-sample arrays)."""
        return _jsonable({
            "dataset": self.dataset, "generator": self.generator, "status": self.status,
            "kind": self.kind, "key": self.key, "seconds": self.seconds,
            "warnings": self.warnings, "failures": self.failures, "fit": self.fit_info,
            "results": {k: r.to_dict() for k, r in self.results.items()},
            "examples": None if self.examples is None else np.asarray(self.examples).tolist(),
        })

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Row:
        examples = record.get("examples")
        return cls(
            dataset=record["dataset"], generator=record["generator"], status=record["status"],
            kind=record.get("kind", ""), key=record.get("key", ""),
            results={k: result_from_dict(v) for k, v in record.get("results", {}).items()},
            failures=dict(record.get("failures", {})), seconds=dict(record.get("seconds", {})),
            warnings=list(record.get("warnings", [])), fit_info=dict(record.get("fit", {})),
            examples=None if examples is None else np.asarray(examples, dtype=np.float32),
            reused=True,
        )


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)


def result_from_dict(data: dict[str, Any]) -> Result:
    """A :class:`Result` back from :meth:`Result.to_dict` (without per-sample arrays)."""
    return Result(
        measure=data["measure"], headline=data["headline"],
        values={k: _float(v) for k, v in data["values"].items()},
        ci={k: (_float(v[0]), _float(v[1])) for k, v in data.get("ci", {}).items()},
        warnings=tuple(data.get("warnings", ())),
        provenance=Provenance(**data["provenance"]),
    )


def slug(text: str) -> str:
    """A file-name-safe version of a label."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "row"


class RowStore:
    """``out/rows/<dataset>/<generator>.json``: one finished row each."""

    def __init__(self, out: str | Path):
        self.root = Path(out) / "rows"

    def path(self, dataset: str, generator: str) -> Path:
        return self.root / slug(dataset) / f"{slug(generator)}.json"

    def load(self, dataset: str, generator: str, key: str) -> Row | None:
        """The stored row when it is complete and made with ``key``; else ``None``."""
        path = self.path(dataset, generator)
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if record.get("key") != key:
            return None
        try:
            row = Row.from_record(record)
        except (KeyError, TypeError, ValueError):
            return None
        return row if row.complete else None

    def save(self, row: Row) -> None:
        from probekit.io import atomic_write_json

        atomic_write_json(self.path(row.dataset, row.generator), row.to_record())


__all__ = ["FAILED", "OK", "REFERENCE", "Row", "RowStore", "result_from_dict", "slug"]
