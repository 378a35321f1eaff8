"""Benchmark cases, one module per family; see :mod:`lukhas_fast._bench.core`."""
