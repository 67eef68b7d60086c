"""Records into tables, plots and comparisons: reports, reference tables and reproduction, the
regression gate and the leaderboard. Imports `benchmark.engine` and `benchmark.core`."""
