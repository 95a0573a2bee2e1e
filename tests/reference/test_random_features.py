"""The random-features model: constants, exact matrices, spectrum theory, gradient flow.

Ground truths: Monte Carlo over noise and data for the matrices, the finite-d spectrum of the
Gaussian-equivalent matrix and eigenvalue counting for the theory, a step-by-step integration and
the paper's noisy gradient descent for the closed-form flow.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from probekit.errors import ValidationError
from probekit.reference import random_features as rf


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """Single-threaded BLAS: the matrices here are small, and threads only contend."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def constants():
    return rf.equivalence_constants(0.1)


@pytest.fixture(scope="module")
def small():
    return rf.RandomFeaturesProblem.draw(d=10, psi_p=4, psi_n=2, t=0.1, seed=3)


# -- constants ----------------------------------------------------------------------------------


def test_constants_obey_steins_lemma_and_the_variance_budget(constants):
    c = constants
    assert c.delta == pytest.approx(1 - math.exp(-0.2), rel=1e-14)
    # Stein: E[tanh(h) u] = e^{-t} E[tanh'(h)], and h ~ N(0, 1) here
    assert c.a == pytest.approx(c.mu1, rel=1e-10)
    assert c.b == pytest.approx(math.sqrt(c.delta) * c.mu1, rel=1e-10)
    # a² e^{-2t} + b² = mu1², so v² + s² is the nonlinear part of E[tanh²]
    assert c.v2 + c.s2 == pytest.approx(c.norm2 - c.mu1**2, rel=1e-10)
    assert c.v2 > 0 and c.s2 > 0


def test_constants_match_monte_carlo_of_their_definitions(constants):
    rng = np.random.default_rng(0)
    m = 400_000
    u, v, w = rng.standard_normal((3, m))
    e, s = math.exp(-0.1), math.sqrt(constants.delta)
    th_v, th_w = np.tanh(e * u + s * v), np.tanh(e * u + s * w)
    estimates = {
        "a": (th_v * u / e, constants.a),
        "b": (th_v * v, constants.b),
        "v2": (th_v * th_w - constants.a**2 * e**2, constants.v2),
    }
    for name, (samples, exact) in estimates.items():
        se = samples.std() / math.sqrt(m)
        assert abs(samples.mean() - exact) < 5 * se, name


def test_quadrature_has_converged():
    default, fine = rf.equivalence_constants(0.3), rf.equivalence_constants(0.3, nodes=201)
    for key, value in default.as_dict().items():
        assert value == pytest.approx(fine.as_dict()[key], rel=1e-8), key


def test_slow_bulk_formula_and_prediction(constants):
    lo, hi = rf.slow_bulk_edges(64, 4, constants)
    assert lo == pytest.approx(constants.s2 + 9 * constants.v2)
    assert hi == pytest.approx(constants.s2 + 25 * constants.v2)
    assert rf.predicted_tau_mem(64, 4, constants) == pytest.approx(64 / (constants.delta * lo))
    with pytest.raises(ValidationError, match="psi_n must be a positive number"):
        rf.slow_bulk_edges(64, -1, constants)


# -- the exact matrices ------------------------------------------------------------------------


def _mc_error_ratio(exact: np.ndarray, draws: np.ndarray) -> float:
    """max |exact - mean| / standard error over entries, ``draws`` stacked on axis 0."""
    mean = draws.mean(0)
    se = draws.std(0) / math.sqrt(len(draws)) + 1e-12
    return float(np.max(np.abs(exact - mean) / se))


