"""Shopify's side of the wire: webhook and app proxy signatures, and Admin REST payloads -> our documents."""
