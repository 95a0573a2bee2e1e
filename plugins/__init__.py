"""probekit's built-in plugins, installed as ``probekit_plugins``.

Each module provides one concrete metric, probe, extractor, adapter, dataset or generator and
ends with its ``@hookimpl register_*`` function. Every module is declared in the
``[project.entry-points.probekit]`` table of ``pyproject.toml``, exactly as a third party would.
"""
