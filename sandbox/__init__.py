"""Loopback imitations of the channels' APIs, shared by the tests, the benchmarks and the demo."""
