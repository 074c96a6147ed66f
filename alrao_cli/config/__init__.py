"""A study's options: the typed schema (every default defined once), YAML files, and paths."""
