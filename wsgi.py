"""The WSGI entry point for gunicorn: ``wsgi:app``."""

import sys

from storefront import SettingsError, create_app

try:
    app = create_app()
except SettingsError as error:
    # One line naming the bad setting, not a traceback: this is what an operator reads first.
    sys.exit(f"storefront: configuration error: {error}")
