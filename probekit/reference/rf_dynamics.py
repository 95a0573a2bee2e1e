"""One finite-``d`` random-features problem (Bonnaire et al. 2025, Sect. 3): the exact matrices
``U``, ``V`` of the tanh network (Mehler's series, no Gaussian equivalence), the gradient flow in
closed form (train loss, test loss, score error), the memorization time read off its curves,
and the paper's simulation (gradient descent with fresh noise) that checks it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from probekit.errors import ValidationError
from probekit.reference.rf_theory import (
    POPULATION_MEHLER_ORDER,
    QUADRATURE_NODES,
    SAMPLE_QUADRATURE_NODES,
    TRAIN_MEHLER_ORDER,
    EquivalenceConstants,
    _check_positive,
    _gauss_hermite,
    _hermite_table,
    equivalence_constants,
)

# -- one finite-d problem: the exact matrices --------------------------------------------------


def _check_int(value: Any, name: str, who: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ValidationError(f"{who}: {name} must be an integer >= {low}; got {value!r}.")
    return int(value)


def _mehler_sum(R: np.ndarray, blocks: Sequence[np.ndarray], scale: float) -> np.ndarray:
    """``Σ_l R^{∘l}/l! ∘ (E_lᵀ E_l) · scale`` for one block of coefficient rows ``E_l``
    (``blocks[l]`` of shape ``(rows, p)``)."""
    p = R.shape[0]
    out = np.zeros((p, p))
    power = np.ones((p, p))
    for order, E in enumerate(blocks):
        if order:
            power *= R
        gram = E.T @ E
        gram *= power
        out += gram * (scale / math.factorial(order))
    return out


@dataclass
class RandomFeaturesProblem:
    """One draw of the random features ``W`` (p×d) and the training set ``X`` (n×d) at
    diffusion time ``t``, with the exact matrices of the gradient flow.

    Use :meth:`draw`. The matrices are computed on first use and cached:

    * :meth:`feature_covariance` ``U = (1/n) Σ_ν E_ξ[φ(x_t^ν) φ(x_t^ν)ᵀ]`` (p×p),
    * :meth:`noise_correlation` ``V = (1/n) Σ_ν E_ξ[φ(x_t^ν) ξᵀ]`` (p×d),
    * :meth:`population_covariance` ``E_{x,ξ}[φ(x_t) φ(x_t)ᵀ]`` (fresh data) and
      :meth:`score_correlation` ``E[φ(x_t) x_tᵀ]`` (``x_t ~ N(0, I)``, the noisy law).
    """

    W: np.ndarray
    X: np.ndarray
    t: float
    constants: EquivalenceConstants
    mehler_order: int = TRAIN_MEHLER_ORDER
    population_order: int = POPULATION_MEHLER_ORDER
    sample_nodes: int = SAMPLE_QUADRATURE_NODES
    _cache: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @classmethod
    def draw(cls, *, d: int, psi_p: float, psi_n: float, t: float, seed: int = 0,
             mehler_order: int = TRAIN_MEHLER_ORDER) -> RandomFeaturesProblem:
        """Features and training set with ``p = round(psi_p d)``, ``n = round(psi_n d)``,
        from ``numpy.random.default_rng(seed)``."""
        who = "RandomFeaturesProblem"
        d = _check_int(d, "d", who, 2)
        _check_positive(psi_p, "psi_p", who)
        _check_positive(psi_n, "psi_n", who)
        p, n = round(psi_p * d), round(psi_n * d)
        if p < 2 or n < 2:
            raise ValidationError(
                f"{who}: psi_p·d and psi_n·d must be >= 2; got p={p}, n={n}. Increase d."
            )
        rng = np.random.default_rng(seed)
        W = rng.standard_normal((p, d))
        X = rng.standard_normal((n, d))
        return cls(W=W, X=X, t=float(t), constants=equivalence_constants(t),
                   mehler_order=_check_int(mehler_order, "mehler_order", who, 1))

    @property
    def d(self) -> int:
        return self.W.shape[1]

    @property
    def p(self) -> int:
        return self.W.shape[0]

    @property
    def n(self) -> int:
        return self.X.shape[0]

    @property
    def psi_p(self) -> float:
        return self.p / self.d

    @property
    def psi_n(self) -> float:
        return self.n / self.d

    @property
    def delta(self) -> float:
        return self.constants.delta

    def features(self, x: np.ndarray) -> np.ndarray:
        """``φ(x) = tanh(x Wᵀ / sqrt(d))`` for rows ``x`` (n×d) → (n×p)."""
        return np.tanh(x @ self.W.T / math.sqrt(self.d))

    def _geometry(self) -> tuple[np.ndarray, np.ndarray]:
        """``(|w_j|/sqrt(d), R)``: pre-activation scale per feature and the correlation matrix
        ``R_jk = w_j·w_k / (|w_j| |w_k|)`` of the features' noise (and population) parts."""
        if "R" not in self._cache:
            norms = np.linalg.norm(self.W, axis=1)
            unit = self.W / norms[:, None]
            self._cache["scale"] = norms / math.sqrt(self.d)
            self._cache["R"] = unit @ unit.T
        return self._cache["scale"], self._cache["R"]

    def feature_covariance(self, *, block: int = 512) -> np.ndarray:
        """The exact ``U`` (p×p) by Mehler's series over the noise, ``mehler_order`` terms
        (diagonal exact); ``block`` training points are processed at once."""
        if "U" not in self._cache:
            self._training_matrices(block)
        return self._cache["U"]

    def noise_correlation(self) -> np.ndarray:
        """The exact ``V`` (p×d): by Stein's lemma ``V_j = mean_ν E[tanh'(h_νj)] sqrt(Delta)
        w_j / sqrt(d)``."""
        if "V" not in self._cache:
            self._training_matrices(512)
        return self._cache["V"]

    def _training_matrices(self, block: int) -> None:
        scale, R = self._geometry()
        delta, order = self.delta, self.mehler_order
        z, w = _gauss_hermite(self.sample_nodes)
        herm = _hermite_table(z, order) * w  # (order+1, nodes), weights folded in
        noise_scale = math.sqrt(delta) * scale  # std of the noise part of h_νj
        means = math.exp(-self.t) * (self.X @ self.W.T) / math.sqrt(self.d)  # (n, p)
        p, n = self.p, self.n
        U = np.zeros((p, p))
        diag = np.zeros(p)
        slope = np.zeros(p)  # Σ_ν e_1(ν, j)
        for start in range(0, n, block):
            mu = means[start : start + block]
            rows = len(mu)
            coeff = np.zeros((order + 1, rows, p))
            for k in range(len(z)):
                th = np.tanh(mu + noise_scale * z[k])
                diag += w[k] * (th * th).sum(0)
                coeff += herm[:, k, None, None] * th[None]
            slope += coeff[1].sum(0)
            U += _mehler_sum(R, list(coeff), 1.0)
        U /= n
        np.fill_diagonal(U, diag / n)
        self._cache["U"] = U
        self._cache["V"] = (slope / n)[:, None] * self.W / np.linalg.norm(self.W, axis=1)[:, None]

    def _population_coefficients(self) -> np.ndarray:
        """``c_l(j) = E[tanh(|w_j| z / sqrt(d)) He_l(z)]``, ``l = 0 … population_order``."""
        if "c" not in self._cache:
            scale, _ = self._geometry()
            z, w = _gauss_hermite(QUADRATURE_NODES)
            herm = _hermite_table(z, self.population_order) * w
            th = np.tanh(scale[:, None] * z[None, :])  # (p, nodes)
            self._cache["c"] = herm @ th.T  # (order+1, p)
            self._cache["pop_diag"] = (th * th) @ w
        return self._cache["c"]

    def population_covariance(self) -> np.ndarray:
        """``E[φ(x_t) φ(x_t)ᵀ]`` over fresh data and noise (``x_t ~ N(0, I)``), exact up to
        ``population_order`` terms of Mehler's series (diagonal exact)."""
        if "U_pop" not in self._cache:
            c = self._population_coefficients()
            _, R = self._geometry()
            blocks = [c[k : k + 1] for k in range(len(c))]
            pop = _mehler_sum(R, blocks, 1.0)
            np.fill_diagonal(pop, self._cache["pop_diag"])
            self._cache["U_pop"] = pop
        return self._cache["U_pop"]

    def score_correlation(self) -> np.ndarray:
        """``M = E[φ(x_t) x_tᵀ]`` (p×d), ``x_t ~ N(0, I)``: ``M_j = E[tanh'(h_j)] w_j/sqrt(d)``.
        The population noise correlation is ``E[φ ξᵀ] = sqrt(Delta_t) M``."""
        c = self._population_coefficients()
        return c[1][:, None] * self.W / np.linalg.norm(self.W, axis=1)[:, None]

    def gaussian_equivalent_covariance(self, *, seed: int = 1) -> np.ndarray:
        """The Gaussian-equivalent ``U = G Gᵀ/n + b² WWᵀ/d + s² I`` with
        ``G = a e^{-t} W Xᵀ/sqrt(d) + v Ω`` (the paper's Lemma), on this problem's ``W`` and ``X``
        and a fresh Gaussian ``Ω`` (p×n) from ``seed``."""
        c = self.constants
        omega = np.random.default_rng(seed).standard_normal((self.p, self.n))
        G = c.a * math.exp(-self.t) * (self.W @ self.X.T) / math.sqrt(self.d) \
            + math.sqrt(c.v2) * omega
        U = G @ G.T / self.n + c.b**2 * (self.W @ self.W.T) / self.d
        U[np.diag_indices_from(U)] += c.s2
        return U

    def monte_carlo_matrices(self, noise_draws: int, *, seed: int = 0
                             ) -> tuple[np.ndarray, np.ndarray]:
        """``(U, V)`` estimated with ``noise_draws`` noise draws per training point (a check of
        the exact ones; its error falls as ``1/sqrt(n · noise_draws)``)."""
        rng = np.random.default_rng(seed)
        U = np.zeros((self.p, self.p))
        V = np.zeros((self.p, self.d))
        e, s = math.exp(-self.t), math.sqrt(self.delta)
        for _ in range(noise_draws):
            xi = rng.standard_normal(self.X.shape)
            phi = self.features(e * self.X + s * xi)
            U += phi.T @ phi
            V += phi.T @ xi
        total = noise_draws * self.n
        return U / total, V / total


