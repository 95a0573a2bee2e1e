"""Conditions: the caption or class label that travels with each training item and each
generated sample of a conditional model (DESIGN §4).

A *condition* is a caption (``str``) for text-to-image models or a class label (``int``) for
class-conditional ones. Training and held-out sets carry one condition per item; a conditional
model handle generates one sample per requested condition; probes that declare
``"conditions"`` in ``requires`` receive them (``prepare(train, *, holdout=None,
train_conditions=None)``, ``evaluate(samples, *, model=None, conditions=None)``) and can compare
a generation with the training items of its own prompt as well as with the whole set.

This module holds what every conditional part shares:

* readers: an image folder with a ``metadata.jsonl`` (the Hugging Face *imagefolder*
  convention: one JSON object per line with ``file_name`` and ``text``, or a class ``label``),
  and an ``.npz`` holding ``images`` with ``captions`` or ``labels``
  (:func:`load_conditional_set`);
* the prompts file that says what to sample (:func:`load_prompts`): plain text, one prompt per
  line, or JSONL objects ``{"prompt": "...", "n_samples": 4}`` / ``{"label": 3, "n_samples":
  4}``;
* validation, grouping and per-prompt indexing of condition lists;
* the seeding rule: the initial noise of a sample depends only on ``(seed, condition, index of
  the sample among those of its condition)`` (:func:`sample_seed`, :func:`initial_noise`), so
  every checkpoint starts the same prompt's *k*-th generation from the same noise, whatever
  else is sampled with it and however it is batched;
* :class:`ConditionalModelHandle`, the contract of conditional adapters' handles.
"""

from __future__ import annotations

import hashlib
import json
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Union

import numpy as np

from probekit.base import ModelHandle
from probekit.errors import InputFileError, ValidationError
from probekit.io import IMAGE_SUFFIXES
from probekit.validation import describe

#: A caption or a class label.
Condition = Union[str, int]  # noqa: UP007 (a runtime alias; `str | int` is fine too on 3.10)
#: The two kinds of conditions: captions (``"text"``) and class labels (``"class"``).
CONDITION_KINDS = ("text", "class")
#: Name of the metadata file of an image folder (the imagefolder convention).
METADATA_FILE = "metadata.jsonl"


# -- validation and grouping -------------------------------------------------------------------


def condition_kind(conditions: Sequence[Condition]) -> str:
    """``"text"`` when every condition is a caption, ``"class"`` when every one is a label."""
    if conditions and all(isinstance(c, str) for c in conditions):
        return "text"
    if conditions and all(isinstance(c, int) and not isinstance(c, bool) for c in conditions):
        return "class"
    raise ValidationError(
        "conditions: must be all captions (str) or all class labels (int); got "
        f"{describe(list(conditions)[:3])}. Use one kind per set."
    )


def check_conditions(
    conditions: Any, n: int | None = None, *, who: str, name: str = "conditions",
    kind: str | None = None,
) -> tuple[Condition, ...]:
    """Validate a sequence of conditions and return it as a tuple of ``str`` or ``int``.

    Parameters
    ----------
    conditions : sequence of str or int (or an integer / string numpy array)
        One condition per item.
    n : int, optional
        Required length (the number of items the conditions belong to).
    who, name : str
        Who is checking and the parameter name, used in the message.
    kind : {"text", "class", None}
        Required kind; ``None`` accepts either (but not a mix).
    """
    if isinstance(conditions, str):
        raise ValidationError(
            f"{who}: {name} must be a sequence with one condition per item; got a single string "
            f"{describe(conditions)}. Pass [caption] * n_samples for one prompt."
        )
    if isinstance(conditions, np.ndarray):
        if conditions.ndim != 1 or conditions.dtype.kind not in "iuUO":
            raise ValidationError(
                f"{who}: {name} must be a 1-d array of integer labels or strings; got "
                f"{describe(conditions)}."
            )
        conditions = conditions.tolist()
    try:
        items = list(conditions)
    except TypeError:
        raise ValidationError(
            f"{who}: {name} must be a sequence of captions or class labels; got "
            f"{describe(conditions)}."
        ) from None
    out: list[Condition] = []
    for item in items:
        if isinstance(item, np.integer):
            item = int(item)
        elif isinstance(item, np.str_):
            item = str(item)
        if isinstance(item, bool) or not isinstance(item, str | int):
            raise ValidationError(
                f"{who}: {name} must hold captions (str) or class labels (int); got "
                f"{describe(item)} at position {len(out)}."
            )
        out.append(item)
    if n is not None and len(out) != n:
        raise ValidationError(
            f"{who}: {name} must hold one condition per item ({n}); got {len(out)}. Give a "
            "caption or label for every image (or sample)."
        )
    if out:
        found = condition_kind(out)
        if kind is not None and found != kind:
            wanted = "captions (str)" if kind == "text" else "class labels (int)"
            raise ValidationError(
                f"{who}: {name} must be {wanted}; got {found} conditions such as "
                f"{describe(out[0])}."
            )
        if found == "class" and min(out) < 0:  # type: ignore[type-var]
            raise ValidationError(
                f"{who}: class labels in {name} must be >= 0; got {min(out)}."  # type: ignore[type-var]
            )
    return tuple(out)


