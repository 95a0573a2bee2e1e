"""On-disk feature indexes (probekit.index, `probekit index build`): the sharded exact search
equals brute force, the approximate search reports the recall a recount finds, a killed build
resumes without duplicating rows, a probe in another feature space is refused, and Ray serves
the shards with the same answers."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from probekit_plugins.probes.nn_ratio import NearestNeighborRatio

from probekit.cli import main
from probekit.duplicates import find_duplicates
from probekit.errors import ConfigMismatchError, DataWarning, InputFileError, ValidationError
from probekit.index import FeatureIndex, build_index, find_duplicate_rows
from probekit.neighbors import NearestNeighborIndex


def brute_force(queries, reference, k):
    """Float64 sums of squared differences; ties broken by the smaller index."""
    q = queries.reshape(len(queries), -1).astype(np.float64)
    r = reference.reshape(len(reference), -1).astype(np.float64)
    d = ((q[:, None, :] - r[None, :, :]) ** 2).sum(-1)
    idx = np.broadcast_to(np.arange(len(r)), d.shape)
    order = np.lexsort((idx, d), axis=1)[:, :k]
    return np.sqrt(np.take_along_axis(d, order, axis=1)), order


def clustered(n, dim, *, n_clusters=20, seed=0, spread=0.3):
    """Gaussian clusters (float32) — neighbours share a cluster, as in real feature spaces."""
    rng = np.random.default_rng(seed)
    centres = 3.0 * rng.normal(size=(n_clusters, dim))
    labels = rng.integers(n_clusters, size=n)
    return (centres[labels] + spread * rng.normal(size=(n, dim))).astype(np.float32)


@pytest.fixture(scope="module")
def data():
    train = clustered(1500, 24)
    train[40] = train[3]  # an exact duplicate
    train[41] = train[9] + np.float32(1e-6) * train[9]  # a near duplicate
    rng = np.random.default_rng(1)
    fresh = clustered(90, 24, seed=2)
    copies = train[100:130] + 0.002 * rng.normal(size=(30, 24)).astype(np.float32)
    return train, np.vstack([fresh, copies])


def distinct(train):
    kept = find_duplicates(train).kept
    return train[kept], kept


@pytest.mark.parametrize("shards", [1, 3, 7])
@pytest.mark.parametrize("chunk_rows", [97, 400, 5000])
def test_sharded_exact_equals_brute_force(tmp_path, data, shards, chunk_rows):
    train, queries = data
    out = build_index(train, tmp_path / "ix", {"shards": shards, "chunk_rows": chunk_rows},
                      quiet=True)
    ref, kept = distinct(train)
    want_d, want_i = brute_force(queries, ref, 3)
    with FeatureIndex.open(out) as index:
        assert index.mode == "exact" and len(index.manifest["shards"]) == shards
        got_d, got_i = index.search(queries, 3)
        np.testing.assert_array_equal(got_i, want_i)
        np.testing.assert_allclose(got_d, want_d, rtol=1e-12)
        # bit for bit equal to the in-memory exact search of the same float32 features
        mem_d, mem_i = NearestNeighborIndex(ref).search(queries, 3)
        np.testing.assert_array_equal(got_i, mem_i)
        np.testing.assert_array_equal(got_d, mem_d)
        np.testing.assert_array_equal(index.kept_[got_i[:, 0]], kept[want_i[:, 0]])


def test_streaming_duplicates_equal_find_duplicates(data):
    train, _ = data
    x = train.copy()
    x[200] = -0.0 * x[200]  # -0.0 and 0.0 are the same value
    x[201] = 0.0 * x[200]
    x[300:305] = x[5]  # many copies of one row
    want = find_duplicates(x)
    kept, n_exact, n_near = find_duplicate_rows(x, chunk_rows=128)
    np.testing.assert_array_equal(kept, want.kept)
    assert (n_exact, n_near) == (want.n_exact, want.n_near) and n_exact >= 6 and n_near >= 1


def test_approximate_recall_matches_recount(tmp_path, data):
    train, queries = data
    out = build_index(train, tmp_path / "ix", {"shards": 3, "mode": "approximate",
                                               "nlist": 32, "rerank": 8}, quiet=True)
    ref, _ = distinct(train)
    _, exact_i = brute_force(queries, ref, 2)
    for nprobe in (1, 4, 32):
        with FeatureIndex.open(out, nprobe=nprobe, recall_sample=60, recall_floor=0.0,
                               seed=3) as index:
            dist, idx = index.search(queries, 2)
            report = index.last_search_
            sample = report["sample_rows"]
            recount = np.mean([len(set(a) & set(b)) / 2
                               for a, b in zip(idx[sample], exact_i[sample], strict=True)])
            assert report["recall"] == pytest.approx(recount, abs=1e-12)
            assert report["recall_sample"] == 60 == len(np.unique(sample))
            # re-ranked exactly: every returned distance is the float64 distance of its row
            want = np.sqrt(((queries[:, None, :].astype(np.float64) - ref[idx]) ** 2).sum(-1))
            np.testing.assert_allclose(dist, want, rtol=1e-12)
            if nprobe == 32:  # every list visited: the exact answer
                np.testing.assert_array_equal(idx, exact_i)
                assert report["recall"] == 1.0


def test_ivf_pq_candidates_are_reranked_exactly(tmp_path, data):
    train, queries = data
    with pytest.raises(ValidationError, match="pq_m must divide the feature dimension 24"):
        build_index(train, tmp_path / "bad", {"mode": "approximate", "ivf": "pq", "pq_m": 5,
                                              "nlist": 8}, quiet=True)
    out = build_index(train, tmp_path / "ix", {"shards": 2, "mode": "approximate",
                                               "ivf": "pq", "pq_m": 4, "nlist": 8}, quiet=True)
    ref, _ = distinct(train)
    _, exact_i = brute_force(queries, ref, 2)
    with FeatureIndex.open(out, nprobe=8, rerank=64, recall_sample=120) as index:
        assert index.manifest["ivf"]["kind"] == "pq"
        dist, idx = index.search(queries, 2)
        recall = np.mean([len(set(a) & set(b)) / 2 for a, b in zip(idx, exact_i, strict=True)])
        assert recall >= 0.99 and index.last_search_["recall"] >= 0.99
        want = np.sqrt(((queries[:, None, :].astype(np.float64) - ref[idx]) ** 2).sum(-1))
        np.testing.assert_allclose(dist, want, rtol=1e-12)  # float64, not PQ, distances


def test_low_recall_warns(tmp_path, data):
    train, queries = data
    out = build_index(train, tmp_path / "ix", {"mode": "approximate", "nlist": 64,
                                               "rerank": 2}, quiet=True)
    probe = NearestNeighborRatio(index=str(out), index_nprobe=1)
    probe.prepare(train)
    with pytest.warns(DataWarning, match="measured recall@2 .* below the floor 0.99"):
        result = probe.evaluate(queries.reshape(len(queries), -1))
    extra = result.provenance.extra
    assert extra["index_recall_at_2"] < 0.99
    assert any("below the floor" in w for w in result.warnings)
    assert 0.0 <= extra["index_f_mem_disagreement"] <= 1.0


def test_nn_ratio_with_index_equals_in_memory(tmp_path, data):
    train, queries = data
    out = build_index(train, tmp_path / "ix", {"shards": 3, "mode": "approximate",
                                               "nlist": 16}, quiet=True)
    with pytest.warns(DataWarning, match="duplicate"):
        memory = NearestNeighborRatio().prepare(train).evaluate(queries)
    exact = NearestNeighborRatio(index=str(out), index_mode="exact").prepare(train)
    result = exact.evaluate(queries)
    for key in ("d1", "d2", "nn_index", "memorized"):
        np.testing.assert_array_equal(result.per_sample[key], memory.per_sample[key])
    assert result.value == memory.value and result.value >= 30 / len(queries)
    assert exact.reference_state() is None
    extra = result.provenance.extra
    assert extra["index"] == str(out) and extra["index_mode"] == "exact"
    assert extra["n_duplicates_collapsed"] == memory.provenance.extra["n_duplicates_collapsed"]
    approx = NearestNeighborRatio(index=str(out), index_nprobe=16).prepare(train)
    a = approx.evaluate(queries)
    assert a.provenance.extra["index_mode"] == "approximate"
    assert a.provenance.extra["index_recall_at_2"] == 1.0  # all 16 lists visited
    assert a.provenance.extra["index_f_mem_disagreement"] == 0.0
    assert a.value == memory.value


def test_killed_build_resumes_at_next_chunk(tmp_path, data):
    train, _ = data
    calls = []

    class Counting:
        """pixels, counting the rows extracted."""

        def __init__(self):
            from probekit.registry import get_feature_extractor

            self.inner = get_feature_extractor("pixels")()
            self.name, self.preprocessing = "pixels", "none"
            self.settings = self.inner.settings
            self.weights_sha256 = None

        def extract(self, x):
            calls.append(len(x))
            return self.inner.extract(x)

    def kill_after_third(j):
        if j == 2:
            raise KeyboardInterrupt

    settings = {"chunk_rows": 200, "batch_size": 50, "shards": 2}
    with pytest.raises(KeyboardInterrupt):
        build_index(train, tmp_path / "ix", settings, extractor=Counting(), quiet=True,
                    on_chunk=kill_after_third)
    assert sum(calls) == 600
    with pytest.raises(InputFileError, match="did not finish; run `probekit index build` again"):
        FeatureIndex.open(tmp_path / "ix")
    calls.clear()
    build_index(train, tmp_path / "ix", settings, extractor=Counting(), quiet=True)
    assert sum(calls) == len(train) - 600  # only the missing chunks
    ref, kept = distinct(train)
    with FeatureIndex.open(tmp_path / "ix") as index:
        assert index.n_reference == len(ref)
        np.testing.assert_array_equal(np.asarray(index.kept_), kept)
        rows = np.vstack([np.load(tmp_path / "ix" / sh["file"])
                          for sh in index.manifest["shards"]])
        np.testing.assert_array_equal(rows, ref)  # every row once, in order
    # the same build again does nothing; another input is refused
    calls.clear()
    build_index(train, tmp_path / "ix", settings, extractor=Counting(), quiet=True)
    assert not calls
    with pytest.raises(ConfigMismatchError, match="another input or settings"):
        build_index(train[:-1], tmp_path / "ix", settings, quiet=True)


def test_search_memory_does_not_grow_with_training_set(tmp_path):
    """Traced peak memory of a sharded exact search: set by chunk and query sizes."""
    rng = np.random.default_rng(8)
    queries = rng.normal(size=(64, 32)).astype(np.float32)
    peaks = []
    for n in (6_000, 24_000):
        out = build_index(rng.normal(size=(n, 32)).astype(np.float32), tmp_path / f"ix{n}",
                          {"shards": 4, "chunk_rows": 1000, "collapse_duplicates": False},
                          quiet=True)
        with FeatureIndex.open(out) as index:
            index.search(queries, 2)  # warm up (imports, file handles)
            tracemalloc.start()
            index.search(queries, 2)
            peaks.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
    assert peaks[1] < 1.5 * peaks[0], peaks


def _peak_rss_growth(fn) -> int:
    """Growth of the process's peak resident memory (Linux) during ``fn()``."""
    def hwm() -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        return 0

    Path("/proc/self/clear_refs").write_text("5")
    base = hwm()
    fn()
    return hwm() - base