# -- gradient flow in closed form ----------------------------------------------------------------


@dataclass(frozen=True)
class LossCurves:
    """Train loss, test loss and score error along the gradient flow (all divided by ``d``).

    ``train_final``, ``test_final``, ``score_final`` are the ``τ → ∞`` values (the trained
    model has fitted the training set as well as it can: the memorizing solution).
    """

    taus: np.ndarray
    train: np.ndarray
    test: np.ndarray
    score_error: np.ndarray
    train_final: float
    test_final: float
    score_final: float

    @property
    def gap(self) -> np.ndarray:
        """The generalization gap ``L_test - L_train``."""
        return self.test - self.train


class GradientFlow:
    """The exact gradient flow of a :class:`RandomFeaturesProblem` from ``A = 0``.

    With ``U = Q Λ Qᵀ`` and ``f_a(τ) = 1 - exp(-2 Delta_t λ_a τ / psi_p)``,
    ``A(τ)/sqrt(p) = Y diag(f(τ)) Qᵀ`` where ``Y = B* Q = -(Vᵀ Q) Λ⁻¹ / sqrt(Delta_t)``, and

    * ``L_train(τ) = 1 - (1/d) Σ_a (z_a/λ_a) (1 - exp(-4 Delta_t λ_a τ / psi_p))``,
      ``z_a = |(Vᵀ Q)_a|²``;
    * ``E_score(τ) = (1/d) [fᵀ S f + 2 Σ_a f_a Y_a·(Qᵀ M)_a + d]``,
      ``S = (YᵀY) ∘ (Qᵀ U_pop Q)``;
    * ``L_test(τ) = 1 + (Delta/d) fᵀ S f + (2 sqrt(Delta)/d) Σ_a f_a Y_a·(Qᵀ V_pop)_a``, which
      equals ``1 - Delta_t + Delta_t E_score`` because ``V_pop = sqrt(Delta_t) M`` here.
    """

    def __init__(self, problem: RandomFeaturesProblem):
        self.problem = problem
        U = problem.feature_covariance()
        V = problem.noise_correlation()
        self.eigenvalues, Q = np.linalg.eigh(U)
        if self.eigenvalues[0] <= 0:
            raise ValidationError(
                f"GradientFlow: U must be positive definite; its smallest eigenvalue is "
                f"{self.eigenvalues[0]:.3g}. Raise mehler_order or the quadrature."
            )
        delta = problem.delta
        Z = V.T @ Q  # (d, p)
        self.mode_weight = (Z * Z).sum(0)  # z_a
        Y = -Z / (self.eigenvalues * math.sqrt(delta))
        pop = Q.T @ (problem.population_covariance() @ Q)
        self._S = (Y.T @ Y) * pop
        del pop
        self._linear_score = (Y * (problem.score_correlation().T @ Q)).sum(0)
        self.rate = 2.0 * delta * self.eigenvalues / problem.psi_p

    def learned_fraction(self, taus: np.ndarray) -> np.ndarray:
        """``f_a(τ)``, shape ``(p, len(taus))``."""
        return -np.expm1(-np.outer(self.rate, np.asarray(taus, dtype=np.float64)))

    def losses(self, taus: Sequence[float] | np.ndarray) -> LossCurves:
        """The three curves at the times ``taus`` (gradient-flow time ``τ``)."""
        taus = np.asarray(taus, dtype=np.float64)
        pb = self.problem
        d, delta = pb.d, pb.delta
        weight = self.mode_weight / self.eigenvalues
        train = 1.0 - (weight[:, None] * -np.expm1(-2.0 * np.outer(self.rate, taus))).sum(0) / d
        F = self.learned_fraction(taus)
        quad = np.einsum("at,at->t", F, self._S @ F)
        score = (quad + 2.0 * (self._linear_score @ F) + d) / d
        one = np.ones(pb.p)
        quad_final = float(one @ self._S @ one)
        score_final = (quad_final + 2.0 * self._linear_score.sum() + d) / d
        return LossCurves(
            taus=taus,
            train=train,
            test=1.0 - delta + delta * score,
            score_error=score,
            train_final=float(1.0 - weight.sum() / d),
            test_final=float(1.0 - delta + delta * score_final),
            score_final=float(score_final),
        )


