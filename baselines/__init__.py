"""Built-in methods; importing this package registers them."""

from baselines import floors, frozen, ner, probe

__all__ = ["floors", "frozen", "ner", "probe"]
