# Two commands: `make demo` runs the demo, `make test` runs the tests. Both create the
# virtual environment from requirements.lock on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)
UV_VERSION := 0.13.9

.PHONY: install tools demo test lint bench-ingest bench-accelerators bench-report gpu-check lock clean

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q uv==$(UV_VERSION)
	$(BIN)/uv pip sync -q --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

# Debian's Prometheus and Alertmanager: promtool checks the rules; the end-to-end
# tests start both on free ports. Debian's Chromium: the report test opens the page.
tools:
	@command -v promtool >/dev/null && command -v prometheus-alertmanager >/dev/null && \
		command -v chromium >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends prometheus prometheus-alertmanager chromium >/dev/null)

demo: $(STAMP)
	$(BIN)/sidewatch demo

test: $(STAMP) tools
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check monitor collectors tests bench
	$(BIN)/mypy

bench-ingest: $(STAMP)
	$(BIN)/python bench/ingest.py

bench-accelerators: $(STAMP)
	$(BIN)/python bench/accelerators.py

bench-report: $(STAMP)
	$(BIN)/python bench/report.py

# On a machine with an NVIDIA GPU (and PyTorch): known loads against the real collector.
gpu-check: $(STAMP)
	$(BIN)/python bench/gpu_check.py

# Regenerate the lock after changing dependencies in pyproject.toml.
lock: $(STAMP)
	$(BIN)/uv pip compile -q --all-extras --generate-hashes --python-version 3.11 \
		pyproject.toml -o requirements.lock

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
