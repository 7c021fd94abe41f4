# The README's two commands: `make demo` and `make test` (each creates .venv when missing).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO := demo-$(shell date +%Y%m%d-%H%M%S)
DEMO_DIR := studies/demo/$(DEMO)

# torch: the CUDA build (PyPI's, several GB) where an NVIDIA device shows (`nvidia-smi -L` lists
# one, or /proc/driver/nvidia exists), else the CPU build from TORCH_INDEX (no nvidia-* libraries:
# README "Install" has the sizes). TORCH=cuda|cpu overrides the detection; a venv
# that already has torch keeps it (remove .venv to switch). An unreachable TORCH_INDEX (no
# internet) falls back to the default index, with one line saying so.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH ?= $(shell if nvidia-smi -L 2>/dev/null | grep -q GPU || test -e /proc/driver/nvidia; \
	then echo cuda; else echo cpu; fi)
REACHABLE := import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=10)

.PHONY: demo test lint bench

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	@if [ "$(TORCH)" = cpu ] && ! $(PY) -c "import torch" 2>/dev/null; then \
	  if $(PY) -c "$(REACHABLE)" "$(TORCH_INDEX)/torch/" 2>/dev/null; then \
	    echo "no NVIDIA device: the CPU build of torch from $(TORCH_INDEX) (TORCH=cuda for CUDA's)"; \
	    $(PY) -m pip install -q torch torchvision --index-url "$(TORCH_INDEX)"; \
	  else \
	    echo "no NVIDIA device, but $(TORCH_INDEX) is unreachable: torch from the default index"; \
	  fi; \
	fi
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
