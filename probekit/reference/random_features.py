"""The solvable random-features model of Bonnaire et al. (2025, Sect. 3): why memorization is slow.

The score at one fixed diffusion time ``t`` is modelled by a random-features network

    s_A(x) = A / sqrt(p) · tanh(W x / sqrt(d)),   W (p×d) frozen standard Gaussian,

whose second layer ``A`` (d×p) is trained from ``A = 0`` by gradient flow on the denoising
score-matching loss over ``n`` training points (standard Gaussian data, OU forward process
``x_t = e^{-t} x + sqrt(Delta_t) ξ``, ``Delta_t = 1 - e^{-2t}``):

    L_train(A) = (1/d) · (1/n) Σ_ν E_ξ || sqrt(Delta_t) s_A(x_t^ν) + ξ ||².

``L_train`` is quadratic in ``A``. With ``U = (1/n) Σ_ν E_ξ[φ φᵀ]`` and ``V = (1/n) Σ_ν E_ξ[φ ξᵀ]``
(``φ = tanh(W x_t / sqrt(d))``) and the time convention of the paper's gradient flow,
``dA/dτ = -d² ∇_A L_train``, the solution is

    A(τ) / sqrt(p) = B* (I - exp(-2 Delta_t U τ / psi_p)),   B* = -Vᵀ U⁻¹ / sqrt(Delta_t),

so a direction of eigenvalue ``λ`` of ``U`` is learnt on the timescale ``psi_p / (Delta_t λ)``
(``psi_p = p/d``, ``psi_n = n/d``). The spectrum of ``U`` has a delta peak at ``s_t²``, a *slow
bulk* of ``n`` eigenvalues of order ``psi_p/psi_n`` whose modes fit the training set (memorization,
``tau_mem ∝ psi_n``), and a *fast bulk* of ``d`` eigenvalues of order ``psi_p`` that carries the
population score (generalization, ``tau_gen = O(1)``).

What this module computes
-------------------------
* :func:`equivalence_constants` — ``mu_1, a_t, b_t, v_t², s_t²`` of the Gaussian-equivalence
  principle, by Gauss–Hermite quadrature (the paper's definitions, with ``Sigma = I``).
* :class:`RandomFeaturesProblem` — one draw of ``W`` and the training set at finite ``d``, and the
  *exact* matrices ``U``, ``V`` of the actual tanh network, their population versions and the
  score-error matrices. The noise averages are done exactly: given a training point the
  pre-activations are jointly Gaussian, so ``E_ξ[tanh(h_j) tanh(h_k)]`` is Mehler's series
  ``Σ_l ρ_jk^l / l! · E[tanh(h_j) He_l] E[tanh(h_k) He_l]``, summed to ``mehler_order`` and
  checked against Monte Carlo in the tests; no finite set of noise draws, no Gaussian
  equivalence. (:meth:`RandomFeaturesProblem.gaussian_equivalent_covariance` builds the
  Gaussian-equivalent ``U`` of the paper's Lemma for comparison.)
* :func:`spectral_density` — the limiting density of ``U`` from the self-consistent equation
  derived in ``docs/theory.md`` (Silverstein–Bai deterministic equivalent of the
  Gaussian-equivalent ``U``), and :func:`paper_spectral_density` — the paper's Theorem 3.1
  equations for ``q, r, s`` as stated there, solved the same way.
* :class:`GradientFlow` — train loss, test loss and score error along the exact gradient flow of
  a finite-``d`` problem, in closed form from the eigendecomposition of ``U``;
  :func:`simulate_gradient_descent` — plain gradient descent with fresh noise at every step (the
  paper's simulation), to check the closed form.
* :func:`slow_bulk_edges`, :func:`predicted_tau_mem` (``psi_p / (Delta_t lambda_min)``,
  ``lambda_min = s_t² + v_t² (1 - sqrt(psi_p/psi_n))²``) and :func:`measured_tau_mem` (read off
  the loss curves), and the two figures of the paper (:func:`spectrum_experiment`,
  :func:`dynamics_experiment`, :func:`plot_spectrum`, :func:`plot_dynamics`).

The activation is tanh throughout, as in the paper. Everything is numpy/scipy in float64.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.polynomial.hermite_e import hermegauss

from probekit.errors import ValidationError

#: Gauss–Hermite nodes of the one-dimensional expectations (constants, population terms).
QUADRATURE_NODES = 101
#: Gauss–Hermite nodes of the per-sample noise averages (small noise scale: fewer suffice).
SAMPLE_QUADRATURE_NODES = 48
#: Terms of Mehler's series kept for the training matrix U (noise correlations are Delta_t·ρ).
TRAIN_MEHLER_ORDER = 4
#: Terms kept for the population matrix (correlations ρ, odd terms only for tanh).
POPULATION_MEHLER_ORDER = 9


def diffusion_variance(t: float) -> float:
    """``Delta_t = 1 - exp(-2t)``: the noise variance of the OU forward process at time ``t``."""
    _check_positive(t, "t", "random_features")
    return float(-math.expm1(-2.0 * t))


def _check_positive(value: float, name: str, who: str) -> None:
    if not (isinstance(value, int | float | np.floating | np.integer) and math.isfinite(value)
            and value > 0):
        raise ValidationError(f"{who}: {name} must be a positive number; got {value!r}.")


def _gauss_hermite(nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of ``E[f(z)]``, ``z ~ N(0, 1)`` (weights sum to 1)."""
    z, w = hermegauss(nodes)
    return z, w / w.sum()


