# nanbyo: `make run` sets up and serves the demo on SQLite; `make test` installs and runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app app
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: run serve setup test test-postgres browser bench vendor-kit checktool clean

$(BIN)/.installed: requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

setup: $(BIN)/.installed
	$(FLASK) db upgrade
	$(FLASK) nanbyo load-masters
	$(FLASK) nanbyo demo --if-empty

# The task queue's consumer (background exports and XML imports, nanbyo/tasks.py) runs beside the server and stops with it.
run: setup
	$(BIN)/huey_consumer nanbyo.tasks.huey -w 2 -m 1 & consumer=$$!; \
	trap 'kill $$consumer 2>/dev/null' EXIT INT TERM; \
	$(FLASK) run --host $(HOST) --port $(PORT)

# Production on one server: the schema upgraded, gunicorn with WORKERS workers on BIND and the task-queue consumer,
# on the PostgreSQL of NANBYO_DATABASE_URL (masters loaded once: `flask --app app nanbyo load-masters`). Behind a
# TLS proxy (deploy/nginx.conf; systemd units in deploy/ do the same as services).
WORKERS ?= 4
BIND ?= 127.0.0.1:8000
serve: $(BIN)/.installed
	@case "$$NANBYO_DATABASE_URL" in postgresql*) ;; \
	  *) echo "make serve: set NANBYO_DATABASE_URL=postgresql+psycopg://... (production runs on PostgreSQL; make run is the SQLite demo)"; exit 2;; esac
	$(FLASK) db upgrade
	$(BIN)/huey_consumer nanbyo.tasks.huey -w 2 -m 1 & consumer=$$!; \
	trap 'kill $$consumer 2>/dev/null' EXIT INT TERM; \
	$(BIN)/gunicorn -w $(WORKERS) --timeout 120 -b $(BIND) 'app:create_app()'

# Debian's Chromium for the browser tests (Playwright drives it; no browser download), a Japanese font so the
# pages render in Japanese rather than as empty boxes, poppler (pdftotext) to read the PDFs back and zbar to scan
# their QR codes.
DEBIAN_PACKAGES := chromium fonts-noto-cjk poppler-utils zbar-tools
browser:
	@{ command -v chromium >/dev/null 2>&1 && [ -n "$$(fc-list :lang=ja 2>/dev/null)" ] && command -v pdftotext >/dev/null 2>&1 \
	   && command -v zbarimg >/dev/null 2>&1; } || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEBIAN_PACKAGES) >/dev/null; \
	  else echo "missing test tools: run 'sudo apt-get install $(DEBIAN_PACKAGES)' (the tests needing them are skipped)"; fi; }

test: $(BIN)/.installed browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-postgres:
	NANBYO_TEST_DATABASE_URL=$${NANBYO_TEST_DATABASE_URL:-postgresql+psycopg://postgres@127.0.0.1/test} $(MAKE) test

# Benchmarks print their figures (not tests). BENCH_DATABASE_URL=postgresql+psycopg://... runs them on PostgreSQL;
# the documents benchmark (1M rows, a few minutes) runs only then.
bench: $(BIN)/.installed
	$(BIN)/python bench/import_users.py $${BENCH_DATABASE_URL:+--database-url $$BENCH_DATABASE_URL}
	@if [ -n "$$BENCH_DATABASE_URL" ]; then $(BIN)/python bench/documents.py --database-url "$$BENCH_DATABASE_URL"; else echo "bench/documents.py skipped: set BENCH_DATABASE_URL (1M documents need PostgreSQL)"; fi

# The XML vendor package (schemas, record definitions, code tables, samples, check rules) as build/*.zip, and its
# texts in docs/xml/.
vendor-kit: $(BIN)/.installed
	$(BIN)/python -m nanbyo.xmlio.vendor_kit build

# The offline check tool as a wheel a hospital PC installs on its own (lxml its only dependency): build/*.whl.
checktool: $(BIN)/.installed
	$(BIN)/python -m nanbyo.xmlio.checktool build

clean:
	rm -rf $(VENV) .pytest_cache
