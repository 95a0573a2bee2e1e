"""subsequence-match: brute-force parity, planted splices caught where nn-ratio is blind, fresh
series not flagged, batch independence, constant windows, validation, conformance."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from probekit import get_dataset, get_generator, get_probe
from probekit.errors import DataWarning, NotPreparedError, ValidationError
from probekit.testing import check_measure


@pytest.fixture(autouse=True)
def one_faiss_thread():
    """faiss's OpenMP threads only add overhead on these small searches (2 shared cores)."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


def probe(**settings):
    return get_probe("subsequence-match")(**settings)


# -- brute-force reference ----------------------------------------------------------------------


def brute_force(train, samples, window, stride, train_stride, k, znorm):
    """Direct transcription of DESIGN §5: every window against every training window, ties to
    the first (series, start); d2 skips the same series within window // 2 of the d1 match."""

    def normalize(w):
        w = w.astype(np.float64)
        if not znorm:
            return w.ravel()
        out = np.zeros_like(w)
        for c in range(w.shape[1]):
            std = w[:, c].std()
            if std > 1e-8 * np.abs(w[:, c]).max():
                out[:, c] = (w[:, c] - w[:, c].mean()) / std
        return out.ravel()

    refs = [
        (i, q, normalize(train[i, q : q + window]))
        for i in range(len(train))
        for q in range(0, train.shape[1] - window + 1, train_stride)
    ]
    rows = []
    for x in samples:
        row = []
        for p in range(0, samples.shape[1] - window + 1, stride):
            v = normalize(x[p : p + window])
            dists = [float(np.sqrt(np.sum((v - r) ** 2))) for _, _, r in refs]
            best = int(np.argmin(dists))  # first minimum = smallest (series, start)
            series, start = refs[best][0], refs[best][1]
            d2 = min(
                d for (i, q, _), d in zip(refs, dists, strict=True)
                if not (i == series and abs(q - start) <= window // 2)
            )
            d1 = dists[best]
            ratio = d1 / d2 if d2 > 0 else 1.0
            row.append((d1, d2, ratio, series, start, ratio < k))
        rows.append(row)
    return rows


def longest_span_reference(copied, series, starts, window, stride):
    """Longest chain of copied windows with the same source and alignment, by a plain loop."""
    best = 0
    for j in range(len(copied)):
        if not copied[j]:
            continue
        length = 1
        while (j + length < len(copied) and copied[j + length] and stride <= window
               and series[j + length] == series[j]
               and starts[j + length] - starts[j + length - 1] == stride):
            length += 1
        best = max(best, (length - 1) * stride + window)
    return best


@pytest.mark.parametrize(
    ("window", "stride", "train_stride", "distance", "n_channels"),
    [(8, 1, 1, "znorm", 1), (9, 3, 2, "znorm", 2), (8, 2, 1, "raw", 1), (6, 7, 3, "raw", 2)],
)
def test_agrees_with_brute_force(window, stride, train_stride, distance, n_channels):
    rng = np.random.default_rng(window + stride)
    train = np.cumsum(rng.normal(size=(7, 30, n_channels)), axis=1)
    fresh = np.cumsum(rng.normal(size=(4, 30, n_channels)), axis=1)
    copies = train[[1, 4]] + 0.01 * rng.normal(size=(2, 30, n_channels))
    splice = np.concatenate([train[2, :15], train[5, 15:]])[None]
    samples = np.concatenate([fresh, copies, splice])
    p = probe(window=window, stride=stride, train_stride=train_stride, distance=distance)
    result = p.prepare(train).evaluate(samples)
    expected = brute_force(train, samples, window, stride, train_stride, 1 / 3,
                           distance == "znorm")
    ps = result.per_sample
    for i, row in enumerate(expected):
        d1, d2, ratio, series, start, copied = (np.array(col) for col in zip(*row, strict=True))
        np.testing.assert_allclose(ps["window_d1"][i], d1, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(ps["window_d2"][i], d2, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(ps["window_ratio"][i], ratio, rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(ps["window_nn_series"][i], series)
        np.testing.assert_array_equal(ps["window_nn_start"][i], start)
        np.testing.assert_array_equal(ps["window_copied"][i], copied)
        assert ps["longest_copy"][i] == longest_span_reference(copied, series, start, window,
                                                               stride)
    flags = np.array([[w[5] for w in row] for row in expected])
    assert result.values["f_copied_windows"] == flags.mean()
    assert result.value == flags.any(axis=1).mean()
    assert ps["copied"][4:6].all()  # the planted copies are found


# -- planted ground truth -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def trace():
    splits = get_dataset("trace")().load()
    return splits.train, splits.holdout


@pytest.fixture(scope="module")
def ar_series():
    splits = get_dataset("ar-process")(n_train=200, n_holdout=200, n_timesteps=96).load()
    return splits.train, splits.holdout


@pytest.mark.parametrize("data", ["trace", "ar_series"])
def test_splices_are_caught_where_nn_ratio_is_blind(data, request):
    train, _ = request.getfixturevalue(data)
    splices = get_generator("splice")(n_pieces=3).fit(train).sample(100, seed=1)
    result = probe(window=24).prepare(train).evaluate(splices)
    assert result.value >= 0.9
    whole = get_probe("nn-ratio")().prepare(train).evaluate(splices)
    assert whole.value <= 0.02
    piece = train.shape[1] // 3
    assert np.all(result.per_sample["longest_copy"] >= piece)


@pytest.mark.parametrize(
    ("dataset", "settings"),
    [
        ("ar-process", {"n_timesteps": 96}),
        ("sines", {}),
        ("regime-switching", {"n_timesteps": 96}),
    ],
)
def test_fresh_series_are_not_flagged(dataset, settings):
    """Held-out draws of a synthetic process are truly fresh. (Real archives are not a clean
    negative: on Trace, even whole-series nn-ratio flags 4 of 60 held-out series, near-duplicates
    of training series.)"""
    splits = get_dataset(dataset)(n_train=200, n_holdout=200, **settings).load()
    result = probe(window=24).prepare(splits.train).evaluate(splits.holdout)
    assert result.value <= 0.02
    low, high = result.ci["f_copied_series"]
    assert low <= result.value <= high


def test_noise_free_copies_span_the_whole_series(ar_series):
    train, _ = ar_series
    copies = get_generator("copycat")(noise=0.0).fit(train).sample(20, seed=0)
    result = probe(window=16, stride=4).prepare(train).evaluate(copies)
    assert result.value == 1.0
    assert result.values["f_copied_windows"] == 1.0
    assert np.all(result.per_sample["longest_copy"] == train.shape[1])
    assert result.values["longest_copy"] == train.shape[1]


def test_results_do_not_depend_on_batch_size(ar_series):
    train, holdout = ar_series
    samples = np.concatenate([
        get_generator("splice")().fit(train).sample(20, seed=2), holdout[:20],
    ])
    p = probe(window=16, stride=2).prepare(train)
    base = p.evaluate(samples)
    for batch_size in (1, 7):
        other = probe(window=16, stride=2, batch_size=batch_size).prepare(train).evaluate(samples)
        assert other.values == base.values
        assert other.ci == base.ci
        for key, value in base.per_sample.items():
            np.testing.assert_array_equal(other.per_sample[key], value, err_msg=key)


def test_trivial_match_exclusion_is_what_makes_copies_visible():
    """For noisy copies of smooth (oversampled) series, the second-nearest training window is
    the matched window shifted by a step or two; only after excluding those is a copy visible."""
    from scipy.ndimage import gaussian_filter1d

    rng = np.random.default_rng(0)
    train = gaussian_filter1d(rng.normal(size=(40, 400)), 12, axis=1)[:, :, None]
    train /= train.std()
    copies = train[:10] + 0.02 * rng.normal(size=(10, 400, 1))
    p = probe(window=96, stride=4).prepare(train)
    result = p.evaluate(copies)
    ps = result.per_sample
    assert result.value == 1.0
    assert result.values["f_copied_windows"] >= 0.9
    assert np.all(ps["window_nn_series"] == np.arange(10)[:, None])
    # the naive second neighbour (no exclusion) hides most copied windows
    vectors, _ = p._normalize(np.lib.stride_tricks.sliding_window_view(
        copies, 96, axis=1)[:, ::4].transpose(0, 1, 3, 2).reshape(-1, 96, 1))
    dist, _ = p.train_index_.search(vectors, 2)
    assert np.mean(dist[:, 0] / dist[:, 1] < 1 / 3) <= 0.5
    np.testing.assert_array_equal(dist[:, 0], ps["window_d1"].ravel())


def test_raw_distance_sees_scale_znorm_does_not(ar_series):
    train, _ = ar_series
    scaled = 3.0 * train[:10] + 5.0
    assert probe(window=16).prepare(train).evaluate(scaled).value == 1.0
    assert probe(window=16, distance="raw").prepare(train).evaluate(scaled).value == 0.0


def test_constant_windows_are_handled_explicitly():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(10, 40, 1))
    train[:, 10:30] = 0.0  # a flat stretch in every training series
    flat = np.full((1, 40, 1), 2.5)
    copy = train[3:4].copy()
    # windows flat but for one end value z-normalize to one vector (up to rounding) whatever
    # that value: near-duplicates, collapsed and warned about
    with pytest.warns(DataWarning, match="near-duplicate window"):
        p = probe(window=8).prepare(train)
    result = p.evaluate(np.concatenate([flat, copy]))
    ps = result.per_sample
    assert not ps["copied"][0] and ps["n_copied_windows"][0] == 0
    assert ps["copied"][1]  # the copy's varying windows are still found
    # windows wholly inside [10, 30) of the copy are constant: never copied
    constant_starts = range(10, 30 - 8 + 1)
    assert not ps["window_copied"][1, list(constant_starts)].any()
    assert result.provenance.extra["n_constant_windows"] == 33 + len(constant_starts)
    assert any("constant" in w for w in result.warnings)
    # the 13 constant training windows of each series collapse into one all-zero window
    assert result.provenance.extra["n_duplicate_windows_collapsed"] >= 10 * 13 - 1
    reference = np.asarray(p.train_index_.reference_)
    assert np.sum(np.abs(reference).max(axis=1) == 0) == 1


def test_reference_state_round_trip(ar_series):
    train, holdout = ar_series
    a = probe(window=16).prepare(train)
    b = probe(window=16).load_reference_state(a.reference_state())
    ra, rb = a.evaluate(holdout[:10]), b.evaluate(holdout[:10])
    assert ra.values == rb.values
    np.testing.assert_array_equal(ra.per_sample["window_d2"], rb.per_sample["window_d2"])


def test_validation_errors():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(5, 20, 2))
    with pytest.raises(NotPreparedError, match="call prepare"):
        probe(window=8).evaluate(train)
    with pytest.raises(ValidationError, match="window must be at most"):
        probe(window=21).prepare(train)
    with pytest.raises(ValidationError, match="trivial-match zone"):
        probe(window=8).prepare(train[:1, :12])  # one series: 5 windows, a zone of 9
    p = probe(window=8).prepare(train)
    with pytest.raises(ValidationError, match="2 channel"):
        p.evaluate(rng.normal(size=(3, 20, 1)))
    with pytest.raises(ValidationError, match="at least window=8 timesteps"):
        p.evaluate(rng.normal(size=(3, 7, 2)))
    with pytest.raises(ValidationError, match="3-d timeseries"):
        p.evaluate(rng.normal(size=(3, 20)))
    with pytest.raises(ValidationError, match="'window'"):
        probe(window=1)


def test_conformance():
    check_measure("subsequence-match")


# -- training sets of overlapping windows (TSGBench-style preprocessing) ----------------------


@pytest.fixture(scope="module")
def windowed(tmp_path_factory):
    """A seasonal AR recording of 1600 steps cut into stride-1 windows of 64, each z-scored on
    its own, split by time (the recording dataset), with planted noisy copies and splices of
    training windows."""
    rng = np.random.default_rng(0)
    t = np.arange(1600)
    ar, e = np.zeros(1600), rng.normal(size=1600)
    for i in range(2, 1600):
        ar[i] = 0.7 * ar[i - 1] - 0.2 * ar[i - 2] + e[i]
    path = tmp_path_factory.mktemp("rec") / "rec.npy"
    np.save(path, 2 * np.sin(2 * np.pi * t / 52) + 0.01 * t + 0.5 * ar)
    splits = get_dataset("recording")(path=str(path), window=64, stride=1,
                                      normalization="window-zscore").load()
    train = splits.train
    n = 60
    copies = train[rng.choice(len(train), n, replace=False)] + 0.05 * rng.normal(
        size=(n, 64, 1)).astype(np.float32)
    splices = np.empty((n, 64, 1), np.float32)
    for i in range(n):
        for j, src in enumerate(rng.choice(len(train), 3, replace=False)):
            a, b = (0, 21, 43, 64)[j : j + 2]
            splices[i, a:b] = train[src, a:b]
    return splits, copies, splices


def test_windowed_recording_copies_and_splices_are_caught(windowed):
    """Done-when of issue 17: >= 95% of planted noisy copies and splices, <= 2% of the
    time-split holdout, with the windows themselves as the reference and with the raw
    training stretch; both give the same decisions."""
    splits, copies, splices = windowed
    with pytest.warns(DataWarning, match="near-duplicate window"):
        on_windows = probe(window=16, stride=2).prepare(splits.train)
    on_stretch = probe(window=16, stride=2).prepare(list(splits.train_recordings))
    for samples, low, high in ((copies, 0.95, 1.0), (splices, 0.95, 1.0),
                               (splits.holdout, 0.0, 0.02)):
        a, b = on_windows.evaluate(samples), on_stretch.evaluate(samples)
        assert low <= a.value <= high and low <= b.value <= high
        np.testing.assert_array_equal(a.per_sample["window_copied"],
                                      b.per_sample["window_copied"])
        np.testing.assert_allclose(a.per_sample["window_d2"], b.per_sample["window_d2"],
                                   atol=1e-5)


def test_bit_exact_collapse_alone_is_blind_and_warns(windowed):
    """The defect: per-window scaling leaves each stretch many times in the training windows,
    differing by float rounding; collapsing only bit-exact repeats, d2 ~ d1 and copies vanish
    (measured 1 of 21 in the issue), and the probe says why."""
    splits, copies, _ = windowed
    result = probe(window=16, stride=2, duplicate_rtol=0.0).prepare(splits.train).evaluate(
        copies[:8])
    assert result.value <= 1 / 8
    assert any("within 1e-06 of 1" in w for w in result.warnings)


def brute_force_collapsed(train, samples, window, groups):
    """d1 and d2 by the definition with collapsed duplicates: the reference is one window per
    group; a candidate is trivial when some occurrence of it lies in the same series within
    window // 2 of some occurrence of the d1 match."""
    from probekit.timeseries import znormalize

    def z(w):
        return znormalize(w[None], 1e-8)[0][0].ravel()

    positions = [(i, q) for i in range(len(train)) for q in range(train.shape[1] - window + 1)]
    occurrences = {}
    for (i, q), g in zip(positions, groups, strict=True):
        occurrences.setdefault(g, []).append((i, q))
    reps = sorted(occurrences)
    vectors = {g: z(train[occurrences[g][0][0], occurrences[g][0][1]:][:window]) for g in reps}
    d1s, d2s = [], []
    for x in samples:
        for p in range(x.shape[0] - window + 1):
            v = z(x[p : p + window])
            dist = {g: float(np.linalg.norm(v - vectors[g])) for g in reps}
            best = min(reps, key=lambda g: (dist[g], g))

            def trivial(g, best=best):
                return any(i == j and abs(q - r) <= window // 2
                           for i, q in occurrences[best] for j, r in occurrences[g])

            d1s.append(dist[best])
            d2s.append(min(dist[g] for g in reps if g != best and not trivial(g)))
    return np.array(d1s), np.array(d2s)


def test_collapsed_duplicates_agree_with_brute_force():
    """Stride-1 windows of one smooth recording, each rescaled (so every stretch recurs in many
    training series, equal after z-normalization), plus two independent series: d1 and d2
    equal the definition over all occurrences of a stretch. The rule matters: with trivial
    matches taken at the representative window only, d2 would be smaller."""
    from scipy.ndimage import gaussian_filter1d

    from probekit.duplicates import find_duplicates
    from probekit.timeseries import znormalize

    rng = np.random.default_rng(5)
    rec = gaussian_filter1d(rng.normal(size=60), 3)
    windows_of_rec = [rec[s : s + 24] * rng.uniform(0.5, 2) for s in range(60 - 24 + 1)]
    others = list(gaussian_filter1d(rng.normal(size=(2, 24)), 3, axis=1))
    train = np.stack(windows_of_rec + others)[:, :, None]
    samples = np.concatenate([train[[20, 30]] + 0.02 * rng.normal(size=(2, 24, 1)),
                              gaussian_filter1d(rng.normal(size=(2, 24, 1)), 3, axis=1)])
    window = 8
    windows = np.lib.stride_tricks.sliding_window_view(train, window, axis=1).transpose(
        0, 1, 3, 2).reshape(-1, window, 1)
    groups = find_duplicates(znormalize(windows, 1e-8)[0].reshape(len(windows), -1)).group
    with pytest.warns(DataWarning, match="near-duplicate window"):
        p = probe(window=window).prepare(train)
    result = p.evaluate(samples)
    d1, d2 = brute_force_collapsed(train, samples, window, groups)
    np.testing.assert_allclose(result.per_sample["window_d1"].ravel(), d1, atol=1e-9)
    np.testing.assert_allclose(result.per_sample["window_d2"].ravel(), d2, atol=1e-9)
    np.testing.assert_array_equal(result.per_sample["window_copied"].ravel(), d1 / d2 < 1 / 3)
    p.trivial_pairs_ = np.empty(0, dtype=np.int64)  # the representative-only rule
    naive = p.evaluate(samples).per_sample["window_d2"].ravel()
    assert np.all(naive <= d2 + 1e-12) and np.sum(naive < d2 - 1e-6) >= 5
