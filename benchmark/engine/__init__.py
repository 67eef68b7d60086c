"""What runs a benchmark: encoders and the embedding cache, planning and running sweeps and
cells, backends, the results store, checkpoints, meta-training and batched scoring. Knows no
specific data set or method; imports only `benchmark.core`."""
