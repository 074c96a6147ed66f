"""Presentation of saved results: tables, JSON/CSV/Markdown exports, plots, live progress."""
