"""Tests for the Shopify theme app extension in extensions/storefront-widgets."""
