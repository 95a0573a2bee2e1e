"""The paper's two random-features experiments (Bonnaire et al. 2025, Fig. 3 and 4): the spectrum
of ``U`` against the limiting density and the slow-bulk edges, and the gradient-flow dynamics
across ``psi_n`` with predicted against measured tau_mem. Figures: :mod:`rf_figures`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from probekit.errors import ValidationError
from probekit.reference.rf_dynamics import (
    GradientFlow,
    LossCurves,
    MeasuredTimescales,
    RandomFeaturesProblem,
    measured_tau_mem,
)
from probekit.reference.rf_theory import (
    EquivalenceConstants,
    density_support,
    paper_spectral_density,
    predicted_tau_mem,
    slow_bulk_edges,
    spectral_density,
)

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


__all__ = [
    "DynamicsExperiment",
    "DynamicsRun",
    "SpectrumExperiment",
    "dynamics_experiment",
    "spectrum_experiment",
]
