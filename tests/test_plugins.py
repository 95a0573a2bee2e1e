"""Plugin loading: third-party entry points, isolation of broken plugins, strict mode, the
allow- and deny-lists, load order, misspelt hooks and missing ``@hookimpl``, abstract methods,
run-time registration (which raises), and the one-line messages of issue 12's defects 3, 4, 5,
7, 8, 9 and 12. Name clashes with built-ins (defects 1, 2, 2b): tests/test_third_party.py."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib import metadata

import numpy as np
import pytest

import probekit
from probekit import _plugins
from probekit.cli import main
from probekit.errors import (
    BuiltinsMissingError,
    ConfigMismatchError,
    DuplicateNameError,
    PluginError,
    PluginLoadWarning,
    UnknownNameError,
    ValidationError,
)
from probekit.registry import Entry, registries

THIRD_PARTY_PROBE = """
import numpy as np
from probekit import MeasureSettings, Probe, Result, hookimpl


class MeanGapSettings(MeasureSettings):
    scale: float = 1.0


class MeanGap(Probe):
    '''Distance between the sample mean and the training mean (a toy probe).'''

    name = "mean-gap"
    description = "toy third-party probe"
    headline = "gap"
    Settings = MeanGapSettings

    def prepare(self, train, *, holdout=None):
        self.train_mean_ = np.asarray(train, dtype=float).reshape(len(train), -1).mean(0)
        self.n_train_ = len(train)
        return self

    def evaluate(self, samples=None, *, model=None):
        self._check_prepared("train_mean_")
        flat = np.asarray(samples, dtype=float).reshape(len(samples), -1)
        gap = float(np.linalg.norm(flat.mean(0) - self.train_mean_)) * self.settings.scale
        return Result(measure=self.name, headline="gap", values={"gap": gap},
                      provenance=self.make_provenance(n_reference=self.n_train_,
                                                      n_samples=len(samples)))


@hookimpl
def register_probes():
    return [MeanGap]
"""


def _cli(args, env_extra=None, pythonpath=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROBEKIT_")}
    if pythonpath:
        env["PYTHONPATH"] = str(pythonpath)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "probekit.cli", *args], capture_output=True,
                          text=True, env=env, timeout=120)


@pytest.fixture
def third_party(tmp_path, make_dist):
    return make_dist(tmp_path / "site", "probekit-meangap", {"probekit_meangap": THIRD_PARTY_PROBE},
                     {"mean-gap": "probekit_meangap"})


def test_third_party_probe_is_listed_and_runs(tmp_path, third_party):
    listed = _cli(["list", "probes"], pythonpath=third_party)
    assert listed.returncode == 0, listed.stderr
    assert "mean-gap" in listed.stdout and "nn-ratio" in listed.stdout
    assert "1.2.3" in listed.stdout
    rng = np.random.default_rng(0)
    np.save(tmp_path / "train.npy", rng.normal(size=(20, 1, 4, 4)))
    np.save(tmp_path / "samples.npy", rng.normal(size=(10, 1, 4, 4)) + 1.0)
    out = tmp_path / "r.json"
    run = _cli(["probe", "mean-gap", "--train", str(tmp_path / "train.npy"),
                "--samples", str(tmp_path / "samples.npy"), "--set", "scale=2",
                "--json", str(out)], pythonpath=third_party)
    assert run.returncode == 0, run.stderr
    result = json.loads(out.read_text())
    assert result["gap"] > 0
    assert result["provenance"]["plugin"] == "mean-gap"
    assert result["provenance"]["plugin_version"] == "1.2.3"
    assert result["provenance"]["settings"]["scale"] == 2.0


def test_broken_plugin_is_isolated_and_listed(monkeypatch, fresh_host, tmp_path, make_dist):
    site = make_dist(tmp_path / "site", "probekit-broken",
                     {"broken_on_import": "raise RuntimeError('boom at import')\n"},
                     {"broken": "broken_on_import"})
    monkeypatch.syspath_prepend(str(site))
    with pytest.warns(PluginLoadWarning, match=r"'broken' \(probekit-broken 1\.2\.3\) was "
                                               "skipped, import failed: .*boom at import"):
        regs = registries()
    assert "nn-ratio" in regs.probes  # everything else keeps working
    record = next(r for r in _plugins.get_host().records if r.name == "broken")
    assert record.status == "failed" and "boom at import" in record.error
    listed = _cli(["plugins"], pythonpath=site)
    assert listed.returncode == 0
    assert "broken" in listed.stdout and "failed" in listed.stdout
    assert "boom at import" in listed.stdout
    assert _cli(["--help"], pythonpath=site).returncode == 0


REGISTRATION_FAILS = """
from probekit import hookimpl
from probekit_meangap import MeanGap

