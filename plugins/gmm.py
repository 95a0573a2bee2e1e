"""``gmm`` dataset and ``gmm-mmd`` metric: the Gaussian-mixture experiment of Bonnaire et al.
(2025), ½N(+1_d, I) + ½N(−1_d, I). The classes live beside the experiment in
:mod:`probekit.reference.gmm`; this module registers them like every other built-in."""

from __future__ import annotations

from probekit import hookimpl
from probekit.reference.gmm import GaussianMixture, MixtureMMD


@hookimpl
def register_datasets():
    return [GaussianMixture]


@hookimpl
def register_metrics():
    return [MixtureMMD]
