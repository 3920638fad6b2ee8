"""Stores and conversions: topology, settings schema and validation, metrics."""