@dataclass(frozen=True)
class MeasuredTimescales:
    """Timescales read off a :class:`LossCurves` (interpolated in ``log τ``).

    * ``tau_mem`` — the generalization gap ``L_test - L_train`` reaches ``level`` (default
      one half) of its ``τ → ∞`` value: the training set is being fitted beyond the population;
      ``tau_onset`` and ``tau_complete`` are the same at 10% and 90% of the final gap;
    * ``tau_test_min`` — the test loss (equivalently the score error) is smallest: the best
      early-stopping time;
    * ``tau_gen`` — the score error has made ``1 - gen_tol`` of its improvement from ``τ = 0``
      to its minimum.
    """

    tau_mem: float
    tau_test_min: float
    tau_gen: float
    level: float
    tau_onset: float = math.nan
    tau_complete: float = math.nan

    def gap_fraction_at(self, curves: LossCurves, tau: float) -> float:
        """Fraction of the final generalization gap reached at time ``tau``."""
        final_gap = curves.test_final - curves.train_final
        return float(np.interp(math.log(tau), np.log(curves.taus), curves.gap / final_gap))


def _first_crossing_log(taus: np.ndarray, y: np.ndarray, level: float) -> float:
    above = np.nonzero(y >= level)[0]
    if not len(above):
        return math.nan
    i = int(above[0])
    if i == 0:
        return float(taus[0])
    t0, t1, y0, y1 = math.log(taus[i - 1]), math.log(taus[i]), y[i - 1], y[i]
    return float(math.exp(t0 + (level - y0) / (y1 - y0) * (t1 - t0)))


