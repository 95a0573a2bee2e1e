"""``mia-loss``: membership from the denoising loss (Matsumoto, Miura, Yanai 2023).

A model fits its training samples better than unseen ones, so the denoising error
``||eps - eps_theta(sqrt(abar_t) x + sqrt(1 - abar_t) eps, t)||^2`` is smaller for members.
Score = minus the error, averaged over the chosen timesteps and noise draws.
"""

from __future__ import annotations

import numpy as np
import pydantic

from probekit import hookimpl
from probekit.membership import MembershipInferenceProbe, MembershipSettings, add_noise


class LossAttackSettings(MembershipSettings):
    timesteps: tuple[int, ...] = pydantic.Field(
        (100,), min_length=1, description="DDPM indices the loss is evaluated at (averaged)"
    )
    n_draws: int = pydantic.Field(1, ge=1, description="noise draws per sample and timestep")


class LossAttack(MembershipInferenceProbe):
    """Denoising-loss membership inference (white box: needs ``eps_theta``)."""

    name = "mia-loss"
    description = "membership inference from the denoising loss (Matsumoto et al. 2023)"
    Settings = LossAttackSettings
    settings: LossAttackSettings

    def _draws(self) -> int:
        return self.settings.n_draws * len(self.settings.timesteps)

    def membership_scores(self, model, x, noise):
        errors = np.zeros(len(x))
        draw = 0
        for t in self.settings.timesteps:
            steps = np.full(len(x), t)
            for _ in range(self.settings.n_draws):
                eps = noise[draw]
                pred = model.predict_noise(add_noise(model, x, steps, eps), steps)
                errors += ((pred - eps) ** 2).reshape(len(x), -1).sum(axis=1)
                draw += 1
        return -errors / draw


@hookimpl
def register_probes():
    return [LossAttack]
