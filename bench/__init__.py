"""The benchmark harness behind `make bench`: the project against its baselines, on pinned cores."""
