"""Baseline servers the project is measured against (run by gunicorn as `bench.baselines.<name>:app`)."""
