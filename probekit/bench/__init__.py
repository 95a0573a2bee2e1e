"""Benchmarks that are applications of the library: the time-series generator benchmark."""
