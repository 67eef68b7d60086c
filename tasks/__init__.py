"""Built-in task families; importing this package registers them."""

from tasks import intent

__all__ = ["intent"]
