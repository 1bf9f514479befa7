"""Benchmark scripts: run each as `python benchmarks/<name>.py` (this file makes the folder a
regular package, so that Opacus' own top-level `benchmarks` package cannot shadow it)."""
