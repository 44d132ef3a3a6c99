"""Tests of storefront.store: one contract suite for every engine, plus each engine's own checks."""