def test_resident_memory_of_a_search_does_not_grow_with_training_set(tmp_path):
    """The shards are read with pread, not mapped: a search leaves them in the page cache,
    out of the process (a memory-mapped gather made 0.94 of a 2 GB set resident)."""
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("needs Linux /proc")
    rng = np.random.default_rng(9)
    queries = rng.normal(size=(2000, 64)).astype(np.float32)
    growth = {}
    for n in (40_000, 320_000):  # 10 MB and 82 MB of features
        out = build_index(rng.normal(size=(n, 64)).astype(np.float32), tmp_path / f"ix{n}",
                          {"shards": 2, "chunk_rows": 8192, "collapse_duplicates": False},
                          quiet=True)
        with FeatureIndex.open(out) as index:
            index.search(queries[:10], 2)  # warm up
            growth[n] = _peak_rss_growth(lambda index=index: index.search(queries, 2))
    features = 320_000 * 64 * 4
    assert growth[320_000] < growth[40_000] + features / 4, growth


def test_open_errors(tmp_path, data):
    train, queries = data
    with pytest.raises(InputFileError, match="not a complete probekit index"):
        FeatureIndex.open(tmp_path)
    out = build_index(train, tmp_path / "ix", quiet=True)
    with pytest.raises(ValidationError, match="built in exact mode"):
        FeatureIndex.open(out, mode="approximate")
    with pytest.raises(ValidationError, match="train must be the set the index was built from"):
        NearestNeighborRatio(index=str(out)).prepare(train[:100])
    with FeatureIndex.open(out) as index, pytest.raises(ValidationError, match="24 features"):
        index.search(queries[:, :5], 2)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ValidationError, match="holds other files"):
        build_index(train, tmp_path / "other", overwrite=True, quiet=True)


