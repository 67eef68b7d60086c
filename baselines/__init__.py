"""Built-in methods; importing this package registers them."""

from baselines import (
    container,
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
    "container",
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
