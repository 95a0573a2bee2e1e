"""The self-contained HTML pages of the reports (render only: the numbers come from
:mod:`probekit.analysis` and the summaries :mod:`probekit.reports` builds; images arrive as PNG
bytes and are embedded, so a page can be mailed alone)."""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from probekit import _plotting as plotting
from probekit.analysis import RunAnalysis, headline_curves
from probekit.types import _jsonable

#: Columns of ``results.csv`` (DESIGN §7), shown in the page's tidy table.
CSV_COLUMNS = ("step", "measure", "field", "value", "ci_low", "ci_high")


def scaling_cards(summary: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """(css class, title, value, detail) of the scaling report's answer cards."""
    fit = summary["fit"]
    cards = []
    if fit["slope"] is not None:
        ci = "no CI (needs >= 3 runs)" if fit["slope_ci"] is None else \
            f"95% CI {fit['slope_ci'][0]:.2f} to {fit['slope_ci'][1]:.2f}"
        cards.append(("mem", "log-log slope b (tau_mem ∝ n^b)", f"{fit['slope']:.2f}",
                      f"{ci}; R² = {fit['r2']:.3f}"))
    else:
        cards.append(("mem", "log-log slope b", "no fit",
                      "fewer than 2 runs with a crossed tau_mem"))
    if fit["linear_coef"] is not None:
        ci = "" if fit["linear_coef_ci"] is None else \
            f"95% CI {fit['linear_coef_ci'][0]:.3g} to {fit['linear_coef_ci'][1]:.3g}"
        cards.append(("mem", "c in tau_mem = c·n", f"{fit['linear_coef']:.3g}", ci))
    if fit["tau_gen_mean"] is not None:
        cv = "–" if fit["tau_gen_cv"] is None else f"{fit['tau_gen_cv']:.2f}"
        cards.append(("gen", "tau_gen spread across n (CV)", cv,
                      f"mean tau_gen {plotting.step_text(fit['tau_gen_mean'])}"))
    return cards


# -- HTML ----------------------------------------------------------------------------------------

_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;
margin:0;background:#f6f7f9}
main{max-width:1080px;margin:0 auto;padding:24px 28px 60px;background:#fff}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:32px 0 10px;border-bottom:1px solid
#ddd;padding-bottom:4px}.sub{color:#666;margin:0 0 18px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(230px,1fr));gap:12px}
.card{border:1px solid #ddd;border-radius:8px;padding:10px 14px;background:#fcfcfd}
.card .k{font-size:13px;color:#666}
.card .v{font-size:20px;font-weight:600;margin:2px 0}.card .d{font-size:13px;color:#555}
.card.gen{border-left:5px solid #1f77b4}.card.mem{border-left:5px solid #d62728}
.card.win{border-left:5px solid #2ca02c}.card.rec{border-left:5px solid #e6b800}
.card.gap{border-left:5px solid #9467bd}
table{border-collapse:collapse;font-size:13px;margin:6px 0}th,td{border:1px solid #ddd;
padding:3px 8px;text-align:left;vertical-align:top}th{background:#f1f3f5}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.rec td{background:#fff6cc}tr.win td:first-child{border-left:4px solid #2ca02c}
img{max-width:100%;border:1px solid #eee}code,pre{font-size:12px;background:#f4f4f4}
pre{padding:6px;white-space:pre-wrap;word-break:break-word;margin:0}
.notes li{margin:3px 0}.muted{color:#777;font-size:13px}details{margin:8px 0}
"""


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _num(x: Any, digits: int = 4) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "–"
    if not math.isfinite(v):
        return "–"
    if v != 0 and (abs(v) >= 1e6 or abs(v) < 1e-3):
        return f"{v:.{digits - 1}e}"
    return f"{v:.{digits}g}"


def _img(images: Mapping[str, bytes], name: str, alt: str) -> str:
    if name not in images:
        return ""
    data = base64.b64encode(images[name]).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _kv_table(d: Mapping[str, Any]) -> str:
    rows = "".join(
        f"<tr><th>{_e(k)}</th><td>{_e(_plain(v))}</td></tr>" for k, v in d.items()
    )
    return f"<table>{rows}</table>"


def _plain(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, list) and all(isinstance(x, int | float) or x is None for x in v):
        return ", ".join(_num(x) for x in v) if v else "–"
    if isinstance(v, dict | list):
        return json.dumps(_jsonable(v), sort_keys=True)
    if isinstance(v, float):
        return _num(v, 6)
    return str(v)


def _plural(k: int, word: str) -> str:
    return f"{k} {word}" + ("" if k == 1 else "s")


def _card(cls: str, key: str, value: str, detail: str) -> str:
    return (f'<div class="card {cls}"><div class="k">{_e(key)}</div><div class="v">{_e(value)}'
            f'</div><div class="d">{_e(detail)}</div></div>')


def _step(x: Any) -> str:
    return "–" if x is None else plotting.step_text(float(x))


def _tau_card(cls: str, tau: Mapping[str, Any] | None, what: str) -> str:
    if tau is None:
        return _card(cls, what, "not estimated", "")
    status, value = tau["status"], tau["value"]
    level = f"level {_num(tau['level'])}"
    if status == "never":
        return _card(cls, what, "never",
                     f"not reached by the last step ({_step(tau['last_step'])}); {level}")
    if status == "from_first":
        return _card(cls, what, f"≤ {_step(value)}",
                     f"from the first checkpoint (left-censored); {level}")
    main = _step(value) + ("" if tau["confirmed"] else " (unconfirmed)")
    detail = "no CI"
    if tau["ci_low_status"] is not None:
        low = ("≤ " if tau["ci_low_status"] == "from_first" else "") + _step(tau["ci_low"])
        high = f"> {_step(tau['last_step'])}" if tau["ci_high"] is None else \
            _step(tau["ci_high"])
        detail = f"95% CI {low} to {high}"
    return _card(cls, what, main, f"{detail}; {level}")


def _results_table(a: RunAnalysis) -> str:
    curves = headline_curves(a)
    rec = a.window.recommended_step if a.window is not None else None
    inside = set(a.window.checkpoints) if a.window is not None else set()
    head = "".join(f"<th>{_e(c.measure)}<br><span class='muted'>{_e(c.field)}"
                   f"{' ↑' if c.higher_is_better else ' ↓' if c.higher_is_better is False else ''}"
                   "</span></th>" for c in curves)
    body = []
    for step in a.steps:
        cells = []
        for c in curves:
            hit = np.flatnonzero(c.steps == step)
            if not len(hit):
                cells.append("<td class='num'>–</td>")
                continue
            i = int(hit[0])
            ci = "" if not (math.isfinite(c.ci_low[i]) and math.isfinite(c.ci_high[i])) else \
                f" <span class='muted'>[{_num(c.ci_low[i], 3)}, {_num(c.ci_high[i], 3)}]</span>"
            cells.append(f"<td class='num'>{_num(c.value[i])}{ci}</td>")
        cls = " ".join(x for x in ("rec" if step == rec else "",
                                   "win" if step in inside else "") if x)
        body.append(f"<tr class='{cls}'><td class='num'>{step}</td>{''.join(cells)}</tr>")
    legend = ("<p class='muted'>Yellow row: recommended checkpoint. Green edge: checkpoints "
              "inside the window [tau_gen, tau_mem). ↑/↓: higher/lower is better. Brackets: 95% "
              "CI.</p>")
    return f"{legend}<table><tr><th>step</th>{head}</tr>{''.join(body)}</table>"


def _tidy_table(a: RunAnalysis) -> str:
    rows = []
    for (measure, fld), c in a.curves.items():
        for i, step in enumerate(c.steps):
            rows.append((int(step), measure, fld, c.value[i], c.ci_low[i], c.ci_high[i]))
    rows.sort()
    body = "".join(
        f"<tr><td class='num'>{s}</td><td>{_e(m)}</td><td>{_e(f)}</td><td class='num'>"
        f"{_num(v, 6)}</td><td class='num'>{_num(lo, 6)}</td><td class='num'>{_num(hi, 6)}</td>"
        "</tr>" for s, m, f, v, lo, hi in rows
    )
    return ("<details><summary>every field at every checkpoint (" + str(len(rows)) +
            " rows, as in results.csv)</summary><table><tr>" +
            "".join(f"<th>{c}</th>" for c in CSV_COLUMNS) + f"</tr>{body}</table></details>")


def _measures_table(config: Mapping[str, Any]) -> str:
    rows = []
    for m in config.get("measures") or []:
        rows.append(
            "<tr>" + "".join(f"<td>{_e(_plain(m.get(k)))}</td>" for k in
                             ("name", "kind", "headline", "higher_is_better", "plugin",
                              "version")) +
            f"<td><pre>{_e(json.dumps(m.get('settings') or {}, sort_keys=True))}</pre></td></tr>"
        )
    if not rows:
        return "<p class='muted'>config.json lists no measures.</p>"
    head = "".join(f"<th>{h}</th>" for h in ("measure", "kind", "headline", "higher is better",
                                             "plugin", "version", "settings"))
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _evaluations_table(evaluations: Mapping[str, Any]) -> str:
    """What each measure actually ran with (its latest evaluation) and what it warned about."""
    if not evaluations:
        return ""
    keys = ("feature_space", "preprocessing", "feature_weights_sha256", "seed", "n_reference",
            "n_samples", "plugin", "plugin_version", "probekit_version")
    head = "".join(f"<th>{k.replace('_', ' ')}</th>" for k in ("measure", "checkpoints", *keys))
    rows = []
    for name, e in evaluations.items():
        prov = e.get("provenance") or {}
        cells = [f"<td>{_e(name)}</td>", f"<td class='num'>{e['n_checkpoints']}</td>"]
        cells += [f"<td>{_e(_plain(prov.get(k)))}</td>" for k in keys]
        rows.append("<tr>" + "".join(cells) + "</tr>")
        if e["warnings"]:
            warn = "; ".join(e["warnings"][:5]) + (" ..." if len(e["warnings"]) > 5 else "")
            rows.append(f"<tr><td></td><td colspan='{len(keys) + 1}'>warnings: {_e(warn)}</td>"
                        "</tr>")
    return ("<p class='muted'>As evaluated (the provenance of each measure's latest "
            f"checkpoint):</p><table><tr>{head}</tr>{''.join(rows)}</table>")


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_e(title)}"
            f"</title><meta name='viewport' content='width=device-width,initial-scale=1'>"
            f"<style>{_CSS}</style></head><body><main>{body}</main></body></html>\n")


def render_run_html(a: RunAnalysis, summary: Mapping[str, Any],
                    images: Mapping[str, bytes], *, conditional_html: str = "") -> str:
    """The self-contained report page of one run (``conditional_html``: the per-prompt
    section of a conditional run, :mod:`probekit.reports_conditional`)."""
    c = a.config
    title = f"probekit report — {c.get('series') or a.run_dir.name}"
    n_train = "?" if a.n_train is None else f"{a.n_train:g}"
    sub = (f"n_train = {n_train} · modality {c.get('modality', '?')} · "
           f"{_plural(len(a.steps), 'checkpoint')}, steps {a.steps[0]}–{a.steps[-1]} · "
           f"{c.get('n_samples', '?')} samples per checkpoint · seed {c.get('seed', '?')} · "
           f"generated {summary['generated_at']}")
    cards = [_tau_card("gen", summary["tau_gen"], "tau_gen (generates well)"),
             _tau_card("mem", summary["tau_mem"], "tau_mem (starts copying)")]
    w = summary["window"]
    if w is not None:
        if w["empty"]:
            cards.append(_card("win", "early-stopping window", "empty", w["empty_reason"]))
        else:
            cards.append(_card("win", "early-stopping window", w["text"],
                               f"{_plural(len(w['checkpoints']), 'checkpoint')} inside"))
        rec = summary["recommended_checkpoint"]
        cards.append(_card("rec", "recommended checkpoint",
                           "none" if rec is None else f"step {rec['step']}",
                           "" if rec is None else rec["basis"]))
    if summary["loss_gap_onset"] is not None:
        g = summary["loss_gap_onset"]
        cards.append(_card("gap", "loss-gap onset",
                           "never" if g["status"] == "never" else _num(g["step"]),
                           "holdout − train denoising loss > 0" +
                           (" (CI lower bound)" if g["used_ci"] else "")))
    notes = summary["notes"]
    notes_html = ("<ul class='notes'>" + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>"
                  if notes else "<p class='muted'>none</p>")
    body = [
        f"<h1>{_e(title)}</h1><p class='sub'>{_e(sub)}</p>",
        f"<div class='cards'>{''.join(cards)}</div>",
        "<h2>Quality and memorization against training step</h2>",
        "<p class='muted'>Log step axis. Bands: 95% CIs. Dashed vertical lines: tau estimates "
        "(dotted: censored or unconfirmed), bars along the top: their 95% CIs. Green: the window "
        "[tau_gen, tau_mem). Star: recommended checkpoint.</p>",
        _img(images, "curves.png", "quality and f_mem against step"),
        "<h2>Thresholds and modes</h2>", _kv_table(summary["thresholds"]),
    ]
    if "neighbors.png" in images:
        body += ["<h2>Generated samples and their nearest training samples</h2>",
                 "<p class='muted'>The first kept samples of each shown checkpoint (the same "
                 "initial noise at every checkpoint), each above or over its nearest training "
                 "sample.</p>",
                 _img(images, "neighbors.png", "nearest-neighbour grid")]
    if conditional_html:
        body.append(conditional_html.replace(
            "<!--prompt_grid-->", _img(images, "prompt_grid.png", "per-prompt grid")))
    if "roc.png" in images:
        body += ["<h2>Membership inference</h2>",
                 "<p class='muted'>ROC curves of each attack on log-log axes, members (training "
                 "samples) against as many held-out non-members. The dotted line is 1 / "
                 "(number of non-members): below it the FPR is not resolved.</p>",
                 _img(images, "roc.png", "membership-inference ROC curves")]
    failures = summary.get("failures") or []
    if failures:
        rows = "".join(f"<tr><td class='num'>{int(f['step'])}</td><td>{_e(f['path'])}</td>"
                       f"<td>{_e(f['reason'])}</td><td class='num'>{int(f['attempts'])}</td></tr>"
                       for f in failures)
        body += ["<h2>Failed checkpoints</h2>",
                 "<p class='muted'>These checkpoints could not be evaluated and are missing from "
                 "the curves. Fix them and run the same evaluation again: only they are "
                 "retried.</p>",
                 "<table><tr><th>step</th><th>path</th><th>reason</th><th>attempts</th></tr>"
                 f"{rows}</table>"]
    body += ["<h2>Results</h2>", _results_table(a), _tidy_table(a)]
    if "measures.png" in images:
        body += ["<h2>Every measure</h2>", _img(images, "measures.png", "every measure")]
    body += ["<h2>Notes</h2>", notes_html,
             "<h2>Provenance</h2>", "<h3>Run</h3>", _kv_table(summary["provenance"]["run"]),
             "<h3>Measures</h3>", _measures_table(c),
             _evaluations_table(summary["provenance"]["evaluations"]),
             "<h3>Versions</h3>",
             _kv_table({**{f"run: {k}": v for k, v in summary["versions"]["run"].items()},
                        **{f"report: {k}": v for k, v in summary["versions"]["report"].items()}}),
             _files_line(summary)]
    return _page(title, "\n".join(body))


def _files_line(summary: Mapping[str, Any]) -> str:
    names = ["results.csv", "summary.json", *summary["files"]["plots"]]
    return f"<p class='muted'>Files next to this page: {_e(', '.join(names))}</p>"


def render_scaling_html(summary: Mapping[str, Any], images: Mapping[str, bytes]) -> str:
    """The self-contained page of a scaling report."""
    title = "probekit scaling report"
    runs = summary["runs"]
    rows = []
    for r in runs:
        cells = [f"<td class='num'>{_num(r['n'])}</td>", f"<td>{_e(r['run_dir'])}</td>",
                 f"<td class='num'>{r['steps'][0]}–{r['steps'][1]}</td>"]
        for name in ("tau_mem", "tau_gen", "tau_gen_relative"):
            t = r[name]
            cells.append(f"<td>{_e(t['text'].split(' = ', 1)[1]) if t else '–'}</td>")
        cells.append(f"<td class='num'>{_num(r['tau_mem_over_n'])}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("n", "run", "steps", "tau_mem",
                                             "tau_gen (common threshold)"
                                             if summary["thresholds"]["gen_mode"] == "absolute"
                                             else "tau_gen", "tau_gen (own run, relative)",
                                             "tau_mem / n"))
    notes = summary["notes"]
    body = [
        f"<h1>{_e(title)}</h1><p class='sub'>{len(runs)} runs, n = "
        f"{_e(', '.join(_num(r['n']) for r in runs))} · generated {summary['generated_at']}</p>",
        "<div class='cards'>" + "".join(_card(cls, key, value, detail)
                                        for cls, key, value, detail in scaling_cards(summary))
        + "</div>",
        "<h2>Collapse of f_mem(step / n)</h2>", _img(images, "collapse.png", "collapse plot"),
        "<h2>Timescales against n</h2>", _img(images, "scaling.png", "scaling plot"),
        f"<h2>Runs</h2><table><tr>{head}</tr>{''.join(rows)}</table>",
        "<h2>Thresholds and modes</h2>", _kv_table(summary["thresholds"]),
        "<h2>Fit</h2>", _kv_table({k: v for k, v in summary["fit"].items()
                                    if k not in ("method", "notes")}),
        _kv_table(summary["fit"]["method"]),
        "<h2>Notes</h2>",
        ("<ul class='notes'>" + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>")
        if notes else "<p class='muted'>none</p>",
        "<h2>Versions</h2>", _kv_table(summary["versions"]["report"]),
    ]
    return _page(title, "\n".join(body))


__all__ = ["render_run_html", "render_scaling_html", "scaling_cards"]
