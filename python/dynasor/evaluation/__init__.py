"""How Dynasor is measured, apart from what it serves: rate curves and their bootstrap intervals,
paired ratios, SLO scales, and ``ServerProcess`` (servers started and stopped by tests and
benchmarks). The simulator's sweeps and the benchmarks use it; the product never does."""
