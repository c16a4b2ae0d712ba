# Credencia — the two commands: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
# A second venv with every direct dependency at its lower bound (constraints/lowest.txt).
LOWEST := .venv-lowest
LOWEST_STAMP := $(LOWEST)/.installed
NPM ?= npm
# Front-end packages from npm, copied into web/static/vendor (gitignored); catalogs compiled.
ASSETS_STAMP := web/static/vendor/.installed

.PHONY: run test test-lowest bench lint format install clean assets chromium nginx diagrams wheel lock

# Installs follow constraints/lock.txt (the versions CI tests); `make lock` refreshes it.
LOCK := constraints/lock.txt

$(STAMP): pyproject.toml $(LOCK)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e .
	@touch $@

$(TEST_STAMP): $(STAMP) pyproject.toml $(LOCK)
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e '.[test]'
	@touch $@

## Refresh constraints/lock.txt: the newest versions pyproject.toml allows, in a fresh venv
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet --upgrade pip
	.venv-lock/bin/python -m pip install --quiet -e '.[test]'
	{ head -3 $(LOCK); .venv-lock/bin/python -m pip freeze --exclude-editable | grep -v '^credencia'; } > $(LOCK).new
	mv $(LOCK).new $(LOCK) && rm -rf .venv-lock

$(LOWEST_STAMP): pyproject.toml constraints/lowest.txt
	@test -x $(LOWEST)/bin/python || $(PYTHON) -m venv $(LOWEST)
	$(LOWEST)/bin/python -m pip install --quiet --upgrade pip
	$(LOWEST)/bin/python -m pip install --quiet -c constraints/lowest.txt -e '.[test]'
	@touch $@

$(ASSETS_STAMP): $(STAMP) package.json package-lock.json
	$(NPM) ci --ignore-scripts --no-audit --no-fund
	$(BIN)/python -m web.assets
	@touch $@

install: $(STAMP) $(ASSETS_STAMP)

assets: $(ASSETS_STAMP)

## Debian's Chromium for the browser tests (Playwright drives it; no browser is downloaded)
chromium:
	@command -v chromium >/dev/null 2>&1 || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)

## A wheel that works where it is installed (processes, migrations, built assets, compiled catalogs)
wheel: $(STAMP) $(ASSETS_STAMP)
	$(BIN)/python -c "from web.i18n import compile_catalogs; compile_catalogs(force=True)"
	$(BIN)/python -m pip wheel . --no-deps -w dist

## Debian's nginx, for the check of docs/deploy's site (nginx -t) and the multi-host fault run
nginx:
	@command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y nginx-light)

## Start the app (web + API + scheduler) on SQLite under instance/ with demo data, on http://127.0.0.1:5000
run: $(STAMP) $(ASSETS_STAMP)
	$(BIN)/credencia db upgrade
	$(BIN)/credencia processes deploy
	$(BIN)/credencia demo load
	$(BIN)/credencia serve --host 127.0.0.1 --port 5000 --with-scheduler

# The real OpenID provider the sign-in tests run (tests/oidc_provider: oidc-provider on Node).
OP_STAMP := tests/oidc_provider/node_modules/.installed

$(OP_STAMP): tests/oidc_provider/package.json tests/oidc_provider/package-lock.json
	cd tests/oidc_provider && $(NPM) ci --ignore-scripts --no-audit --no-fund
	@touch $@

## Install what the tests need and run them all (ruff + pytest, SQLite and PostgreSQL)
test: $(TEST_STAMP) $(ASSETS_STAMP) $(OP_STAMP) chromium nginx
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

## The unit tests on the lowest versions pyproject.toml allows (so its floors are true)
test-lowest: $(LOWEST_STAMP)
	$(LOWEST)/bin/python -m pytest tests/unit -q

## Benchmarks (prints figures; see docs/PERFORMANCE.md)
bench: $(TEST_STAMP)
	$(BIN)/python bench/engine.py
	$(BIN)/python bench/http_cycle.py
	$(BIN)/python bench/small_request.py "" "--worker-class gthread"
	$(BIN)/python bench/scheduler.py
	$(BIN)/python bench/analytics.py --quick

## Render every process to diagrams/*.svg and *.png (bpmn-js in headless Chromium)
diagrams: $(TEST_STAMP) $(ASSETS_STAMP) chromium
	$(BIN)/python diagrams/render.py

format: $(TEST_STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) $(LOWEST) instance .pytest_cache .ruff_cache node_modules web/static/vendor dist build tests/oidc_provider/node_modules
