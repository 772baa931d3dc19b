# Two entry points for a fresh machine (see README):
#   make serve   set up, build the index if needed, and serve on http://127.0.0.1:8000
#   make test    set up and run the whole test suite (the real-model tests included)
# Both are idempotent: the second run only re-checks stamps and starts at once.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PIP    := $(BIN)/pip --disable-pip-version-check

.PHONY: setup serve test test-fast eval bench model browser clean

setup: $(STAMP)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# torch first and pinned: the CPU build is on local disk; an unpinned torch pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[test,llama,openai,anthropic,eval]"
	touch $(STAMP)

serve: setup
	$(BIN)/rag serve

# The local GGUF model for the `llama` generator (checksum verified).
model: setup
	$(BIN)/rag models install

# Debian's Chromium for the browser tests (no-op when present; skipped where apt is missing).
browser:
	@command -v chromium >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
	  echo "chromium could not be installed: browser tests will skip (and fail under CI=true)"; }

# The whole suite (real model, local LLM and browser tests included), then the quality gate:
# `rag eval --check` fails when a notes-suite metric falls below eval/baseline.json.
test: setup model browser
	$(BIN)/python -m pytest -q
	$(BIN)/rag eval --check

test-fast: setup
	$(BIN)/python -m pytest -q -m "not model and not llm and not browser"

eval: setup
	$(BIN)/rag eval

clean:
	rm -rf $(VENV) index/CURRENT index/snapshots index/cache