# -- the command line ---------------------------------------------------------------------------


def test_cli_build_then_probe(tmp_path, data, capsys):
    train, queries = data
    np.save(tmp_path / "train.npy", train)
    np.save(tmp_path / "samples.npy", queries)
    code = main(["index", "build", "--train", str(tmp_path / "train.npy"), "--out",
                 str(tmp_path / "ix"), "--shards", "3", "--chunk-rows", "256", "--quiet"])
    assert code == 0
    code = main(["probe", "nn-ratio", "--train", str(tmp_path / "train.npy"), "--samples",
                 str(tmp_path / "samples.npy"), "--set", f"index={tmp_path / 'ix'}",
                 "--json", str(tmp_path / "r.json")])
    assert code == 0
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["provenance"]["extra"]["index_shards"] == 3
    with pytest.warns(DataWarning):
        memory = NearestNeighborRatio().prepare(train).evaluate(queries)
    assert result["values"]["f_mem"] == memory.value
    assert main(["index", "info", str(tmp_path / "ix")]) == 0
    assert "3 shard(s)" in capsys.readouterr().out


def test_cli_other_feature_space_is_refused(tmp_path, capsys):
    """Index of pixels, probe measuring in ts-rocket: one line on stderr, exit code 2."""
    rng = np.random.default_rng(0)
    series = rng.normal(size=(60, 40, 1)).astype(np.float32)
    np.save(tmp_path / "train.npy", series)
    np.save(tmp_path / "samples.npy", series[:10] + 0.01)
    assert main(["index", "build", "--train", str(tmp_path / "train.npy"), "--out",
                 str(tmp_path / "ix"), "--quiet"]) == 0
    capsys.readouterr()
    code = main(["probe", "nn-ratio", "--train", str(tmp_path / "train.npy"), "--samples",
                 str(tmp_path / "samples.npy"), "--set", f"index={tmp_path / 'ix'}",
                 "--set", "features=ts-rocket"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "holds features 'pixels'" in err and "ts-rocket" in err
    # same extractor, other settings: refused too
    assert main(["index", "build", "--train", str(tmp_path / "train.npy"), "--out",
                 str(tmp_path / "ix2"), "--features", "ts-rocket", "--quiet"]) == 0
    capsys.readouterr()
    code = main(["probe", "nn-ratio", "--train", str(tmp_path / "train.npy"), "--samples",
                 str(tmp_path / "samples.npy"), "--set", f"index={tmp_path / 'ix2'}"])
    assert code == 2 and "holds features 'ts-rocket'" in capsys.readouterr().err


def test_cli_bad_input_is_one_line(tmp_path, capsys):
    code = main(["index", "build", "--train", str(tmp_path / "missing.npy"), "--out",
                 str(tmp_path / "ix"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "does not exist" in err
    code = main(["index", "build", "--train", str(tmp_path / "missing.npy"), "--out",
                 str(tmp_path / "ix"), "--nlist", "zero"])
    assert code == 2 and "nlist" in capsys.readouterr().err


# -- Ray: shards served by actors (one local instance for all the Ray tests) --------------------


@pytest.fixture(scope="module")
def ray_instance():
    ray = pytest.importorskip("ray")
    from probekit.ray_utils import init_ray

    started = init_ray("local", num_cpus=2)
    yield ray
    if started:
        ray.shutdown()


def test_ray_shards_equal_local(tmp_path, data, ray_instance):
    train, queries = data
    out = build_index(train, tmp_path / "ix", {"shards": 3, "mode": "approximate",
                                               "nlist": 16}, quiet=True)
    with FeatureIndex.open(out, mode="exact") as local, FeatureIndex.open(
            out, mode="exact", ray="auto") as served:
        a, b = local.search(queries, 2), served.search(queries, 2)
        np.testing.assert_array_equal(a[1], b[1])
        np.testing.assert_array_equal(a[0], b[0])
        assert served.provenance()["index_served_by"] == "ray"
        # a lost worker: Ray restarts the shard's actor and the search gives the same answer
        ray_instance.kill(served._actors[1], no_restart=False)
        c = served.search(queries, 2)
        np.testing.assert_array_equal(a[1], c[1])
    with FeatureIndex.open(out, nprobe=2, recall_floor=0.0) as local, FeatureIndex.open(
            out, nprobe=2, recall_floor=0.0, ray="auto") as served:
        a, b = local.search(queries, 2), served.search(queries, 2)
        np.testing.assert_array_equal(a[1], b[1])
        assert local.last_search_["recall"] == served.last_search_["recall"]
    assert ray_instance.is_initialized()  # an instance the index did not start stays up
