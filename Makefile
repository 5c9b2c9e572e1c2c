# The two set-up commands are `make demo` and `make test`; each creates .venv and installs first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SCALE ?= 100000
PYTEST_FLAGS ?=

.PHONY: install browser demo test lint typecheck unit test-slow bench chaos clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The browser tests drive the system's Chromium (Debian: chromium) with Playwright; nothing is downloaded.
CHROMIUM := $(shell command -v chromium || command -v chromium-browser)
browser:
ifeq ($(CHROMIUM),)
	@if [ "$$(id -u)" = 0 ]; then apt-get install -y -q chromium >/dev/null || (apt-get update -q && apt-get install -y -q chromium); \
	else sudo apt-get install -y -q chromium; fi
endif

demo: $(STAMP)
	$(BIN)/actas demo --out demo-out

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

# pytest exits 5 when it collected no test; that is not a failure of the suite.
unit: $(STAMP) browser
	$(BIN)/pytest -q -m "not slow" $(PYTEST_FLAGS); rc=$$?; if [ $$rc -eq 5 ]; then rc=0; fi; exit $$rc

test: lint typecheck unit

test-slow: $(STAMP)
	$(BIN)/pytest -q -m slow $(PYTEST_FLAGS)

# The long durability run (not in CI): 20,000 actas, 8 clients, 12 SIGKILLs, on SQLite and on PostgreSQL
# (three server processes sharing the database; every other kill hits the current sequencer).
chaos: $(STAMP)
	$(BIN)/python -m tests.service.chaos --mesas 20000 --kills 12 --processes 3 --backend both --work chaos-out

# The scanner benchmark measures pyzbar beside our reader when the system has libzbar0 (Debian: apt-get install
# libzbar0); without it, it says so and measures the others. Its captures are kept in bench-scan/ between runs.
bench: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[bench]'
	$(BIN)/python bench/run.py --scale $(SCALE)
	$(BIN)/python bench/service.py --mesas 30026
	$(BIN)/python bench/site.py --mesas 30026
	$(BIN)/python bench/scan.py --captures 2000 --work bench-scan

clean:
	rm -rf $(VENV) demo-out bench-out bench-scan .mypy_cache .ruff_cache .pytest_cache .hypothesis
