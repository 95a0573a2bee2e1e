"""The run store: one SQLite file of tidy results per run directory, written a checkpoint at a
time so that a killed run resumes where it stopped (DESIGN §7).

Layout of a run directory (see ``docs/run_directory.md``)::

    config.json                    settings, versions, seeds (kind "probekit-evaluation")
    results.sqlite                 tables ``results``, ``evaluations``, ``checkpoints``, ``meta``
    samples/step-<step:08d>.npy    the first ``n_keep`` generated samples of each checkpoint
    artifacts/<measure>/step-<step:08d>.npz   per-sample arrays of each result
    cache/reference/               cached reference-side state (see probekit.cache)

Everything of one checkpoint — the rows of every measure evaluated there, the markers saying
which (step, measure) pairs are finished, the checkpoint's timings — is committed in one SQLite
transaction. Sample and artifact files are written atomically *before* that transaction, so a
run killed at any instant leaves either a whole checkpoint or none of it (stray files of an
uncommitted checkpoint are rewritten when the run resumes).
"""

from __future__ import annotations

import io
import json
import math
import shutil
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from probekit.errors import ConfigMismatchError, InputFileError, ProbekitError, ValidationError
from probekit.io import atomic_write_bytes, atomic_write_json
from probekit.types import Provenance, Result, _jsonable

CONFIG_FILE = "config.json"
RESULTS_FILE = "results.sqlite"
SAMPLES_DIR = "samples"
ARTIFACTS_DIR = "artifacts"
CACHE_DIR = "cache"
#: ``kind`` written into the ``config.json`` of an evaluation run directory.
RUN_KIND = "probekit-evaluation"
SCHEMA_VERSION = 1