def unique_conditions(conditions: Sequence[Condition]) -> tuple[Condition, ...]:
    """Distinct conditions in order of first appearance."""
    return tuple(dict.fromkeys(conditions))


def group_by_condition(conditions: Sequence[Condition]) -> dict[Condition, np.ndarray]:
    """``{condition: indices of its items}``, conditions in order of first appearance."""
    groups: dict[Condition, list[int]] = {}
    for i, c in enumerate(conditions):
        groups.setdefault(c, []).append(i)
    return {c: np.asarray(idx, dtype=np.int64) for c, idx in groups.items()}


def index_within_condition(conditions: Sequence[Condition]) -> np.ndarray:
    """For each item, how many earlier items share its condition (0, 1, 2, ...)."""
    seen: dict[Condition, int] = {}
    out = np.empty(len(conditions), dtype=np.int64)
    for i, c in enumerate(conditions):
        out[i] = seen.get(c, 0)
        seen[c] = out[i] + 1
    return out


def encode_conditions(conditions: Sequence[Condition]) -> np.ndarray:
    """Conditions as a numpy array an ``.npz`` stores without pickling (unicode or int64):
    what probes put in ``Result.per_sample["condition"]`` and reference states."""
    if conditions and isinstance(conditions[0], str):
        return np.array(conditions, dtype=str)
    return np.array(conditions, dtype=np.int64)


def decode_conditions(array: np.ndarray) -> tuple[Condition, ...]:
    """The inverse of :func:`encode_conditions`."""
    array = np.asarray(array)
    return tuple(str(v) if array.dtype.kind == "U" else int(v) for v in array.tolist())


def condition_label(condition: Condition, *, width: int = 60) -> str:
    """A short printable name of a condition for tables (``"class 3"``, a trimmed caption)."""
    if isinstance(condition, int):
        return f"class {condition}"
    text = " ".join(condition.split())
    return text if len(text) <= width else text[: width - 3] + "..."


@dataclass(frozen=True)
class ConditionSummary:
    """One row of a per-prompt table: a condition, its number of samples, the mean of a
    per-sample value over them, and a percentile-bootstrap CI of that mean."""

    condition: Condition
    n_samples: int
    value: float
    ci: tuple[float, float]


def summarize_by_condition(
    conditions: Sequence[Condition], values: np.ndarray, *, n_bootstrap: int = 1000,
    confidence: float = 0.95, seed: int = 0,
) -> tuple[ConditionSummary, ...]:
    """Per-condition mean of ``values`` (one per sample) with a bootstrap CI over the samples
    of that condition (NaN values are left out), conditions in order of first appearance."""
    from probekit.stats import bootstrap_ci

    values = np.asarray(values, dtype=np.float64)
    if len(values) != len(conditions):
        raise ValidationError(
            f"summarize_by_condition: values must have one entry per condition ({len(conditions)}"
            f"); got {len(values)}."
        )
    rows = []
    for condition, idx in group_by_condition(conditions).items():
        v = values[idx]
        v = v[~np.isnan(v)]
        mean = float(v.mean()) if len(v) else float("nan")
        ci = bootstrap_ci(v, n_resamples=n_bootstrap, confidence=confidence, seed=seed)
        rows.append(ConditionSummary(condition, len(v), mean, ci))
    return tuple(rows)


def cluster_bootstrap_ci(
    conditions: Sequence[Condition], values: np.ndarray, *, n_bootstrap: int = 1000,
    confidence: float = 0.95, seed: int = 0,
) -> tuple[float, float]:
    """CI of the overall mean of ``values`` resampling whole conditions (prompts) with
    replacement: generations of one prompt are not independent, so the prompt is the unit."""
    from probekit.stats import bootstrap_ci

    values = np.asarray(values, dtype=np.float64)
    groups = list(group_by_condition(conditions).values())
    sums = np.array([[values[g].sum(), len(g)] for g in groups])
    return bootstrap_ci(
        sums, lambda r: r[..., 0].sum(axis=1) / r[..., 1].sum(axis=1),
        n_resamples=n_bootstrap, confidence=confidence, seed=seed,
    )


