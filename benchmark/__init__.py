"""Dynasor's benchmarks, run from the repository root as modules, e.g.
``python -m benchmark.online.bench_online --quick``. What the scripts share is in ``common.py``."""