#: Configuration keys that change the numbers: a run directory only resumes when they are equal.
IDENTITY_KEYS = (
    "series",
    "adapter",
    "adapter_settings",
    "train_sha256",
    "holdout_sha256",
    "dataset",
    "dataset_settings",
    "modality",
    "n_samples",
    "seed",
    "conditions_sha256",  # conditional runs: the prompts sampled and the training captions
)
#: Keys of one measure's entry in ``config["measures"]`` that change its numbers.
MEASURE_IDENTITY_KEYS = ("kind", "settings", "plugin", "version")
#: Files and folders of a run directory that ``overwrite`` deletes (the cache is kept: it is
#: addressed by content, so it stays valid).
RUN_OUTPUTS = (
    CONFIG_FILE, RESULTS_FILE, f"{RESULTS_FILE}-journal", f"{RESULTS_FILE}-wal",
    f"{RESULTS_FILE}-shm", SAMPLES_DIR, ARTIFACTS_DIR, "results.csv", "summary.json", "plots",
    "report.html",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS results (
    step INTEGER NOT NULL,
    measure TEXT NOT NULL,
    field TEXT NOT NULL,
    value REAL,
    ci_low REAL,
    ci_high REAL,
    PRIMARY KEY (step, measure, field)
);
CREATE TABLE IF NOT EXISTS evaluations (
    step INTEGER NOT NULL,
    measure TEXT NOT NULL,
    headline TEXT NOT NULL,
    provenance TEXT NOT NULL,
    warnings TEXT NOT NULL,
    artifact TEXT,
    seconds REAL,
    finished_at REAL NOT NULL,
    PRIMARY KEY (step, measure)
);
CREATE TABLE IF NOT EXISTS checkpoints (
    step INTEGER PRIMARY KEY,
    path TEXT NOT NULL,
    n_samples INTEGER,
    seconds_load REAL,
    seconds_generate REAL,
    seconds_measures REAL,
    finished_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS failures (
    step INTEGER PRIMARY KEY,
    path TEXT NOT NULL,
    reason TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    failed_at REAL NOT NULL
);
"""
#: Timing columns of ``checkpoints`` added after schema version 1 (added to older stores).
_LATER_TIMING_COLUMNS = ("seconds_queue", "seconds_features", "worker")


def step_file(step: int, suffix: str) -> str:
    """``step-<step:08d><suffix>``, the file name of one checkpoint's samples or artifacts."""
    return f"step-{step:08d}{suffix}"


# -- readers (used by reports) ------------------------------------------------------------------


_REPAIR = ("Point to another run directory, or run the evaluation again into it with "
           "`probekit evaluate ... --out RUN --overwrite`.")


def damaged_run_error(path: Path, problem: str) -> InputFileError:
    """The one-line error for a damaged run-directory file: which file, what is wrong, and
    what to do (point to another run, or evaluate again with ``--overwrite``)."""
    from probekit.validation import one_line

    return InputFileError(f"{str(path)!r} is damaged: {one_line(problem, limit=200)}. {_REPAIR}")


def check_run_dir(run_dir: str | Path) -> Path:
    """Refuse a ``run_dir`` that is not an existing folder (one line saying what it is)."""
    p = Path(run_dir)
    if not p.exists():
        raise InputFileError(
            f"run directory {str(p)!r} does not exist. Check the path (a folder written by "
            "`probekit evaluate ... --out DIR`)."
        )
    if not p.is_dir():
        raise InputFileError(
            f"run directory {str(p)!r} must be a folder written by `probekit evaluate`; it is "
            "a file. Point to the run directory."
        )
    return p


def _connect_readonly(run_dir: Path) -> sqlite3.Connection:
    run_dir = check_run_dir(run_dir)
    path = Path(run_dir) / RESULTS_FILE
    if path.exists() and not path.is_file():
        raise damaged_run_error(path, "it is a folder, not a database file")
    if not path.is_file():
        raise InputFileError(
            f"run directory {str(run_dir)!r} has no {RESULTS_FILE}; it is not an evaluation run "
            "directory (make one with `probekit evaluate ... --out DIR`)."
        )
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        con.execute("SELECT name FROM sqlite_master LIMIT 1").fetchall()
    except sqlite3.DatabaseError as exc:
        con.close()
        raise damaged_run_error(path, f"{exc} (not an SQLite database)"
                                if "not a database" not in str(exc) else str(exc)) from None
    return _GuardedConnection(con, path)


class _GuardedConnection:
    """A read-only connection whose SQLite errors (a damaged file, missing tables) become one
    line naming the file."""

    def __init__(self, con: sqlite3.Connection, path: Path):
        self._con, self._path = con, path

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> Any:
        try:
            return self._con.execute(sql, parameters)
        except sqlite3.DatabaseError as exc:
            raise damaged_run_error(self._path, str(exc)) from None

    def close(self) -> None:
        self._con.close()


def _nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


def load_rows(run_dir: str | Path) -> list[dict[str, Any]]:
    """Every stored result row, tidy: ``step, measure, field, value, ci_low, ci_high``.

    Sorted by step, then measure, then field in the order the measure reported them; a missing
    value or CI is ``NaN``.
    """
    con = _connect_readonly(Path(run_dir))
    try:
        cur = con.execute(
            "SELECT step, measure, field, value, ci_low, ci_high FROM results "
            "ORDER BY step, measure, rowid"
        )
        return [
            {"step": int(s), "measure": m, "field": f, "value": _nan(v), "ci_low": _nan(lo),
             "ci_high": _nan(hi)}
            for s, m, f, v, lo, hi in cur
        ]
    finally:
        con.close()


def load_config(run_dir: str | Path) -> dict[str, Any]:
    """The run's ``config.json`` as a dictionary (a missing, unreadable or malformed file is
    one line naming it and what to do)."""
    run_dir = check_run_dir(run_dir)
    path = Path(run_dir) / CONFIG_FILE
    if not path.exists():
        raise InputFileError(
            f"run directory {str(run_dir)!r} has no {CONFIG_FILE}; it is not an evaluation run "
            "directory (make one with `probekit evaluate ... --out DIR`)."
        )
    if not path.is_file():
        raise damaged_run_error(path, "it is a folder, not a file")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise damaged_run_error(path, f"not valid JSON ({exc})") from None
    except OSError as exc:
        raise damaged_run_error(path, f"cannot be read ({exc.strerror or exc})") from None
    if not isinstance(config, dict):
        raise damaged_run_error(
            path, f"it must hold a JSON object (the run's settings); it holds a "
                  f"{type(config).__name__}")
    if not isinstance(config.get("measures", []), list) or not all(
            isinstance(m, dict) and isinstance(m.get("name"), str)
            for m in config.get("measures", [])):
        raise damaged_run_error(path, "its 'measures' must be a list of objects with a name")
    return config


def load_results(run_dir: str | Path, step: int | None = None, *,
                 per_sample: bool = True) -> list[Result]:
    """Rebuild the stored :class:`~probekit.types.Result` objects (of one ``step``, or all).

    ``per_sample`` arrays are read back from ``artifacts/`` when asked for and present.
    """
    run_dir = Path(run_dir)
    con = _connect_readonly(run_dir)
    try:
        where, args = ("WHERE step = ?", (step,)) if step is not None else ("", ())
        evaluations = con.execute(
            f"SELECT step, measure, headline, provenance, warnings, artifact FROM evaluations "
            f"{where} ORDER BY step, rowid",
            args,
        ).fetchall()
        rows: dict[tuple[int, str], list[tuple]] = {}
        for s, m, f, v, lo, hi in con.execute(
            f"SELECT step, measure, field, value, ci_low, ci_high FROM results {where} "
            "ORDER BY rowid",
            args,
        ):
            rows.setdefault((s, m), []).append((f, v, lo, hi))
    finally:
        con.close()
    results = []
    for s, m, headline, provenance, warnings, artifact in evaluations:
        fields = rows.get((s, m), [])
        arrays: dict[str, np.ndarray] = {}
        if per_sample and artifact and (run_dir / artifact).is_file():
            with np.load(run_dir / artifact, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        results.append(
            Result(
                measure=m,
                headline=headline,
                values={f: _nan(v) for f, v, _, _ in fields},
                ci={f: (_nan(lo), _nan(hi)) for f, _, lo, hi in fields
                    if lo is not None or hi is not None},
                per_sample=arrays,
                warnings=tuple(json.loads(warnings)),
                provenance=Provenance(**json.loads(provenance)),
            )
        )
    return results


def load_failures(run_dir: str | Path) -> list[dict[str, Any]]:
    """Checkpoints that failed and have not succeeded since: ``step, path, reason, attempts``."""
    con = _connect_readonly(Path(run_dir))
    try:
        if not con.execute("SELECT name FROM sqlite_master WHERE name = 'failures'").fetchone():
            return []  # a store written before failures were recorded
        cur = con.execute("SELECT step, path, reason, attempts FROM failures ORDER BY step")
        return [{"step": int(s), "path": p, "reason": r, "attempts": int(a)}
                for s, p, r, a in cur]
    finally:
        con.close()


def load_timings(run_dir: str | Path) -> list[dict[str, Any]]:
    """Per-checkpoint timings: ``step, n_samples, seconds_queue, seconds_load,
    seconds_generate, seconds_features, seconds_measures, worker`` (benchmarks and reports read
    them; a column a store predates is ``None``)."""
    con = _connect_readonly(Path(run_dir))
    try:
        have = {row[1] for row in con.execute("PRAGMA table_info(checkpoints)")}
        columns = ["step", "path", "n_samples", "seconds_queue", "seconds_load",
                   "seconds_generate", "seconds_features", "seconds_measures", "worker"]
        select = ", ".join(c if c in have else f"NULL AS {c}" for c in columns)
        cur = con.execute(f"SELECT {select} FROM checkpoints ORDER BY step")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur]
    finally:
        con.close()


# -- configuration comparison -----------------------------------------------------------------


def _show(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


_UNSET = object()


def _dict_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    def show(value: Any) -> str:
        return "<unset>" if value is _UNSET else _show(value)

    keys = sorted(set(old) | set(new))
    parts = [
        f"{k}={show(old.get(k, _UNSET))} (stored) vs {show(new.get(k, _UNSET))} (now)"
        for k in keys if old.get(k, _UNSET) != new.get(k, _UNSET)
    ]
    return ", ".join(parts)


def config_differences(stored: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What differs between two configurations in ways that change the numbers.

    Adding measures or steps is not a difference (the run grows); changing a measure that is
    already in the run is.
    """
    diffs = []
    for key in IDENTITY_KEYS:
        a, b = stored.get(key), new.get(key)
        if a == b:
            continue
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            diffs.append(f"{key}: {_dict_diff(a, b)}")
        else:
            diffs.append(f"{key}: {_show(a)} (stored) vs {_show(b)} (now)")
    stored_measures = {m["name"]: m for m in stored.get("measures", [])}
    for measure in new.get("measures", []):
        old = stored_measures.get(measure["name"])
        if old is None:
            continue
        for key in MEASURE_IDENTITY_KEYS:
            a, b = old.get(key), measure.get(key)
            if a == b:
                continue
            if isinstance(a, Mapping) and isinstance(b, Mapping):
                diffs.append(f"{measure['name']} {key}: {_dict_diff(a, b)}")
            else:
                diffs.append(f"{measure['name']} {key}: {_show(a)} (stored) vs {_show(b)} (now)")
    return diffs


def _resume_advice(stored: Mapping[str, Any], new: Mapping[str, Any], n_diffs: int) -> str:
    """How to get out of a mismatch: name each plugin that changed version (reinstall the
    stored version to resume), else re-run with the stored settings; or start again."""
    old = {m["name"]: m for m in stored.get("measures", [])}
    bumped = [
        (m["name"], m.get("plugin"), old[m["name"]].get("version"), m.get("version"))
        for m in new.get("measures", [])
        if m["name"] in old and old[m["name"]].get("version") != m.get("version")
    ]
    start_again = ("choose a new --out, or pass --overwrite (overwrite=True) to delete its "
                   "results and start again.")
    if not bumped:
        return f"Re-run with the stored settings to resume, {start_again}"
    changed = "; ".join(
        f"plugin {plugin!r} (measure {name!r}) was version {a} when the run started and is {b} "
        "now" for name, plugin, a, b in bumped
    )
    also = " and re-run with the stored settings" if n_diffs > len(bumped) else ""
    return (
        f"{changed}. To resume, reinstall the version the run was made with (`probekit plugins` "
        f"names the distribution that provides each plugin){also}; or {start_again}"
    )


def merge_config(stored: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """``new`` with the measures and steps of ``stored`` kept (the union, in first-seen order)."""
    merged = dict(new)
    names = {m["name"] for m in new.get("measures", [])}
    merged["measures"] = [
        *[m for m in stored.get("measures", []) if m["name"] not in names],
        *new.get("measures", []),
    ]
    order = [m["name"] for m in stored.get("measures", [])]
    order += [n for n in (m["name"] for m in new.get("measures", [])) if n not in order]
    merged["measures"].sort(key=lambda m: order.index(m["name"]))
    merged["steps"] = sorted(set(stored.get("steps", [])) | set(new.get("steps", [])))
    for key in ("created_at", "versions", "probekit_version"):
        if key in stored:
            merged[key] = stored[key]
    return merged


# -- one writer per run directory ------------------------------------------------------------

#: File in a run directory that its writer holds an exclusive lock on (``flock``) while it is
#: open; it names the process holding it.
LOCK_FILE = ".probekit.lock"


class RunLock:
    """An exclusive, non-blocking lock on a run directory: a second evaluation into the same
    directory is refused at once (one line naming the process that holds it) instead of
    computing the same checkpoints twice. The kernel releases it when the holder exits, even
    on SIGKILL. Without ``fcntl`` (Windows) there is no lock."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return self
        import os
        import socket

        fd = os.open(self.run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = " ".join(os.read(fd, 200).decode("utf-8", "replace").split())[:120]
            os.close(fd)
            raise ValidationError(
                f"out: run directory {str(self.run_dir)!r} is in use by another evaluation "
                f"({holder or 'another process'}); wait for it to finish (the same command then "
                "resumes), or choose another --out."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        """Release the lock (closing the descriptor releases the flock)."""
        if self._fd is not None:
            import os

            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:  # an evaluator dropped without close() frees its directory
        self.release()


# -- the store --------------------------------------------------------------------------------


class RunStore:
    """Writer of one run directory; only the driver process holds one.

    Open it with :meth:`open`, which creates the directory or checks that the stored
    configuration matches before resuming.
    """

    def __init__(self, run_dir: Path, config: dict[str, Any]):
        self.run_dir = Path(run_dir)
        self.config = config
        self._lock: RunLock | None = None
        path = self.run_dir / RESULTS_FILE
        if path.exists() and not path.is_file():
            raise damaged_run_error(path, "it is a folder, not a database file")
        self._con = sqlite3.connect(path, isolation_level=None)
        try:
            self._initialize()
        except sqlite3.DatabaseError as exc:
            self._con.close()
            raise damaged_run_error(path, str(exc)) from None

    def _initialize(self) -> None:
        # Write-ahead log, synced at checkpoints rather than at every commit: a killed process
        # (SIGKILL, Ctrl-C) never loses a committed checkpoint, and the commit costs no fsync
        # (~20 ms per checkpoint with synchronous=FULL on this machine). A power cut may lose
        # the last few commits, never consistency: those checkpoints are simply evaluated again.
        self._con.execute("PRAGMA journal_mode = WAL")
        self._con.execute("PRAGMA synchronous = NORMAL")
        self._con.executescript(_SCHEMA)
        have = {row[1] for row in self._con.execute("PRAGMA table_info(checkpoints)")}
        for column in _LATER_TIMING_COLUMNS:
            if column not in have:
                kind = "TEXT" if column == "worker" else "REAL"
                self._con.execute(f"ALTER TABLE checkpoints ADD COLUMN {column} {kind}")
        self._con.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
            (str(SCHEMA_VERSION),),
        )

    # -- opening ------------------------------------------------------------------------------

    @classmethod
    def open(cls, run_dir: str | Path, config: Mapping[str, Any], *,
             overwrite: bool = False) -> RunStore:
        """Create ``run_dir`` for ``config``, or resume it when its stored config matches.

        Raises
        ------
        ConfigMismatchError
            The directory holds results made with a configuration that differs in a way that
            changes the numbers (and ``overwrite`` is false).
        ValidationError
            ``run_dir`` exists, is not empty and is not an evaluation run directory.
        """
        run_dir = Path(run_dir)
        # compare like with like: the stored config went through JSON (tuples became lists)
        new = json.loads(json.dumps(_jsonable({"kind": RUN_KIND, **config}), allow_nan=False))
        # refuse a file, a foreign folder, a damaged run or another configuration before
        # creating or touching anything (checked again under the lock)
        stored = _existing_config(run_dir)
        if stored is not None and not overwrite and (run_dir / RESULTS_FILE).exists():
            _check_resumable(run_dir, stored, new)
        run_dir.mkdir(parents=True, exist_ok=True)
        lock = RunLock(run_dir).acquire()
        try:
            store = cls._open_locked(run_dir, new, overwrite)
        except BaseException:
            lock.release()
            raise
        store._lock = lock
        return store

    @classmethod
    def _open_locked(cls, run_dir: Path, new: dict[str, Any], overwrite: bool) -> RunStore:
        stored = _existing_config(run_dir)
        if stored is not None and overwrite:
            remove_run_outputs(run_dir)
            stored = None
        if stored is None:
            atomic_write_json(run_dir / CONFIG_FILE, new)
            return cls(run_dir, new)
        store = cls(run_dir, stored)
        diffs = config_differences(stored, new)
        if diffs and store.n_finished() == 0:
            merged = new  # nothing computed yet: the new configuration simply replaces it
        elif diffs:
            store.close()
            raise _mismatch(run_dir, stored, new, diffs)
        else:
            merged = merge_config(stored, new)
        if merged != stored:
            atomic_write_json(run_dir / CONFIG_FILE, merged)
        store.config = merged
        return store

    def close(self) -> None:
        """Fold the write-ahead log into ``results.sqlite`` and close: a closed run directory
        is one self-contained database file (readers then leave no ``-wal``/``-shm`` files).
        The run directory's lock is released."""
        try:
            if not self._con.in_transaction:
                self._con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self._con.execute("PRAGMA journal_mode = DELETE")
        except sqlite3.Error:  # another connection is reading: leave the log, it stays valid
            pass
        finally:
            self._con.close()
            if self._lock is not None:
                self._lock.release()
                self._lock = None

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- queries ------------------------------------------------------------------------------

    def finished(self) -> set[tuple[int, str]]:
        """The (step, measure) pairs already committed."""
        return {(int(s), m) for s, m in self._con.execute("SELECT step, measure FROM evaluations")}

    def n_finished(self) -> int:
        """Number of committed (step, measure) pairs."""
        return int(self._con.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0])

    def add_steps(self, steps: Iterable[int]) -> None:
        """Record ``steps`` in ``config.json`` (the union with those already there)."""
        merged = sorted(set(self.config.get("steps", [])) | {int(s) for s in steps})
        if merged != self.config.get("steps"):
            self.config = {**self.config, "steps": merged}
            atomic_write_json(self.run_dir / CONFIG_FILE, self.config)

    # -- the one write path -------------------------------------------------------------------

    def commit_checkpoint(
        self,
        step: int,
        path: str,
        results: Sequence[Result],
        *,
        samples: np.ndarray | None = None,
        n_samples: int | None = None,
        seconds: Mapping[str, float] | None = None,
        measure_seconds: Mapping[str, float] | None = None,
    ) -> None:
        """Store every result of one checkpoint, all or nothing.

        Parameters
        ----------
        step, path :
            The checkpoint.
        results :
            One :class:`~probekit.types.Result` per measure evaluated at this step.
        samples :
            The generated samples to keep for the reports (already cut to ``n_keep``).
        n_samples :
            How many samples the measures saw.
        seconds :
            ``{"queue", "load", "generate", "features", "measures"}`` wall times of this
            checkpoint (``features``: feature extraction, part of ``measures``), and
            ``"worker"`` (where it ran), when known.
        measure_seconds :
            Wall time of each measure.
        """
        seconds = dict(seconds or {})
        measure_seconds = dict(measure_seconds or {})
        if samples is not None:
            _write_npy(self.run_dir / SAMPLES_DIR / step_file(step, ".npy"), samples)
        artifacts: dict[str, str | None] = {}
        for result in results:
            if result.per_sample:
                rel = f"{ARTIFACTS_DIR}/{result.measure}/{step_file(step, '.npz')}"
                _write_npz(self.run_dir / rel, result.per_sample)
                artifacts[result.measure] = rel
            else:
                artifacts[result.measure] = None
        now = time.time()
        con = self._con
        try:
            con.execute("BEGIN IMMEDIATE")
            for result in results:
                con.executemany(
                    "INSERT INTO results (step, measure, field, value, ci_low, ci_high) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    [(step, r["measure"], r["field"], _finite(r["value"]), _finite(r["ci_low"]),
                      _finite(r["ci_high"])) for r in result.rows()],
                )
                con.execute(
                    "INSERT INTO evaluations (step, measure, headline, provenance, warnings, "
                    "artifact, seconds, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (step, result.measure, result.headline,
                     json.dumps(result.provenance.to_dict(), allow_nan=False),
                     json.dumps(list(result.warnings)), artifacts[result.measure],
                     measure_seconds.get(result.measure), now),
                )
            con.execute(
                "INSERT OR REPLACE INTO checkpoints (step, path, n_samples, seconds_load, "
                "seconds_generate, seconds_measures, finished_at, seconds_queue, "
                "seconds_features, worker) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (step, str(path), n_samples, seconds.get("load"), seconds.get("generate"),
                 seconds.get("measures"), now, seconds.get("queue"), seconds.get("features"),
                 None if seconds.get("worker") is None else str(seconds.get("worker"))),
            )
            con.execute("DELETE FROM failures WHERE step = ?", (step,))
            con.execute("COMMIT")
        except BaseException as exc:
            if con.in_transaction:
                con.execute("ROLLBACK")
            if isinstance(exc, sqlite3.IntegrityError):
                raise ProbekitError(
                    f"run store: step {step} already holds results for one of "
                    f"{[r.measure for r in results]} in {str(self.run_dir)!r}; is another "
                    "process writing to this run directory?"
                ) from None
            raise


    def record_failure(self, step: int, path: str, reason: str) -> None:
        """Record that ``step`` could not be evaluated and why (one line); a later run retries
        it, and a success removes the record."""
        reason = " ".join(str(reason).split())[:2000]
        self._con.execute(
            "INSERT INTO failures (step, path, reason, attempts, failed_at) VALUES (?, ?, ?, 1, "
            "?) ON CONFLICT(step) DO UPDATE SET path = excluded.path, reason = excluded.reason, "
            "attempts = attempts + 1, failed_at = excluded.failed_at",
            (int(step), str(path), reason, time.time()),
        )

    def failures(self) -> dict[int, str]:
        """``{step: reason}`` of the checkpoints that failed and have not succeeded since."""
        return {int(s): r for s, r in self._con.execute("SELECT step, reason FROM failures")}


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _write_npy(path: Path, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    atomic_write_bytes(path, buffer.getvalue())


def _write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **{k: np.asarray(v) for k, v in arrays.items()})
    atomic_write_bytes(path, buffer.getvalue())


