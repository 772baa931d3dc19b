"""Measurement: retrieval metrics, the notes QA suite and BEIR benchmarks (imported by name, nothing at import)."""