def _hermite_table(z: np.ndarray, order: int) -> np.ndarray:
    """``He_l(z)`` for ``l = 0 … order`` (probabilists' Hermite), shape ``(order+1, len(z))``."""
    table = np.empty((order + 1, len(z)))
    table[0] = 1.0
    if order >= 1:
        table[1] = z
    for k in range(1, order):
        table[k + 1] = z * table[k] - k * table[k - 1]
    return table


# -- Gaussian-equivalence constants ------------------------------------------------------------


@dataclass(frozen=True)
class EquivalenceConstants:
    """The constants of the Gaussian-equivalence principle at diffusion time ``t`` (tanh,
    standard Gaussian data, so ``sigma_x = Gamma_t = 1``).

    With ``u, v, w, z`` independent standard Gaussians and ``h = e^{-t} u + sqrt(Delta_t) v``:

    * ``mu1 = E[z tanh(z)]`` — linear part of the activation on a fresh N(0, 1) input,
    * ``a = E[tanh(h) u] / e^{-t}`` — linear response to the clean data,
    * ``b = E[tanh(h) v]`` — linear response to the noise,
    * ``v2 = E[tanh(h(u, v)) tanh(h(u, w))] - a² e^{-2t}`` — nonlinear part that the noise average
      keeps (it depends on the training point: the source of the slow bulk),
    * ``s2 = E[tanh(z)²] - a² e^{-2t} - v2 - b²`` — what the noise average removes (the delta peak),
    * ``norm2 = E[tanh(z)²]``.

    Stein's lemma gives ``a = mu1`` and ``b = sqrt(Delta_t) mu1`` here; the quadrature computes
    each from its definition and the tests check the identities.
    """

    t: float
    delta: float
    mu1: float
    a: float
    b: float
    v2: float
    s2: float
    norm2: float

    def as_dict(self) -> dict[str, float]:
        """Plain dictionary (for tables and JSON)."""
        return {k: float(getattr(self, k)) for k in
                ("t", "delta", "mu1", "a", "b", "v2", "s2", "norm2")}


def equivalence_constants(t: float, *, nodes: int = QUADRATURE_NODES) -> EquivalenceConstants:
    """``mu1, a_t, b_t, v_t², s_t²`` at diffusion time ``t`` by Gauss–Hermite quadrature
    (one- and two-dimensional tensor rules with ``nodes`` points per axis)."""
    delta = diffusion_variance(t)
    z, w = _gauss_hermite(nodes)
    e = math.exp(-t)
    h = e * z[:, None] + math.sqrt(delta) * z[None, :]  # h[u, v]
    th = np.tanh(h)
    ww = w[:, None] * w[None, :]
    a = float(np.sum(ww * th * z[:, None]) / e)
    b = float(np.sum(ww * th * z[None, :]))
    smoothed = th @ w  # E_v tanh(e^{-t} u + sqrt(Delta) v), a function of u
    v2 = float(np.sum(w * smoothed**2) - a**2 * e**2)
    norm2 = float(np.sum(w * np.tanh(z) ** 2))
    s2 = norm2 - a**2 * e**2 - v2 - b**2
    mu1 = float(np.sum(w * z * np.tanh(z)))
    return EquivalenceConstants(t=float(t), delta=delta, mu1=mu1, a=a, b=b, v2=v2, s2=s2,
                                norm2=norm2)


def slow_bulk_edges(psi_p: float, psi_n: float, constants: EquivalenceConstants
                    ) -> tuple[float, float]:
    """``s_t² + v_t² (1 ∓ sqrt(psi_p/psi_n))²``: edges of the slow bulk to leading order in
    ``psi_p, psi_n ≫ 1`` (Bonnaire et al. 2025, Sect. 3)."""
    _check_positive(psi_p, "psi_p", "slow_bulk_edges")
    _check_positive(psi_n, "psi_n", "slow_bulk_edges")
    root = math.sqrt(psi_p / psi_n)
    return (constants.s2 + constants.v2 * (1.0 - root) ** 2,
            constants.s2 + constants.v2 * (1.0 + root) ** 2)


def predicted_tau_mem(psi_p: float, psi_n: float, constants: EquivalenceConstants) -> float:
    """``tau_mem = psi_p / (Delta_t lambda_min)`` with ``lambda_min`` the lower slow-bulk edge
    (gradient-flow time ``τ`` of :class:`GradientFlow`)."""
    return psi_p / (constants.delta * slow_bulk_edges(psi_p, psi_n, constants)[0])


# -- limiting spectral density -------------------------------------------------------------------


def _mp_stieltjes(zeta: np.ndarray, ratio: float) -> np.ndarray:
    """Stieltjes transform ``∫ ρ(y) / (y - ζ) dy`` of the Marchenko–Pastur law of ratio
    ``ratio <= 1`` and unit variance: the root of ``ratio·ζ m² - (1 - ratio - ζ) m + 1 = 0`` with
    ``Im m`` of the sign of ``Im ζ`` (elementwise)."""
    a, b = ratio * zeta, -(1.0 - ratio - zeta)
    disc = np.sqrt(b * b - 4.0 * a + 0j)
    r1, r2 = (-b + disc) / (2.0 * a), (-b - disc) / (2.0 * a)
    sign = np.where(zeta.imag >= 0, 1.0, -1.0)
    return np.where(sign * r1.imag > sign * r2.imag, r1, r2)


