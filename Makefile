# Storefront: `make run` serves the demo locally, `make test` runs lint and the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
DEV_ADMIN_TOKEN ?= dev-admin-token-0000000000000000
BASE_URL := http://$(HOST):$(PORT)

.PHONY: run test lint venv dev-venv system-deps bench clean

$(BIN)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(BIN)/.dev-installed: requirements.txt requirements-dev.txt $(BIN)/.installed
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

venv: $(BIN)/.installed
dev-venv: $(BIN)/.dev-installed

run: export STOREFRONT_ENV = development
run: export STOREFRONT_ADMIN_TOKENS ?= $(DEV_ADMIN_TOKEN)
run: export STOREFRONT_PUBLIC_BASE_URL ?= $(BASE_URL)
run: venv
	$(BIN)/flask --app storefront init-db
	$(BIN)/flask --app storefront seed-demo
	@echo
	@echo "Storefront is starting on $(BASE_URL) (development mode, SQLite, in-process cache)"
	@echo "  preview:  $(BASE_URL)/preview/demo-coffee.myshopify.com/subscription?product=7001000000001"
	@echo "  widget:   $(BASE_URL)/v1/shops/demo-coffee.myshopify.com/widgets/subscription.js?product=7001000000001"
	@echo "  json:     $(BASE_URL)/v1/shops/demo-coffee.myshopify.com/widgets/subscription.json?product=7001000000001"
	@echo "  admin:    curl -H 'Authorization: Bearer $$STOREFRONT_ADMIN_TOKENS' $(BASE_URL)/admin/v1/shops/demo-coffee.myshopify.com"
	@echo "  health:   $(BASE_URL)/healthz  $(BASE_URL)/readyz"
	@echo
	exec $(BIN)/gunicorn -c gunicorn.conf.py --bind $(HOST):$(PORT) wsgi:app

# Debian packages some tests drive for real (headless Chromium); installed once when missing.
system-deps:
	@./.ci/install-system-deps

lint: dev-venv
	$(BIN)/ruff check .

test: dev-venv system-deps lint
	$(BIN)/pytest

# The origin against its baselines on pinned CPUs (bench/README.md): about 5-6 minutes, 10 at most.
bench: venv
	@./bench/install-system-deps
	$(BIN)/pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) instance .pytest_cache .ruff_cache
