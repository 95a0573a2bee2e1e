"""``mia-pia``: proximal initialization attack (Kong, Duan, Wang, Shi, Xu 2024).

Use the model's own output at step 0, ``eps_0 = eps_theta(x, 0)``, as the noise that would
bring ``x`` to step ``t``: ``x_t = sqrt(abar_t) x + sqrt(1 - abar_t) eps_0``. For members the
model's prediction at ``t`` stays close to ``eps_0``. Score = minus ``||eps_theta(x_t, t) -
eps_0||_p^p``. Defaults ``t = 200``, ``p = 4`` follow the paper for DDPM with T = 1000.
"""

from __future__ import annotations

import numpy as np
import pydantic

from probekit import hookimpl
from probekit.membership import MembershipInferenceProbe, MembershipSettings, add_noise


class PIASettings(MembershipSettings):
    t: int = pydantic.Field(200, ge=1, description="attack step")
    p: float = pydantic.Field(4.0, gt=0, description="norm of the eps difference")


class PIAAttack(MembershipInferenceProbe):
    """PIA membership inference (gray box: needs ``eps_theta`` outputs only)."""

    name = "mia-pia"
    description = "membership inference by proximal initialization (PIA, Kong et al. 2024)"
    Settings = PIASettings
    settings: PIASettings

    def membership_scores(self, model, x, noise):
        n = len(x)
        eps0 = model.predict_noise(x, np.zeros(n, dtype=np.int64))
        steps = np.full(n, self.settings.t)
        eps_t = model.predict_noise(add_noise(model, x, steps, eps0), steps)
        return -(np.abs(eps_t - eps0) ** self.settings.p).reshape(n, -1).sum(axis=1)


@hookimpl
def register_probes():
    return [PIAAttack]
