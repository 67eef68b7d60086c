"""Pure code shared by everything: types, errors, registries, configs, episode samplers,
statistics and metrics. Imports nothing from the engine, the analysis or the commands."""
