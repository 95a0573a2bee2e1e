"""Built-in probes plugins, one module per plugin."""
