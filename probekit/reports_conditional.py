"""The conditional part of a run's report: ``per_prompt.csv``, the per-prompt table and the
grid of (prompt, generation, nearest training image) (render only).

A run whose samples carry prompts (``config.json["conditions"]``) has, beside the usual
curves, per-sample artifacts with a ``condition`` array. :func:`conditional_report` reads them,
lets :func:`probekit.analysis.per_prompt_rows` average them per prompt, and renders the rows
as a tidy CSV, an HTML table (the copy fraction of each prompt at the recommended checkpoint,
at the first checkpoint at ``mem_level`` and at the last one, with the training image it copies
most) and a picture: one row per prompt, one column per chosen checkpoint, each cell the
prompt's first generation beside its nearest training image (red: a copy).
"""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from probekit.analysis import (
    PER_PROMPT_FIELDS,
    PromptRow,
    RunAnalysis,
    per_prompt_rows,
    prompt_field,
)

#: Prompts shown in the grid (the table lists all of them).
GRID_PROMPTS = 12
#: Columns of per_prompt.csv.
PER_PROMPT_COLUMNS = ("step", "measure", "field", "prompt", "n", "value", "ci_low", "ci_high")
#: Measures whose artifacts give the grid's nearest training image, in order of preference
#: after the run's mem_measure.
GRID_MEASURES = ("prompt-copy", "nn-ratio", "extraction")


@dataclass
class ConditionalReport:
    """What the conditional part adds to a report: files, images and an HTML section."""

    texts: dict[str, str] = field(default_factory=dict)
    images: dict[str, bytes] = field(default_factory=dict)
    html: str = ""
    notes: list[str] = field(default_factory=list)


def kept_sample_indices(config: Mapping[str, Any], n: int) -> np.ndarray:
    """Indices (among a checkpoint's ``n`` generated samples) of the samples the run kept in
    ``samples/``, in the order kept (:func:`probekit.conditions.keep_indices`)."""
    from probekit.conditions import keep_indices

    prompts = (config.get("conditions") or {}).get("prompts")
    conditions = None if not prompts else [c for c, k in prompts for _ in range(int(k))]
    if conditions is None or len(conditions) != n:
        return np.arange(n, dtype=np.int64)  # unconditional: the first samples, in order
    return keep_indices(conditions, n, int(config.get("n_keep", n)))


def _artifact(run_dir: Path, measure: str, step: int) -> Path:
    return run_dir / "artifacts" / measure / f"step-{step:08d}.npz"


def read_artifacts(run_dir: Path, measures: Sequence[str], steps: Sequence[int]
                   ) -> dict[tuple[int, str], dict[str, np.ndarray]]:
    """Per-sample arrays of ``measures`` at ``steps`` that carry a ``condition`` array."""
    out = {}
    for measure in measures:
        for step in steps:
            path = _artifact(run_dir, measure, int(step))
            if not path.is_file():
                continue
            with np.load(path, allow_pickle=False) as data:
                if "condition" in data.files:
                    out[(int(step), measure)] = {k: data[k] for k in data.files}
    return out


