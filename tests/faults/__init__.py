"""Fault tests: MariaDB, SQLite and Redis failing under the app, and the toolkit that breaks them."""