def test_training_matrices_match_monte_carlo_over_the_noise(small):
    U, V = small.feature_covariance(), small.noise_correlation()
    rng = np.random.default_rng(1)
    e, s = math.exp(-small.t), math.sqrt(small.delta)
    u_draws, v_draws = [], []
    for _ in range(4000):
        xi = rng.standard_normal(small.X.shape)
        phi = small.features(e * small.X + s * xi)
        u_draws.append(phi.T @ phi / small.n)
        v_draws.append(phi.T @ xi / small.n)
    # entries are averages over independent noise draws: |error| / se is about |N(0, 1)|
    assert _mc_error_ratio(U, np.array(u_draws)) < 5.5
    assert _mc_error_ratio(V, np.array(v_draws)) < 5.5
    assert np.allclose(U, U.T)


def test_population_matrices_match_monte_carlo(small):
    rng = np.random.default_rng(2)
    u_draws, m_draws = [], []
    for _ in range(400):
        x = rng.standard_normal((500, small.d))  # x_t ~ N(0, I) for standard Gaussian data
        phi = small.features(x)
        u_draws.append(phi.T @ phi / 500)
        m_draws.append(phi.T @ x / 500)
    assert _mc_error_ratio(small.population_covariance(), np.array(u_draws)) < 5.5
    assert _mc_error_ratio(small.score_correlation(), np.array(m_draws)) < 5.5


def test_mehler_series_has_converged():
    """Truncation moves no eigenvalue by more than 0.1% of the smallest relevant one (s_t²):
    Weyl's inequality bounds the shift by the operator norm of the difference."""
    pb = rf.RandomFeaturesProblem.draw(d=20, psi_p=4, psi_n=2, t=0.1, seed=3)
    more = rf.RandomFeaturesProblem(W=pb.W, X=pb.X, t=pb.t, constants=pb.constants,
                                    mehler_order=9, population_order=15, sample_nodes=96)
    tolerance = 1e-3 * pb.constants.s2
    assert np.linalg.norm(more.feature_covariance() - pb.feature_covariance(), 2) < tolerance
    assert np.linalg.norm(more.population_covariance() - pb.population_covariance(), 2) \
        < tolerance


def test_gaussian_equivalent_matrix_has_the_papers_structure(small):
    U = small.gaussian_equivalent_covariance(seed=4)
    ev = np.linalg.eigvalsh(U)
    k = small.p - small.n - small.d  # directions orthogonal to W and to the data noise
    assert k > 0
    assert np.allclose(ev[:k], small.constants.s2, rtol=1e-8)
    assert ev[k] > small.constants.s2 * (1 + 1e-6)


# -- spectrum theory ---------------------------------------------------------------------------


def test_theory_agrees_with_theorem_3_1_and_counts_eigenvalues(constants):
    grid = np.concatenate([np.linspace(0.02, 0.5, 40), np.linspace(1.0, 12.0, 40)])
    mine = rf.spectral_density(grid, 16, 4, constants)
    paper = rf.paper_spectral_density(grid, 16, 4, constants)
    assert not np.isnan(mine).any()
    assert np.allclose(mine, paper, rtol=1e-8, atol=1e-12)
    # masses: n/p eigenvalues in the slow bulk, d/p in the fast one (the delta at s² apart)
    slow = np.linspace(constants.s2 * 1.01, 0.3, 600)
    fast = np.linspace(0.6, 14.0, 400)
    assert np.trapezoid(rf.spectral_density(slow, 16, 4, constants, eps=1e-9), slow) == \
        pytest.approx(4 / 16, rel=1e-2)
    assert np.trapezoid(rf.spectral_density(fast, 16, 4, constants, eps=1e-9), fast) == \
        pytest.approx(1 / 16, rel=1e-2)


def test_theory_matches_the_finite_d_gaussian_equivalent_spectrum():
    pb = rf.RandomFeaturesProblem.draw(d=100, psi_p=16, psi_n=4, t=0.1, seed=0)
    ev = np.sort(np.linalg.eigvalsh(pb.gaussian_equivalent_covariance(seed=1)))
    slow = ev[pb.p - pb.n - pb.d : pb.p - pb.d]
    grid = np.linspace(pb.constants.s2 * 1.001, slow[-1] * 1.2, 1500)
    density = rf.spectral_density(grid, 16, 4, pb.constants, eps=1e-9)
    cdf = np.concatenate([[0], np.cumsum((density[1:] + density[:-1]) / 2 * np.diff(grid))])
    cdf *= pb.p / pb.n  # fraction of the slow group below each grid point
    empirical = np.searchsorted(slow, grid) / pb.n
    assert np.abs(cdf - empirical).max() < 0.04  # Kolmogorov distance, 400 eigenvalues


