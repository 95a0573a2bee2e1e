"""Start or join Ray, the engine probekit uses past one process (DESIGN §8).

``address`` follows Ray's own conventions: ``None`` or ``"local"`` starts a private local
instance (``ray.init(num_cpus=...)``); ``"auto"`` joins the cluster this machine belongs to
(started with ``ray start --head`` / ``ray start --address=HEAD:6379``); ``"ray://HOST:10001"``
or ``"HOST:6379"`` joins that cluster. An instance started here is shut down again by
:func:`ray_session`; one that was already running (or a cluster) is left alone.

Ray is an optional dependency (``pip install 'probekit[ray]'``); a missing install is a
one-line :class:`~probekit.errors.MissingResourceError`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from probekit.errors import MissingResourceError, ValidationError

#: Environment variable with the default address (``local``, ``auto`` or a cluster address).
ADDRESS_ENV = "PROBEKIT_RAY_ADDRESS"


def import_ray() -> Any:
    """The ``ray`` module, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise MissingResourceError(
            "ray: Ray is not installed; install it with pip install 'probekit[ray]' (or "
            "pip install 'ray>=2') on the driver and on every node."
        ) from None
    return ray


def init_ray(address: str | None = None, *, num_cpus: int | None = None) -> bool:
    """Make sure this process is connected to Ray; return ``True`` if a new local instance
    was started here (the caller then owns it and shuts it down).

    Parameters
    ----------
    address : str or None
        ``None``: ``$PROBEKIT_RAY_ADDRESS`` or a local instance; ``"local"``: a new local
        instance; ``"auto"`` or ``HOST:PORT`` / ``ray://HOST:PORT``: an existing cluster.
    num_cpus : int or None
        CPUs of a local instance (default: all of this machine's).
    """
    ray = import_ray()
    if ray.is_initialized():
        return False
    address = address or os.environ.get(ADDRESS_ENV, "").strip() or "local"
    common = {"include_dashboard": False, "log_to_driver": False,
              "configure_logging": False}
    if address == "local":
        ray.init(num_cpus=num_cpus, **common)
        return True
    if num_cpus is not None:
        raise ValidationError(
            f"ray: num_cpus applies to a local instance only; got num_cpus={num_cpus} with "
            f"address={address!r}. Size a cluster with `ray start --num-cpus` on each node."
        )
    try:
        ray.init(address=address, **common)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise ValidationError(
            f"ray: cannot join the cluster at address={address!r} ({first}). Start it with "
            "`ray start --head` on the head node, or use address=local for a local instance."
        ) from None
    return False


@contextlib.contextmanager
def ray_session(address: str | None = None, *, num_cpus: int | None = None) -> Iterator[Any]:
    """``with ray_session(...) as ray:`` connected for the block; a local instance started
    here is shut down at the end."""
    started = init_ray(address, num_cpus=num_cpus)
    ray = import_ray()
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


__all__ = ["ADDRESS_ENV", "import_ray", "init_ray", "ray_session"]
