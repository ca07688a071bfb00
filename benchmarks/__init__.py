"""Benchmarks of xcf's fast path against the official implementation's algorithm.

Run from the repository root, e.g. ``python benchmarks/train_step.py --quick``; see
``book/performance.md``.
"""
