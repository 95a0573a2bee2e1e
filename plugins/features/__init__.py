"""Built-in features plugins, one module per plugin."""
