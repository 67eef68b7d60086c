"""Built-in methods; importing this package registers them."""

from baselines import floors, frozen, metatrained, ner, probe

__all__ = ["floors", "frozen", "metatrained", "ner", "probe"]
