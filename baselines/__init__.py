"""Built-in methods; importing this package registers them."""

from baselines import (
    floors,
    frozen,
    metatrained,
    metric_learning,
    ner,
    ner_training,
    optimization,
    pretrain,
    probe,
    reptile,
    transfer,
)

__all__ = [
    "floors",
    "frozen",
    "metatrained",
    "metric_learning",
    "ner",
    "ner_training",
    "optimization",
    "pretrain",
    "probe",
    "reptile",
    "transfer",
]
