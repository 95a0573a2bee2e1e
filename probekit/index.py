"""Feature indexes on disk: neighbour search against training sets larger than one machine's
memory (DESIGN §8).

``probekit index build --train DATA --features EXTRACTOR --out INDEX_DIR`` (or
:func:`build_index`) extracts the training features chunk by chunk (resumable: a killed build
goes on at the next chunk), collapses duplicates as the in-memory probes do, and writes::

    INDEX_DIR/index.json               manifest: format, feature space, rows, shards, modes
    INDEX_DIR/build.json               input fingerprint and build settings (resume check)
    INDEX_DIR/shards/shard-0000.npy    float32 rows of one shard (read in chunks / memory-mapped)
    INDEX_DIR/shards/shard-0000.ids.npy  original training row of each shard row (int64)
    INDEX_DIR/shards/shard-0000.json   the shard's row statistics (its completion mark)
    INDEX_DIR/shards/shard-0000.ivf    faiss IVF-Flat or IVF-PQ index (approximate mode only)

:class:`FeatureIndex` searches it with the ``search(queries, k)`` of
:class:`~probekit.neighbors.NearestNeighborIndex`, so a probe can use either:

``exact``
    every shard searched by :class:`~probekit.neighbors.NearestNeighborIndex` over its file
    (float32 candidates chunk by chunk, float64 refinement, certificate), the shards' exact top
    k merged by ``(distance, index)``: the result equals the in-memory exact search bit for bit.
``approximate``
    IVF candidates per shard (``nprobe`` lists, ``rerank`` candidates), exact float64
    re-ranking from the stored vectors, the same merge. Every search also runs the exact search
    on a seeded sample of the queries and reports the measured recall of the true top k (and
    lets a probe measure how many of its decisions change); a recall below ``recall_floor`` is
    a :class:`~probekit.errors.DataWarning`.

Shards can be served by Ray actors (``ray="local"``, ``"auto"`` or a cluster address; one actor
per shard, asking Ray for the memory its shard needs): the queries go to every actor, the exact
per-shard results come back and are merged on the driver, whose memory does not depend on the
training-set size. Every node must see ``INDEX_DIR`` at the same path (shared storage).

The feature space (extractor, its weights hash and preprocessing) is recorded; a probe that
measures in another space is refused with a one-line error.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pydantic

from probekit.base import FeatureExtractor, MeasureSettings, Settings
from probekit.duplicates import DEFAULT_RTOL, distance_scale
from probekit.errors import (
    ConfigMismatchError,
    DataWarning,
    InputFileError,
    MissingResourceError,
    ValidationError,
)
from probekit.neighbors import (
    NearestNeighborIndex,
    float32_error_unit,
    merge_topk,
    refine_candidates,
    sqnorm_upper_bound,
)
from probekit.progress import Progress

#: Version of the directory layout; an index of another version is refused.
INDEX_FORMAT = 1
MANIFEST = "index.json"
BUILD_STATE = "build.json"


# -- settings ----------------------------------------------------------------------------------


class IndexBuildSettings(Settings):
    """Settings of ``probekit index build`` (flags generated from these fields)."""

    features: str = pydantic.Field("pixels", description="registered feature extractor")
    features_settings: dict[str, str] = pydantic.Field(
        default_factory=dict, description="feature extractor setting",
        json_schema_extra={"flag": "--features-set", "cli": "key_value"},
    )
    mode: Literal["exact", "approximate"] = pydantic.Field(
        "exact", description="exact: flat shards only; approximate: also an IVF index per shard"
    )
    shards: int | None = pydantic.Field(
        None, ge=1, description="number of shards (default: rows / shard_rows, rounded up)"
    )
    shard_rows: int = pydantic.Field(262_144, ge=1, description="rows per shard")
    chunk_rows: int = pydantic.Field(
        16_384, ge=1, description="rows extracted per chunk (the unit a killed build resumes at)"
    )
    batch_size: int = pydantic.Field(256, ge=1, description="samples per extractor call")
    ivf: Literal["flat", "pq"] = pydantic.Field(
        "flat", description="approximate mode: IVF-Flat (full vectors) or IVF-PQ (compact codes)"
    )
    nlist: int | None = pydantic.Field(
        None, ge=1, description="IVF lists (default: 4 sqrt(rows), a power of two)"
    )
    pq_m: int | None = pydantic.Field(
        None, ge=1, description="IVF-PQ sub-quantizers, must divide the dimension "
        "(default: dimension / 8 rounded to a divisor)"
    )
    train_per_list: int = pydantic.Field(
        64, ge=39, description="IVF training points per list (a seeded sample)"
    )
    nprobe: int = pydantic.Field(16, ge=1, description="default lists visited per query")
    rerank: int = pydantic.Field(
        16, ge=1, description="default IVF candidates per query and shard re-ranked exactly"
    )
    collapse_duplicates: bool = pydantic.Field(
        True, description="collapse exact and near-duplicate training rows, as the probes do"
    )
    duplicate_rtol: float = pydantic.Field(
        DEFAULT_RTOL, ge=0, description="near-duplicate tolerance, relative to the distance scale"
    )
    seed: int = pydantic.Field(0, ge=0, description="seed of the IVF training sample")


class IndexSearchSettings(MeasureSettings):
    """Settings of a probe that can search a prebuilt index instead of its in-memory set.

    A probe's settings model derives from this class; ``index`` unset keeps the in-memory
    search.
    """

    index: str | None = pydantic.Field(
        None, description="INDEX_DIR of `probekit index build` to search instead of the "
        "training set given"
    )
    index_mode: Literal["auto", "exact", "approximate"] = pydantic.Field(
        "auto", description="auto: approximate when the index has an IVF part, else exact"
    )
    index_nprobe: int | None = pydantic.Field(
        None, ge=1, description="IVF lists visited per query (default: the index's)"
    )
    index_rerank: int | None = pydantic.Field(
        None, ge=1, description="IVF candidates re-ranked exactly (default: the index's)"
    )
    index_recall_floor: float = pydantic.Field(
        0.99, ge=0, le=1, description="warn when the measured recall is below this"
    )
    index_recall_sample: int = pydantic.Field(
        256, ge=1, description="queries searched exactly to measure the recall (seeded)"
    )
    index_ray: str | None = pydantic.Field(
        None, description="serve shards by Ray actors: local, auto or a cluster address"
    )


# -- feature space -----------------------------------------------------------------------------


#: Extractor settings that do not change the features (compared through the weights hash or
#: not at all): where the network runs, its batch size, its float32 fusion, the weights' path.
_RUNTIME_SETTINGS = frozenset({"device", "batch_size", "optimize", "weights"})


@dataclass(frozen=True)
class FeatureSpace:
    """What the stored vectors are: extractor name, weights hash, preprocessing, settings."""

    extractor: str
    weights_sha256: str | None
    preprocessing: str
    settings: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, extractor: FeatureExtractor) -> FeatureSpace:
        settings = extractor.settings.model_dump(mode="json") if hasattr(
            extractor, "settings") else {}
        return cls(extractor.name, extractor.weights_sha256, str(extractor.preprocessing),
                   settings)

    def to_dict(self) -> dict[str, Any]:
        return {"extractor": self.extractor, "weights_sha256": self.weights_sha256,
                "preprocessing": self.preprocessing, "settings": self.settings}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureSpace:
        return cls(d["extractor"], d.get("weights_sha256"), d.get("preprocessing", "none"),
                   dict(d.get("settings") or {}))

    def _feature_settings(self) -> dict[str, Any]:
        return {k: v for k, v in self.settings.items() if k not in _RUNTIME_SETTINGS}

    def same_space(self, other: FeatureSpace) -> bool:
        """Same extractor, weights, preprocessing and feature-defining settings (where the
        network runs, its batch size and the weights' path do not change the features)."""
        return (self.extractor, self.weights_sha256, self.preprocessing,
                self._feature_settings()) == (other.extractor, other.weights_sha256,
                                              other.preprocessing, other._feature_settings())

    def describe(self) -> str:
        sha = f", weights {self.weights_sha256[:12]}" if self.weights_sha256 else ""
        options = ", ".join(f"{k}={v}" for k, v in sorted(self._feature_settings().items()))
        return (f"{self.extractor!r} (preprocessing {self.preprocessing!r}{sha}"
                + (f"; {options}" if options else "") + ")")


# -- shard files -------------------------------------------------------------------------------


def _npy_data_offset(path: Path) -> tuple[int, tuple[int, ...], np.dtype]:
    """Byte offset of the data, shape and dtype of a C-ordered ``.npy`` file."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise InputFileError(f"index: {str(path)!r} has .npy version {version}; rebuild.")
        if fortran:
            raise InputFileError(f"index: {str(path)!r} must be C-ordered; rebuild the index.")
        return f.tell(), tuple(shape), np.dtype(dtype)


class ShardRows:
    """A shard's float32 rows on disk as a :class:`~probekit.neighbors.RowStore`.

    Chunks are read with ``os.pread`` into fresh buffers (the page cache is not counted in the
    process's memory); single rows are gathered through a read-only memory map.
    """

    def __init__(self, path: str | os.PathLike, stats: dict[str, Any] | None = None):
        self.path = Path(path)
        self._offset, shape, dtype = _npy_data_offset(self.path)
        if len(shape) != 2 or dtype != np.float32:
            raise InputFileError(
                f"index: shard {str(self.path)!r} must hold a 2-d float32 array; got shape "
                f"{shape} and dtype {dtype}. Rebuild the index."
            )
        self.shape = (int(shape[0]), int(shape[1]))
        self.dtype = np.dtype(np.float32)
        self.stats = stats
        self._fd: int | None = None

    def __getstate__(self) -> dict[str, Any]:  # file handles do not travel
        return {"path": self.path, "stats": self.stats}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], state["stats"])

    def read_rows(self, start: int, stop: int) -> np.ndarray:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        dim = self.shape[1]
        out = np.empty((stop - start, dim), dtype=np.float32)
        view = memoryview(out).cast("B")
        pos, done = self._offset + start * dim * 4, 0
        while done < view.nbytes:
            n = os.preadv(self._fd, [view[done:]], pos + done)
            if n <= 0:
                raise InputFileError(f"index: {str(self.path)!r} is truncated; rebuild the index.")
            done += n
        return out

    def take_rows(self, rows: np.ndarray) -> np.ndarray:
        """Rows at ascending indices, read with ``pread`` (runs of consecutive rows at once).

        Not through a memory map: the kernel maps pages around each fault, so scattered
        gathers would make the whole file resident in the process (measured: 0.94 of the
        training features for a 1M-row search), where reads leave it in the page cache only.
        """
        rows = np.asarray(rows, dtype=np.int64)
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        dim = self.shape[1]
        out = np.empty((len(rows), dim), dtype=np.float32)
        if not len(rows):
            return out
        view = memoryview(out).cast("B")
        row_bytes = dim * 4
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        starts = np.concatenate([[0], breaks])
        ends = np.concatenate([breaks, [len(rows)]])
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            lo, hi = a * row_bytes, b * row_bytes
            pos = self._offset + int(rows[a]) * row_bytes
            while lo < hi:
                n = os.preadv(self._fd, [view[lo:hi]], pos)
                if n <= 0:
                    raise InputFileError(
                        f"index: {str(self.path)!r} is truncated; rebuild the index.")
                lo, pos = lo + n, pos + n
        return out

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _row_stats(rows: np.ndarray) -> dict[str, Any]:
    sq = np.einsum("ij,ij->i", rows, rows)
    return {"sum": rows.sum(axis=0, dtype=np.float64), "max_sqnorm": float(sq.max()),
            "sum_sqnorm": float(sq.sum(dtype=np.float64))}


class ShardSearcher:
    """Exact and approximate search of one shard (in the driver or inside a Ray actor)."""

    def __init__(self, root: str | os.PathLike, shard: dict[str, Any], *, chunk_rows: int,
                 load_ivf: bool = False):
        root = Path(root)
        self.offset = int(shard["offset"])
        stats = {"sum": np.asarray(shard["stats"]["sum"], dtype=np.float64),
                 "max_sqnorm": shard["stats"]["max_sqnorm"],
                 "sum_sqnorm": shard["stats"]["sum_sqnorm"]}
        self.rows = ShardRows(root / shard["file"], stats)
        self.exact_index = NearestNeighborIndex(self.rows, chunk_size=chunk_rows,
                                                cache_bytes=0)
        self.ivf: Any = None
        self.ivf_kind = shard.get("ivf_kind")
        self._ivf_path = root / shard["ivf"] if shard.get("ivf") else None
        if load_ivf:
            self._load_ivf()

    def _load_ivf(self) -> Any:
        if self.ivf is None:
            import faiss

            if self._ivf_path is None:
                raise ValidationError(
                    "index: this index has no IVF part (built in exact mode); rebuild it with "
                    "--mode approximate or search it with index_mode=exact."
                )
            self.ivf = faiss.read_index(str(self._ivf_path))
        return self.ivf

    def exact(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, int]:
        """Exact top ``min(k, rows)``: float64 distances, global indices, fallbacks."""
        kk = min(k, self.exact_index.n_reference)
        d, i = self.exact_index.search(q, kk, batch_size=max(1, len(q)))
        return d, i + self.offset, self.exact_index.n_fallbacks_

    def approximate(self, q: np.ndarray, k: int, nprobe: int, rerank: int
                    ) -> tuple[np.ndarray, np.ndarray, int]:
        """IVF candidates, re-ranked exactly in float64: distances, global indices, 0."""
        ivf = self._load_ivf()
        ivf.nprobe = int(nprobe)
        n = self.exact_index.n_reference
        kk = min(k, n)
        r = max(min(rerank, n), kk)
        q64 = np.asarray(q, dtype=np.float64)
        cand_d, cand_i = ivf.search(np.ascontiguousarray(q64, dtype=np.float32), r)
        cand_d = np.where(cand_i >= 0, cand_d, np.inf)
        if self.ivf_kind == "flat":  # float32 distances of the stored vectors: bounded error
            q32 = q64.astype(np.float32)
            dim = self.rows.shape[1]
            r_sq = sqnorm_upper_bound(float(self.rows.stats["max_sqnorm"]), dim)
            err = float32_error_unit(dim) * (
                np.einsum("ij,ij->i", q32, q32).astype(np.float64) + r_sq)
        else:
            err = None  # product-quantized distances: no bound, re-rank every candidate
        out_d = np.empty((len(q64), kk))
        out_i = np.empty((len(q64), kk), dtype=np.int64)
        for s in range(0, len(q64), 1024):  # bounded gathers
            e = min(s + 1024, len(q64))
            part_err = None if err is None else err[s:e]
            d, i, _ = refine_candidates(
                q64[s:e], cand_d[s:e], cand_i[s:e], kk, part_err,
                self.exact_index.exact_sqdist,
            )
            out_d[s:e], out_i[s:e] = d, i
        missing = ~np.isfinite(out_d)
        out_i = np.where(missing, -1, out_i + self.offset)
        return np.sqrt(np.maximum(out_d, 0.0)), out_i, 0

    def memory_bytes(self) -> int:
        """What the searcher needs in memory: the IVF file (approximate) or two chunks."""
        chunk = 2 * self.exact_index.chunk_size * self.rows.shape[1] * 4
        ivf = self._ivf_path.stat().st_size if self._ivf_path is not None else 0
        return chunk + ivf + (64 << 20)

    def close(self) -> None:
        self.rows.close()


# -- building ----------------------------------------------------------------------------------


def _atomic_save_npy(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.save(f, array)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    from probekit.io import atomic_write_json

    atomic_write_json(path, obj)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputFileError(
            f"index: cannot read {str(path)!r} ({type(exc).__name__}); rebuild the index with "
            "--overwrite."
        ) from None


class _ChunkRows:
    """The extracted chunk files as one read-only row array (slices and sorted gathers)."""

    def __init__(self, paths: list[Path], chunk_rows: int, n: int, dim: int):
        self.paths, self.chunk_rows = paths, chunk_rows
        self.shape = (n, dim)
        self._maps: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return self.shape[0]

    def _chunk(self, j: int) -> np.ndarray:
        if j not in self._maps:
            self._maps.clear()  # one mapped chunk at a time
            self._maps[j] = np.load(self.paths[j], mmap_mode="r")
        return self._maps[j]

    def __getitem__(self, item: Any) -> np.ndarray:
        if isinstance(item, slice):
            start, stop, _ = item.indices(self.shape[0])
            parts = []
            for j in range(start // self.chunk_rows, (max(stop, start + 1) - 1)
                           // self.chunk_rows + 1):
                base = j * self.chunk_rows
                lo, hi = max(start, base) - base, min(stop, base + self.chunk_rows) - base
                if hi > lo:
                    parts.append(np.asarray(self._chunk(j)[lo:hi]))
            return np.concatenate(parts) if parts else np.empty((0, self.shape[1]), np.float32)
        rows = np.asarray(item, dtype=np.int64)
        out = np.empty((len(rows), self.shape[1]), dtype=np.float32)
        which = rows // self.chunk_rows
        for j in np.unique(which):
            sel = np.flatnonzero(which == j)
            out[sel] = self._chunk(int(j))[rows[sel] - j * self.chunk_rows]
        return out


def _row_hashes(rows: np.ndarray, salt: np.ndarray) -> np.ndarray:
    """Two 64-bit hashes per row of its values (``-0.0`` counted as ``0.0``), shape (n, 2)."""
    words = (np.asarray(rows, dtype=np.float32) + np.float32(0.0)).view(np.uint32)
    words = words.astype(np.uint64)
    with np.errstate(over="ignore"):
        h1 = ((words + salt[0]) * salt[1]).sum(axis=1)
        h2 = ((words ^ salt[2]) * salt[3]).sum(axis=1)
    return np.stack([h1, h2], axis=1)


def find_duplicate_rows(rows: Any, *, rtol: float = DEFAULT_RTOL, chunk_rows: int = 16384
                        ) -> tuple[np.ndarray, int, int]:
    """The rows kept by :func:`probekit.duplicates.find_duplicates`, computed in passes over
    ``rows`` (``len``, slices, sorted gathers) so that memory grows by a few numbers per row,
    not by the rows themselves.

    Exact repeats are found by row hashes (every hash collision compared value by value);
    near-duplicates by the same seeded projection and band search as ``find_duplicates``, on
    the same distance scale. Returns ``(kept, n_exact, n_near)``.
    """
    n, dim = rows.shape
    salt = np.random.default_rng(12345).integers(1, 2**63, size=(4, dim), dtype=np.uint64) | 1
    hashes = np.empty((n, 2), dtype=np.uint64)
    for s in range(0, n, chunk_rows):
        hashes[s : s + chunk_rows] = _row_hashes(rows[s : s + chunk_rows], salt)
    order = np.lexsort((np.arange(n), hashes[:, 1], hashes[:, 0]))
    sh = hashes[order]
    same = np.all(sh[1:] == sh[:-1], axis=1)
    representative = np.arange(n)
    if same.any():  # verify collisions value by value; a repeat points to its first occurrence
        starts = np.flatnonzero(np.concatenate([[True], ~same]))
        ends = np.append(starts[1:], n)
        for a, b in zip(starts, ends, strict=True):
            if b - a < 2:
                continue
            members = np.sort(order[a:b])
            values = rows[members] + np.float32(0.0)
            reps: list[int] = []
            for m in range(len(members)):
                for r in reps:
                    if np.array_equal(values[m], values[r]):
                        representative[members[m]] = members[r]
                        break
                else:
                    reps.append(m)
    uniq = np.flatnonzero(representative == np.arange(n))
    n_exact = n - len(uniq)
    kept = uniq
    n_near = 0
    scale = distance_scale(rows)
    tol = float(rtol) * scale
    if tol > 0 and len(uniq) > 1:
        direction = np.random.default_rng(0).normal(size=dim)
        direction /= np.linalg.norm(direction)
        proj = np.empty(len(uniq))
        for s in range(0, len(uniq), chunk_rows):
            proj[s : s + chunk_rows] = rows[uniq[s : s + chunk_rows]].astype(np.float64) @ direction
        pos_order = np.argsort(proj, kind="stable")
        sorted_proj = proj[pos_order]
        band_end = np.searchsorted(sorted_proj, sorted_proj + tol, side="right")
        widths = band_end - np.arange(len(uniq)) - 1
        pos = np.flatnonzero(widths > 0)
        firsts, seconds = [], []
        offset = 1
        while len(pos):
            a, b = pos_order[pos], pos_order[pos + offset]
            for s in range(0, len(a), chunk_rows):
                ra = rows[uniq[a[s : s + chunk_rows]]].astype(np.float64)
                rb = rows[uniq[b[s : s + chunk_rows]]].astype(np.float64)
                diff = ra - rb
                close = np.einsum("ij,ij->i", diff, diff) <= tol * tol
                firsts.append(a[s : s + chunk_rows][close])
                seconds.append(b[s : s + chunk_rows][close])
            offset += 1
            pos = pos[widths[pos] >= offset]
        if firsts and sum(len(f) for f in firsts):
            from scipy.sparse import coo_matrix
            from scipy.sparse.csgraph import connected_components

            a, b = np.concatenate(firsts), np.concatenate(seconds)
            m = len(uniq)
            graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(m, m))
            _, labels = connected_components(graph, directed=False)
            lowest = np.full(labels.max() + 1, m, dtype=np.int64)
            np.minimum.at(lowest, labels, np.arange(m))
            reps = np.unique(lowest[labels])
            kept = uniq[reps]
            n_near = len(uniq) - len(reps)
    return kept.astype(np.int64), int(n_exact), int(n_near)


def default_nlist(n: int) -> int:
    """``4 sqrt(n)`` rounded to a power of two, at least 1 and at most ``n // 39``."""
    target = 4.0 * math.sqrt(max(n, 1))
    nlist = 2 ** max(0, round(math.log2(target)))
    return int(max(1, min(nlist, n // 39 if n >= 39 else 1)))


def default_pq_m(dim: int) -> int:
    """The divisor of ``dim`` closest to ``dim / 8`` (8 dimensions per sub-quantizer)."""
    divisors = [m for m in range(1, dim + 1) if dim % m == 0]
    return min(divisors, key=lambda m: (abs(m - dim / 8), m))


def _fingerprint_of(train: Any, source: str | None) -> dict[str, Any]:
    arr = np.asarray(train[:0]) if hasattr(train, "__getitem__") else np.asarray(train)
    fp: dict[str, Any] = {"shape": list(np.shape(train)), "dtype": str(arr.dtype)}
    if source:
        p = Path(source)
        if p.exists():
            st = p.stat()
            fp.update(source=str(p.resolve()), size=st.st_size, mtime_ns=st.st_mtime_ns)
    n = len(train)
    if n:  # a cheap content check: the first and the last row
        digest = [float(np.asarray(train[0], dtype=np.float64).sum()),
                  float(np.asarray(train[n - 1], dtype=np.float64).sum())]
        fp["edge_rows_sum"] = digest
    return fp


def build_index(
    train: Any,
    out: str | os.PathLike,
    settings: IndexBuildSettings | dict[str, Any] | None = None,
    *,
    extractor: FeatureExtractor | None = None,
    source: str | None = None,
    overwrite: bool = False,
    quiet: bool = False,
    on_chunk: Callable[[int], None] | None = None,
) -> Path:
    """Build (or resume building) an index of ``train`` in ``out``; return ``out``.

    Parameters
    ----------
    train : array (n_samples, ...)
        The training set (a ``np.memmap`` is read chunk by chunk).
    out : path
        Index directory. A partial build of the same input and settings is resumed at the
        next chunk; a different one is refused unless ``overwrite``.
    settings : IndexBuildSettings or mapping
        See :class:`IndexBuildSettings`.
    extractor : FeatureExtractor, optional
        An extractor instance (its name must be ``settings.features``).
    source : str, optional
        The path ``train`` was read from (recorded, and part of the resume check).
    on_chunk : callable, optional
        Called with the chunk number after each chunk is written (progress hooks, tests).
    """
    from probekit.base import build_settings
    from probekit.features import extract_in_batches, resolve_extractor

    s = build_settings(IndexBuildSettings, "index build", settings)
    assert isinstance(s, IndexBuildSettings)
    if extractor is None:
        from probekit.registry import get_feature_extractor

        extractor = get_feature_extractor(s.features)(dict(s.features_settings))
    extractor = resolve_extractor(s.features, extractor)
    n = len(train)
    if n < 2:
        raise ValidationError(
            f"index build: train must hold at least 2 samples; got {n}. Give the training set."
        )
    out = Path(out)
    space = FeatureSpace.of(extractor)
    fingerprint = _fingerprint_of(train, source)
    state = {"format": INDEX_FORMAT, "fingerprint": fingerprint,
             "settings": s.model_dump(mode="json"), "feature_space": space.to_dict(),
             "per_sample_shape": list(np.shape(train)[1:])}
    manifest_path = out / MANIFEST
    is_index_dir = (out / BUILD_STATE).exists() or manifest_path.exists()
    if out.exists() and not is_index_dir and any(out.iterdir()):
        raise ValidationError(
            f"index build: out must be a new or empty folder, or an index folder; "
            f"{str(out)!r} holds other files. Choose another --out."
        )
    if overwrite and is_index_dir:
        shutil.rmtree(out)
    if manifest_path.exists():
        old = _read_json(out / BUILD_STATE) if (out / BUILD_STATE).exists() else {}
        if _same_build(old, state):
            return out  # already built from this input with these settings
        raise ConfigMismatchError(
            f"index build: {str(out)!r} already holds an index of another input or settings. "
            "Use --overwrite to replace it, or another --out."
        )
    out.mkdir(parents=True, exist_ok=True)
    if (out / BUILD_STATE).exists():
        if not _same_build(_read_json(out / BUILD_STATE), state):
            raise ConfigMismatchError(
                f"index build: {str(out)!r} holds a partial build of another input or settings. "
                "Use --overwrite to start again, or another --out."
            )
    else:
        _write_json(out / BUILD_STATE, state)

    # 1. features, chunk by chunk (a chunk file exists only once complete)
    chunk_dir = out / "chunks"
    chunk_dir.mkdir(exist_ok=True)
    n_chunks = -(-n // s.chunk_rows)
    paths = [chunk_dir / f"chunk-{j:06d}.npy" for j in range(n_chunks)]
    dim = None
    started = time.perf_counter()
    with Progress(n_chunks, "index build: features", enabled=False if quiet else None) as bar:
        for j, path in enumerate(paths):
            lo, hi = j * s.chunk_rows, min(n, (j + 1) * s.chunk_rows)
            if path.exists():
                try:
                    _, shape, _ = _npy_data_offset(path)
                except (OSError, ValueError):
                    shape = ()
                if shape[:1] == (hi - lo,):
                    dim = shape[1]
                    bar.update()
                    continue
            feats = extract_in_batches(extractor, np.asarray(train[lo:hi]), s.batch_size)
            feats = np.ascontiguousarray(feats.reshape(len(feats), -1), dtype=np.float32)
            if not np.isfinite(feats).all():
                raise ValidationError(
                    f"index build: features of rows {lo}-{hi - 1} must be finite; got NaN or "
                    "inf. Check the training data and the extractor."
                )
            if dim is not None and feats.shape[1] != dim:
                raise ValidationError(
                    f"index build: extractor {extractor.name!r} must give the same number of "
                    f"features for every chunk; got {feats.shape[1]} after {dim}."
                )
            dim = feats.shape[1]
            _atomic_save_npy(path, feats)
            bar.update()
            if on_chunk is not None:
                on_chunk(j)
    assert dim is not None
    rows = _ChunkRows(paths, s.chunk_rows, n, dim)

    # 2. duplicates
    kept_path = out / "kept.npy"
    if kept_path.exists():
        kept = np.load(kept_path)
        dup_info = _read_json(out / "kept.json")
    else:
        if s.collapse_duplicates:
            kept, n_exact, n_near = find_duplicate_rows(
                rows, rtol=s.duplicate_rtol, chunk_rows=s.chunk_rows)
        else:
            kept, n_exact, n_near = np.arange(n, dtype=np.int64), 0, 0
        dup_info = {"n_exact": n_exact, "n_near": n_near}
        _write_json(out / "kept.json", dup_info)
        _atomic_save_npy(kept_path, kept)
    n_kept = len(kept)
    if n_kept < 2:
        raise ValidationError(
            f"index build: train must hold at least 2 distinct samples; got {n_kept} of {n}."
        )

    # 3. shards (a shard is complete once its .json is written)
    n_shards = s.shards or -(-n_kept // s.shard_rows)
    n_shards = max(1, min(n_shards, n_kept))
    bounds = np.linspace(0, n_kept, n_shards + 1).round().astype(np.int64)
    shard_dir = out / "shards"
    shard_dir.mkdir(exist_ok=True)
    shards = []
    with Progress(n_shards, "index build: shards", enabled=False if quiet else None) as bar:
        for j in range(n_shards):
            name = f"shard-{j:04d}"
            info_path = shard_dir / f"{name}.json"
            if info_path.exists():
                shards.append(_read_json(info_path))
                bar.update()
                continue
            ids = kept[bounds[j] : bounds[j + 1]]
            tmp = shard_dir / f"{name}.npy.tmp"
            arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32,
                                            shape=(len(ids), dim))
            total = np.zeros(dim)
            max_sq, sum_sq = 0.0, 0.0
            for a in range(0, len(ids), s.chunk_rows):
                block = rows[ids[a : a + s.chunk_rows]]
                arr[a : a + len(block)] = block
                st = _row_stats(block)
                total += st["sum"]
                max_sq, sum_sq = max(max_sq, st["max_sqnorm"]), sum_sq + st["sum_sqnorm"]
            arr.flush()
            del arr
            os.replace(tmp, shard_dir / f"{name}.npy")
            _atomic_save_npy(shard_dir / f"{name}.ids.npy", ids)
            info = {"file": f"shards/{name}.npy", "ids": f"shards/{name}.ids.npy",
                    "offset": int(bounds[j]), "rows": len(ids),
                    "stats": {"sum": total.tolist(), "max_sqnorm": max_sq,
                              "sum_sqnorm": sum_sq}}
            _write_json(info_path, info)
            shards.append(info)
            bar.update()

    # 4. IVF (approximate mode)
    ivf_info: dict[str, Any] | None = None
    if s.mode == "approximate":
        ivf_info = _build_ivf(out, shards, s, n_kept, dim, quiet=quiet)
        for info in shards:
            info["ivf"] = info["file"].replace(".npy", ".ivf")
            info["ivf_kind"] = s.ivf

    manifest = {
        "format": INDEX_FORMAT,
        "feature_space": space.to_dict(),
        "per_sample_shape": list(np.shape(train)[1:]),
        "dim": int(dim),
        "n_rows_given": int(n),
        "n_rows": int(n_kept),
        "duplicates": {"collapsed": s.collapse_duplicates, "rtol": s.duplicate_rtol,
                       **dup_info},
        "chunk_rows": s.chunk_rows,
        "shards": shards,
        "mode": s.mode,
        "ivf": ivf_info,
        "defaults": {"nprobe": s.nprobe, "rerank": s.rerank},
        "source": fingerprint.get("source"),
        "build_seconds_last_session": round(time.perf_counter() - started, 3),
    }
    _write_json(manifest_path, manifest)
    shutil.rmtree(chunk_dir, ignore_errors=True)
    return out


def _same_build(old: dict[str, Any], new: dict[str, Any]) -> bool:
    return json.loads(json.dumps(old)) == json.loads(json.dumps(new))


def _build_ivf(out: Path, shards: list[dict[str, Any]], s: IndexBuildSettings, n: int,
               dim: int, *, quiet: bool) -> dict[str, Any]:
    """Train one IVF quantizer on a seeded sample of all rows; one IVF index per shard."""
    import faiss

    nlist = s.nlist or default_nlist(n)
    if nlist > n:
        raise ValidationError(
            f"index build: nlist must be at most the number of distinct rows ({n}); got {nlist}."
        )
    pq_m = s.pq_m or default_pq_m(dim)
    if s.ivf == "pq" and dim % pq_m:
        raise ValidationError(
            f"index build: pq_m must divide the feature dimension {dim}; got {pq_m}. "
            f"Try {default_pq_m(dim)}."
        )
    trained_path = out / "shards" / "trained.ivf"
    if trained_path.exists():
        trained = faiss.read_index(str(trained_path))
    else:
        size = min(n, s.train_per_list * nlist)
        sample = np.sort(np.random.default_rng(s.seed).choice(n, size=size, replace=False))
        xt = _gather_global(out, shards, sample)
        quantizer = faiss.IndexFlatL2(dim)
        if s.ivf == "flat":
            trained = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_L2)
        else:
            trained = faiss.IndexIVFPQ(quantizer, dim, nlist, pq_m, 8)
        trained.cp.seed = s.seed
        trained.train(xt)
        tmp = trained_path.with_name(trained_path.name + ".tmp")
        faiss.write_index(trained, str(tmp))
        os.replace(tmp, trained_path)
    with Progress(len(shards), "index build: IVF", enabled=False if quiet else None) as bar:
        for info in shards:
            path = out / info["file"].replace(".npy", ".ivf")
            if not path.exists():
                index = faiss.clone_index(trained)
                rows = ShardRows(out / info["file"])
                for a in range(0, info["rows"], s.chunk_rows):
                    index.add(rows.read_rows(a, min(info["rows"], a + s.chunk_rows)))
                rows.close()
                tmp = path.with_name(path.name + ".tmp")
                faiss.write_index(index, str(tmp))
                os.replace(tmp, path)
            bar.update()
    return {"kind": s.ivf, "nlist": int(nlist), "pq_m": int(pq_m) if s.ivf == "pq" else None,
            "trained_on": int(min(n, s.train_per_list * nlist)), "seed": s.seed}


def _gather_global(out: Path, shards: list[dict[str, Any]], rows: np.ndarray) -> np.ndarray:
    """Rows at sorted global positions, read from the shard files."""
    parts = []
    for info in shards:
        lo, hi = info["offset"], info["offset"] + info["rows"]
        sel = rows[(rows >= lo) & (rows < hi)] - lo
        if len(sel):
            r = ShardRows(out / info["file"])
            parts.append(np.asarray(r.take_rows(sel)))
            r.close()
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)


# -- searching ---------------------------------------------------------------------------------


class _KeptIds:
    """Original training row of every index row, read from the shards' id files on demand."""

    def __init__(self, root: Path, shards: list[dict[str, Any]]):
        self._root, self._shards = root, shards
        self._offsets = np.array([sh["offset"] for sh in shards] + [
            shards[-1]["offset"] + shards[-1]["rows"]])
        self._maps: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def __getitem__(self, idx: Any) -> Any:
        scalar = np.ndim(idx) == 0
        idx = np.atleast_1d(np.asarray(idx, dtype=np.int64))
        out = np.full(idx.shape, -1, dtype=np.int64)
        which = np.searchsorted(self._offsets, idx, side="right") - 1
        for j in np.unique(which[(idx >= 0) & (which < len(self._shards))]):
            if j not in self._maps:
                self._maps[j] = np.load(self._root / self._shards[j]["ids"], mmap_mode="r")
            sel = (which == j) & (idx >= 0)
            out[sel] = self._maps[j][idx[sel] - self._offsets[j]]
        return int(out[0]) if scalar else out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self[np.arange(len(self))].astype(dtype or np.int64)


class FeatureIndex:
    """A built index directory, searched exactly or approximately, locally or by Ray actors.

    Use :meth:`open`. ``search(queries, k)`` has the contract of
    :meth:`probekit.neighbors.NearestNeighborIndex.search` (float64 distances ascending, ties
    by index; in approximate mode the rows found are the IVF's, re-ranked exactly).
    ``last_search_`` describes the last search (mode, measured recall, ...).
    """

    def __init__(self, path: Path, manifest: dict[str, Any], *, mode: str, nprobe: int,
                 rerank: int, recall_sample: int, recall_floor: float, seed: int,
                 ray: str | None, chunk_rows: int):
        self.path = path
        self.manifest = manifest
        self.mode = mode
        self.nprobe, self.rerank = int(nprobe), int(rerank)
        self.recall_sample, self.recall_floor, self.seed = recall_sample, recall_floor, seed
        self.feature_space = FeatureSpace.from_dict(manifest["feature_space"])
        self.n_reference = int(manifest["n_rows"])
        self.n_rows_given = int(manifest["n_rows_given"])
        self.dim = int(manifest["dim"])
        self.per_sample_shape = tuple(manifest.get("per_sample_shape") or ())
        self.kept_ = _KeptIds(path, manifest["shards"])
        self.chunk_rows = int(chunk_rows)
        self.n_fallbacks_ = 0
        self.last_search_: dict[str, Any] = {}
        self._ray_address = ray
        self._ray_started = False
        self._actors: list[Any] | None = None
        self._local: list[ShardSearcher] | None = None
        self.closed = False

    # -- opening ----------------------------------------------------------------------------

    @classmethod
    def open(
        cls, path: str | os.PathLike, *, mode: str = "auto", nprobe: int | None = None,
        rerank: int | None = None, recall_sample: int = 256, recall_floor: float = 0.99,
        seed: int = 0, ray: str | None = None, chunk_rows: int | None = None,
    ) -> FeatureIndex:
        """Open ``path`` (built by :func:`build_index`).

        ``mode``: ``"exact"``, ``"approximate"`` or ``"auto"`` (approximate when the index has
        an IVF part). ``ray``: ``None`` searches in this process; ``"local"``, ``"auto"`` or a
        cluster address serves each shard from a Ray actor.
        """
        path = Path(path)
        if not (path / MANIFEST).is_file():
            hint = ("the build did not finish; run `probekit index build` again to resume it"
                    if (path / BUILD_STATE).exists() else "build one with `probekit index build`")
            raise InputFileError(
                f"index: {str(path)!r} is not a complete probekit index (no {MANIFEST}); {hint}."
            )
        manifest = _read_json(path / MANIFEST)
        if manifest.get("format") != INDEX_FORMAT:
            raise InputFileError(
                f"index: {str(path)!r} has format {manifest.get('format')!r}; this probekit "
                f"reads format {INDEX_FORMAT}. Rebuild the index."
            )
        if mode not in ("auto", "exact", "approximate"):
            raise ValidationError(
                f"index: mode must be auto, exact or approximate; got {mode!r}."
            )
        has_ivf = manifest.get("ivf") is not None
        if mode == "auto":
            mode = "approximate" if has_ivf else "exact"
        if mode == "approximate" and not has_ivf:
            raise ValidationError(
                f"index: mode approximate needs an IVF part, but {str(path)!r} was built in "
                "exact mode; rebuild with --mode approximate or use index_mode=exact."
            )
        defaults = manifest.get("defaults") or {}
        return cls(path, manifest, mode=mode, nprobe=nprobe or defaults.get("nprobe", 16),
                   rerank=rerank or defaults.get("rerank", 16), recall_sample=recall_sample,
                   recall_floor=recall_floor, seed=seed, ray=ray,
                   chunk_rows=chunk_rows or manifest.get("chunk_rows", 16384))

    def check_feature_space(self, extractor: FeatureExtractor, *, who: str) -> None:
        """Raise a one-line :class:`~probekit.errors.ValidationError` when ``extractor``
        does not measure in the index's feature space."""
        mine = FeatureSpace.of(extractor)
        if not mine.same_space(self.feature_space):
            raise ValidationError(
                f"{who}: the index at {str(self.path)!r} holds features "
                f"{self.feature_space.describe()} but the probe measures in "
                f"{mine.describe()}; set features={self.feature_space.extractor} (with the "
                "same weights) or build an index with --features "
                f"{mine.extractor}."
            )

    # -- shard servers ----------------------------------------------------------------------

    def _searchers(self) -> list[ShardSearcher]:
        if self._local is None:
            self._local = [
                ShardSearcher(self.path, sh, chunk_rows=self.chunk_rows,
                              load_ivf=self.mode == "approximate")
                for sh in self.manifest["shards"]
            ]
        return self._local

    def _ray_actors(self) -> list[Any]:
        if self._actors is None:
            from probekit.ray_utils import import_ray, init_ray

            self._ray_started = init_ray(self._ray_address)
            ray = import_ray()
            server = ray.remote(_ShardServer)
            self._actors = []
            for sh in self.manifest["shards"]:
                ivf_bytes = (self.path / sh["ivf"]).stat().st_size if (
                    self.mode == "approximate" and sh.get("ivf")) else 0
                need = ivf_bytes + 2 * self.chunk_rows * self.dim * 4 + (64 << 20)
                # a lost node: Ray restarts the actor elsewhere and retries the call (the
                # shard files are on shared storage; the actor holds no other state)
                self._actors.append(server.options(
                    memory=need, max_restarts=2, max_task_retries=2,
                ).remote(str(self.path.resolve()), sh, self.chunk_rows,
                         self.mode == "approximate"))
        return self._actors

    def _fan_out(self, method: str, q: np.ndarray, *args: Any
                 ) -> list[tuple[np.ndarray, np.ndarray, int]]:
        if self._ray_address is None:
            return [getattr(srv, method)(q, *args) for srv in self._searchers()]
        from probekit.ray_utils import import_ray

        ray = import_ray()
        ref = ray.put(q)
        futures = [getattr(a, method).remote(ref, *args) for a in self._ray_actors()]
        try:
            return ray.get(futures)
        except ray.exceptions.RayError as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise MissingResourceError(
                f"index: a shard of {str(self.path)!r} could not be searched by its Ray actor "
                f"({type(exc).__name__}: {first}); Ray retried it twice. Check that every node "
                "sees the index at the same path and has the memory, or search without "
                "index_ray."
            ) from None

    def close(self) -> None:
        """Stop the shard actors (and a local Ray instance started for them); close files."""
        if self._actors is not None:
            from probekit.ray_utils import import_ray

            ray = import_ray()
            for actor in self._actors:
                ray.kill(actor)
            self._actors = None
            if self._ray_started:
                ray.shutdown()
                self._ray_started = False
        for srv in self._local or []:
            srv.close()
        self._local = None
        self.closed = True

    def __enter__(self) -> FeatureIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- search -----------------------------------------------------------------------------

    def _check_queries(self, queries: np.ndarray, k: int) -> np.ndarray:
        q = np.asarray(queries)
        q = q.reshape(len(q), -1)
        if q.shape[1] != self.dim:
            raise ValidationError(
                f"index: queries must have {self.dim} features like the index; got "
                f"{q.shape[1]}. Use the feature space the index was built with."
            )
        if not 1 <= k <= self.n_reference:
            raise ValidationError(
                f"index: k must be in [1, {self.n_reference}] (the index size); got {k}."
            )
        return q

    def search_exact(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact top ``k`` over all shards (equal to the in-memory exact search)."""
        q = self._check_queries(queries, k)
        parts = self._fan_out("exact", q, k)
        self.n_fallbacks_ = int(sum(p[2] for p in parts))
        return merge_topk([(p[0], p[1]) for p in parts], k)

    def search_approximate(self, queries: np.ndarray, k: int, *, nprobe: int | None = None,
                           rerank: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """IVF candidates, exact re-ranking, merged over shards (no recall measurement)."""
        q = self._check_queries(queries, k)
        parts = self._fan_out("approximate", q, k, nprobe or self.nprobe,
                              rerank or self.rerank)
        d = [np.where(p[1] >= 0, p[0], np.inf) for p in parts]
        i = [np.where(p[1] >= 0, p[1], np.iinfo(np.int64).max) for p in parts]
        return merge_topk(list(zip(d, i, strict=True)), k)

    def search(self, queries: np.ndarray, k: int, *, batch_size: int | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest index rows of each query in the configured mode; in approximate
        mode, also the exact search of a seeded sample of the queries, whose recall is in
        ``last_search_`` (and a :class:`~probekit.errors.DataWarning` below the floor)."""
        del batch_size  # the shards bound their own memory
        start = time.perf_counter()
        if self.mode == "exact":
            dist, idx = self.search_exact(queries, k)
            self.last_search_ = {"mode": "exact", "seconds": time.perf_counter() - start,
                                 "n_exact_fallbacks": self.n_fallbacks_}
            return dist, idx
        dist, idx = self.search_approximate(queries, k)
        short = np.flatnonzero(~np.isfinite(dist).all(axis=1))
        if short.size:  # the visited lists held fewer than k rows: search those exactly
            q = np.asarray(queries).reshape(len(dist), -1)
            dist[short], idx[short] = self.search_exact(q[short], k)
        seconds = time.perf_counter() - start
        m = min(len(dist), self.recall_sample)
        sample = np.sort(np.random.default_rng(self.seed).choice(len(dist), m, replace=False))
        ex_d, ex_i = self.search_exact(np.asarray(queries).reshape(len(dist), -1)[sample], k)
        hits = [len(set(a) & set(b)) for a, b in zip(idx[sample], ex_i, strict=True)]
        recall = float(np.sum(hits) / (k * m)) if m else float("nan")
        ivf = self.manifest.get("ivf") or {}
        self.last_search_ = {
            "mode": "approximate", "ivf": ivf.get("kind"), "nlist": ivf.get("nlist"),
            "nprobe": self.nprobe, "rerank": self.rerank, "seconds": seconds,
            "n_searched_exactly": int(short.size),
            "recall_k": k, "recall": recall, "recall_sample": int(m),
            "recall_floor": self.recall_floor,
            "sample_rows": sample, "sample_exact_distances": ex_d, "sample_exact_indices": ex_i,
            "sample_distances": dist[sample], "sample_indices": idx[sample],
        }
        if m and recall < self.recall_floor:
            warnings.warn(self.recall_warning(), DataWarning, stacklevel=2)
        return dist, idx

    def recall_warning(self) -> str | None:
        """The warning line of the last search when its recall is below the floor."""
        r = self.last_search_
        if r.get("mode") != "approximate" or r["recall"] >= self.recall_floor:
            return None
        return (
            f"index: measured recall@{r['recall_k']} of the approximate search is "
            f"{r['recall']:.4f} on {r['recall_sample']} queries, below the floor "
            f"{self.recall_floor}; raise index_nprobe (now {self.nprobe}) or index_rerank, or "
            "use index_mode=exact."
        )

    def decision_disagreement(self, decide: Callable[[np.ndarray], np.ndarray]) -> float | None:
        """Share of the recall sample whose decision ``decide(distances) -> bool per query``
        differs between the approximate and the exact search (``None`` in exact mode)."""
        r = self.last_search_
        if r.get("mode") != "approximate" or not r["recall_sample"]:
            return None
        a = np.asarray(decide(r["sample_distances"]), dtype=bool)
        b = np.asarray(decide(r["sample_exact_distances"]), dtype=bool)
        return float(np.mean(a != b))

    def provenance(self) -> dict[str, Any]:
        """What a result should record about the index and the last search."""
        r = self.last_search_
        out: dict[str, Any] = {
            "index": str(self.path), "index_mode": self.mode,
            "index_rows": self.n_reference, "index_shards": len(self.manifest["shards"]),
            "index_served_by": "ray" if self._ray_address is not None else "in-process",
        }
        if r.get("mode") == "approximate":
            out.update({
                "index_ivf": r["ivf"], "index_nlist": r["nlist"], "index_nprobe": r["nprobe"],
                "index_rerank": r["rerank"], f"index_recall_at_{r['recall_k']}": r["recall"],
                "index_recall_sample": r["recall_sample"],
                "index_recall_floor": r["recall_floor"],
            })
        return out


class _ShardServer:
    """The Ray actor of one shard (created with ``ray.remote(_ShardServer)``)."""

    def __init__(self, root: str, shard: dict[str, Any], chunk_rows: int, load_ivf: bool):
        self.searcher = ShardSearcher(root, shard, chunk_rows=chunk_rows, load_ivf=load_ivf)

    def exact(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, int]:
        return self.searcher.exact(q, k)

    def approximate(self, q: np.ndarray, k: int, nprobe: int, rerank: int
                    ) -> tuple[np.ndarray, np.ndarray, int]:
        return self.searcher.approximate(q, k, nprobe, rerank)


_OPEN: dict[tuple, FeatureIndex] = {}


def open_for_probe(settings: IndexSearchSettings, extractor: FeatureExtractor, *, who: str,
                   n_train: int | None = None,
                   sample_shape: Sequence[int] | None = None) -> FeatureIndex:
    """The index named by a probe's ``index`` setting, opened with its search settings, after
    checking the feature space (and, when given, the training-set size and sample shape)."""
    if not settings.index:
        raise ValidationError(f"{who}: no index setting; set index=INDEX_DIR.")
    options = {"mode": settings.index_mode, "nprobe": settings.index_nprobe,
               "rerank": settings.index_rerank, "recall_sample": settings.index_recall_sample,
               "recall_floor": settings.index_recall_floor, "seed": settings.seed,
               "ray": settings.index_ray}
    manifest = Path(settings.index) / MANIFEST
    stamp = manifest.stat().st_mtime_ns if manifest.is_file() else None
    key = (str(Path(settings.index).resolve()), stamp, tuple(sorted(options.items())))
    index = _OPEN.get(key)
    if index is None or index.closed:  # one open index (and one set of actors) per process
        index = FeatureIndex.open(settings.index, **options)
        _OPEN[key] = index
    index.check_feature_space(extractor, who=who)
    if n_train is not None and n_train != index.n_rows_given:
        raise ValidationError(
            f"{who}: train must be the set the index was built from ({index.n_rows_given} "
            f"samples); got {n_train}. Give the same training set or rebuild the index."
        )
    if sample_shape is not None and index.per_sample_shape and tuple(sample_shape) != tuple(
            index.per_sample_shape):
        raise ValidationError(
            f"{who}: samples must have the per-sample shape {index.per_sample_shape} the index "
            f"was built from; got {tuple(sample_shape)}."
        )
    return index


__all__ = [
    "INDEX_FORMAT",
    "FeatureIndex",
    "FeatureSpace",
    "IndexBuildSettings",
    "IndexSearchSettings",
    "ShardRows",
    "ShardSearcher",
    "build_index",
    "default_nlist",
    "default_pq_m",
    "find_duplicate_rows",
    "open_for_probe",
]
