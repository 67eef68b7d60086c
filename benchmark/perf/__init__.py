"""The measurements behind `fewshot-bench perf`: ours against the naive way or a peer library,
in the same process, with a correctness check each. Imports the engine, the core and the
built-in methods it times."""
