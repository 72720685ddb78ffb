"""Speed benchmarks of the Hummingbird models (see README.md here)."""
