"""gunicorn settings for Storefront (`gunicorn -c gunicorn.conf.py wsgi:app`); overridable by GUNICORN_*."""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# Rendering is CPU-bound and short; a few threads per worker hide database and Redis latency.
workers = int(os.environ.get("GUNICORN_WORKERS", min(multiprocessing.cpu_count() * 2 + 1, 8)))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = "gthread"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "20"))
keepalive = 5
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "100000"))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", "10000"))
# Load the app in each worker, not the master: no connection or thread crosses a fork.
preload_app = False
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None
errorlog = "-"