def test_slow_bulk_edges_tend_to_the_formula(constants):
    # leading order in psi_p, psi_n >> 1 at fixed psi_p/psi_n = 16
    deviations = []
    for psi_p, psi_n in ((64, 4), (256, 16), (1024, 64)):
        lo, hi = rf.slow_bulk_edges(psi_p, psi_n, constants)
        grid = np.linspace(0.5 * (lo + constants.s2), 1.1 * hi, 500)
        density = rf.spectral_density(grid, psi_p, psi_n, constants, eps=1e-9)
        bulks = rf.density_support(grid, density, floor=1e-3 * density.max())
        main = next(b for b in bulks if b[0] < 0.5 * (lo + hi) < b[1])
        deviations.append(max(abs(main[0] / lo - 1), abs(main[1] / hi - 1)))
    assert deviations[0] > deviations[1] > deviations[2]
    assert deviations[2] < 0.02


# -- gradient flow -------------------------------------------------------------------------------


def _exact_losses(pb, B):
    d, delta = pb.d, pb.delta
    U, V = pb.feature_covariance(), pb.noise_correlation()
    pop, M = pb.population_covariance(), pb.score_correlation()
    train = 1 + (delta * np.sum((B @ U) * B) + 2 * math.sqrt(delta) * np.sum(B * V.T)) / d
    score = (np.sum((B @ pop) * B) + 2 * np.sum(B * M.T) + d) / d
    return train, score


def test_closed_form_flow_matches_stepwise_integration(small):
    flow = rf.GradientFlow(small)
    U, V = small.feature_covariance(), small.noise_correlation()
    B = np.zeros((small.d, small.p))
    dtau, taus, out = 0.01, [1.0, 10.0, 50.0], []
    for step in range(1, 5001):
        B -= dtau * (2 / small.psi_p) * (small.delta * B @ U + math.sqrt(small.delta) * V.T)
        if step * dtau in taus:
            out.append(_exact_losses(small, B))
    curves = flow.losses(taus)
    for (train, score), ct, cs in zip(out, curves.train, curves.score_error, strict=True):
        assert train == pytest.approx(ct, abs=2e-4)
        assert score == pytest.approx(cs, abs=2e-4)
    # tau -> infinity: the minimiser of the training loss
    B_star = -V.T @ np.linalg.inv(U) / math.sqrt(small.delta)
    train_inf, score_inf = _exact_losses(small, B_star)
    assert curves.train_final == pytest.approx(train_inf, rel=1e-9)
    assert curves.score_final == pytest.approx(score_inf, rel=1e-9)


def test_test_loss_is_the_score_error_in_disguise(small):
    """L_test = 1 - Delta + Delta E_score, checked by Monte Carlo on fresh data and noise."""
    flow = rf.GradientFlow(small)
    tau = 30.0
    curves = flow.losses([tau])
    # rebuild A(tau) and estimate the test loss directly
    U, V = small.feature_covariance(), small.noise_correlation()
    lam, Q = np.linalg.eigh(U)
    B = (-V.T @ np.linalg.inv(U) / math.sqrt(small.delta)) @ (
        Q @ np.diag(-np.expm1(-2 * small.delta * lam * tau / small.psi_p)) @ Q.T)
    rng = np.random.default_rng(5)
    e, s = math.exp(-small.t), math.sqrt(small.delta)
    losses = []
    for _ in range(200):
        x, xi = rng.standard_normal((2, 2000, small.d))
        phi = small.features(e * x + s * xi)
        losses.append(np.mean(np.sum((s * phi @ B.T + xi) ** 2, 1)) / small.d)
    losses = np.array(losses)
    assert abs(losses.mean() - curves.test[0]) < 5 * losses.std() / math.sqrt(len(losses))


