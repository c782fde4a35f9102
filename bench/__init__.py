"""Benchmarks: bandwidth, quality and speed on real talking-head clips."""
