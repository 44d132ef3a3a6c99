"""Browser tests: the widgets in headless Chromium on pages served under a strict CSP."""