@dataclass(frozen=True)
class _SpectrumParams:
    alpha2: float  # (a_t e^{-t})²: weight of the data term
    b2: float
    v2: float
    s2: float
    psi_p: float
    psi_n: float

    @classmethod
    def make(cls, psi_p: float, psi_n: float, c: EquivalenceConstants) -> _SpectrumParams:
        _check_positive(psi_p, "psi_p", "spectral_density")
        _check_positive(psi_n, "psi_n", "spectral_density")
        return cls((c.a * math.exp(-c.t)) ** 2, c.b**2, c.v2, c.s2, float(psi_p), float(psi_n))


def _resolvent_terms(delta: np.ndarray, z: np.ndarray, sp: _SpectrumParams
                     ) -> tuple[np.ndarray, np.ndarray]:
    """``(q, new delta)`` of the deterministic equivalent (see :func:`spectral_density`)."""
    h = 1.0 / (1.0 + delta)
    base = sp.s2 - z + sp.v2 * h  # the p - d directions orthogonal to W
    beta = sp.b2 + sp.alpha2 * h  # slope in the eigenvalue kappa of W Wᵀ/d
    zeta = -base / beta
    # eigenvalues kappa of Wᵀ W / d: psi_p × Marchenko–Pastur of ratio 1/psi_p
    m = _mp_stieltjes(zeta / sp.psi_p, 1.0 / sp.psi_p) / sp.psi_p
    inside = m / beta  # ∫ dμ(κ) / (β κ + base)
    weighted = sp.alpha2 / beta + (sp.alpha2 * zeta + sp.v2) * m / beta  # ∫ (α²κ + v²)/(βκ + base)
    q = ((sp.psi_p - 1.0) / base + inside) / sp.psi_p
    new = ((sp.psi_p - 1.0) * sp.v2 / base + weighted) / sp.psi_n
    return q, new


def _continuation_path(lams: np.ndarray, eps: float, steps: int = 28) -> np.ndarray:
    """Imaginary parts, shape ``(steps, len(lams))``, from ``10·max(1, |λ|)`` (far above the
    spectrum, where the physical root is the one next to the free resolvent) down to ``eps``."""
    top = 10.0 * np.maximum(1.0, np.abs(lams))
    return np.exp(np.linspace(np.log(top), np.full_like(top, math.log(eps)), steps))


def _newton(residual: Callable[[np.ndarray], np.ndarray], x: np.ndarray,
            iters: int = 60) -> np.ndarray:
    """Complex Newton on holomorphic residuals, elementwise over the last axis; ``x`` has shape
    ``(unknowns, points)`` and the Jacobian is taken by finite differences."""
    k = x.shape[0]
    for _ in range(iters):
        f = residual(x)
        jac = np.empty((k, k, x.shape[1]), dtype=complex)
        for j in range(k):
            step = 1e-7 * (1.0 + np.abs(x[j]))
            shifted = x.copy()
            shifted[j] += step
            jac[:, j] = (residual(shifted) - f) / step
        if k == 1:
            delta = f[0] / jac[0, 0]
            update = delta[None]
        else:  # 2 unknowns: Cramer's rule
            det = jac[0, 0] * jac[1, 1] - jac[0, 1] * jac[1, 0]
            update = np.stack([(f[0] * jac[1, 1] - f[1] * jac[0, 1]) / det,
                               (jac[0, 0] * f[1] - jac[1, 0] * f[0]) / det])
        x = x - update
        if np.all(np.abs(update) <= 1e-14 * (1.0 + np.abs(x))):
            break
    return x


def spectral_density(lams: Sequence[float] | np.ndarray, psi_p: float, psi_n: float,
                     constants: EquivalenceConstants, *, eps: float = 1e-7) -> np.ndarray:
    """Limiting eigenvalue density of ``U`` at the points ``lams`` (continuous part: the delta
    peak at ``s_t²`` of mass ``1 - (1 + psi_n)/psi_p`` appears only as a Lorentzian of width
    ``eps``).

    Derived in ``docs/theory.md``: in the Gaussian-equivalent model ``U = S + T`` where
    ``S = (1/n) Σ g_ν g_νᵀ`` with ``g_ν ~ N(0, C)``, ``C = a² e^{-2t} WWᵀ/d + v² I`` and
    ``T = b² WWᵀ/d + s² I``, whose resolvent has the deterministic equivalent
    ``(T - z + C/(1 + δ))⁻¹``, ``δ = tr(C (T - z + C/(1 + δ))⁻¹) / n`` (Silverstein & Bai 1995;
    Couillet & Liao 2022, Thm 2.6). The eigenvalues of ``WWᵀ/d`` are ``p - d`` zeros and ``d``
    values distributed as ``psi_p`` × Marchenko–Pastur of ratio ``1/psi_p``, so one complex
    unknown ``δ`` remains, solved by Newton's method while ``Im z`` decreases to ``eps``. The
    density is ``Im q(λ + i·eps) / π`` with ``q = tr (U - z)⁻¹ / p``; NaN flags a point where the
    root found is not the physical one (``Im q < 0`` or ``Im δ < 0``).
    """
    sp = _SpectrumParams.make(psi_p, psi_n, constants)
    lams = np.atleast_1d(np.asarray(lams, dtype=np.float64))
    delta = np.zeros((1, len(lams)), dtype=complex)
    for imag in _continuation_path(lams, eps):
        z = lams + 1j * imag
        delta = _newton(lambda d, z=z: _resolvent_terms(d[0], z, sp)[1][None] - d, delta)
    q = _resolvent_terms(delta[0], lams + 1j * eps, sp)[0]
    physical = (q.imag > -1e-9) & (delta[0].imag > -1e-9)
    return np.where(physical, np.maximum(q.imag, 0.0) / math.pi, math.nan)


