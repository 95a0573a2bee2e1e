"""tau_mem, tau_gen, window and scaling on synthetic curves with answers worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from probekit.errors import ValidationError
from probekit.timescales import (
    common_quality_threshold,
    early_stopping_window,
    estimate_onset,
    estimate_tau_gen,
    estimate_tau_mem,
    first_crossing,
    fit_scaling,
    interpolate_crossing,
)

STEPS = [100, 1000, 10000, 100000]

# -- the crossing rule and interpolation ---------------------------------------------------------


def test_interpolation_in_log_step_by_hand():
    # crossing between 1000 (0.005) and 10000 (0.02): fraction (0.01-0.005)/(0.02-0.005) = 1/3
    # of the way in log10(step): 10 ** (3 + 1/3)
    tau = estimate_tau_mem(STEPS, [0.0, 0.005, 0.02, 0.05])
    assert tau.status == "crossed"
    assert tau.estimate.confirmed
    assert tau.estimate.index == 2
    assert tau.value == pytest.approx(10 ** (3 + 1 / 3), rel=1e-12)
    assert tau.value == pytest.approx(2154.4347, rel=1e-7)


def test_interpolation_from_step_zero_is_linear_in_step():
    # log(0) is undefined: from step 0 the interpolation is linear in step; halfway -> 250
    tau = estimate_tau_mem([0, 500, 1000], [0.0, 0.02, 0.03])
    assert tau.value == pytest.approx(250.0)
    assert interpolate_crossing(0, 0.0, 800, 0.04, 0.01) == pytest.approx(200.0)


def test_crossing_exactly_at_a_checkpoint():
    tau = estimate_tau_mem(STEPS, [0.0, 0.001, 0.01, 0.3])
    assert tau.value == pytest.approx(10000.0)


def test_never_memorizes():
    tau = estimate_tau_mem(STEPS, [0.0, 0.0, 0.002, 0.004],
                           ci_low=[0, 0, 0, 0], ci_high=[0.0, 0.003, 0.006, 0.02])
    assert tau.status == "never"
    assert tau.value is None
    # the early bound comes from ci_high, which reaches 0.01 only at the last checkpoint
    assert tau.early.status == "crossed"
    assert not tau.early.confirmed
    assert tau.late.status == "never"
    assert tau.ci == (pytest.approx(10 ** (4 + 4 / 14)), None)
    text = tau.describe()
    assert "never" in text
    assert "> 100000" in text
    d = tau.to_dict()
    assert d["value"] is None
    assert d["status"] == "never"


def test_memorizes_from_the_first_checkpoint():
    tau = estimate_tau_mem(STEPS, [0.02, 0.1, 0.3, 0.5])
    assert tau.status == "from_first"
    assert tau.value == 100.0
    assert "<= 100" in tau.describe()
    assert "first checkpoint" in tau.describe()


def test_a_single_blip_does_not_count():
    steps = [0, 10, 100, 1000, 10000, 100000]
    f = [0.0, 0.05, 0.0, 0.0, 0.02, 0.03]  # blip at step 10 drops back to 0
    tau = estimate_tau_mem(steps, f)
    assert tau.estimate.index == 4
    assert tau.value == pytest.approx(10 ** 3.5)  # halfway between 1e3 and 1e4 in log step


def test_noisy_non_monotone_curve_takes_the_first_persistent_crossing():
    steps = [100, 200, 400, 800, 1600, 3200, 6400]
    f = [0.0, 0.012, 0.004, 0.011, 0.015, 0.009, 0.03]  # dips after 1600 but first stays at 800
    tau = estimate_tau_mem(steps, f)
    assert tau.estimate.index == 3
    frac = (0.01 - 0.004) / (0.011 - 0.004)
    assert tau.value == pytest.approx(math.exp(math.log(400) + frac * math.log(2)))


def test_crossing_at_the_last_checkpoint_is_reported_unconfirmed():
    tau = estimate_tau_mem(STEPS, [0.0, 0.0, 0.0, 0.05])
    assert tau.status == "crossed"
    assert not tau.estimate.confirmed
    assert "unconfirmed" in tau.describe()
    assert any("not confirmed" in n for n in tau.notes)


def test_single_checkpoint():
    assert estimate_tau_mem([5000], [0.2]).status == "from_first"
    assert not estimate_tau_mem([5000], [0.2]).estimate.confirmed
    assert estimate_tau_mem([5000], [0.0]).status == "never"
    gen = estimate_tau_gen([5000], [40.0], higher_is_better=False)
    assert gen.status == "from_first"
    assert any("never improves" in n for n in gen.notes)


def test_ci_bounds_bracket_the_estimate_on_random_noisy_curves():
    # a theorem of the rule: ci_low <= f <= ci_high pointwise implies early <= tau <= late
    rng = np.random.default_rng(0)
    steps = np.unique(np.round(np.geomspace(10, 1e6, 12)))
    for _ in range(200):
        n = 400
        p = np.clip(0.05 * (np.log10(steps) - rng.uniform(2, 5)), 0, 1)
        f = rng.binomial(n, p) / n
        half = 1.96 * np.sqrt(f * (1 - f) / n) + 1 / n
        tau = estimate_tau_mem(steps, f, ci_low=np.clip(f - half, 0, 1), ci_high=f + half)
        early, late = tau.early, tau.late
        assert early.status != "never" or tau.status == "never"
        if tau.status == "never":
            assert late.status == "never"
            continue
        assert early.step <= tau.value
        if late.status != "never":
            assert tau.value <= late.step


def test_planted_curve_is_recovered_exactly():
    # f_mem linear in log10(step) with f = 0.01 at step 3e4: the log-step interpolation is exact
    steps = np.geomspace(1e2, 1e6, 9)
    f = np.clip(0.02 * (np.log10(steps) - np.log10(3e4)) + 0.01, 0, 1)
    tau = estimate_tau_mem(steps, f)
    assert tau.value == pytest.approx(3e4, rel=1e-10)


def test_missing_ci_gives_no_interval_and_says_so():
    tau = estimate_tau_mem(STEPS, [0, 0, 0.02, 0.03], ci_low=[np.nan] * 4, ci_high=[np.nan] * 4)
    assert tau.early is None
    assert tau.late is None
    assert tau.ci == (None, None)
    assert any("no complete bootstrap CI" in n for n in tau.notes)


@pytest.mark.parametrize(
    ("steps", "values", "message"),
    [
        ([100, 10], [0.0, 0.1], "strictly increasing"),
        ([10, 10], [0.0, 0.1], "strictly increasing"),
        ([-1, 10], [0.0, 0.1], ">= 0"),
        ([10, 100], [0.0], "one value per step"),
        ([], [], "non-empty"),
        ([10, 100], [0.0, np.nan], "finite"),
    ],
)
def test_bad_curves_are_rejected(steps, values, message):
    with pytest.raises(ValidationError, match=message):
        estimate_tau_mem(steps, values)


def test_bad_mem_level_is_rejected():
    with pytest.raises(ValidationError, match="mem_level must be in"):
        estimate_tau_mem(STEPS, [0, 0, 0, 0], mem_level=0)


# -- tau_gen -------------------------------------------------------------------------------------


def test_tau_gen_relative_by_hand_lower_is_better():
    # FID 300 -> best 30: target = 300 - 0.9 * 270 = 57, reached between 1000 (100) and 10000 (40)
    steps = STEPS
    fid = [300.0, 100.0, 40.0, 30.0]
    tau = estimate_tau_gen(steps, fid, higher_is_better=False)
    assert tau.level == pytest.approx(57.0)
    frac = (100 - 57) / (100 - 40)
    assert tau.value == pytest.approx(10 ** (3 + frac))
    assert tau.settings["gen_mode"] == "relative"
    assert tau.settings["gen_tol"] == 0.1


def test_tau_gen_orientation_is_symmetric():
    steps = [0, 10, 100, 1000, 10000]
    q = np.array([5.0, 4.0, 2.0, 1.2, 1.0])
    low = estimate_tau_gen(steps, q, higher_is_better=False)
    high = estimate_tau_gen(steps, -q, higher_is_better=True)
    assert low.value == pytest.approx(high.value)
    assert low.level == pytest.approx(-high.level)


def test_tau_gen_non_monotone_quality_uses_the_best_checkpoint():
    # FID gets worse after step 1e4 (overfitting); best = 20 at 1e4, target = 200 - 0.9*180 = 38
    steps = [100, 1000, 10000, 100000, 1000000]
    fid = [200.0, 50.0, 20.0, 35.0, 60.0]
    tau = estimate_tau_gen(steps, fid, higher_is_better=False)
    assert tau.level == pytest.approx(38.0)
    assert tau.estimate.index == 2
    assert tau.estimate.confirmed  # 35 <= 38 at the next checkpoint
    assert tau.value == pytest.approx(10 ** (3 + (50 - 38) / 30))


def test_tau_gen_isolated_best_checkpoint_is_used_but_flagged():
    steps = [100, 1000, 10000, 100000]
    fid = [200.0, 100.0, 20.0, 150.0]  # only the best checkpoint reaches the 90% level
    tau = estimate_tau_gen(steps, fid, higher_is_better=False)
    assert tau.estimate.index == 2
    assert not tau.estimate.confirmed
    assert any("not confirmed" in n for n in tau.notes)


def test_tau_gen_ci_from_metric_ci():
    steps = STEPS
    fid = np.array([300.0, 100.0, 40.0, 30.0])
    tau = estimate_tau_gen(steps, fid, higher_is_better=False, ci_low=fid - 10, ci_high=fid + 10)
    # optimistic (lower FID) curve reaches 57 earlier: between 90 and 30 at 1000 -> 10000
    assert tau.early.step == pytest.approx(10 ** (3 + (90 - 57) / 60))
    assert tau.late.step == pytest.approx(10 ** (3 + (110 - 57) / 60))
    assert tau.early.step <= tau.value <= tau.late.step


def test_tau_gen_absolute_mode_and_its_errors():
    steps = STEPS
    fid = [300.0, 100.0, 40.0, 30.0]
    tau = estimate_tau_gen(steps, fid, higher_is_better=False, mode="absolute", threshold=70.0)
    assert tau.value == pytest.approx(10 ** 3.5)
    never = estimate_tau_gen(steps, fid, higher_is_better=False, mode="absolute", threshold=10.0)
    assert never.status == "never"
    with pytest.raises(ValidationError, match="needs a finite threshold"):
        estimate_tau_gen(steps, fid, higher_is_better=False, mode="absolute")
    with pytest.raises(ValidationError, match="only used with mode='absolute'"):
        estimate_tau_gen(steps, fid, higher_is_better=False, threshold=50.0)
    with pytest.raises(ValidationError, match="mode must be one of"):
        estimate_tau_gen(steps, fid, higher_is_better=False, mode="auto")
    with pytest.raises(ValidationError, match="gen_tol must be in"):
        estimate_tau_gen(steps, fid, higher_is_better=False, gen_tol=1.0)


def _fid(steps):
    return 200.0 / (1.0 + np.asarray(steps, dtype=float) / 1000.0) + 10.0


def test_runs_of_different_lengths_relative_vs_common_absolute_threshold():
    # the same quality curve, one run stopped at 64k steps, the other at 1M: relative tau_gen
    # is later for the longer run only because its best checkpoint is better
    short = 1000 * 2.0 ** np.arange(7)  # 1k .. 64k
    long = 1000 * 2.0 ** np.arange(11)  # 1k .. 1.024M
    rel_short = estimate_tau_gen(short, _fid(short), higher_is_better=False)
    rel_long = estimate_tau_gen(long, _fid(long), higher_is_better=False)
    assert rel_long.level == pytest.approx(_fid(1000) + 0.9 * (_fid(1024000) - _fid(1000)))
    assert rel_long.level < rel_short.level
    assert rel_long.value > rel_short.value

    threshold = common_quality_threshold(
        [(256, short, _fid(short)), (1024, long, _fid(long))], higher_is_better=False
    )
    # largest n is the long run; common range [1k, 64k] -> its 90% level over that range
    expected = _fid(1000) + 0.9 * (_fid(64000) - _fid(1000))
    assert threshold.value == pytest.approx(expected)
    assert threshold.step_range == (1000.0, 64000.0)
    assert "n=1024" in threshold.source
    abs_short = estimate_tau_gen(
        short, _fid(short), higher_is_better=False, mode="absolute", threshold=threshold.value
    )
    abs_long = estimate_tau_gen(
        long, _fid(long), higher_is_better=False, mode="absolute", threshold=threshold.value
    )
    assert abs_short.value == pytest.approx(abs_long.value)
    assert abs_short.value == pytest.approx(rel_short.value)


def test_common_threshold_needs_overlapping_runs():
    with pytest.raises(ValidationError, match="share no step range"):
        common_quality_threshold(
            [(10, [1, 2], [5.0, 4.0]), (20, [3, 4], [5.0, 4.0])], higher_is_better=False
        )


# -- window --------------------------------------------------------------------------------------


def test_window_and_recommended_checkpoint():
    steps = [100, 1000, 10000, 100000, 1000000]
    fid = [300.0, 100.0, 40.0, 30.0, 28.0]
    f = [0.0, 0.0, 0.0, 0.004, 0.2]
    f_hi = [0.0, 0.002, 0.004, 0.012, 0.25]
    gen = estimate_tau_gen(steps, fid, higher_is_better=False)
    mem = estimate_tau_mem(steps, f, ci_low=[0, 0, 0, 0, 0.15], ci_high=f_hi)
    w = early_stopping_window(steps, f_hi, tau_gen=gen, tau_mem=mem, quality=fid,
                              higher_is_better=False)
    assert not w.empty
    assert w.start == pytest.approx(gen.value)
    assert w.end == pytest.approx(mem.value)
    assert w.checkpoints == [10000, 100000]
    # 100000 has the better FID (30) but its f_mem CI upper bound 0.012 >= 0.01: not safe
    assert w.recommended_step == 10000
    assert w.recommended_index == 2
    assert w.describe().startswith("[")


def test_window_empty_when_copying_starts_first():
    steps = [100, 1000, 10000, 100000]
    fid = [300.0, 200.0, 100.0, 30.0]
    f = [0.0, 0.05, 0.1, 0.2]
    gen = estimate_tau_gen(steps, fid, higher_is_better=False)
    mem = estimate_tau_mem(steps, f)
    w = early_stopping_window(steps, f, tau_gen=gen, tau_mem=mem, quality=fid,
                              higher_is_better=False)
    assert w.empty
    assert w.checkpoints == []
    assert w.recommended_step == 100  # the only checkpoint with f_mem < 0.01
    assert "empty" in w.describe()

    from_first = estimate_tau_mem(steps, [0.5] * 4)
    w = early_stopping_window(steps, [0.5] * 4, tau_gen=gen, tau_mem=from_first, quality=fid,
                              higher_is_better=False)
    assert w.empty
    assert w.recommended_step is None
    assert any("no checkpoint is recommended" in n for n in w.notes)


def test_window_open_ended_and_without_quality():
    steps = [100, 1000, 10000]
    f = [0.0, 0.0, 0.001]
    mem = estimate_tau_mem(steps, f)
    w = early_stopping_window(steps, f, tau_gen=None, tau_mem=mem)
    assert not w.empty
    assert w.end is None
    assert w.start is None
    assert w.checkpoints == steps
    assert w.recommended_step == 10000
    assert "no quality measure" in w.basis
    assert "beyond the last checkpoint" in w.describe()


# -- onset ---------------------------------------------------------------------------------------


def test_onset_uses_the_ci_lower_bound_strictly_above_zero():
    steps = [100, 1000, 10000, 100000]
    gap = [0.0, 0.01, 0.05, 0.1]
    low = [-0.02, -0.01, 0.01, 0.05]
    onset = estimate_onset(steps, gap, ci_low=low)
    assert onset.index == 2
    assert onset.step == pytest.approx(10 ** 3.5, rel=1e-9)
    assert estimate_onset(steps, [0.0] * 4).status == "never"


# -- scaling -------------------------------------------------------------------------------------


def test_scaling_planted_linear_law():
    n = [128, 256, 512, 1024]
    fit = fit_scaling(n, [300.0 * v for v in n])
    assert fit.slope == pytest.approx(1.0)
    assert fit.r2 == pytest.approx(1.0)
    assert fit.linear_coef == pytest.approx(300.0)
    assert fit.linear_coef_ci[0] == pytest.approx(300.0)
    assert fit.tau_mem_over_n_cv == pytest.approx(0.0, abs=1e-12)
    assert fit.slope_ci[0] == pytest.approx(1.0)


def test_scaling_matches_a_textbook_ols_with_noise():
    rng = np.random.default_rng(3)
    n = np.array([128, 256, 512, 1024, 2048, 4096], dtype=float)
    tau = 50.0 * n**0.9 * np.exp(rng.normal(0, 0.2, len(n)))
    fit = fit_scaling(n, tau, tau_gen=[1e4, 1.2e4, 0.9e4, 1.1e4, 1e4, None])
    x, y = np.log(n), np.log(tau)
    b, a = np.polyfit(x, y, 1)
    resid = y - (a + b * x)
    se = math.sqrt((resid**2).sum() / (len(n) - 2) / ((x - x.mean()) ** 2).sum())
    t_975_4dof = 2.7764451051977987  # Student t, 0.975 quantile, 4 degrees of freedom
    assert fit.slope == pytest.approx(b)
    assert fit.intercept == pytest.approx(a)
    assert fit.slope_ci == pytest.approx((b - t_975_4dof * se, b + t_975_4dof * se))
    assert fit.r2 == pytest.approx(1 - (resid**2).sum() / ((y - y.mean()) ** 2).sum())
    gens = np.array([1e4, 1.2e4, 0.9e4, 1.1e4, 1e4])
    assert fit.tau_gen_cv == pytest.approx(gens.std(ddof=1) / gens.mean())
    assert fit.linear_coef == pytest.approx(math.exp(np.mean(np.log(tau / n))))
    assert any("crossed tau_gen" in note for note in fit.notes)


def test_scaling_leaves_censored_runs_out():
    steps = [100, 1000, 10000, 100000]
    runs = {
        100: estimate_tau_mem(steps, [0, 0.005, 0.02, 0.05]),
        1000: estimate_tau_mem(steps, [0, 0, 0.005, 0.02]),
        10000: estimate_tau_mem(steps, [0, 0, 0, 0.001]),  # never
    }
    fit = fit_scaling(list(runs), list(runs.values()))
    assert fit.n == [100.0, 1000.0]
    assert fit.excluded == [{"n": 10000.0, "status": "never", "value": None}]
    assert fit.slope_ci is None  # two runs fit exactly
    assert any("left out" in note for note in fit.notes)
    d = fit.to_dict()
    assert d["slope_ci"] is None


def test_scaling_needs_two_distinct_n():
    fit = fit_scaling([100, 100], [1e4, 2e4])
    assert fit.slope is None
    with pytest.raises(ValidationError, match="one entry per run"):
        fit_scaling([1, 2, 3], [1.0, 2.0])


def test_first_crossing_fallback_only_when_asked():
    steps = [1, 2, 3, 4]
    y = [0.0, 1.0, 0.0, 0.0]
    assert first_crossing(steps, y, 0.5).status == "never"
    c = first_crossing(steps, y, 0.5, allow_unconfirmed=True)
    assert c.index == 1
    assert not c.confirmed


def test_the_docs_example_runs():
    import re
    from pathlib import Path

    page = Path(__file__).resolve().parent.parent / "docs" / "timescales.md"
    code = "\n".join(re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S))
    assert "estimate_tau_mem" in code
    exec(compile(code, str(page), "exec"), {"__name__": "docs_timescales"})
