"""``mia-secmi``: the t-error of SecMI (Duan, Kong, Wang, Shi, Xu 2023).

Invert the sample deterministically with DDIM from step 0 to ``t_sec - k`` (stride ``k``), take
one DDIM step forward to ``t_sec`` and one back; members are reconstructed more faithfully.
Score = minus ``||x_{t_sec-k} - x̃_{t_sec-k}||^2``. Defaults ``t_sec = 100``, ``k = 10`` are the
paper's SecMI-stat settings for DDPM with T = 1000.
"""

from __future__ import annotations

import pydantic

from probekit import hookimpl
from probekit.errors import ValidationError
from probekit.membership import MembershipInferenceProbe, MembershipSettings, ddim_step


class SecMISettings(MembershipSettings):
    t_sec: int = pydantic.Field(100, ge=2, description="step whose t-error is measured")
    interval: int = pydantic.Field(10, ge=1, description="DDIM stride k of the inversion")


class SecMIAttack(MembershipInferenceProbe):
    """SecMI t-error membership inference (white box: needs ``eps_theta``)."""

    name = "mia-secmi"
    description = "membership inference from the DDIM t-error (SecMI, Duan et al. 2023)"
    Settings = SecMISettings
    settings: SecMISettings

    def membership_scores(self, model, x, noise):
        s = self.settings
        if s.t_sec >= len(model.alphas_cumprod) or s.interval >= s.t_sec:
            raise ValidationError(
                f"{self.name}: t_sec must be below the schedule length "
                f"{len(model.alphas_cumprod)} and interval below t_sec; got t_sec={s.t_sec}, "
                f"interval={s.interval}."
            )
        t_prev = s.t_sec - s.interval
        x_t, t_now = x, 0
        for t_next in range(s.interval, t_prev + 1, s.interval):
            x_t, t_now = ddim_step(model, x_t, t_now, t_next), t_next
        if t_now != t_prev:  # t_sec not a multiple of the interval: finish the inversion
            x_t = ddim_step(model, x_t, t_now, t_prev)
        forward = ddim_step(model, x_t, t_prev, s.t_sec)
        back = ddim_step(model, forward, s.t_sec, t_prev)
        return -((back - x_t) ** 2).reshape(len(x), -1).sum(axis=1)


@hookimpl
def register_probes():
    return [SecMIAttack]