def paper_spectral_density(lams: Sequence[float] | np.ndarray, psi_p: float, psi_n: float,
                           constants: EquivalenceConstants, *, eps: float = 1e-7) -> np.ndarray:
    """Eigenvalue density of ``U`` from Theorem 3.1 of Bonnaire et al. (2025) as the paper states
    it, for ``Sigma = I`` (``rho_Sigma = δ_1``, so ``r = s``):

        ŝ = b² psi_p + 1/q,   r̂ = psi_p a² e^{-2t} / D,
        D = 1 + (a² e^{-2t} psi_p/psi_n) r + (psi_p v²/psi_n) q,
        s = r = 1 / (ŝ + r̂),
        psi_p (s² - z) + psi_p v² / D + (1 - psi_p)/q - s/q² = 0,

    solved for ``(q, r)`` by Newton's method from ``q ≈ r ≈ 1/(s² - z)`` at large ``Im z``; the
    density is ``Im q / π`` (NaN where ``Im q < 0``).
    """
    sp = _SpectrumParams.make(psi_p, psi_n, constants)
    lams = np.atleast_1d(np.asarray(lams, dtype=np.float64))

    def residual(x: np.ndarray, z: np.ndarray) -> np.ndarray:
        q, r = x
        s_hat = sp.b2 * sp.psi_p + 1.0 / q
        denom = 1.0 + sp.alpha2 * sp.psi_p / sp.psi_n * r + sp.psi_p * sp.v2 / sp.psi_n * q
        r_hat = sp.psi_p * sp.alpha2 / denom
        return np.stack([r - 1.0 / (s_hat + r_hat),
                         sp.psi_p * (sp.s2 - z) + sp.psi_p * sp.v2 / denom
                         + (1.0 - sp.psi_p) / q - r / q**2])

    path = _continuation_path(lams, eps)
    q0 = 1.0 / (sp.s2 - (lams + 1j * path[0]))
    x = np.stack([q0, q0])
    for imag in path:
        x = _newton(lambda y, z=lams + 1j * imag: residual(y, z), x)
    q = x[0]
    return np.where(q.imag > -1e-9, np.maximum(q.imag, 0.0) / math.pi, math.nan)


def density_support(lams: np.ndarray, density: np.ndarray, *, floor: float = 1e-6
                    ) -> list[tuple[float, float]]:
    """Intervals of ``lams`` where ``density > floor`` (the bulks), each ``(first, last)``."""
    inside = np.asarray(density) > floor
    intervals, start = [], None
    for i, flag in enumerate(inside):
        if flag and start is None:
            start = i
        if start is not None and (not flag or i == len(inside) - 1):
            stop = i if flag else i - 1
            intervals.append((float(lams[start]), float(lams[stop])))
            start = None
    return intervals


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


# -- the paper's figures -------------------------------------------------------------------------


def _main_slow_edges(slow: np.ndarray, d: int) -> tuple[float, float]:
    """Edges of the slow group without its lowest ``d`` eigenvalues (the sub-bulk), or of the
    whole group when it has no more than ``d``."""
    low = slow[d] if len(slow) > d else slow[0]
    return float(low), float(slow[-1])


def _bisect_edge(inside: Callable[[float], bool], lo: float, hi: float, iters: int = 30) -> float:
    """Boundary between ``lo`` and ``hi`` where ``inside`` changes value."""
    f_lo = inside(lo)
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if inside(mid) == f_lo:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


