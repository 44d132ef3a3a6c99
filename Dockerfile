# Storefront origin image: slim, non-root, reproducible from the pinned requirements.
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY storefront/ storefront/
COPY templates/ templates/
COPY static/ static/
COPY wsgi.py gunicorn.conf.py ./

RUN useradd --system --uid 10001 --home /app storefront \
    && mkdir -p /app/instance && chown storefront /app/instance
USER storefront

ENV GUNICORN_BIND=0.0.0.0:8000
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=2s --start-period=10s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"
CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