def test_noisy_gradient_descent_follows_the_flow(small):
    """The paper's simulation (fresh noise at every step) against the closed form."""
    sim = rf.simulate_gradient_descent(small, dtau=0.05, steps=2000, record=[200, 2000],
                                       noise_draws=4, seed=0)
    curves = rf.GradientFlow(small).losses(sim["taus"])
    assert np.allclose(sim["train"], curves.train, atol=0.01)
    assert np.allclose(sim["score_error"], curves.score_error, atol=0.03)


def test_measured_tau_mem_on_planted_curves():
    taus = np.geomspace(1, 1e5, 400)
    gap = -np.expm1(-taus / 1000.0)
    learnt = -np.expm1(-taus / 10.0)  # the population part, learnt on tau ~ 10
    curves = rf.LossCurves(taus=taus, train=1 - 0.5 * gap, test=1 + 0.5 * gap,
                           score_error=1 - 0.9 * learnt + 0.01 * gap, train_final=0.5,
                           test_final=1.5, score_final=1.11)
    measured = rf.measured_tau_mem(curves)
    assert measured.tau_mem == pytest.approx(1000 * math.log(2), rel=1e-3)
    assert measured.tau_gen == pytest.approx(10 * math.log(10), rel=0.05)
    assert 50 < measured.tau_test_min < 500  # where the 0.01·gap rise overtakes the decay


def test_tau_mem_grows_with_n_in_the_exact_flow():
    exp = rf.dynamics_experiment(psi_ns=(2, 4), psi_p=16, d=20, t=0.1, seed=0)
    measured = [r.measured.tau_mem for r in exp.runs]
    assert measured[1] > 1.3 * measured[0]
    for run in exp.runs:  # fast modes learnt long before the slow ones
        assert run.measured.tau_gen < 0.1 * run.measured.tau_mem


def test_cli_writes_the_figures(tmp_path, capsys):
    from probekit.cli import main

    assert main(["reference", "theory", "spectrum", "--out", str(tmp_path), "--d", "12",
                 "--psi-p", "6", "--psi-n", "2", "--threads", "1"]) == 0
    assert "exact_tanh" in capsys.readouterr().out
    summary = json.loads((tmp_path / "theory-spectrum.json").read_text())
    assert summary["p"] == 72 and set(summary["slow_bulk_edges"]) == {
        "formula", "theory", "gaussian_equivalent", "exact_tanh"}
    fast = summary["theory_bulks"][-1]  # the fast bulk, around mu1² psi_p
    assert fast[0] < summary["constants"]["mu1"] ** 2 * 6 < fast[1]
    assert main(["reference", "theory", "dynamics", "--out", str(tmp_path), "--d", "10",
                 "--psi-p", "6", "--psi-n", "1", "2", "--name", "small"]) == 0
    assert "50%/predicted" in capsys.readouterr().out
    assert (tmp_path / "theory-spectrum.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "small.png").read_bytes()[:4] == b"\x89PNG"
    assert len(json.loads((tmp_path / "small.json").read_text())["runs"]) == 2
    assert (tmp_path / "small-curves.csv").read_text().count("\n") == 1 + 2 * 241


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValidationError, match="d must be an integer >= 2"):
        rf.RandomFeaturesProblem.draw(d=1, psi_p=4, psi_n=2, t=0.1)
    with pytest.raises(ValidationError, match="t must be a positive number"):
        rf.equivalence_constants(0.0)
    with pytest.raises(ValidationError, match="psi_ns must hold"):
        rf.dynamics_experiment(psi_ns=())