@dataclass(frozen=True)
class SpectrumExperiment:
    """Eigenvalues of ``U`` for one finite-``d`` problem against the theory (the paper's Fig. 4).

    ``eigenvalues`` are those of the exact ``U`` of the tanh network; ``gep_eigenvalues`` those of
    the Gaussian-equivalent ``U`` on the same ``W`` and training set (what the paper's figure
    histograms); ``density`` and ``paper_density`` are :func:`spectral_density` and
    :func:`paper_spectral_density` on ``grid``; ``theory_bulks`` are the intervals where the
    former is positive, with edges refined by bisection.
    """

    d: int
    p: int
    n: int
    t: float
    seed: int
    constants: EquivalenceConstants
    eigenvalues: np.ndarray
    gep_eigenvalues: np.ndarray
    grid: np.ndarray
    density: np.ndarray
    paper_density: np.ndarray
    theory_bulks: list[tuple[float, float]]
    seconds: float

    @property
    def psi_p(self) -> float:
        return self.p / self.d

    @property
    def psi_n(self) -> float:
        return self.n / self.d

    def slow_group(self, eigenvalues: np.ndarray) -> np.ndarray:
        """The ``n`` eigenvalues between the ``p - n - d`` of the delta peak and the ``d`` of the
        fast bulk (counted, sorted)."""
        e = np.sort(eigenvalues)
        start = self.p - self.n - self.d
        return e[start : start + self.n]

    def empirical_edges(self, eigenvalues: np.ndarray) -> dict[str, tuple[float, float]]:
        """``slow`` (the whole slow group), ``main`` (without its lowest ``d``: the sub-bulk the
        leading-order formula leaves out, a fraction ``1/psi_n`` of the slow group),
        ``sub`` (those ``d``) and ``fast``."""
        slow = self.slow_group(eigenvalues)
        fast = np.sort(eigenvalues)[-self.d :]
        return {"slow": (float(slow[0]), float(slow[-1])),
                "main": _main_slow_edges(slow, self.d),
                "sub": ((float(slow[0]), float(slow[self.d - 1])) if self.n > self.d
                        else (math.nan, math.nan)),
                "fast": (float(fast[0]), float(fast[-1]))}

    def summary(self) -> dict[str, Any]:
        """Edges of the slow bulk: formula, theory, Gaussian-equivalent and exact ``U``, with
        relative deviations from the formula."""
        lo, hi = slow_bulk_edges(self.psi_p, self.psi_n, self.constants)
        slow_theory = [b for b in self.theory_bulks if b[1] < 0.5 * (hi + self.fast_scale)]
        main_theory = slow_theory[-1] if slow_theory else (math.nan, math.nan)
        rows = {"formula": (lo, hi), "theory": main_theory,
                "gaussian_equivalent": self.empirical_edges(self.gep_eigenvalues)["main"],
                "exact_tanh": self.empirical_edges(self.eigenvalues)["main"]}
        return {
            "d": self.d, "p": self.p, "n": self.n, "psi_p": self.psi_p, "psi_n": self.psi_n,
            "t": self.t, "seed": self.seed, "constants": self.constants.as_dict(),
            "slow_bulk_edges": {k: {"low": v[0], "high": v[1],
                                    "low_vs_formula": v[0] / lo - 1.0,
                                    "high_vs_formula": v[1] / hi - 1.0}
                                for k, v in rows.items()},
            "theory_bulks": [list(b) for b in self.theory_bulks],
            "exact_tanh_groups": self.empirical_edges(self.eigenvalues),
            "gaussian_equivalent_groups": self.empirical_edges(self.gep_eigenvalues),
            "delta_peak": {"s2": self.constants.s2,
                           "mass_theory": 1.0 - (1.0 + self.psi_n) / self.psi_p},
            "seconds": self.seconds,
        }

    @property
    def fast_scale(self) -> float:
        """Typical fast-bulk eigenvalue ``mu_1² psi_p``."""
        return self.constants.mu1**2 * self.psi_p


def spectrum_experiment(*, d: int = 100, psi_p: float = 64.0, psi_n: float = 8.0,
                        t: float = 0.1, seed: int = 0, grid_points: int = 400
                        ) -> SpectrumExperiment:
    """Spectrum of ``U`` at finite ``d`` (exact and Gaussian-equivalent) and in theory."""
    started = time.perf_counter()
    problem = RandomFeaturesProblem.draw(d=d, psi_p=psi_p, psi_n=psi_n, t=t, seed=seed)
    c = problem.constants
    exact = np.linalg.eigvalsh(problem.feature_covariance())
    problem._cache.clear()
    gep = np.linalg.eigvalsh(problem.gaussian_equivalent_covariance(seed=seed + 1))
    psi_p, psi_n = problem.psi_p, problem.psi_n
    hi = slow_bulk_edges(psi_p, psi_n, c)[1]
    top = max(float(exact.max()), float(gep.max())) * 1.15
    slow_grid = np.linspace(c.s2 * 1.01, 1.25 * max(hi, float(np.sort(exact)[-d - 1])),
                            grid_points)
    fast_grid = np.linspace(0.5 * min(float(np.sort(exact)[-d]), c.mu1**2 * psi_p), top,
                            grid_points)
    grid = np.concatenate([slow_grid, fast_grid])
    density = spectral_density(grid, psi_p, psi_n, c, eps=1e-9)
    paper = paper_spectral_density(grid, psi_p, psi_n, c, eps=1e-9)
    bulks = []
    for grid_part, dens in ((slow_grid, density[:grid_points]), (fast_grid, density[grid_points:])):
        f = 1e-3 * float(np.nanmax(dens))  # each bulk against its own scale
        for a, b in density_support(grid_part, dens, floor=f):
            if a <= grid_part[0]:  # the delta peak's tail at s²: no edge to refine
                continue
            step = grid_part[1] - grid_part[0]

            def inside(x: float, f: float = f) -> bool:
                return spectral_density([x], psi_p, psi_n, c, eps=1e-9)[0] > f

            bulks.append((_bisect_edge(inside, a - step, a), _bisect_edge(inside, b, b + step)))
    return SpectrumExperiment(
        d=problem.d, p=problem.p, n=problem.n, t=float(t), seed=int(seed), constants=c,
        eigenvalues=exact, gep_eigenvalues=gep, grid=grid, density=density, paper_density=paper,
        theory_bulks=bulks, seconds=time.perf_counter() - started,
    )


