"""``extraction``: the training-data extraction test of Carlini et al. ("Extracting Training
Data from Diffusion Models", USENIX Security 2023).

Many generations are drawn per prompt. Two images are *near-identical* when their tiled ℓ2
distance is below ``delta``: both are cut into a ``tiles`` × ``tiles`` grid of non-overlapping
tiles (4 × 4 = 16 tiles, as in the paper), the root-mean-square difference of each pair of
corresponding tiles is taken (values mapped to [0, 1] from ``value_range``) and the distance is
the largest of them — so one copied region is not averaged away by the rest of the image, and
``delta`` is in pixel units whatever the resolution. A prompt is *extracted* when a clique of at
least ``min_clique`` of its generations (10 by default, as in the paper) are near-identical to
each other and, with ``require_training_match`` (the default), to one common training image;
without it the clique alone is the paper's training-data-free signal of memorization.

The largest clique is found exactly (Bron–Kerbosch with Tomita pivoting and a size bound), among
the generations near each candidate training image. ``f_extracted`` is the fraction of prompts
extracted, with a bootstrap CI over prompts; each prompt's clique size and the training item it
reproduces are reported per sample.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pydantic

from probekit import MeasureSettings, Probe, Result, hookimpl
from probekit.conditions import (
    Condition,
    check_conditions,
    encode_conditions,
    group_by_condition,
)
from probekit.stats import bootstrap_ci
from probekit.validation import check_array, check_same_sample_shape


class ExtractionSettings(MeasureSettings):
    delta: float = pydantic.Field(
        0.15, gt=0, description="near-identical when the tiled l2 distance is below this "
        "(root-mean-square per tile, images in [0, 1])"
    )
    min_clique: int = pydantic.Field(
        10, ge=2, description="a prompt is extracted when at least this many generations form "
        "a clique"
    )
    tiles: int = pydantic.Field(4, ge=1, description="tiles per side (4: 16 tiles)")
    require_training_match: bool = pydantic.Field(
        True, description="the clique must also be near-identical to one training image"
    )
    value_range: tuple[float, float] = pydantic.Field(
        (0.0, 1.0), description="range of the image values, mapped to [0, 1] (e.g. -1,1)"
    )
    n_bootstrap: int = pydantic.Field(1000, ge=100, description="bootstrap resamples for CIs")
    confidence: float = pydantic.Field(0.95, gt=0, lt=1, description="CI level")
    chunk_size: int = pydantic.Field(1024, gt=0, description="training images compared at once")

    @pydantic.field_validator("value_range", mode="before")
    @classmethod
    def _parse_range(cls, value):
        if isinstance(value, str):
            return tuple(float(p) for p in value.strip("()[] ").split(",") if p.strip())
        return value

    @pydantic.field_validator("value_range")
    @classmethod
    def _check_range(cls, value):
        low, high = value
        if not (np.isfinite(low) and np.isfinite(high) and low < high):
            raise ValueError(f"must be finite with low < high, e.g. (-1, 1); got {value}")
        return (float(low), float(high))


# -- tiled distance ----------------------------------------------------------------------------


def to_tiles(images: np.ndarray, tiles: int) -> list[np.ndarray]:
    """The ``tiles`` × ``tiles`` grid of each image as float64 rows ``(n, tile_values)``, one
    array per tile (edges from ``np.array_split``: tiles differ by at most one pixel)."""
    x = np.asarray(images, dtype=np.float64)
    rows = np.array_split(np.arange(x.shape[2]), tiles)
    cols = np.array_split(np.arange(x.shape[3]), tiles)
    return [x[:, :, r[0] : r[-1] + 1, c[0] : c[-1] + 1].reshape(len(x), -1)
            for r in rows if len(r) for c in cols if len(c)]


def tiled_distance(a_tiles: list[np.ndarray], b_tiles: list[np.ndarray]) -> np.ndarray:
    """``(n_a, n_b)`` tiled ℓ2 distances: the largest root-mean-square difference over
    corresponding tiles."""
    out = np.zeros((len(a_tiles[0]), len(b_tiles[0])))
    for ta, tb in zip(a_tiles, b_tiles, strict=True):
        sq = ((ta**2).sum(1)[:, None] + (tb**2).sum(1)[None, :] - 2.0 * ta @ tb.T)
        np.maximum(out, np.sqrt(np.maximum(sq, 0.0) / ta.shape[1]), out=out)
    return out


# -- the largest clique ------------------------------------------------------------------------


def max_clique(adjacency: np.ndarray) -> list[int]:
    """Members (sorted) of a largest clique of the undirected graph ``adjacency`` (a boolean
    square matrix; the diagonal is ignored), by Bron–Kerbosch with Tomita pivoting and the
    bound ``|R| + |P| <= |best|``. Deterministic: candidates are visited in index order."""
    adj = np.asarray(adjacency, dtype=bool)
    n = len(adj)
    nbrs = [frozenset(int(j) for j in np.flatnonzero(adj[i]) if j != i) for i in range(n)]
    best: list[int] = []

    def expand(r: list[int], p: set[int], x: set[int]) -> None:
        nonlocal best
        if not p:
            if not x and len(r) > len(best):
                best = sorted(r)
            return
        if len(r) + len(p) <= len(best):
            return
        pivot = max(sorted(p | x), key=lambda u: len(nbrs[u] & p))
        for v in sorted(p - nbrs[pivot]):
            expand([*r, v], p & nbrs[v], x & nbrs[v])
            p = p - {v}
            x = x | {v}

    expand([], set(range(n)), set())
    return best


# -- the probe ---------------------------------------------------------------------------------


class Extraction(Probe):
    """Fraction of prompts whose generations contain a clique of at least ``min_clique``
    near-identical images (tiled ℓ2) that reproduce a training image."""

    name = "extraction"
    modality = "image"
    description = ("fraction of prompts with a clique of >= K near-identical generations "
                   "matching a training image (Carlini et al. 2023)")
    headline = "f_extracted"
    higher_is_better = False
    headline_range = (0.0, 1.0)
    requires = ("train", "samples", "conditions")
    Settings = ExtractionSettings
    settings: ExtractionSettings

    def prepare(self, train: np.ndarray, *, holdout: np.ndarray | None = None,
                train_conditions: Sequence[Condition] | None = None) -> Extraction:
        """Keep the training images, mapped to [0, 1] (pixel space: nothing to precompute)."""
        train = check_array(train, who=self.name, name="train", modality="image")
        if train_conditions is not None:
            check_conditions(train_conditions, len(train), who=self.name,
                             name="train_conditions")
        self.train_ = self._unit(train).astype(np.float32)
        return self

    def _unit(self, x: np.ndarray) -> np.ndarray:
        low, high = self.settings.value_range
        return (np.asarray(x, dtype=np.float64) - low) / (high - low)

    def _nearest_training(self, sample_tiles: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """``(n_samples, n_train)`` tiled distances to the training set, in training chunks."""
        s = self.settings
        parts = []
        for start in range(0, len(self.train_), s.chunk_size):
            block = to_tiles(self.train_[start : start + s.chunk_size], s.tiles)
            parts.append(tiled_distance(sample_tiles, block))
        dist = np.concatenate(parts, axis=1)
        return dist, np.argmin(dist, axis=1)

    def _prompt_clique(self, d_gg: np.ndarray, d_gt: np.ndarray | None) -> tuple[list[int], int]:
        """Largest clique of one prompt's generations (local indices) and the training item
        it matches (``-1`` when no training match is required or none is found)."""
        s = self.settings
        adj = d_gg < s.delta
        if d_gt is None:
            return max_clique(adj), -1
        best: list[int] = []
        best_item = -1
        near = d_gt < s.delta
        counts = near.sum(axis=0)
        candidates = np.flatnonzero(counts > 0)
        for item in candidates[np.lexsort((candidates, -counts[candidates]))]:
            if counts[item] <= len(best):
                continue
            members = np.flatnonzero(near[:, item])
            clique = [int(members[i]) for i in max_clique(adj[np.ix_(members, members)])]
            if len(clique) > len(best):
                best, best_item = sorted(clique), int(item)
        return best, best_item

    def evaluate(self, samples: np.ndarray | None = None, *, model=None,
                 conditions: Sequence[Condition] | None = None) -> Result:
        """``f_extracted`` over the prompts of ``samples`` (all one prompt without conditions);
        per sample: its prompt's ``clique_size``, ``in_clique``, ``matched_train_index``."""
        self._check_prepared("train_")
        s = self.settings
        samples = check_array(samples, who=self.name, name="samples", modality="image")
        check_same_sample_shape(samples.shape[1:], self.train_.shape[1:], who=self.name,
                                a_name="samples", b_name="train")
        conds = (0,) * len(samples) if conditions is None else check_conditions(
            conditions, len(samples), who=self.name)
        tiles = to_tiles(self._unit(samples), s.tiles)
        n = len(samples)
        clique_size = np.zeros(n, dtype=np.int64)
        in_clique = np.zeros(n, dtype=bool)
        matched = np.full(n, -1, dtype=np.int64)
        d_train, nn_index = self._nearest_training(tiles)
        nn_distance = d_train[np.arange(n), nn_index]
        sizes, extracted, group_sizes = [], [], []
        for idx in group_by_condition(conds).values():
            group_sizes.append(len(idx))
            group = [t[idx] for t in tiles]
            d_gg = tiled_distance(group, group)
            clique, item = self._prompt_clique(
                d_gg, d_train[idx] if s.require_training_match else None)
            size = len(clique)
            sizes.append(size)
            is_extracted = size >= s.min_clique
            extracted.append(is_extracted)
            clique_size[idx] = size
            if is_extracted:
                in_clique[idx[clique]] = True
                matched[idx[clique]] = item
        per_sample = {"clique_size": clique_size, "in_clique": in_clique,
                      "matched_train_index": matched, "nn_index": nn_index,
                      "nn_distance": nn_distance}
        if conditions is not None:
            per_sample["condition"] = encode_conditions(conds)
        extracted_arr = np.asarray(extracted, dtype=bool)
        sizes_arr = np.asarray(sizes, dtype=np.float64)
        ci = bootstrap_ci(extracted_arr, n_resamples=s.n_bootstrap, confidence=s.confidence,
                          seed=s.seed)
        warnings = ()
        if max(group_sizes) < s.min_clique:
            warnings = (
                f"{self.name}: every prompt has fewer generations ({max(group_sizes)}) than "
                f"min_clique={s.min_clique}, so no prompt can count as extracted; draw more "
                "samples per prompt (Carlini et al. drew 500).",
            )
        return Result(
            measure=self.name,
            headline="f_extracted",
            values={
                "f_extracted": float(extracted_arr.mean()),
                "n_extracted": float(extracted_arr.sum()),
                "n_prompts": float(len(extracted_arr)),
                "max_clique_size": float(sizes_arr.max()),
                "mean_clique_size": float(sizes_arr.mean()),
                "mean_nn_distance": float(nn_distance.mean()),
            },
            ci={"f_extracted": ci},
            per_sample=per_sample,
            warnings=warnings,
            provenance=self.make_provenance(
                feature_space="pixels",
                preprocessing=f"tiled-l2 {s.tiles}x{s.tiles}, values mapped to [0, 1]",
                n_reference=len(self.train_),
                n_samples=n,
                extra={"conditions_given": conditions is not None},
            ),
        )


@hookimpl
def register_probes():
    return [Extraction]
