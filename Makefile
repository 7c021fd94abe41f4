# The README's two commands: `make demo` and `make test` (each creates .venv when missing).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO := demo-$(shell date +%Y%m%d-%H%M%S)
DEMO_DIR := studies/demo/$(DEMO)

.PHONY: demo test lint bench

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

# Each run keeps its own study, studies/demo/demo-<time>; studies/demo/latest points at the newest.
demo: $(STAMP)
	$(VENV)/bin/study run search_spaces/demo.yaml --storage studies/demo --name $(DEMO)
	ln -sfn $(DEMO) studies/demo/latest
	$(VENV)/bin/analysis report $(DEMO_DIR)/results --out $(DEMO_DIR)/report
	@echo "study:  $(DEMO_DIR) (also studies/demo/latest)"
	@echo "report: $(DEMO_DIR)/report/report.md"

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .
