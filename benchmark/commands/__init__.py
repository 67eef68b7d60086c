"""The command line: one module per subcommand (each with `register(subcommands)`), and the
pieces several of them share (`arguments`, `running`, `suite_runs`). Only `benchmark.cli`
imports the subcommand modules."""