@hookimpl
def register_probes():
    return [MeanGap]

@hookimpl
def register_metrics():
    raise ValueError("boom at registration")
"""


def test_failure_during_registration_leaves_nothing_behind(monkeypatch, fresh_host, tmp_path,
                                                           make_dist):
    site = make_dist(tmp_path / "site", "probekit-halfway",
                     {"probekit_meangap": THIRD_PARTY_PROBE, "halfway": REGISTRATION_FAILS},
                     {"halfway": "halfway"})
    monkeypatch.syspath_prepend(str(site))
    with pytest.warns(PluginLoadWarning, match="boom at registration"):
        regs = registries()
    assert "mean-gap" not in regs.probes  # its valid probe was not half-registered
    assert _plugins.get_host().pm.get_plugin("halfway") is None


def test_strict_mode_makes_failures_fatal(monkeypatch, fresh_host, tmp_path, make_dist):
    site = make_dist(tmp_path / "site", "probekit-broken",
                     {"broken_on_import": "raise RuntimeError('boom')\n"},
                     {"broken": "broken_on_import"})
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PROBEKIT_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match=r"'broken'.*boom.*STRICT"):
        registries()
    run = _cli(["list"], pythonpath=site, env_extra={"PROBEKIT_STRICT_PLUGINS": "1"})
    assert run.returncode == 2
    assert "boom" in run.stderr and "Traceback" not in run.stderr


OTHER_PLUGIN = THIRD_PARTY_PROBE.replace('"mean-gap"', '"other-gap"')


@pytest.fixture
def two_third_parties(tmp_path, make_dist, third_party):
    return make_dist(third_party, "probekit-othergap", {"probekit_othergap": OTHER_PLUGIN},
                     {"other-gap": "probekit_othergap"})


def test_allowlist_selects_third_parties_and_keeps_the_builtins(monkeypatch, fresh_host,
                                                                 two_third_parties):
    monkeypatch.syspath_prepend(str(two_third_parties))
    monkeypatch.setenv("PROBEKIT_LOAD_PLUGINS", "mean-gap")
    regs = registries()
    assert "mean-gap" in regs.probes and "other-gap" not in regs.probes
    assert "pixels" in regs.feature_extractors  # what third-party measures depend on
    assert "nn-ratio" in regs.probes and "fd" in regs.metrics
    status = {r.name: (r.status, r.error) for r in _plugins.get_host().records}
    assert status["other-gap"] == ("skipped", "not in PROBEKIT_LOAD_PLUGINS")
    assert status["mean-gap"][0] == status["pixels"][0] == "loaded"
    metric = probekit.get_metric("fd")()  # a measure in the default (pixels) space still works
    assert metric.prepare(np.ones((4, 1, 2, 2))).evaluate(np.ones((4, 1, 2, 2))).value == 0


def test_denylist_by_name_distribution_or_both(monkeypatch, fresh_host, two_third_parties):
    monkeypatch.syspath_prepend(str(two_third_parties))
    monkeypatch.setenv("PROBEKIT_DISABLE_PLUGINS", "kid, Probekit_OtherGap, probekit:prdc")
    regs = registries()
    assert "kid" not in regs.metrics and "prdc" not in regs.metrics  # built-ins can be disabled
    assert "other-gap" not in regs.probes and "mean-gap" in regs.probes
    status = {r.name: (r.status, r.error) for r in _plugins.get_host().records}
    assert status["kid"] == ("skipped", "disabled by PROBEKIT_DISABLE_PLUGINS")
    assert status["other-gap"][0] == status["prdc"][0] == "skipped"
    with pytest.raises(UnknownNameError, match="unknown metric 'kid'"):
        probekit.get_metric("kid")


def test_load_order_builtins_first_then_by_distribution(monkeypatch, fresh_host,
                                                         two_third_parties):
    monkeypatch.syspath_prepend(str(two_third_parties))
    records = _plugins.get_host().records
    dists = [r.distribution for r in records]
    n_builtin = dists.count("probekit")
    assert set(dists[:n_builtin]) == {"probekit"}
    assert [r.name for r in records[:n_builtin]] == sorted(r.name for r in records[:n_builtin])
    assert [r.name for r in records[n_builtin:]] == ["mean-gap", "other-gap"]


def test_duplicate_at_run_time_raises_and_leaves_nothing(fresh_host):
    from probekit_plugins.probes.nn_ratio import NearestNeighborRatio

    class Again(NearestNeighborRatio):
        pass

    class Fresh(NearestNeighborRatio):
        name = "fresh-name"

    class Plugin:
        @probekit.hookimpl
        def register_probes(self):
            return [Fresh, Again]

    with pytest.raises(DuplicateNameError, match=r"plugin 'again' \(runtime .*\): its probe "
                       r"Again was refused, the name 'nn-ratio' is taken by plugin 'nn-ratio' "
                       r"\(probekit "):
        probekit.register_plugin(Plugin(), name="again")
    assert "fresh-name" not in registries().probes  # all or nothing
    assert _plugins.get_host().pm.get_plugin("again") is None
    assert probekit.get_probe("nn-ratio") is NearestNeighborRatio
    with pytest.raises(DuplicateNameError, match=r"plugin 'nn-ratio'.*plugin 'again'"):
        registries().probes.add(Entry("probe", "nn-ratio", Again, "again", "runtime", "0"))
    with pytest.raises(DuplicateNameError, match="plugin name 'nn-ratio' is taken"):
        probekit.register_plugin(Plugin(), name="nn-ratio")


def test_failed_run_time_registration_raises(fresh_host):
    from probekit_plugins.probes.nn_ratio import NearestNeighborRatio

    class Fine(NearestNeighborRatio):
        name = "fine-probe"

    class Raises:
        @probekit.hookimpl
        def register_probes(self):
            return [Fine]

        @probekit.hookimpl
        def register_metrics(self):
            raise ValueError("boom")

    class Nothing:
        def register_probes(self):  # no @hookimpl
            return [Fine]

    class Misspelt:
        @probekit.hookimpl
        def register_probe(self):
            return [Fine]

    with pytest.raises(PluginError, match="registration failed: ValueError: boom"):
        probekit.register_plugin(Raises(), name="raises")
    with pytest.raises(PluginError, match=r"provides nothing.*function register_probes is not "
                                          r"marked @probekit\.hookimpl"):
        probekit.register_plugin(Nothing(), name="nothing")
    with pytest.raises(PluginError, match="did you mean 'register_probes'"):
        probekit.register_plugin(Misspelt(), name="misspelt")
    host = _plugins.get_host()
    assert "fine-probe" not in host.registries.probes
    assert not {"raises", "nothing", "misspelt"} & {name for name, _ in host.pm.list_name_plugin()}
    host.pm.check_pending()  # nothing half-registered is left pending


def test_missing_builtins_is_a_clear_error(monkeypatch, fresh_host):
    real = metadata.entry_points

    def without_builtins(**kw):
        return [ep for ep in real(**kw) if ep.dist is None or ep.dist.name != "probekit"]

    monkeypatch.setattr(_plugins.metadata, "entry_points", without_builtins)
    with pytest.raises(BuiltinsMissingError, match="built-in plugins are not registered"):
        registries()


def test_runtime_register_and_unregister(fresh_host):
    namespace: dict = {}
    exec(THIRD_PARTY_PROBE, namespace)
    module = type(sys)("runtime_meangap")
    module.__dict__.update(namespace)
    record = probekit.register_plugin(module, name="runtime-meangap")
    assert record.provides == {"probe": ["mean-gap"]}
    assert probekit.get_probe("mean-gap").plugin == "runtime-meangap"
    probekit.unregister_plugin("runtime-meangap")
    assert "mean-gap" not in registries().probes
    probekit.register_plugin(module, name="runtime-meangap")  # and again
    probekit.unregister_plugin("runtime-meangap")


def test_bad_metadata_is_rejected(fresh_host):
    from probekit_plugins.probes.nn_ratio import NearestNeighborRatio

    class BadName(NearestNeighborRatio):
        name = "Bad_Name"

    class Plugin:
        @probekit.hookimpl
        def register_probes(self):
            return [BadName]

    with pytest.raises(PluginError, match="kebab-case"):
        probekit.register_plugin(Plugin(), name="bad-name")


# -- defect 3: misspelt hook, missing @hookimpl ---------------------------------------------

MISSPELT = """
from probekit import hookimpl
from probekit_meangap import MeanGap

