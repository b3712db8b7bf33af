"""Benchmarks (see README.md): importable so capacity/soak share run.py's pieces."""
