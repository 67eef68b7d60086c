"""Built-in methods; importing this package registers them."""

from baselines import (
    floors,
    frozen,
    icl,
    metatrained,
    metric_learning,
    ner,
    ner_training,
    optimization,
    pretrain,
    probe,
    prompt_finetune,
    reptile,
    transfer,
)

__all__ = [
    "floors",
    "frozen",
    "icl",
    "metatrained",
    "metric_learning",
    "ner",
    "ner_training",
    "optimization",
    "pretrain",
    "probe",
    "prompt_finetune",
    "reptile",
    "transfer",
]
