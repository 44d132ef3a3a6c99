# Storefront origin image: slim, non-root, reproducible from the pinned requirements.
# The base is pinned to a Python patch release and a Debian release, so a rebuild gets the interpreter the
# pins were checked against (tests/deploy evaluates the pins' markers for this exact version).
FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /app

# Dependencies before the code, so a code change reuses this layer. requirements.txt pins every runtime
# package, transitive ones included (tests/deploy checks that it is closed), so --no-deps installs exactly
# those versions and nothing unpinned; `pip check` stops the build if a dependency is missing anyway.
COPY requirements.txt .
RUN pip install --no-deps -r requirements.txt && pip check

# Only what runs: the package (with its migrations and demo data), templates, static files, entry points.
COPY storefront/ storefront/
COPY templates/ templates/
COPY static/ static/
COPY wsgi.py gunicorn.conf.py openapi.yaml ./
# Bytecode now: the container runs with a read-only root filesystem, so nothing can be compiled later.
RUN python -m compileall -q storefront wsgi.py

# A fixed numeric uid/gid: Kubernetes' runAsNonRoot can only verify a numeric USER, and the manifests in
# deploy/kubernetes run as the same ids. instance/ is the SQLite default's home (development only).
RUN groupadd --system --gid 10001 storefront \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home --shell /usr/sbin/nologin storefront \
    && mkdir -p /app/instance && chown 10001:10001 /app/instance
USER 10001:10001

# gunicorn's control socket (for gunicornc) goes to $XDG_RUNTIME_DIR, else to $HOME/.gunicorn: /app is
# not writable (and read-only in Kubernetes), /tmp is (an emptyDir there).
ENV GUNICORN_BIND=0.0.0.0:8000 \
    XDG_RUNTIME_DIR=/tmp
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=2s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"]
CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
