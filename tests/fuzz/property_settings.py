"""Hypothesis settings for the property tests: bounded, reproducible in CI, no example database on disk."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# For a deeper local hunt: STOREFRONT_FUZZ_SCALE=20 multiplies every budget. CI runs at 1.
SCALE = float(os.environ.get("STOREFRONT_FUZZ_SCALE", "1"))


def bounded(max_examples: int = 300) -> settings:
    # derandomize: the same examples on every run, so a CI failure reproduces locally as is.
    return settings(max_examples=max(1, round(SCALE * max_examples)), deadline=None, derandomize=True,
                    database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
