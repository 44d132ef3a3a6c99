"""Security tests: hostile input at every door, in one place an auditor can read (see SECURITY.md)."""
