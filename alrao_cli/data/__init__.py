"""Datasets for a screen: the spec (no torch), one module per source, splits and deterministic batches."""
