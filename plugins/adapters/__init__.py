"""Built-in adapters plugins, one module per plugin."""
