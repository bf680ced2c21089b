# Two commands on a fresh machine (see README.md):
#   make run    install (a venv in .venv with the pinned packages) and run the whole workflow
#   make test   install and run the test suite
# Snakemake finds the workstation profile profiles/default/ by itself (run from the repository root).
PYTHON ?= python3
VENV   ?= .venv
CORES  ?= all
BIN     = $(VENV)/bin

.PHONY: run test test-slow test-slurm dry-run report clean-venv

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/activate envs/requirements.txt pyproject.toml
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -r envs/requirements.txt
	$(BIN)/pip install --no-deps -e .
	touch $@

run: $(VENV)/.installed
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake --cores $(CORES)

dry-run: $(VENV)/.installed
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake -n

report: $(VENV)/.installed
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake --report report.html

test: $(VENV)/.installed
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest

test-slow: $(VENV)/.installed
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest -m slow

test-slurm: $(VENV)/.installed
	PATH=$(abspath $(BIN)):$$PATH bash tests/slurm/run_ci.sh

clean-venv:
	rm -rf $(VENV)
