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

from probekit.reference.rf_dynamics import (
    GradientFlow,
    LossCurves,
    MeasuredTimescales,
    RandomFeaturesProblem,
    measured_tau_mem,
    simulate_gradient_descent,
)
from probekit.reference.rf_experiments import (
    DynamicsExperiment,
    DynamicsRun,
    SpectrumExperiment,
    dynamics_experiment,
    spectrum_experiment,
)
from probekit.reference.rf_figures import (
    plot_dynamics,
    plot_spectrum,
    write_dynamics_figure,
    write_spectrum_figure,
)
from probekit.reference.rf_theory import (
    EquivalenceConstants,
    density_support,
    diffusion_variance,
    equivalence_constants,
    paper_spectral_density,
    predicted_tau_mem,
    slow_bulk_edges,
    spectral_density,
)

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
