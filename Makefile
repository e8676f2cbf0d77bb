# Two commands: `make demo` runs the demo, `make test` runs the tests. Both create the
# virtual environment from requirements.lock on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)
UV_VERSION := 0.13.9

.PHONY: install servers tools demo test lint bench-ingest bench-soak bench-drift bench-sidecar bench-accelerators bench-report bench-windows bench-ab gpu-check lock clean

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q uv==$(UV_VERSION)
	$(BIN)/uv pip sync -q --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

# Real model servers for the sidecar's tests, in their own environment so that their
# pins never constrain the monitor's.
SERVERS := .venv-servers
SERVERS_STAMP := $(SERVERS)/.installed-$(shell cat tests/servers/requirements.lock | cksum | cut -d' ' -f1)

$(SERVERS_STAMP): tests/servers/requirements.lock $(STAMP)
	test -x $(SERVERS)/bin/python || $(PYTHON) -m venv $(SERVERS)
	$(BIN)/uv pip sync -q --python $(SERVERS)/bin/python tests/servers/requirements.lock
	rm -f $(SERVERS)/.installed-*
	touch $(SERVERS_STAMP)

servers: $(SERVERS_STAMP)

# Debian's Prometheus and Alertmanager: promtool checks the rules; the end-to-end
# tests start both on free ports. Debian's Chromium: the report test opens the page.
tools:
	@command -v promtool >/dev/null && command -v prometheus-alertmanager >/dev/null && \
		command -v chromium >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends prometheus prometheus-alertmanager chromium >/dev/null)

demo: $(STAMP)
	$(BIN)/sidewatch demo

test: $(STAMP) $(SERVERS_STAMP) tools
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check monitor collectors tests bench
	$(BIN)/mypy

bench-ingest: $(STAMP)
	$(BIN)/python bench/ingest.py

# 5 minutes of steady ingest into a monitor process: flat memory, nothing lost
# (SOAK_SECONDS, SOAK_WARMUP_SECONDS and SOAK_RATE change the run).
bench-soak: $(STAMP)
	$(BIN)/python bench/soak.py

# wrk (Debian's package) drives the highest-rate runs.
bench-sidecar: $(STAMP)
	@command -v wrk >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends wrk >/dev/null)
	$(BIN)/python bench/sidecar.py

# 1,000,000 x 50 features from stored profiles, against Evidently (on slices) and scipy.
bench-drift: $(STAMP)
	$(BIN)/python bench/drift.py

bench-accelerators: $(STAMP)
	$(BIN)/python bench/accelerators.py

bench-report: $(STAMP)
	$(BIN)/python bench/report.py

# A day's rollup from merged profiles vs from rows; segment filters; count placement.
bench-windows: $(STAMP)
	$(BIN)/python bench/windows.py

# Is this tree slower than an earlier commit? bench-ingest and bench-drift from both
# trees, alternating, in the same run (AB_REF: the commit; default main before issue 12).
bench-ab: $(STAMP)
	$(BIN)/python bench/ab.py ingest drift $(if $(AB_REF),--ref $(AB_REF))

# On a machine with an NVIDIA GPU (and PyTorch): known loads against the real collector.
gpu-check: $(STAMP)
	$(BIN)/python bench/gpu_check.py

# Regenerate the lock after changing dependencies in pyproject.toml.
lock: $(STAMP)
	$(BIN)/uv pip compile -q --all-extras --generate-hashes --python-version 3.11 \
		pyproject.toml -o requirements.lock

lock-servers: $(STAMP)
	$(BIN)/uv pip compile -q --generate-hashes --python-version 3.11 \
		tests/servers/requirements.in -o tests/servers/requirements.lock

clean:
	rm -rf $(VENV) $(SERVERS) var .pytest_cache .mypy_cache .ruff_cache