@dataclass(frozen=True)
class DynamicsRun:
    """The gradient flow of one training-set size."""

    psi_n: float
    n: int
    curves: LossCurves
    measured: MeasuredTimescales
    predicted_tau_mem: float
    slow_edges_formula: tuple[float, float]
    slow_edges_exact: tuple[float, float]  # main slow bulk of the exact U (see SpectrumExperiment)
    smallest_slow_eigenvalue: float
    seconds: float

    def row(self, psi_p: float, delta: float) -> dict[str, float]:
        lo_exact = self.slow_edges_exact[0]
        return {
            "psi_n": self.psi_n, "n": self.n,
            "tau_mem_predicted": self.predicted_tau_mem,
            "tau_mem_measured": self.measured.tau_mem,
            "measured_over_predicted": self.measured.tau_mem / self.predicted_tau_mem,
            "tau_gap_10": self.measured.tau_onset,
            "tau_gap_90": self.measured.tau_complete,
            "gap_fraction_at_predicted": self.measured.gap_fraction_at(
                self.curves, self.predicted_tau_mem),
            "tau_from_upper_edge": psi_p / (delta * self.slow_edges_formula[1]),
            "tau_mem_from_exact_edge": psi_p / (delta * lo_exact),
            "tau_test_min": self.measured.tau_test_min,
            "tau_gen": self.measured.tau_gen,
            "lambda_min_formula": self.slow_edges_formula[0],
            "lambda_min_exact": lo_exact,
            "lambda_max_formula": self.slow_edges_formula[1],
            "lambda_max_exact": self.slow_edges_exact[1],
            "smallest_slow_eigenvalue": self.smallest_slow_eigenvalue,
            "train_final": self.curves.train_final, "test_final": self.curves.test_final,
            "score_error_final": self.curves.score_final,
            "score_error_min": float(self.curves.score_error.min()),
            "seconds": self.seconds,
        }


@dataclass(frozen=True)
class DynamicsExperiment:
    """Losses along the gradient flow for several ``psi_n`` (the paper's Fig. 5)."""

    d: int
    p: int
    t: float
    seed: int
    constants: EquivalenceConstants
    runs: list[DynamicsRun]
    seconds: float

    @property
    def psi_p(self) -> float:
        return self.p / self.d

    def table(self) -> list[dict[str, float]]:
        return [r.row(self.psi_p, self.constants.delta) for r in self.runs]

    def scaling(self) -> dict[str, float]:
        """Slope of ``log tau_mem`` against ``log psi_n`` (measured and predicted)."""
        x = np.log([r.psi_n for r in self.runs])
        out = {}
        for key, values in (("measured", [r.measured.tau_mem for r in self.runs]),
                            ("gap_10", [r.measured.tau_onset for r in self.runs]),
                            ("gap_90", [r.measured.tau_complete for r in self.runs]),
                            ("predicted", [r.predicted_tau_mem for r in self.runs]),
                            ("test_min", [r.measured.tau_test_min for r in self.runs])):
            y = np.log(values)
            out[f"slope_{key}"] = float(np.polyfit(x, y, 1)[0]) if len(x) >= 2 else math.nan
        return out

    def summary(self) -> dict[str, Any]:
        return {"d": self.d, "p": self.p, "psi_p": self.psi_p, "t": self.t, "seed": self.seed,
                "constants": self.constants.as_dict(), "runs": self.table(),
                "scaling": self.scaling(), "seconds": self.seconds,
                "time_convention": "dA/dtau = -d^2 grad_A L_train (tau = k*lr/d^2 for plain "
                                   "gradient descent)",
                "tau_mem_measured": "L_test - L_train reaches half its tau -> infinity value "
                                    "(tau_gap_10, tau_gap_90: 10% and 90% of it)"}


def dynamics_experiment(*, psi_ns: Sequence[float] = (4, 8, 16, 32), psi_p: float = 64.0,
                        d: int = 100, t: float = 0.1, seed: int = 0,
                        taus: Sequence[float] | np.ndarray | None = None,
                        progress: Callable[[str], None] | None = None) -> DynamicsExperiment:
    """Exact gradient-flow losses for each ``psi_n`` on one draw of ``W`` (training sets nested:
    the first ``n`` points of one sample), with predicted and measured ``tau_mem``."""
    started = time.perf_counter()
    if not psi_ns:
        raise ValidationError("dynamics_experiment: psi_ns must hold at least one value.")
    taus = np.geomspace(1e-1, 1e7, 241) if taus is None else np.asarray(taus, dtype=np.float64)
    largest = RandomFeaturesProblem.draw(d=d, psi_p=psi_p, psi_n=max(psi_ns), t=t, seed=seed)
    c = largest.constants
    runs = []
    for psi_n in psi_ns:
        t0 = time.perf_counter()
        n = round(psi_n * largest.d)
        problem = RandomFeaturesProblem(W=largest.W, X=largest.X[:n], t=largest.t, constants=c)
        largest.population_covariance()
        for key in ("R", "scale", "c", "pop_diag", "U_pop"):
            problem._cache[key] = largest._cache[key]
        flow = GradientFlow(problem)
        curves = flow.losses(taus)
        start = problem.p - problem.n - problem.d
        slow = flow.eigenvalues[start : start + problem.n]
        run = DynamicsRun(
            psi_n=float(problem.psi_n), n=problem.n, curves=curves,
            measured=measured_tau_mem(curves),
            predicted_tau_mem=predicted_tau_mem(problem.psi_p, problem.psi_n, c),
            slow_edges_formula=slow_bulk_edges(problem.psi_p, problem.psi_n, c),
            slow_edges_exact=_main_slow_edges(slow, problem.d),
            smallest_slow_eigenvalue=float(slow[0]),
            seconds=time.perf_counter() - t0,
        )
        runs.append(run)
        del flow, problem
        if progress is not None:
            progress(f"psi_n={psi_n:g}: tau_mem measured {run.measured.tau_mem:.4g}, predicted "
                     f"{run.predicted_tau_mem:.4g} ({run.seconds:.0f} s)")
    return DynamicsExperiment(d=largest.d, p=largest.p, t=float(t), seed=int(seed), constants=c,
                              runs=runs, seconds=time.perf_counter() - started)