def measured_tau_mem(curves: LossCurves, *, level: float = 0.5, gen_tol: float = 0.1
                     ) -> MeasuredTimescales:
    """Read ``tau_mem``, ``tau_test_min`` and ``tau_gen`` off the curves (see
    :class:`MeasuredTimescales`)."""
    if not 0 < level < 1:
        raise ValidationError(f"measured_tau_mem: level must be in (0, 1); got {level!r}.")
    taus = curves.taus
    final_gap = curves.test_final - curves.train_final
    tau_mem = _first_crossing_log(taus, curves.gap / final_gap, level)
    best = int(np.argmin(curves.score_error))
    drop = curves.score_error[0] - curves.score_error[best]
    tau_gen = math.nan  # the score error never improves on its first value
    if drop > 0:
        progress = (curves.score_error[0] - curves.score_error) / drop
        tau_gen = _first_crossing_log(taus, progress, 1.0 - gen_tol)
    fraction = curves.gap / final_gap
    return MeasuredTimescales(tau_mem=tau_mem, tau_test_min=float(taus[best]), tau_gen=tau_gen,
                              level=level, tau_onset=_first_crossing_log(taus, fraction, 0.1),
                              tau_complete=_first_crossing_log(taus, fraction, 0.9))


# -- the paper's simulation: gradient descent with fresh noise -----------------------------------


