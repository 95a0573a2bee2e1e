"""Built-in generators plugins, one module per plugin."""
