"""Built-in methods; importing this package registers them."""

from baselines import floors, frozen, probe

__all__ = ["floors", "frozen", "probe"]
