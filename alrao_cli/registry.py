"""``from alrao_cli.registry import register_model``: the spelling model files used before the
registry moved to :mod:`alrao_cli.sources.registry` (0.2). Such files keep working; new ones
write ``from alrao_cli import register_model``."""

from alrao_cli.sources.registry import register_model

__all__ = ["register_model"]
