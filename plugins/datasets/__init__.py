"""Built-in datasets plugins, one module per plugin."""