def simulate_gradient_descent(problem: RandomFeaturesProblem, *, dtau: float, steps: int,
                              record: Sequence[int], noise_draws: int = 1, seed: int = 0
                              ) -> dict[str, np.ndarray]:
    """Plain gradient descent on ``A`` from 0 with fresh noise ``ξ`` at every step (the paper's
    experiment), in gradient-flow time: one step advances ``τ`` by ``dtau``.

    Each step draws ``noise_draws`` noise vectors per training point, computes the Monte Carlo
    loss gradient and updates ``B = A/sqrt(p)`` by ``-dtau · (d/psi_p) ∇_B L``. At the steps in
    ``record`` the exact train/test losses and score error of the current ``A`` are computed
    from the problem's matrices. Returns ``{"taus", "train", "test", "score_error"}``.
    """
    who = "simulate_gradient_descent"
    _check_positive(dtau, "dtau", who)
    steps = _check_int(steps, "steps", who, 1)
    noise_draws = _check_int(noise_draws, "noise_draws", who, 1)
    record = sorted({int(s) for s in record if 0 <= int(s) <= steps})
    pb = problem
    d, delta = pb.d, pb.delta
    U, V = pb.feature_covariance(), pb.noise_correlation()
    U_pop, M = pb.population_covariance(), pb.score_correlation()
    rng = np.random.default_rng(seed)
    B = np.zeros((d, pb.p))
    e, s = math.exp(-pb.t), math.sqrt(delta)
    out: dict[str, list[float]] = {"taus": [], "train": [], "test": [], "score_error": []}

    def log(step: int) -> None:
        quad_train = float(np.einsum("ij,ij->", B @ U, B))
        quad_pop = float(np.einsum("ij,ij->", B @ U_pop, B))
        score = (quad_pop + 2.0 * float(np.einsum("ij,ji->", B, M)) + d) / d
        out["taus"].append(step * dtau)
        out["train"].append(1.0 + (delta * quad_train
                                   + 2.0 * s * float(np.einsum("ij,ji->", B, V))) / d)
        out["score_error"].append(score)
        out["test"].append(1.0 - delta + delta * score)

    for step in range(steps + 1):
        if step in record:
            log(step)
        if step == steps:
            break
        grad = np.zeros_like(B)
        for _ in range(noise_draws):
            xi = rng.standard_normal(pb.X.shape)
            phi = pb.features(e * pb.X + s * xi)
            residual = s * phi @ B.T + xi  # (n, d)
            grad += (2.0 * s / (d * pb.n)) * residual.T @ phi
        B -= dtau * (d / pb.psi_p) * grad / noise_draws
    return {k: np.asarray(v) for k, v in out.items()}


__all__ = [
    "GradientFlow",
    "LossCurves",
    "MeasuredTimescales",
    "RandomFeaturesProblem",
    "measured_tau_mem",
    "simulate_gradient_descent",
]
