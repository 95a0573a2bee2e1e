"""The ``probekit`` command line.

Each subcommand is a function decorated with :func:`command`: it receives its argparse parser
to add arguments to, and returns the handler ``(args) -> exit code``.

What ends a command, and how (:func:`main`):

* **bad input** — a usage error, or any :class:`~probekit.errors.ProbekitError` raised while the
  inputs are checked — is one line on stderr (``probekit CMD: error: ...``, no ANSI escapes)
  and exit code **2**. Every input is checked before any work starts or any file is written
  (:mod:`probekit.validation`), so a refused command leaves the file system as it found it.
* ``probekit evaluate`` exits **3** when it finished but some checkpoints failed (each
  recorded with its reason; a rerun retries only those) and **130** on Ctrl-C (finished work
  is kept; the message says how to resume).
* **anything else** is not bad input (bad input must never get that far: the tests fail when
  one does) but a fault of probekit, a plugin or the machine: one line naming the exception,
  exit code **1**, and how to see the traceback (``PROBEKIT_DEBUG=1`` re-raises it). Running
  out of memory or disk space is said in those words.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from probekit.errors import ProbekitError
from probekit.validation import positive_int, seed_int

Handler = Callable[[argparse.Namespace], int]
_COMMANDS: list[tuple[str, str, Callable[[argparse.ArgumentParser], Handler], str | None]] = []

#: Registry kinds by their plural CLI spelling.
KIND_NAMES = {
    "probes": "probe",
    "metrics": "metric",
    "feature-extractors": "feature-extractor",
    "adapters": "adapter",
    "datasets": "dataset",
    "generators": "generator",
}


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def command(name: str, help: str, *, epilog: str | None = None) -> Callable:
    """Register a subcommand builder ``build(parser) -> handler``."""

    def deco(build: Callable[[argparse.ArgumentParser], Handler]):
        _COMMANDS.append((name, help, build, epilog))
        return build

    return deco


def parse_settings(pairs: Sequence[str] | None) -> dict[str, Any]:
    """``["k=0.5", "features=pixels"]`` → ``{"k": "0.5", "features": "pixels"}`` (validated
    and coerced later by the plugin's settings model)."""
    from probekit.cliargs import parse_key_values

    return parse_key_values(pairs)


def _measure_settings(pairs: Sequence[str] | None) -> dict[str, dict[str, Any]]:
    """``["nn-ratio.k=0.5"]`` → ``{"nn-ratio": {"k": "0.5"}}``."""
    from probekit.cliargs import parse_key_values

    return parse_key_values(pairs, nested=True)


def load_input(path: str, *, what: str):
    """Read an input array (``path`` or ``path.npz:key``)."""
    from probekit.io import load_array

    key = None
    if ":" in path and not Path(path).exists():
        path, _, key = path.rpartition(":")
    return load_array(path, key=key)


def write_json(path: str | None, obj: dict[str, Any]) -> None:
    """Write ``obj`` atomically to ``path`` (no-op for ``None``)."""
    if path:
        from probekit.io import atomic_write_json

        atomic_write_json(path, obj)


def _check_sample_count(measure: Any, samples: Any) -> None:
    """Refuse fewer samples than the measure can score, before its reference is prepared."""
    from probekit.errors import ValidationError

    needed = int(getattr(measure, "min_samples", 1) or 1)
    if len(samples) < needed:
        raise ValidationError(
            f"{measure.name}: samples must hold at least {needed} samples; got {len(samples)}. "
            "Generate more samples."
        )


def _format_result(result) -> str:
    head = f"{result.measure}: {result.headline} = {result.value:.4g}"
    if result.headline in result.ci:
        low, high = result.ci[result.headline]
        head += f" (95% CI {low:.4g}–{high:.4g})"
    others = [f"{k}={v:.4g}" for k, v in result.values.items() if k != result.headline]
    prov = result.provenance
    lines = [head, f"  n_samples={prov.n_samples} n_reference={prov.n_reference} "
             f"features={prov.feature_space} " + " ".join(others)]
    lines += [f"  warning: {w}" for w in result.warnings]
    return "\n".join(lines)


def text_table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(fmt.format(*map(str, r)).rstrip() for r in [header, *rows])


# -- plugins / list --------------------------------------------------------------------------


@command("plugins", help="list installed plugins, their versions and load failures")
def _plugins_cmd(p: argparse.ArgumentParser) -> Handler:
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    def run(args: argparse.Namespace) -> int:
        from probekit._plugins import get_host

        records = get_host().records
        if args.json:
            print(json.dumps([r.to_dict() for r in records], indent=2))
            return 0
        rows = []
        for r in records:
            provides = "; ".join(f"{k}: {', '.join(v)}" for k, v in sorted(r.provides.items()))
            rows.append([r.name, r.status, r.distribution, r.version, provides or "-"])
        print(text_table(rows, ["plugin", "status", "distribution", "version", "provides"]))
        for r in records:
            if r.error:
                print(f"\n{r.name}: {r.error}")
        return 0

    return run


@command("list", help="list registered probes, metrics, extractors, adapters, datasets, ...")
def _list_cmd(p: argparse.ArgumentParser) -> Handler:
    p.add_argument("kind", nargs="?", choices=sorted(KIND_NAMES), help="only this kind")
    p.add_argument("--settings", metavar="NAME",
                   help="print the settings of one plugin (or of `evaluate`) with their "
                   "defaults, constraints and descriptions")

    def run(args: argparse.Namespace) -> int:
        from probekit.registry import registries

        if args.settings:
            return _print_settings(args.settings, args.kind)
        regs = registries()
        kinds = [KIND_NAMES[args.kind]] if args.kind else list(KIND_NAMES.values())
        rows = []
        for kind in kinds:
            for e in regs[kind].entries():
                rows.append([e.name, kind, e.cls.modality, e.plugin, e.version,
                             e.cls.description])
        print(text_table(rows, ["name", "kind", "modality", "plugin", "version", "description"]))
        return 0

    return run


def _print_settings(name: str, kind: str | None) -> int:
    """``probekit list [KIND] --settings NAME``."""
    from probekit.cliargs import describe_settings
    from probekit.errors import UnknownNameError
    from probekit.registry import registries

    if name == "evaluate" and kind is None:
        from probekit.settings import EvaluationSettings

        model: Any = EvaluationSettings
        title = "evaluate (probekit evaluate's flags; EvaluationSettings)"
    else:
        regs = registries()
        kinds = [KIND_NAMES[kind]] if kind else list(KIND_NAMES.values())
        found = [(k, regs[k].entry(name)) for k in kinds if name in regs[k]]
        if not found:
            if len(kinds) == 1:
                regs[kinds[0]].get(name)  # raises the registry's own error (closest match)
            known = sorted({n for k in kinds for n in regs[k].names()})
            raise UnknownNameError(
                f"list --settings: {name!r} is not a registered "
                f"{'plugin' if kind is None else KIND_NAMES[kind]}; known: {', '.join(known)}."
            )
        if len(found) > 1:
            raise UnknownNameError(
                f"list --settings: {name!r} names a {found[0][0]} and a {found[1][0]}; give the "
                f"kind: `probekit list {found[0][0]}s --settings {name}`."
            )
        entry = found[0][1]
        model = entry.cls.Settings
        title = f"{name} ({entry.kind}, plugin {entry.plugin} {entry.version})"
    rows = [[r["name"], r["type"], r["default"], r["constraints"], r["description"]]
            for r in describe_settings(model)]
    print(title)
    if not rows:
        print("  takes no settings")
        return 0
    print(text_table(rows, ["setting", "type", "default", "constraints", "description"]))
    return 0


# -- probe -----------------------------------------------------------------------------------


@command("probe", help="run one memorization probe on a training set and generated samples")
def _probe_cmd(p: argparse.ArgumentParser) -> Handler:
    p.add_argument("name", help="registered probe name (see `probekit list probes`)")
    p.add_argument("--train", required=True, help="training set: .npy/.npz/.pt/.csv/image dir")
    p.add_argument("--samples", required=True, help="generated samples, same formats")
    p.add_argument("--holdout", help="held-out set, for probes that need one")
    p.add_argument("--set", dest="settings", action="append", metavar="KEY=VALUE",
                   help="probe setting, repeatable (e.g. --set k=0.5)")
    p.add_argument("--json", dest="json_out", metavar="OUT", help="write the result as JSON")

    def run(args: argparse.Namespace) -> int:
        from probekit.registry import get_probe
        from probekit.validation import check_compatible_sets, check_output_file

        if args.json_out is not None:
            check_output_file(args.json_out, who="probe", name="--json")
        cls = get_probe(args.name)
        probe = cls(parse_settings(args.settings))
        from probekit.errors import ValidationError

        if "model" in cls.requires:
            raise ValidationError(
                f"{cls.name}: needs the model itself (it predicts noise), which `probekit probe` "
                "does not load; run it with `probekit evaluate SERIES --probes "
                f"{cls.name}` and an adapter that loads the network (ddpm, diffusers)."
            )
        if "holdout" in cls.requires and not args.holdout:
            raise ValidationError(f"{cls.name}: requires a held-out set; pass --holdout PATH.")
        train = load_input(args.train, what="train")
        samples = load_input(args.samples, what="samples")
        holdout = load_input(args.holdout, what="holdout") if args.holdout else None
        check_compatible_sets({"train": train, "samples": samples, "holdout": holdout},
                              who=cls.name, modality=cls.modality)
        _check_sample_count(probe, samples)
        result = probe.prepare(train, holdout=holdout).evaluate(samples)
        write_json(args.json_out, result.to_dict())
        print(_format_result(result))
        return 0

    return run


# -- demo ------------------------------------------------------------------------------------


@command("demo", help="run the main job on bundled data (no download)")
def _demo_cmd(p: argparse.ArgumentParser) -> Handler:
    p.add_argument("--out", default="demo-out", help="output folder")
    p.add_argument("--quick", action="store_true",
                   help="smoke version: C = 16 U-Net, n = 16, 32, 64 (about 2 minutes)")
    p.add_argument("--jobs", type=positive_int,
                   help="runs trained at once (default: one per core)")

    def run(args: argparse.Namespace) -> int:
        # the reference pipeline's digits sweep (issue 4)
        from probekit.reference.demo import run_demo
        from probekit.validation import check_output_dir

        check_output_dir(args.out, who="demo", name="--out")
        return run_demo(Path(args.out), quick=args.quick, jobs=args.jobs)

    return run


# -- report ----------------------------------------------------------------------------------


@command("report", help="rebuild results.csv, summary.json, plots and report.html of runs")
def _report_cmd(p: argparse.ArgumentParser) -> Handler:
    from probekit.cliargs import add_settings_arguments
    from probekit.timescales import TimescaleSettings

    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories (probekit evaluate)")
    p.add_argument("--out", help="one run: where to write (default: the run directory); "
                   "several runs that differ in n: folder of the scaling report (default: "
                   "scaling-report next to the first run)")
    # each run's stored timescale settings are the defaults; the flags override them
    add_settings_arguments(p, TimescaleSettings)
    p.add_argument("--quiet", action="store_true", help="print nothing")

    def run(args: argparse.Namespace) -> int:
        from probekit import reports
        from probekit.analysis import run_size
        from probekit.cliargs import settings_from_args
        from probekit.store import load_config

        overrides = settings_from_args(TimescaleSettings, args)
        runs = [Path(r) for r in args.runs]
        if len(runs) == 1:
            out = Path(args.out) if args.out else None
            _check_report_inputs(runs, overrides, [out or runs[0]])
            reports.write_reports(runs[0], quiet=args.quiet, out=out, overrides=overrides)
            return 0
        configs = [load_config(r) for r in runs]
        sizes = {run_size(c) for c in configs}
        own = {k: overrides[k] for k in ("gen_mode", "gen_threshold") if k in overrides}
        common = {k: v for k, v in overrides.items() if k not in own}
        # the runs' own reports keep their gen_mode unless a threshold is given for all
        per_run = {**common, **(own if "gen_threshold" in own else {})}
        out = Path(args.out) if args.out else runs[0].parent / "scaling-report"
        _check_report_inputs(runs, per_run, [*runs, out])
        for r in runs:
            reports.write_reports(r, quiet=args.quiet, overrides=per_run)
        if len(sizes - {None}) < 2:
            if not args.quiet:
                print(f"probekit report: the runs do not differ in n ({sorted(sizes - {None})}); "
                      "no scaling analysis.")
            return 0
        reports.write_scaling_report(
            runs, out, gen_mode=own.get("gen_mode") or "absolute",
            gen_threshold=own.get("gen_threshold"), quiet=args.quiet, overrides=common,
        )
        return 0

    return run


def _check_report_inputs(runs: Sequence[Path], overrides: dict[str, Any],
                         outputs: Sequence[Path]) -> None:
    """Everything ``probekit report`` can check before it writes a file: every run directory
    and its config, results and timescale settings (with ``overrides``), measures named by
    ``--quality-measure``/``--mem-measure``, and the output folders."""
    from probekit.analysis import check_measure_spec, measure_table, timescale_settings
    from probekit.store import load_config, load_rows
    from probekit.validation import check_output_dir

    seen = set()
    for run in runs:
        if run.resolve() in seen:
            from probekit.errors import ValidationError

            raise ValidationError(f"report: each run may be given once; {str(run)!r} repeats.")
        seen.add(run.resolve())
        config = load_config(run)
        settings = timescale_settings(config, overrides)
        measures = measure_table(config)
        rows = load_rows(run)
        for what in ("quality_measure", "mem_measure"):
            spec = getattr(settings, what)
            if spec is not None:
                name = spec.partition(":")[0]
                fields = sorted({str(r["field"]) for r in rows if r["measure"] == name})
                check_measure_spec(spec, measures, what=what, fields=fields)
    for out in outputs:
        check_output_dir(out, who="report", name="--out")


# -- reference -------------------------------------------------------------------------------


@command("reference", help="train the reference DDPM (paper U-Net on CelebA; CPU presets)")
def _reference_cmd(p: argparse.ArgumentParser) -> Handler:
    from probekit.reference.commands import add_reference_arguments

    return add_reference_arguments(p, _Parser)


# -- evaluate --------------------------------------------------------------------------------

#: Exit codes of ``probekit evaluate`` (also in its ``--help``).
EXIT_FAILED_CHECKPOINTS = 3
EXIT_INTERRUPTED = 130

_EVALUATE_EPILOG = (
    "exit codes: 0 every checkpoint evaluated; 2 bad input (nothing was written); "
    f"{EXIT_FAILED_CHECKPOINTS} finished, but some checkpoints failed (listed, recorded in the "
    f"run; run the same command again to retry only those); {EXIT_INTERRUPTED} interrupted "
    "(finished checkpoints are saved; the same command resumes)"
)


@command("evaluate", help="evaluate a checkpoint series: f_mem, quality, tau_gen, tau_mem, report",
         epilog=_EVALUATE_EPILOG)
def _evaluate_cmd(p: argparse.ArgumentParser) -> Handler:
    from probekit.cliargs import add_settings_arguments
    from probekit.settings import EvaluationSettings

    p.add_argument("series", metavar="SERIES",
                   help="folder of checkpoints (ckpt-<step>.pt, Model_<step>, checkpoint-<step>/, "
                   "step-<step>.npy|npz|dir), a .toml/.json manifest (step -> path), a reference "
                   "run directory, or module:function for --adapter callable")
    p.add_argument("--train", help="training set: .npy/.npz/.pt/.csv/image folder")
    p.add_argument("--holdout", help="held-out set of the same distribution, never trained on")
    p.add_argument("--out", help="run directory (default for a reference run: RUN/eval)")
    p.add_argument("--steps", help="only these steps: 250,500 or 1000:5000 (inclusive)")
    add_settings_arguments(p, EvaluationSettings)
    p.add_argument("--overwrite", action="store_true",
                   help="delete the results in --out and start again")
    p.add_argument("--no-report", action="store_true", help="do not write the reports")
    p.add_argument("--quiet", action="store_true", help="no progress, no verdict")

    def run(args: argparse.Namespace) -> int:
        import shlex

        from probekit.cliargs import settings_from_args
        from probekit.errors import EvaluationInterrupted
        from probekit.evaluator import open_series

        settings = settings_from_args(EvaluationSettings, args)
        prepared = open_series(
            args.series, settings, out=args.out, train=args.train, holdout=args.holdout,
            steps=args.steps, overwrite=args.overwrite, quiet=args.quiet,
            reports=not args.no_report,
        )
        evaluator = prepared.evaluator
        argv = [a for a in sys.argv[1:] if a != "--overwrite"]
        again = shlex.join(["probekit", *argv]) if argv[:1] == ["evaluate"] else \
            "the same command"
        try:
            counts = evaluator.run(prepared.checkpoints)
        except EvaluationInterrupted as exc:
            evaluator.close()
            saved = str(exc).split(" Run the same")[0]
            print(f"probekit evaluate: {saved} To resume, run {again} (finished checkpoints "
                  "are skipped).", file=sys.stderr)
            return EXIT_INTERRUPTED
        except BaseException:
            evaluator.close()
            raise
        try:
            summary = evaluator.finish()
        except KeyboardInterrupt:
            print(f"probekit evaluate: interrupted while writing the reports; every checkpoint "
                  f"is saved in {str(prepared.out)!r}. Write the reports with `probekit report "
                  f"{shlex.quote(str(prepared.out))}`.", file=sys.stderr)
            return EXIT_INTERRUPTED
        failures = evaluator.failures
        if not args.quiet:
            failed = f", {len(failures)} failed" if failures else ""
            print(f"probekit evaluate: {counts['evaluated']} checkpoint(s) evaluated, "
                  f"{counts['skipped']} already done{failed}; results in "
                  f"{summary.get('run_dir') or prepared.out}")
        if failures:
            for step, reason in sorted(failures.items()):
                print(f"probekit evaluate: step {step} failed: {reason}", file=sys.stderr)
            print(f"probekit evaluate: {len(failures)} checkpoint(s) failed; fix them and run "
                  f"{again} to retry only those.", file=sys.stderr)
            return EXIT_FAILED_CHECKPOINTS
        return 0

    return run


# -- metric ----------------------------------------------------------------------------------


@command("metric", help="run one quality metric on a reference set and generated samples")
def _metric_cmd(p: argparse.ArgumentParser) -> Handler:
    p.add_argument("name", help="registered metric name (see `probekit list metrics`)")
    p.add_argument("--reference", required=True,
                   help="real (reference) set: .npy/.npz/.pt/.csv/image dir")
    p.add_argument("--samples", required=True, help="generated samples, same formats")
    p.add_argument("--set", dest="settings", action="append", metavar="KEY=VALUE",
                   help="metric setting, repeatable (e.g. --set value_range=-1,1)")
    p.add_argument("--json", dest="json_out", metavar="OUT", help="write the result as JSON")

    def run(args: argparse.Namespace) -> int:
        from probekit.registry import get_metric
        from probekit.validation import check_compatible_sets, check_output_file

        if args.json_out is not None:
            check_output_file(args.json_out, who="metric", name="--json")
        cls = get_metric(args.name)
        metric = cls(parse_settings(args.settings))
        reference = load_input(args.reference, what="reference")
        samples = load_input(args.samples, what="samples")
        check_compatible_sets({"reference": reference, "samples": samples}, who=cls.name,
                              modality=cls.modality)
        _check_sample_count(metric, samples)
        result = metric.prepare(reference).evaluate(samples)
        write_json(args.json_out, result.to_dict())
        print(_format_result(result))
        return 0

    return run


# -- bench -----------------------------------------------------------------------------------


@command("bench", help="benchmark generators on quality and memorization (time series)")
def _bench_cmd(p: argparse.ArgumentParser) -> Handler:
    sub = p.add_subparsers(dest="bench_command", metavar="ACTION", parser_class=_Parser)
    sub.required = True
    text = ("fit each generator on each dataset's train split, sample, and score quality and "
            "memorization side by side: leaderboard (Markdown, CSV), plots, provenance")
    t = sub.add_parser("timeseries", help=text, description=text, epilog=_BENCH_EPILOG)
    t.add_argument("--out", required=True, help="output folder")
    t.add_argument("--datasets", help="comma-separated datasets, NAME or LABEL=NAME (default: "
                   "sines, ar-process, regime-switching; --quick: sines; also trace, ucr-*, "
                   "series-file, recording)")
    t.add_argument("--generators", help="comma-separated generators, NAME, LABEL=NAME or "
                   "file:LABEL=PATH for series generated elsewhere (default: every baseline "
                   "and ddpm-best, ddpm-last; see `probekit list generators`)")
    t.add_argument("--metrics", help="comma-separated quality metrics (default: ts-fd, ts-mmd, "
                   "discriminative-score, predictive-score, marginal-distance, acf-distance)")
    t.add_argument("--probes", help="comma-separated memorization probes (default: nn-ratio, "
                   "subsequence-match)")
    t.add_argument("--set", dest="settings", action="append", metavar="NAME.KEY=VALUE",
                   help="setting of a dataset, generator or measure by its label, repeatable "
                   "(e.g. --set sines.n_train=100 --set ddpm-best.steps=5000; --set "
                   "subsequence-match.train=FILE: the probe's reference recording)")
    t.add_argument("--n-samples", type=positive_int,
                   help="series per generator (default: the reference half of the holdout)")
    t.add_argument("--seed", type=seed_int, default=0, help="seed (default 0)")
    t.add_argument("--quick", action="store_true",
                   help="smoke variant: one small dataset, a tiny DDPM (well under 3 minutes)")
    t.add_argument("--quiet", action="store_true", help="print only the output folder")

    def run(args: argparse.Namespace) -> int:
        from probekit.bench.timeseries import make_plan, run_benchmark
        from probekit.validation import check_output_dir

        check_output_dir(args.out, who="bench timeseries", name="--out")
        plan = make_plan(datasets=args.datasets, generators=args.generators,
                         metrics=args.metrics, probes=args.probes,
                         settings=_measure_settings(args.settings), n_samples=args.n_samples,
                         seed=args.seed, quick=args.quick)
        _check_bench_memory(plan)
        argv = sys.argv[1:] if sys.argv[1:2] == ["bench"] else None
        run_benchmark(args.out, plan, quiet=args.quiet, argv=argv)
        print(f"probekit bench timeseries: leaderboard in {Path(args.out) / 'leaderboard.md'}")
        return 0  # a failed row is a result of the benchmark (its reason is in the leaderboard)

    return run


_BENCH_EPILOG = (
    "exit codes: 0 finished (a generator or measure that failed is a row marked failed, with "
    "its reason, in the leaderboard; the same command retries only those); 2 bad input "
    "(nothing was run or written); 130 interrupted (finished rows are saved; the same command "
    "resumes)"
)


def _check_bench_memory(plan: Any) -> None:
    """Refuse a plan whose datasets or generated series would not fit in memory (estimates
    from the datasets' settings), before any generator is fitted."""
    from probekit.registry import get_dataset
    from probekit.validation import check_memory

    if plan.n_samples is None:
        return
    for key in plan.datasets:
        settings = get_dataset(plan.kind(key))(plan.settings.get(key, {})).settings
        length = getattr(settings, "n_timesteps", None) or getattr(settings, "window", None)
        channels = getattr(settings, "n_channels", 1) or 1
        if length:
            check_memory(
                8 * 4 * plan.n_samples * int(length) * int(channels), who="bench timeseries",
                what=f"--n-samples {plan.n_samples} series of {length} x {channels} values per "
                "generator", fix="Lower --n-samples.")


# -- commands defined in other modules --------------------------------------------------------

#: Modules that define more subcommands with :func:`command`; each is imported (cheaply: heavy
#: imports belong inside the handlers) when the parser is built.
COMMAND_MODULES: tuple[str, ...] = ("probekit.index_commands",)


def build_parser() -> argparse.ArgumentParser:
    """The full ``probekit`` parser."""
    from probekit import __version__

    parser = _Parser(
        prog="probekit",
        description="Find when a diffusion model starts copying its training data.",
    )
    parser.add_argument("--version", action="version", version=f"probekit {__version__}")
    import importlib

    for module in COMMAND_MODULES:
        importlib.import_module(module)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name, help_text, build, epilog in _COMMANDS:
        sp = sub.add_parser(name, help=help_text, description=help_text, epilog=epilog)
        sp.set_defaults(handler=build(sp))
    return parser


#: Exit code of a fault that is not bad input (see the module notes).
EXIT_INTERNAL_ERROR = 1
#: Exit code of bad input (one line on stderr, nothing written).
EXIT_BAD_INPUT = 2
#: Set to 1 to see the traceback of an unexpected error instead of one line.
DEBUG_ENV = "PROBEKIT_DEBUG"


def _command_name(args: argparse.Namespace) -> str:
    """``"reference train"`` for the nested commands, else the command."""
    parts = [args.command]
    for attr in ("reference_command", "theory_command", "bench_command", "index_command"):
        value = getattr(args, attr, None)
        if value:
            parts.append(value)
    return " ".join(parts)


def _warning_printer(who: str) -> Callable[..., None]:
    """``warnings.showwarning`` for the command line: one line per warning, no source line."""
    from probekit.validation import one_line

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: Any = None, line: str | None = None) -> None:
        text = one_line(str(message), limit=2000)
        if not text.startswith(("probekit", "plugin ")):
            text = f"{category.__name__}: {text}"
        stream = sys.stderr if file is None else file
        with contextlib.suppress(OSError, ValueError):  # a closed stream: never fatal
            print(f"{who}: warning: {text}", file=stream)

    return show


