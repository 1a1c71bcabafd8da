# Two commands on a fresh machine with Python 3.11:  `make run`  and  `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run index serve test test-slow test-all bench clean

$(STAMP): pyproject.toml requirements/constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# CPU torch first: installing sentence-transformers first would pull a multi-GB CUDA build
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -c requirements/constraints.txt -e '.[dev,bench]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)            ## index seeds/ and start the product
	$(BIN)/rag run

test: $(STAMP)           ## the default (fast) test suite
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)      ## the long tests: crash recovery, servers, large inputs
	$(BIN)/python -m pytest -q -m slow

test-all: test test-slow

clean:
	rm -rf .rag .pytest_cache
