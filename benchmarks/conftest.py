"""Benchmarks run against the installed package (see benchmarks/test_benchmarks.py)."""