def _mismatch(run_dir: Path, stored: Mapping[str, Any], new: Mapping[str, Any],
              diffs: list[str]) -> ConfigMismatchError:
    return ConfigMismatchError(
        f"run directory {str(run_dir)!r} holds results made with another configuration: "
        + "; ".join(diffs) + ". " + _resume_advice(stored, new, len(diffs))
    )


def _check_resumable(run_dir: Path, stored: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    """Read-only: refuse a damaged results file, or results made with another configuration,
    without writing anything (the store's own open would fold its log and take the lock)."""
    con = _connect_readonly(run_dir)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
        finished = int(con.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]) \
            if "evaluations" in tables else 0
    finally:
        con.close()
    diffs = config_differences(stored, new)
    if diffs and finished:
        raise _mismatch(run_dir, stored, new, diffs)


def _existing_config(run_dir: Path) -> dict[str, Any] | None:
    """The stored evaluation config, ``None`` for a new/empty folder; refuses other folders."""
    if not run_dir.exists():
        return None
    if not run_dir.is_dir():
        raise ValidationError(
            f"out: {str(run_dir)!r} must be a folder; it is a file. Choose another --out."
        )
    config_path = run_dir / CONFIG_FILE
    if config_path.exists():
        config = load_config(run_dir)
        if config.get("kind") != RUN_KIND:
            raise ValidationError(
                f"out: {str(run_dir)!r} holds a config.json of kind {config.get('kind')!r}, not "
                f"an evaluation run ({RUN_KIND!r}). Write the evaluation to another folder "
                "(e.g. a sub-folder of it: --out RUN/eval)."
            )
        return config
    leftovers = sorted(p.name for p in run_dir.iterdir() if p.name not in (CACHE_DIR, LOCK_FILE))
    if leftovers:
        shown = ", ".join(leftovers[:4]) + (", ..." if len(leftovers) > 4 else "")
        raise ValidationError(
            f"out: {str(run_dir)!r} exists and is not an evaluation run directory (no "
            f"{CONFIG_FILE}; it holds {shown}). Choose a new or empty folder."
        )
    return None


def remove_run_outputs(run_dir: Path) -> None:
    """Delete what an evaluation wrote into ``run_dir`` (not the reference cache)."""
    for name in RUN_OUTPUTS:
        target = run_dir / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


__all__ = [
    "IDENTITY_KEYS",
    "RUN_KIND",
    "RunStore",
    "config_differences",
    "load_config",
    "load_failures",
    "load_results",
    "load_rows",
    "load_timings",
    "merge_config",
    "remove_run_outputs",
    "step_file",
]
