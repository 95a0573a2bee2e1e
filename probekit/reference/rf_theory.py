"""The random-features model of Bonnaire et al. (2025, Sect. 3) in the limit: the constants of
the Gaussian-equivalence principle, the limiting spectrum of the training matrix ``U`` (its slow
and fast bulks), and the predicted memorization time ``tau_mem = psi_p / (Delta_t lambda_min)``.
The model and what each part of :mod:`probekit.reference.random_features` computes are
described there; everything here is numpy/scipy in float64.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

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


__all__ = [
    "POPULATION_MEHLER_ORDER",
    "QUADRATURE_NODES",
    "SAMPLE_QUADRATURE_NODES",
    "TRAIN_MEHLER_ORDER",
    "EquivalenceConstants",
    "density_support",
    "diffusion_variance",
    "equivalence_constants",
    "paper_spectral_density",
    "predicted_tau_mem",
    "slow_bulk_edges",
    "spectral_density",
]
