"""Benchmarks (scripts, not shipped in the plugin)."""
