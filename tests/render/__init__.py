"""Render tests: structure, discounts, escaping and formats of the widget outputs, no app needed."""