# -- plots -----------------------------------------------------------------------------------------

_PSI_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def plot_spectrum(exp: SpectrumExperiment) -> bytes:
    """Fig. 4: the two bulks of ``U`` — histograms of the exact and Gaussian-equivalent
    eigenvalues (density per ``p`` eigenvalues), the theory density, the slow-bulk formula."""
    from matplotlib.figure import Figure

    from probekit._plotting import to_png

    c = exp.constants
    lo, hi = slow_bulk_edges(exp.psi_p, exp.psi_n, c)
    fig = Figure(figsize=(11, 4.2))
    axes = fig.subplots(1, 2)
    exact_groups = exp.empirical_edges(exp.eigenvalues)
    half = len(exp.grid) // 2
    panels = (
        (axes[0], exp.grid[:half], exp.density[:half], exp.paper_density[:half],
         (exp.grid[0], exp.grid[half - 1]), "slow bulk (memorization modes)"),
        (axes[1], exp.grid[half:], exp.density[half:], exp.paper_density[half:],
         (exp.grid[half], exp.grid[-1]), "fast bulk (population modes)"),
    )
    for ax, grid, dens, paper, (a, b), title in panels:
        bins = np.linspace(a, b, 60)
        for values, label, style in (
            (exp.eigenvalues, f"exact U of the tanh network (d={exp.d})", "bar"),
            (exp.gep_eigenvalues, "Gaussian-equivalent U (same W, X)", "step"),
        ):
            inside = values[(values >= a) & (values <= b)]
            weights = np.full(len(inside), 1.0 / (len(values) * (bins[1] - bins[0])))
            ax.hist(inside, bins=bins, weights=weights, histtype=style, alpha=0.45
                    if style == "bar" else 1.0, color="#7f7f7f" if style == "bar" else "#1f77b4",
                    label=label, lw=1.2)
        ax.plot(grid, dens, color="#d62728", lw=1.6, label="theory (deterministic equivalent)")
        ax.plot(grid, paper, color="#000000", lw=1.0, ls=":", label="Theorem 3.1 equations")
        ax.set_xlim(a, b)
        ax.set_xlabel("eigenvalue λ of U")
        ax.set_ylabel("density ρ(λ) (per p eigenvalues)")
        ax.set_title(title, fontsize=10)
    ax0 = axes[0]
    visible = exp.density[:half][exp.grid[:half] > 1.15 * c.s2]  # away from the delta peak
    top = 1.6 * float(np.nanmax(visible)) if len(visible) else ax0.get_ylim()[1]
    ax0.set_ylim(0, top)  # the exact U's smeared delta peak near s² is clipped
    for x, text in ((lo, "λ₋"), (hi, "λ₊")):
        ax0.axvline(x, color="#2ca02c", ls="--", lw=1.2)
        ax0.text(x, top * 0.5, f" {text}", color="#2ca02c", va="center")
    ax0.plot([], [], color="#2ca02c", ls="--", label="s² + v²(1 ∓ √(ψp/ψn))²")
    sub = exact_groups["sub"]
    ax0.axvspan(sub[0], sub[1], color="#ffbb78", alpha=0.25, lw=0,
                label=f"sub-bulk of d={exp.d} (exact U)")
    ax0.legend(fontsize=7, loc="upper right")
    fig.suptitle(
        f"Spectrum of U: ψp={exp.psi_p:g}, ψn={exp.psi_n:g}, t={exp.t:g}, p={exp.p}, n={exp.n} "
        f"(delta peak of mass {1 - (1 + exp.psi_n) / exp.psi_p:.2f} at s²={c.s2:.4f} not drawn)",
        fontsize=10)
    fig.tight_layout()
    return to_png(fig)