def _unexpected(who: str, exc: BaseException) -> int:
    """One line for an exception that is not bad input; exit code 1."""
    from probekit.validation import one_line

    what = one_line(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    if isinstance(exc, MemoryError):
        line = (f"{who}: error: out of memory ({what}). Use smaller settings or a machine with "
                "more memory.")
    elif isinstance(exc, OSError) and getattr(exc, "errno", None) in (28, 122):  # ENOSPC, EDQUOT
        line = f"{who}: error: no space left on the disk ({what}). Free some space and rerun."
    else:
        line = (f"{who}: internal error: {what}. This is a bug in probekit or a plugin, not in "
                f"your input; rerun with {DEBUG_ENV}=1 to see the traceback, and report it.")
    print(line, file=sys.stderr)
    return EXIT_INTERNAL_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``probekit`` console script (exit codes: see the module notes)."""
    import os

    from probekit.validation import one_line

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return int(exc.code or 0)
    who = f"probekit {_command_name(args)}"
    debug = os.environ.get(DEBUG_ENV, "").strip() not in ("", "0")
    try:
        with warnings.catch_warnings():  # restored afterwards (main may run in-process)
            warnings.showwarning = _warning_printer(who)
            return args.handler(args)
    except ProbekitError as exc:
        if debug:
            raise
        print(f"{who}: error: {one_line(exc, limit=2000)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"{who}: interrupted.", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `probekit plugins | head`: the reader left; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except Exception as exc:
        if debug:
            raise
        return _unexpected(who, exc)


if __name__ == "__main__":
    sys.exit(main())