@hookimpl
def register_probe():
    return [MeanGap]
"""

UNMARKED = """
from probekit_meangap import MeanGap

def register_probes():
    return [MeanGap]
"""


@pytest.mark.parametrize(("source", "status", "line"), [
    (MISSPELT, "failed", r"^plugin 'mine' \(probekit-mine 1\.2\.3\) was skipped, registration "
                         r"failed: 'register_probe' is not a probekit hook; did you mean "
                         r"'register_probes'\? \(hooks: docs/plugin_hooks\.md\)\. "),
    (UNMARKED, "empty", r"^plugin 'mine' \(probekit-mine 1\.2\.3\) provides nothing: no "
                        r"registration hook returned a class and it implements no other hook "
                        r"\(function register_probes is not marked @probekit\.hookimpl\)"),
], ids=["misspelt-hook", "missing-hookimpl"])
def test_a_plugin_that_provides_nothing_is_not_silent(source, status, line, monkeypatch,
                                                      fresh_host, tmp_path, make_dist):
    site = make_dist(tmp_path / "site", "probekit-mine",
                     {"probekit_meangap": THIRD_PARTY_PROBE, "mine": source}, {"mine": "mine"})
    monkeypatch.syspath_prepend(str(site))
    with pytest.warns(PluginLoadWarning) as caught:
        regs = registries()
    (message,) = [str(w.message) for w in caught]
    assert re.search(line, message), message
    record = next(r for r in _plugins.get_host().records if r.name == "mine")
    assert record.status == status and record.provides == {}
    with pytest.raises(UnknownNameError, match=r"unknown probe 'mean-gap'.*Plugins that failed, "
                       rf"were refused or provide nothing: 'mine' \({status}\); `probekit "
                       "plugins` shows why"):
        regs.probes.get("mean-gap")
    listed = _cli(["plugins"], pythonpath=site)
    assert re.search(rf"^mine\s+{status}\s+probekit-mine", listed.stdout, flags=re.M)
    monkeypatch.setenv("PROBEKIT_STRICT_PLUGINS", "1")
    _plugins.reset_host()
    with pytest.raises(PluginError, match="PROBEKIT_STRICT_PLUGINS is set"):
        registries()


def test_a_hook_function_left_unmarked_beside_marked_ones_is_warned_about(fresh_host):
    namespace: dict = {}
    exec(THIRD_PARTY_PROBE + "\ndef register_metrics():\n    return []\n", namespace)
    module = type(sys)("half_marked")
    module.__dict__.update(namespace)
    with pytest.raises(PluginError, match="function register_metrics is not marked"):
        probekit.register_plugin(module, name="half-marked")
    host = _plugins.get_host()
    with pytest.warns(PluginLoadWarning, match="function register_metrics is not marked "
                                               "@probekit.hookimpl; it was ignored"):
        record = host.register_plugin(module, name="half-marked", explicit=False)
    assert record.status == "loaded" and record.provides == {"probe": ["mean-gap"]}


# -- defect 4: the bases are abstract -------------------------------------------------------


def test_abstract_methods_are_enforced(fresh_host):
    class NoEvaluate(probekit.Probe):
        name = "no-evaluate"
        headline = "x"

        def prepare(self, train, *, holdout=None):
            return self

    class NoExtract(probekit.FeatureExtractor):
        name = "no-extract"

    class NoCompute(probekit.Metric):
        name = "no-compute"
        headline = "x"

        def prepare(self, reference):
            return self

        def reset(self):
            pass

        def update(self, samples):
            pass

    for cls, missing in ((NoEvaluate, "evaluate"), (NoExtract, "extract"),
                         (NoCompute, "compute")):
        with pytest.raises(TypeError, match=f"abstract method.*{missing}"):
            cls()

    class Plugin:
        @probekit.hookimpl
        def register_probes(self):
            return [NoEvaluate]

    with pytest.raises(PluginError, match=r"plugin 'abstract': NoEvaluate must define the "
                                          r"abstract method\(s\) evaluate of probekit\.Probe"):
        probekit.register_plugin(Plugin(), name="abstract")


# -- defect 7: a plugin version bump names the plugin and both ways out ----------------------


def test_version_bump_message_names_the_plugin_and_both_ways_out(tmp_path):
    from probekit.store import RunStore

    measure = {"name": "nn-ratio", "kind": "probe", "headline": "f_mem",
               "higher_is_better": False, "settings": {"k": 0.5}, "plugin": "nn-ratio",
               "version": "0.1.0"}
    config = {"series": "/data/run", "train_sha256": "aa", "n_samples": 8, "steps": [1],
              "measures": [measure]}
    row = probekit.Result(measure="nn-ratio", headline="f_mem", values={"f_mem": 0.0},
                          provenance=probekit.Provenance("nn-ratio", "nn-ratio", "0.1.0",
                                                         "0.1.0", {}))
    with RunStore.open(tmp_path / "run", config) as store:
        store.commit_checkpoint(1, "ckpt-1.pt", [row], samples=None, n_samples=8,
                                seconds={}, measure_seconds={})
    bumped = {**config, "measures": [{**measure, "version": "0.2.0"}]}
    with pytest.raises(ConfigMismatchError) as info:
        RunStore.open(tmp_path / "run", bumped)
    message = str(info.value)
    assert "plugin 'nn-ratio' (measure 'nn-ratio') was version 0.1.0 when the run started " \
           "and is 0.2.0 now" in message
    assert "To resume, reinstall the version the run was made with" in message
    assert "--overwrite" in message and "new --out" in message
    assert "Re-run with the stored settings" not in message
    both = {**config, "measures": [{**measure, "version": "0.2.0", "settings": {"k": 0.3}}]}
    with pytest.raises(ConfigMismatchError, match="and re-run with the stored settings"):
        RunStore.open(tmp_path / "run", both)


# -- defects 9 and 12: one error tree, one line ---------------------------------------------


def test_result_error_is_a_validation_error_and_one_cli_line(fresh_host, tmp_path, capsys):
    with pytest.raises(ValidationError, match=r"Result of 'x': headline field 'f' must be one "
                                              r"of values; got \['g'\]"):
        probekit.Result(measure="x", headline="f", values={"g": 1.0},
                        provenance=probekit.Provenance("x", "p", "1", "0", {}))
    namespace: dict = {}
    exec(THIRD_PARTY_PROBE.replace('headline="gap", values=', 'headline="gapp", values='),
         namespace)
    module = type(sys)("bad_headline")
    module.__dict__.update(namespace)
    probekit.register_plugin(module, name="bad-headline")
    np.save(tmp_path / "x.npy", np.zeros((4, 1, 2, 2)))
    code = main(["probe", "mean-gap", "--train", str(tmp_path / "x.npy"),
                 "--samples", str(tmp_path / "x.npy")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "headline field 'gapp' must be one of values" in err


def test_an_option_for_a_measure_without_options_says_so(fresh_host):
    with pytest.raises(ValidationError, match=r"^pixels: unknown option 'scale' \(pixels takes "
                                              r"no options; remove it\)\.$"):
        probekit.get_feature_extractor("pixels")(scale=2)
    with pytest.raises(ValidationError, match=r"\(known options: batch_size, .*\)"):
        probekit.get_probe("nn-ratio")(scale=2)