def grouped_neighbors(
    reference: np.ndarray, reference_conditions: Sequence[Condition], queries: np.ndarray,
    query_conditions: Sequence[Condition], k: int, *, chunk_size: int = 16384,
    batch_size: int = 4096,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact L2 ``k`` nearest neighbours of each query among the reference rows *of its own
    condition* (:class:`probekit.neighbors.NearestNeighborIndex` per condition).

    Returns ``(distances, indices)`` of shape ``(n_queries, k)``; indices are rows of
    ``reference``. Queries whose condition has fewer than ``k`` reference rows get ``nan``
    distances and index ``-1`` in the missing places.
    """
    from probekit.neighbors import NearestNeighborIndex

    reference = np.asarray(reference)
    queries = np.asarray(queries)
    dist = np.full((len(queries), k), np.nan)
    idx = np.full((len(queries), k), -1, dtype=np.int64)
    ref_groups = group_by_condition(reference_conditions)
    for condition, q_idx in group_by_condition(query_conditions).items():
        rows = ref_groups.get(condition)
        if rows is None:
            continue
        kk = min(k, len(rows))
        index = NearestNeighborIndex(reference[rows], chunk_size=chunk_size)
        d, i = index.search(queries[q_idx], kk, batch_size=batch_size)
        dist[q_idx, :kk] = d
        idx[q_idx, :kk] = rows[i]
    return dist, idx


def ratio_within_conditions(
    reference: np.ndarray, reference_conditions: Sequence[Condition], queries: np.ndarray,
    query_conditions: Sequence[Condition], *, k: float, n_bootstrap: int = 1000,
    confidence: float = 0.95, seed: int = 0, chunk_size: int = 16384, batch_size: int = 4096,
) -> tuple[dict[str, float], dict[str, tuple[float, float]], dict[str, np.ndarray],
           tuple[str, ...]]:
    """The nearest-neighbour ratio restricted to each query's own condition (``nn-ratio`` with
    ``scope="prompt"``): ``d1 <= d2`` are the distances to the nearest and second-nearest
    reference rows *of the same prompt or class*; memorized when ``d1 / d2 < k``.

    Queries whose condition has fewer than two reference rows have no ratio (``nan``) and are
    left out of ``f_mem_prompt`` (counted in ``n_prompt_undefined``). Returns ``(values, ci,
    per_sample, warnings)`` to merge into the probe's result.
    """
    dist, idx = grouped_neighbors(reference, reference_conditions, queries, query_conditions,
                                  2, chunk_size=chunk_size, batch_size=batch_size)
    d1, d2 = dist[:, 0], dist[:, 1]
    defined = ~np.isnan(d2)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(defined, np.where(d2 > 0, d1 / np.where(d2 > 0, d2, 1.0), 1.0), np.nan)
    memorized = defined & (ratio < k)
    values = {"n_prompt_undefined": float((~defined).sum())}
    ci: dict[str, tuple[float, float]] = {}
    warnings: tuple[str, ...] = ()
    if defined.any():
        kept = [c for c, ok in zip(query_conditions, defined, strict=True) if ok]
        values["f_mem_prompt"] = float(memorized[defined].mean())
        ci["f_mem_prompt"] = cluster_bootstrap_ci(kept, memorized[defined], n_bootstrap=n_bootstrap,
                                                  confidence=confidence, seed=seed)
    else:
        values["f_mem_prompt"] = float("nan")
    if not defined.all():
        warnings = (
            f"nn-ratio: {int((~defined).sum())} of {len(defined)} samples belong to prompts with "
            "fewer than 2 distinct training items, so their within-prompt ratio is undefined "
            "and left out of f_mem_prompt (unique captions: use prompt-copy).",
        )
    per_sample = {"d1_prompt": d1, "d2_prompt": d2, "ratio_prompt": ratio,
                  "nn_index_prompt": idx[:, 0], "memorized_prompt": memorized}
    return values, ci, per_sample, warnings


# -- seeds and initial noise -------------------------------------------------------------------


def sample_seed(seed: int, condition: Condition, index: int) -> int:
    """Seed of the ``index``-th sample of ``condition`` under the run seed ``seed``.

    A SHA-256 of the three values (the condition's type included, so caption ``"3"`` and label
    ``3`` differ), truncated to 63 bits: stable across processes, platforms and Python versions
    (unlike ``hash``).
    """
    kind = "text" if isinstance(condition, str) else "class"
    key = json.dumps([int(seed), kind, condition, int(index)], ensure_ascii=False)
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") >> 1


def sample_seeds(seed: int, conditions: Sequence[Condition]) -> np.ndarray:
    """:func:`sample_seed` of every sample (its index counted within its condition)."""
    within = index_within_condition(conditions)
    return np.array([sample_seed(seed, c, int(k)) for c, k in zip(conditions, within,
                                                                   strict=True)],
                    dtype=np.int64)


def initial_noise(shape: Sequence[int], seed: int, conditions: Sequence[Condition]):
    """Standard normal initial noise ``(n, *shape)`` (a float32 CPU ``torch`` tensor), one
    ``torch.Generator`` per sample seeded with :func:`sample_seed`.

    Sample *i* depends only on ``(seed, conditions[i], its index within that condition)``: the
    same prompt's *k*-th generation starts from the same noise at every checkpoint, in any
    batch, whatever other prompts are sampled alongside.
    """
    import torch

    shape = tuple(int(s) for s in shape)
    out = torch.empty((len(conditions), *shape), dtype=torch.float32)
    for i, s in enumerate(sample_seeds(seed, conditions)):
        out[i] = torch.randn(shape, generator=torch.Generator().manual_seed(int(s)))
    return out


def draw_labels(n: int, seed: int, n_classes: int) -> tuple[int, ...]:
    """``n`` class labels drawn uniformly (seeded), for class-conditional sampling without
    given labels; the same ``seed`` draws the same labels at every checkpoint."""
    rng = np.random.default_rng([int(seed), 0x1AB])
    return tuple(int(v) for v in rng.integers(0, n_classes, size=n))


# -- readers -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConditionalSet:
    """Images with one condition each.

    Attributes
    ----------
    images : float32 array (n_samples, channels, height, width)
        Pixel values in [0, 1] for image folders; as stored for ``.npz`` files.
    conditions : tuple of str or int
        One caption or class label per image.
    kind : {"text", "class"}
        Captions or labels.
    names : tuple of str
        File names (image folders) or ``"<index>"`` (arrays), for tables and grids.
    """

    images: np.ndarray
    conditions: tuple[Condition, ...]
    kind: str
    names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.conditions)


def load_conditional_set(
    path: str | Path, *, condition_field: str | None = None,
) -> ConditionalSet:
    """Read images with their conditions from an image folder or an ``.npz`` file.

    Parameters
    ----------
    path : path
        A folder of PNG/JPEG images with a ``metadata.jsonl`` (one JSON object per line with
        ``file_name`` and the condition field; images not listed are an error, as are listed
        files that are missing), or an ``.npz`` with an ``images`` array and a ``captions``
        (strings) or ``labels`` (integers) array of the same length.
    condition_field : str, optional
        The metadata field (folders) or array (``.npz``) holding the conditions. Default: a
        folder's ``text`` field, else its ``label`` field; an ``.npz``'s ``captions``, else
        ``labels``.
    """
    p = Path(path)
    if not p.exists():
        raise InputFileError(
            f"conditions: {str(p)!r} does not exist. Give an image folder with a "
            f"{METADATA_FILE} or an .npz with images and captions/labels."
        )
    if p.is_dir():
        return _read_folder(p, condition_field)
    if p.suffix.lower() == ".npz":
        return _read_npz(p, condition_field)
    raise InputFileError(
        f"conditions: {str(p)!r} must be an image folder with a {METADATA_FILE} or an .npz "
        f"with images and captions/labels; got a {p.suffix or 'suffix-less'} file."
    )


def _read_folder(folder: Path, field: str | None) -> ConditionalSet:
    from PIL import Image

    meta_path = folder / METADATA_FILE
    if not meta_path.is_file():
        raise InputFileError(
            f"conditions: image folder {str(folder)!r} has no {METADATA_FILE}. Write one JSON "
            'object per line, e.g. {"file_name": "0001.png", "text": "a red car"}.'
        )
    rows = _read_jsonl(meta_path)
    if not rows:
        raise InputFileError(f"conditions: {str(meta_path)!r} lists no images.")
    if field is None:
        first = rows[0][1]
        field = "text" if "text" in first else "label" if "label" in first else "text"
    names, conditions, arrays = [], [], []
    for line_no, row in rows:
        where = f"{str(meta_path)!r} line {line_no}"
        if "file_name" not in row or field not in row:
            raise InputFileError(
                f"conditions: {where} must have 'file_name' and {field!r}; got keys "
                f"{sorted(row)}."
            )
        file = folder / str(row["file_name"])
        if file.suffix.lower() not in IMAGE_SUFFIXES or not file.is_file():
            raise InputFileError(
                f"conditions: {where} names {str(row['file_name'])!r}, which is not a "
                ".png/.jpg/.jpeg image in the folder. Fix the file name or add the image."
            )
        with Image.open(file) as im:
            mode = "L" if im.mode in ("L", "I", "I;16", "1", "LA") else "RGB"
            arr = np.asarray(im.convert(mode), dtype=np.float32) / 255.0
        arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
        if arrays and arr.shape != arrays[0].shape:
            raise InputFileError(
                f"conditions: images in {str(folder)!r} must all have one size; "
                f"{names[0]} is {arrays[0].shape} (c, h, w) and {row['file_name']} is "
                f"{arr.shape}. Resize them first."
            )
        names.append(str(row["file_name"]))
        conditions.append(row[field])
        arrays.append(arr)
    listed = set(names)
    unlisted = sorted(f.name for f in folder.iterdir()
                      if f.suffix.lower() in IMAGE_SUFFIXES and f.name not in listed)
    if unlisted:
        raise InputFileError(
            f"conditions: {len(unlisted)} image(s) in {str(folder)!r} are not in "
            f"{METADATA_FILE} (e.g. {unlisted[0]!r}); every image needs its caption or label."
        )
    conds = check_conditions(conditions, who="conditions", name=f"the {field!r} field of "
                             f"{str(meta_path)!r}")
    return ConditionalSet(np.stack(arrays), conds, condition_kind(conds), tuple(names))


def _read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputFileError(
                f"conditions: {str(path)!r} line {line_no} is not JSON ({exc.msg}); write one "
                "JSON object per line."
            ) from None
        if not isinstance(row, dict):
            raise InputFileError(
                f"conditions: {str(path)!r} line {line_no} must be a JSON object; got "
                f"{describe(row)}."
            )
        rows.append((line_no, row))
    return rows


def _read_npz(path: Path, field: str | None) -> ConditionalSet:
    with np.load(path, allow_pickle=False) as data:
        names = list(data.keys())
        if "images" not in names:
            raise InputFileError(
                f"conditions: {str(path)!r} must hold an 'images' array; it holds {names}."
            )
        if field is None:
            field = "captions" if "captions" in names else "labels" if "labels" in names else None
        if field is None or field not in names:
            raise InputFileError(
                f"conditions: {str(path)!r} must hold a 'captions' (strings) or 'labels' "
                f"(integers) array beside 'images'; it holds {names}."
            )
        images = np.asarray(data["images"])
        conditions = np.asarray(data[field])
    if images.ndim != 4:
        raise InputFileError(
            f"conditions: 'images' in {str(path)!r} must be (n_samples, channels, height, "
            f"width); got {describe(images)}."
        )
    conds = check_conditions(conditions, len(images), who="conditions",
                             name=f"{field!r} in {str(path)!r}")
    return ConditionalSet(images, conds, condition_kind(conds),
                          tuple(str(i) for i in range(len(images))))


# -- the prompts file --------------------------------------------------------------------------


@dataclass(frozen=True)
class PromptRequest:
    """One prompt (caption or label) and how many samples to generate for it."""

    condition: Condition
    n_samples: int


def load_prompts(path: str | Path, *, samples_per_prompt: int = 1) -> tuple[PromptRequest, ...]:
    """Read the prompts to sample (``--prompts FILE``).

    Two formats, told apart by the suffix:

    ``.jsonl``
        one JSON object per line: ``{"prompt": "a red car", "n_samples": 4}`` or
        ``{"label": 3, "n_samples": 4}``; ``n_samples`` defaults to ``samples_per_prompt``.
    anything else (``.txt``)
        one prompt per line, ``samples_per_prompt`` samples each; blank lines and lines
        starting with ``#`` are skipped; a line that is only an integer is a caption, not a
        label (use JSONL for labels).

    A prompt listed twice is an error (merge the lines and add their ``n_samples``).
    """
    p = Path(path)
    if samples_per_prompt < 1:
        raise ValidationError(
            f"prompts: samples_per_prompt must be >= 1; got {samples_per_prompt}."
        )
    if not p.is_file():
        raise InputFileError(
            f"prompts: {str(p)!r} does not exist. Write one prompt per line (.txt) or JSON "
            'objects such as {"prompt": "a red car", "n_samples": 4} (.jsonl).'
        )
    requests: list[PromptRequest] = []
    if p.suffix.lower() == ".jsonl":
        for line_no, row in _read_jsonl(p):
            where = f"{str(p)!r} line {line_no}"
            keys = [k for k in ("prompt", "label") if k in row]
            if len(keys) != 1:
                raise InputFileError(
                    f"prompts: {where} must have exactly one of 'prompt' (a caption) or "
                    f"'label' (a class); got keys {sorted(row)}."
                )
            unknown = set(row) - {"prompt", "label", "n_samples"}
            if unknown:
                raise InputFileError(
                    f"prompts: {where} has unknown keys {sorted(unknown)}; known: prompt, "
                    "label, n_samples."
                )
            value = row[keys[0]]
            ok = isinstance(value, str) if keys[0] == "prompt" else (
                isinstance(value, int) and not isinstance(value, bool) and value >= 0)
            if not ok:
                wanted = "a string" if keys[0] == "prompt" else "an integer >= 0"
                raise InputFileError(
                    f"prompts: {where}: {keys[0]!r} must be {wanted}; got {describe(value)}."
                )
            n = row.get("n_samples", samples_per_prompt)
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                raise InputFileError(
                    f"prompts: {where}: 'n_samples' must be an integer >= 1; got {describe(n)}."
                )
            requests.append(PromptRequest(value, n))
    else:
        for line in p.read_text(encoding="utf-8").splitlines():
            text = line.strip()
            if text and not text.startswith("#"):
                requests.append(PromptRequest(text, samples_per_prompt))
    if not requests:
        raise InputFileError(f"prompts: {str(p)!r} lists no prompts.")
    seen: set[Condition] = set()
    for r in requests:
        if r.condition in seen:
            raise InputFileError(
                f"prompts: {str(p)!r} lists {condition_label(r.condition)!r} twice; list it once "
                "with the total n_samples."
            )
        seen.add(r.condition)
    check_conditions([r.condition for r in requests], who="prompts", name=str(p))
    return tuple(requests)


def expand_prompts(requests: Sequence[PromptRequest]) -> tuple[Condition, ...]:
    """One condition per sample: each prompt repeated ``n_samples`` times, prompts in order."""
    return tuple(r.condition for r in requests for _ in range(r.n_samples))


def prompts_from_conditions(
    conditions: Sequence[Condition], samples_per_prompt: int,
) -> tuple[PromptRequest, ...]:
    """The distinct conditions of a set (e.g. the training captions), ``samples_per_prompt``
    samples each: the default prompts when no prompts file is given."""
    return tuple(PromptRequest(c, samples_per_prompt) for c in unique_conditions(conditions))


# -- conditions in an evaluation (``probekit evaluate``) ---------------------------------------


def is_conditional_source(path: str | Path) -> bool:
    """Whether ``path`` holds images *with* conditions: a folder with a ``metadata.jsonl``, or
    an ``.npz`` holding ``images`` beside ``captions`` or ``labels`` (what
    :func:`load_conditional_set` reads). Other data are read as plain arrays."""
    p = Path(path)
    if p.is_dir():
        return (p / METADATA_FILE).is_file()
    if p.suffix.lower() == ".npz" and p.is_file():
        try:
            with np.load(p, allow_pickle=False) as data:
                names = set(data.files)
        except Exception:  # unreadable: the plain reader says why
            return False
        return "images" in names and bool(names & {"captions", "labels"})
    return False


def adapter_condition_kind(adapter: object) -> str | None:
    """``"text"`` / ``"class"`` for an adapter (class or instance) of a conditional model
    (its ``condition_kind`` class attribute), ``None`` for an unconditional one."""
    kind = getattr(adapter if isinstance(adapter, type) else type(adapter), "condition_kind",
                   None)
    return kind if kind in CONDITION_KINDS else None


def needs_conditions(measure: object) -> bool:
    """Whether a measure cannot run without conditions.

    A measure says so with a ``needs_conditions`` class attribute (``noise-magnitude``); a
    measure that uses conditions only when asked to says so with a ``scope="prompt"`` setting
    (``nn-ratio``). Measures that merely *use* conditions when given them (``prompt-copy``,
    ``extraction``: per-prompt tables) run without them too.
    """
    flag = getattr(type(measure), "needs_conditions", None)
    if isinstance(flag, bool):
        return flag
    return getattr(getattr(measure, "settings", None), "scope", None) == "prompt"


@dataclass(frozen=True)
class SamplePlan:
    """What a conditional evaluation samples at every checkpoint.

    Attributes
    ----------
    requests : tuple of PromptRequest
        The prompts (or labels) and how many samples each.
    source : str
        ``"prompts file"`` (``--prompts FILE``) or ``"training set"`` (its distinct
        conditions).
    """

    requests: tuple[PromptRequest, ...]
    source: str

    @property
    def conditions(self) -> tuple[Condition, ...]:
        """One condition per sample, prompt by prompt."""
        return expand_prompts(self.requests)

    @property
    def n_samples(self) -> int:
        return sum(r.n_samples for r in self.requests)


def plan_samples(
    *, prompts: str | Path | None, samples_per_prompt: int | None, n_samples: int,
    train_conditions: Sequence[Condition] | None, model_kind: str | None,
    model_name: str = "the model",
) -> SamplePlan | None:
    """Decide the conditions an evaluation samples (``None``: unconditional sampling, or a
    class-conditional model whose labels are drawn by its handle).

    Rules: a prompts file is read with ``samples_per_prompt`` per line (default
    ``n_samples // n_prompts``; JSONL lines may give their own ``n_samples``); without one, a
    conditional model samples the training set's own distinct conditions
    (``samples_per_prompt`` each, default ``n_samples // n_prompts``); a class-conditional
    model with an unlabelled training set draws its labels. Refused in one line: prompts for
    an unconditional model, prompts of the wrong kind (captions for a class-conditional model),
    and a text-to-image model with neither prompts nor captions.
    """
    if prompts is not None and model_kind is None:
        raise ValidationError(
            f"evaluate: prompts apply to a conditional model; {model_name} is unconditional "
            f"(it samples without captions or labels). Drop --prompts {str(prompts)!r}, or use "
            "a conditional adapter (diffusers-text2image, diffusers-class-conditional)."
        )
    if model_kind is None:
        return None
    if prompts is not None:
        first = load_prompts(prompts)
        spp = samples_per_prompt or max(1, n_samples // len(first))
        requests = load_prompts(prompts, samples_per_prompt=spp)
        source = "prompts file"
    elif train_conditions is not None:
        distinct = unique_conditions(train_conditions)
        spp = samples_per_prompt or max(1, n_samples // len(distinct))
        requests = prompts_from_conditions(distinct, spp)
        source = "training set"
    elif model_kind == "class":
        return None  # the handle draws the labels (draw_labels), the same at every checkpoint
    else:
        raise ValidationError(
            f"evaluate: {model_name} is a text-to-image model and needs prompts; got neither "
            "--prompts FILE nor a training set with captions. Pass --prompts FILE, or --train "
            f"a folder with a {METADATA_FILE} (file_name, text) or an .npz with images and "
            "captions."
        )
    found = condition_kind([r.condition for r in requests])
    if found != model_kind:
        what = {"text": "captions", "class": "class labels"}
        where = f"the prompts file {str(prompts)!r}" if prompts is not None else \
            "the training set"
        raise ValidationError(
            f"evaluate: {model_name} takes {what[model_kind]}; {where} holds {what[found]}. "
            + ("Write labels as JSONL lines {\"label\": 3}." if model_kind == "class" else
               "Give captions (one per line, or JSONL {\"prompt\": ...}).")
        )
    return SamplePlan(tuple(requests), source)


def keep_indices(conditions: Sequence[Condition] | None, n: int, n_keep: int) -> np.ndarray:
    """Which of ``n`` generated samples a run keeps for its report: the first ``n_keep``
    without conditions; with them, round-robin over the prompts (the first sample of every
    prompt, then the second of every prompt, ...), so the report's grids show every prompt.
    The report recomputes the same indices from the stored conditions."""
    n_keep = max(0, min(int(n_keep), int(n)))
    if conditions is None:
        return np.arange(n_keep, dtype=np.int64)
    within = index_within_condition(conditions)
    order = np.lexsort((np.arange(len(within)), within))  # by rank within prompt, then position
    return order[:n_keep].astype(np.int64)


def conditions_sha256(**parts: Sequence[Condition] | None) -> str:
    """SHA-256 of named condition lists (``None`` parts included as null): the identity of
    what a conditional run sampled and compared with, recorded in ``config.json``."""
    key = json.dumps({k: (None if v is None else list(v)) for k, v in sorted(parts.items())},
                     ensure_ascii=False)
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


# -- the conditional model handle --------------------------------------------------------------


class ConditionalModelHandle(ModelHandle):
    """One loaded checkpoint of a conditional model (text-to-image or class-conditional).

    Beyond :class:`probekit.ModelHandle`:

    * ``generate(n, seed, conditions=...)`` takes one condition per sample (``n ==
      len(conditions)``); sample *i* starts from :func:`initial_noise` — noise that depends only
      on ``(seed, conditions[i], index of i among the samples of conditions[i])``.
    * ``predict_noise(x_t, t, conditions=...)`` is the conditional noise prediction in the
      model's own space (latents for latent models); ``conditions=None`` means the null
      condition (the empty prompt, or the null class) — the unconditional branch of
      classifier-free guidance.
    * ``guidance_trace(seed, conditions, n_steps)`` follows the same guided sampling
      trajectory as ``generate`` for its first ``n_steps`` steps and returns, per sample and
      step, ``||eps(x_t, c) - eps(x_t, null)||_2`` over the whole latent — the text-conditional
      noise magnitude of Wen et al. (ICLR 2024), what ``noise-magnitude`` scores.
    """

    #: ``"text"`` (captions) or ``"class"`` (integer labels).
    condition_kind: ClassVar[str] = "text"
    #: Number of classes of a class-conditional model (``None`` for text).
    n_classes: int | None = None

    @abstractmethod
    def generate(self, n: int, seed: int, *,
                 conditions: Sequence[Condition] | None = None) -> np.ndarray:
        """``n`` samples, one per condition, in probekit's image layout."""

    def predict_noise(self, x_t: np.ndarray, t: np.ndarray, *,
                      conditions: Sequence[Condition] | None = None) -> np.ndarray:
        """``eps_theta(x_t, t, c)`` in the model's space (``conditions=None``: null)."""
        raise NotImplementedError(
            f"{type(self).__name__} cannot predict noise; use a white-box conditional adapter."
        )

    def guidance_trace(self, seed: int, conditions: Sequence[Condition],
                       n_steps: int) -> np.ndarray:
        """``(n_samples, n_steps)`` norms ``||eps(x_t, c) - eps(x_t, null)||_2`` along the first
        ``n_steps`` steps of the guided sampling trajectory of ``generate(seed, conditions)``."""
        raise NotImplementedError(
            f"{type(self).__name__} cannot trace classifier-free guidance; noise-magnitude "
            "needs a white-box conditional adapter (diffusers-text2image, "
            "diffusers-class-conditional)."
        )

    def resolve_conditions(self, n: int, seed: int,
                           conditions: Sequence[Condition] | None) -> tuple[Condition, ...]:
        """The conditions to sample: ``conditions`` validated against ``n`` and the model's
        kind, or (class-conditional models only) ``n`` labels drawn with :func:`draw_labels`."""
        who = type(self).__name__
        if conditions is None:
            if self.condition_kind == "class" and self.n_classes:
                return draw_labels(n, seed, self.n_classes)
            raise ValidationError(
                f"{who}: conditions must be given for a text-to-image model (one prompt per "
                "sample); got None. Pass conditions=[...] (or --prompts FILE)."
            )
        conds = check_conditions(conditions, n, who=who, kind=self.condition_kind)
        if self.condition_kind == "class" and self.n_classes is not None:
            top = max(conds, default=0)
            if top >= self.n_classes:  # type: ignore[operator]
                raise ValidationError(
                    f"{who}: class labels must be in [0, {self.n_classes - 1}] for this model; "
                    f"got {top}."
                )
        return conds


def is_conditional(model: object) -> bool:
    """Whether ``model`` implements the conditional handle contract."""
    return isinstance(model, ConditionalModelHandle)


__all__ = [
    "CONDITION_KINDS",
    "METADATA_FILE",
    "Condition",
    "ConditionSummary",
    "ConditionalModelHandle",
    "ConditionalSet",
    "PromptRequest",
    "SamplePlan",
    "adapter_condition_kind",
    "check_conditions",
    "cluster_bootstrap_ci",
    "condition_kind",
    "condition_label",
    "conditions_sha256",
    "decode_conditions",
    "draw_labels",
    "encode_conditions",
    "expand_prompts",
    "group_by_condition",
    "grouped_neighbors",
    "index_within_condition",
    "initial_noise",
    "is_conditional",
    "is_conditional_source",
    "keep_indices",
    "load_conditional_set",
    "load_prompts",
    "needs_conditions",
    "plan_samples",
    "prompts_from_conditions",
    "ratio_within_conditions",
    "sample_seed",
    "sample_seeds",
    "summarize_by_condition",
    "unique_conditions",
]
