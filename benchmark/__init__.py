"""fewshot-bench: a reproducible benchmark suite for few-shot NLP and meta-learning."""