def per_prompt_csv(rows: Sequence[PromptRow]) -> str:
    """``per_prompt.csv``: one row per step × measure × field × prompt."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(PER_PROMPT_COLUMNS)
    for r in rows:
        writer.writerow([r.step, r.measure, r.field, r.prompt, r.n, _num(r.value),
                         _num(r.ci_low), _num(r.ci_high)])
    return buf.getvalue()


def _num(x: float) -> str:
    return "" if x is None or not np.isfinite(x) else repr(float(x))


def table_steps(a: RunAnalysis) -> list[int]:
    """Checkpoints of the per-prompt table: the recommended one, the first at ``mem_level``
    (tau_mem), the last; the first when fewer than two of them exist."""
    wanted = []
    if a.window is not None and a.window.recommended_step is not None:
        wanted.append(int(a.window.recommended_step))
    if a.tau_mem is not None and a.tau_mem.estimate.index is not None and a.f_mem is not None:
        wanted.append(int(a.f_mem.steps[a.tau_mem.estimate.index]))
    if a.steps:
        wanted.append(int(a.steps[-1]))
    steps = sorted(set(wanted))
    if len(steps) < 2 and a.steps:
        steps = sorted({int(a.steps[0]), *steps})
    return steps


def _measure_for_table(a: RunAnalysis, rows: Sequence[PromptRow]) -> str | None:
    names = list(dict.fromkeys([*( [a.f_mem.measure] if a.f_mem is not None else []),
                                 *GRID_MEASURES, *(r.measure for r in rows)]))
    return next((m for m in names if prompt_field(rows, m) is not None), None)


def _e(x: Any) -> str:
    return html.escape(str(x))


def _label(condition: Any) -> str:
    from probekit.conditions import condition_label

    return condition_label(condition)


def prompt_table_html(a: RunAnalysis, rows: Sequence[PromptRow], artifacts: Mapping,
                      train_conditions: Sequence[Any] | None) -> str:
    """The per-prompt table (all prompts) and the most-copied training items."""
    measure = _measure_for_table(a, rows)
    if measure is None:
        return ""
    fld = prompt_field(rows, measure)
    steps = [s for s in table_steps(a) if any(r.step == s and r.measure == measure
                                               for r in rows)]
    if not steps:
        return ""
    by = {(r.step, r.field, r.prompt): r for r in rows if r.measure == measure}
    last = steps[-1]
    prompts = list(dict.fromkeys(r.prompt for r in rows if r.measure == measure and
                                 r.step == last and r.field == fld))
    has_own = any(f == "copied_own" for _, f, _ in by)
    art = artifacts.get((last, measure), {})
    top = _most_copied_by_prompt(art, fld)
    roles = {}
    if a.window is not None and a.window.recommended_step is not None:
        roles[int(a.window.recommended_step)] = "recommended"
    if a.tau_mem is not None and a.tau_mem.estimate.index is not None and a.f_mem is not None:
        roles.setdefault(int(a.f_mem.steps[a.tau_mem.estimate.index]), "first at mem_level")
    roles.setdefault(last, "last")
    head = "".join(f"<th>step {s}<br><span class='muted'>{_e(roles.get(s, ''))}</span></th>"
                   for s in steps)
    own_head = f"<th>own copies, step {last}</th>" if has_own else ""
    body = []
    for p in prompts:
        cells = []
        for s in steps:
            r = by.get((s, fld, p))
            cells.append("<td class='num'>–</td>" if r is None else
                         f"<td class='num'>{r.value:.2f} <span class='muted'>[{r.ci_low:.2f}, "
                         f"{r.ci_high:.2f}]</span></td>")
        own = ""
        if has_own:
            r = by.get((last, "copied_own", p))
            own = ("<td class='num'>–</td>" if r is None or r.n == 0 else
                   f"<td class='num'>{r.value:.2f}</td>")
        item = top.get(p)
        item_text = "–" if item is None else (
            f"#{item[0]} ({item[1]}×)" + (
                f" “{_e(_label(train_conditions[item[0]]))}”"
                if train_conditions is not None and 0 <= item[0] < len(train_conditions)
                else ""))
        n = by.get((last, fld, p))
        body.append(f"<tr><td>{_e(_label(p))}</td><td class='num'>{n.n if n else ''}</td>"
                    f"{''.join(cells)}{own}<td>{item_text}</td></tr>")
    what = PER_PROMPT_FIELDS.get(fld or "", fld)
    parts = [
        "<h2>Per prompt</h2>",
        f"<p class='muted'>{_e(measure)}: {_e(what)} ({_e(fld)}), per prompt, with 95% "
        "bootstrap CIs over the prompt's generations; the last column is the training item "
        f"its generations copy most at step {last}. Every step: per_prompt.csv.</p>",
        f"<table class='per-prompt'><tr><th>prompt</th><th>n</th>{head}{own_head}"
        f"<th>most copied training item</th></tr>{''.join(body)}</table>",
    ]
    items = art.get("top_items")
    counts = art.get("top_item_counts")
    if items is not None and counts is not None and len(items):
        rows_html = "".join(
            f"<tr><td class='num'>{int(i)}</td><td class='num'>{int(c)}</td><td>"
            + (_e(_label(train_conditions[int(i)])) if train_conditions is not None and
               0 <= int(i) < len(train_conditions) else "") + "</td></tr>"
            for i, c in zip(items, counts, strict=True))
        parts += [f"<h3>Training items copied most at step {last}</h3>",
                  "<p class='muted'>What to deduplicate or drop from the training set.</p>",
                  "<table class='top-items'><tr><th>training item</th><th>copies</th>"
                  f"<th>its caption or label</th></tr>{rows_html}</table>"]
    return "\n".join(parts)


def _most_copied_by_prompt(art: Mapping[str, np.ndarray], fld: str | None
                           ) -> dict[Any, tuple[int, int]]:
    """``{prompt: (training index, count)}``: the training item most of a prompt's copies
    (or memorized samples) are nearest to."""
    from probekit.conditions import decode_conditions, group_by_condition

    if "condition" not in art or "nn_index" not in art:
        return {}
    flag_name = "copied" if "copied" in art else "memorized" if "memorized" in art else None
    if flag_name is None:
        return {}
    flags = np.asarray(art[flag_name], dtype=bool)
    nn = np.asarray(art["nn_index"], dtype=np.int64)
    out = {}
    for cond, idx in group_by_condition(decode_conditions(art["condition"])).items():
        hit = nn[idx][flags[idx]]
        if len(hit):
            counts = np.bincount(hit)
            out[cond] = (int(counts.argmax()), int(counts.max()))
    return out


@dataclass(frozen=True)
class PromptCell:
    generated: np.ndarray
    nearest: np.ndarray
    score: float
    copied: bool


def prompt_grid_cells(run_dir: Path, config: Mapping[str, Any], measure: str,
                      steps: Sequence[int], train: np.ndarray
                      ) -> tuple[list[Any], dict[tuple[Any, int], PromptCell], str]:
    """For each prompt (up to :data:`GRID_PROMPTS`) and step: its first kept generation, the
    nearest training image, the score and whether it is a copy."""
    from probekit.conditions import decode_conditions

    prompts: list[Any] = []
    cells: dict[tuple[Any, int], PromptCell] = {}
    label = "similarity"
    for step in steps:
        samples_path = run_dir / "samples" / f"step-{step:08d}.npy"
        path = _artifact(run_dir, measure, step)
        if not samples_path.is_file() or not path.is_file():
            continue
        kept = np.load(samples_path, allow_pickle=False)
        with np.load(path, allow_pickle=False) as data:
            art = {k: data[k] for k in data.files}
        if "condition" not in art or "nn_index" not in art:
            continue
        conds = decode_conditions(art["condition"])
        keep = kept_sample_indices(config, len(conds))[: len(kept)]
        score_key = next((k for k in ("similarity", "ratio", "nn_distance") if k in art), None)
        label = score_key or "score"
        flag = art.get("copied", art.get("memorized", art.get("in_clique")))
        for j, i in enumerate(keep.tolist()):
            c = conds[i]
            if c not in prompts:
                if len(prompts) >= GRID_PROMPTS:
                    continue
                prompts.append(c)
            if (c, step) in cells:
                continue
            nn = int(art["nn_index"][i])
            if not 0 <= nn < len(train):
                continue
            cells[(c, step)] = PromptCell(
                kept[j], train[nn],
                float(art[score_key][i]) if score_key else float("nan"),
                bool(flag[i]) if flag is not None else False)
    return prompts, cells, label


def plot_prompt_grid(prompts: Sequence[Any], steps: Sequence[int],
                     cells: Mapping[tuple[Any, int], PromptCell], *,
                     value_range: tuple[float, float], score_label: str, title: str) -> bytes:
    """One row per prompt, one column per checkpoint; each cell the prompt's first generation
    (left) beside its nearest training image (right), the score below, red when a copy."""
    from matplotlib.figure import Figure

    from probekit._plotting import MEM_COLOR, _to_rgb, to_png

    lo, hi = value_range
    fig = Figure(figsize=(1.9 * len(steps) + 2.6, 1.05 * len(prompts) + 0.9),
                 layout="constrained")
    axes = fig.subplots(len(prompts), len(steps), squeeze=False)
    for i, p in enumerate(prompts):
        for j, step in enumerate(steps):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            cell = cells.get((p, step))
            if i == 0:
                ax.set_title(f"step {step}", fontsize=9)
            if j == 0:
                ax.set_ylabel(_label(p)[:28], fontsize=7, rotation=0, ha="right", va="center")
            if cell is None:
                for spine in ax.spines.values():
                    spine.set_visible(False)
                continue
            gen, near = _to_rgb(cell.generated, lo, hi), _to_rgb(cell.nearest, lo, hi)
            gap = np.ones((gen.shape[0], max(1, gen.shape[1] // 8), 3))
            ax.imshow(np.concatenate([gen, gap, near], axis=1), interpolation="nearest")
            color = MEM_COLOR if cell.copied else "black"
            ax.set_xlabel(f"{cell.score:.3f}" + (" copy" if cell.copied else ""), fontsize=7,
                          color=color)
            for spine in ax.spines.values():
                spine.set_color(color)
                spine.set_linewidth(2.0 if cell.copied else 0.5)
    fig.suptitle(f"{title}: generation (left) | nearest training image (right); "
                 f"{score_label} below, red = copy", fontsize=9)
    return to_png(fig)


def training_conditions(config: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """The training set's captions or labels, when ``config.json``'s ``train`` path holds
    them (a folder with a metadata.jsonl or an .npz with captions/labels)."""
    from probekit.conditions import is_conditional_source, load_conditional_set

    path = config.get("train")
    if not path or not is_conditional_source(path):
        return None
    try:
        return load_conditional_set(path).conditions
    except Exception:  # the table then shows indices only
        return None


def conditional_report(a: RunAnalysis, *, train: np.ndarray | None,
                       value_range: tuple[float, float] | None) -> ConditionalReport:
    """``per_prompt.csv``, the per-prompt table and grid of a run (empty for an
    unconditional run)."""
    from probekit.analysis import measure_table

    report = ConditionalReport()
    config = a.config
    if not config.get("conditions"):
        return report
    run_dir = a.run_dir
    probes = [n for n, info in measure_table(config).items() if info.get("kind") == "probe"]
    artifacts = read_artifacts(run_dir, probes, a.steps)
    rows = per_prompt_rows(artifacts)
    if not rows:
        return report
    report.texts["per_prompt.csv"] = per_prompt_csv(rows)
    train_conditions = training_conditions(config)
    parts = [prompt_table_html(a, rows, artifacts, train_conditions)]
    measure = next((m for m in dict.fromkeys(
        [*([a.f_mem.measure] if a.f_mem is not None else []), *GRID_MEASURES])
        if any(k[1] == m and "nn_index" in v for k, v in artifacts.items())), None)
    if measure is not None and train is not None:
        from probekit.reports import GRID_CHECKPOINTS, _grid_steps

        candidates = sorted({s for s, m in artifacts if m == measure})
        steps = _grid_steps(a, candidates)[:GRID_CHECKPOINTS]
        prompts, cells, label = prompt_grid_cells(run_dir, config, measure, steps, train)
        if prompts and cells:
            if value_range is None:
                lo, hi = np.percentile(train, [0.5, 99.5])
                value_range = (float(lo), float(hi) if hi > lo else float(lo) + 1.0)
            report.images["prompt_grid.png"] = plot_prompt_grid(
                prompts, steps, cells, value_range=value_range, score_label=label,
                title=measure)
            parts += ["<h3>Generations per prompt and their nearest training images</h3>",
                      "<p class='muted'>Each prompt's first generation (the same initial noise "
                      "at every checkpoint) beside its nearest training image.</p>",
                      "<!--prompt_grid-->"]
    report.html = "\n".join(p for p in parts if p)
    return report


__all__ = [
    "GRID_PROMPTS",
    "PER_PROMPT_COLUMNS",
    "ConditionalReport",
    "conditional_report",
    "kept_sample_indices",
    "per_prompt_csv",
    "plot_prompt_grid",
    "prompt_grid_cells",
    "prompt_table_html",
    "read_artifacts",
    "table_steps",
    "training_conditions",
]
