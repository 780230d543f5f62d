"""Benchmarks: each module measures ours against its baselines side by side in one run.

A benchmark module exposes ``run(quick: bool) -> dict`` and can be run alone (``python -m ingestion.bench.X``).
``python -m ingestion bench`` runs them all and writes JSON and a Markdown table. No benchmark is a test assertion.
"""
