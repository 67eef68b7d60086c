"""Built-in task families; importing this package registers them."""

from tasks import domain_shift, intent, ner, relation, sentiment, topic

__all__ = ["domain_shift", "intent", "ner", "relation", "sentiment", "topic"]
