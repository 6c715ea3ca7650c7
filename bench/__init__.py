"""Permission benchmarks: `make bench` (full, writes docs/PERFORMANCE.md) and `make bench-smoke`."""