def plot_dynamics(exp: DynamicsExperiment) -> bytes:
    """Fig. 5: train/test loss and score error along the gradient flow for each ``psi_n``,
    with ``tau_mem`` predicted (dashed) and measured (dot), and ``tau_mem`` against ``psi_n``."""
    from matplotlib.figure import Figure

    from probekit._plotting import to_png

    fig = Figure(figsize=(14, 4.2))
    ax_loss, ax_score, ax_tau = fig.subplots(1, 3)
    for i, run in enumerate(exp.runs):
        color = _PSI_COLORS[i % len(_PSI_COLORS)]
        cv = run.curves
        ax_loss.plot(cv.taus, cv.train, color=color, lw=1.5, label=f"ψn={run.psi_n:g} train")
        ax_loss.plot(cv.taus, cv.test, color=color, lw=1.5, ls="--", label=f"ψn={run.psi_n:g} test")
        ax_score.plot(cv.taus, cv.score_error, color=color, lw=1.5, label=f"ψn={run.psi_n:g}")
        for ax in (ax_loss, ax_score):
            ax.axvline(run.predicted_tau_mem, color=color, ls=":", lw=1.0)
        y = float(np.interp(math.log(run.measured.tau_mem), np.log(cv.taus), cv.test))
        ax_loss.plot([run.measured.tau_mem], [y], "o", color=color, ms=5)
    for ax, label in ((ax_loss, "loss (per dimension)"), (ax_score, "score error E_score")):
        ax.set_xscale("log")
        ax.set_xlabel("training time τ")
        ax.set_ylabel(label)
    ax_score.set_yscale("log")
    ax_loss.legend(fontsize=7, ncol=2)
    ax_score.legend(fontsize=7)
    ax_loss.set_title("train (solid) and test (dashed); dotted: predicted τ_mem,\n"
                      "dots: measured (half the final train–test gap)", fontsize=9)
    ax_score.set_title("score error ‖s_A − ∇log P_t‖²/d", fontsize=9)
    psi = np.array([r.psi_n for r in exp.runs])
    delta = exp.constants.delta
    onset = np.array([r.measured.tau_onset for r in exp.runs])
    complete = np.array([r.measured.tau_complete for r in exp.runs])
    ax_tau.fill_between(psi, onset, complete, color="#ff7f0e", alpha=0.15, lw=0,
                        label="measured: 10%–90% of the final gap")
    ax_tau.plot(psi, [r.measured.tau_mem for r in exp.runs], "o-", color="#ff7f0e", ms=5,
                label="measured: 50% of the final gap")
    ax_tau.plot(psi, [r.predicted_tau_mem for r in exp.runs], "s--", color="#1f77b4", ms=5,
                label="ψp/(Δt λ₋), λ₋ = s² + v²(1 − √(ψp/ψn))²")
    ax_tau.plot(psi, [exp.psi_p / (delta * r.slow_edges_formula[1]) for r in exp.runs], "v:",
                color="#1f77b4", ms=5, label="ψp/(Δt λ₊) (fastest slow mode)")
    guide = np.array([r.predicted_tau_mem for r in exp.runs])
    ax_tau.plot(psi, guide[0] * psi / psi[0], color="#7f7f7f", lw=0.8, label="∝ ψn")
    ax_tau.set_xscale("log")
    ax_tau.set_yscale("log")
    ax_tau.set_xlabel("ψn = n/d")
    ax_tau.set_ylabel("τ_mem")
    slopes = exp.scaling()
    ax_tau.set_title(f"τ_mem vs ψn: log-log slope measured {slopes['slope_measured']:.2f}, "
                     f"formula {slopes['slope_predicted']:.2f}", fontsize=9)
    ax_tau.legend(fontsize=7)
    fig.suptitle(f"Random-features gradient flow: ψp={exp.psi_p:g}, t={exp.t:g}, d={exp.d}",
                 fontsize=10)
    fig.tight_layout()
    return to_png(fig)


def write_spectrum_figure(out: str, *, name: str = "theory-spectrum", **kwargs: Any
                          ) -> dict[str, Any]:
    """Run :func:`spectrum_experiment` and write ``<name>.png`` and ``<name>.json`` into the
    folder ``out``; return the summary."""
    from pathlib import Path

    from probekit.io import atomic_write_bytes, atomic_write_json

    exp = spectrum_experiment(**kwargs)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    summary = exp.summary()
    atomic_write_bytes(folder / f"{name}.png", plot_spectrum(exp))
    atomic_write_json(folder / f"{name}.json", summary)
    return summary


def write_dynamics_figure(out: str, *, name: str = "theory-dynamics", **kwargs: Any
                          ) -> dict[str, Any]:
    """Run :func:`dynamics_experiment` and write ``<name>.png``, ``<name>.json`` (table) and
    ``<name>-curves.csv`` into ``out``; return the summary."""
    from pathlib import Path

    from probekit.io import atomic_write_bytes, atomic_write_json, atomic_write_text

    exp = dynamics_experiment(**kwargs)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["psi_n,tau,train,test,score_error"]
    for run in exp.runs:
        cv = run.curves
        lines += [f"{run.psi_n:g},{a:.6g},{b:.8g},{c:.8g},{e:.8g}"
                  for a, b, c, e in zip(cv.taus, cv.train, cv.test, cv.score_error, strict=True)]
    summary = exp.summary()
    atomic_write_bytes(folder / f"{name}.png", plot_dynamics(exp))
    atomic_write_json(folder / f"{name}.json", summary)
    atomic_write_text(folder / f"{name}-curves.csv", "\n".join(lines) + "\n")
    return summary


__all__ = [
    "DynamicsExperiment",
    "DynamicsRun",
    "EquivalenceConstants",
    "GradientFlow",
    "LossCurves",
    "MeasuredTimescales",
    "RandomFeaturesProblem",
    "SpectrumExperiment",
    "density_support",
    "diffusion_variance",
    "dynamics_experiment",
    "equivalence_constants",
    "measured_tau_mem",
    "paper_spectral_density",
    "plot_dynamics",
    "plot_spectrum",
    "predicted_tau_mem",
    "simulate_gradient_descent",
    "slow_bulk_edges",
    "spectral_density",
    "spectrum_experiment",
    "write_dynamics_figure",
    "write_spectrum_figure",
]
