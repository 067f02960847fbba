# Dynasor: the README's first two commands are `make serve` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.dynasor-installed
PYTEST_ARGS ?=

.PHONY: install serve check test test-unit test-integration clean-venv

install: $(STAMP)

$(STAMP): scripts/install.sh requirements/cpu.txt requirements/check.txt requirements/constraints.txt setup.py python/cpu_shim/sgl_kernel/__init__.py
	bash scripts/install.sh $(VENV)
	touch $(STAMP)

serve: install
	$(VENV)/bin/dynasor serve $(ARGS)

# Linter and type checker (ruff.toml, mypy.ini) over python/, scheduler/, kernels/ and benchmark/.
check: install
	bash scripts/check.sh $(VENV)

test: install  # the checks beside the unit tests, then the server tests (scripts/test.sh)
	OMP_NUM_THREADS=1 bash scripts/test.sh $(VENV) $(PYTEST_ARGS)

test-unit: install
	$(PY) -m pytest test/unit $(PYTEST_ARGS)

test-integration: install  # the kernel and server tests, in two lanes (scripts/test.sh)
	OMP_NUM_THREADS=1 TEST_STAGES=servers bash scripts/test.sh $(VENV) $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)

# Small-scale benchmarks on CPU with the default model (<= 20 min on 2 cores): batch, online, README section.
.PHONY: bench-quick
bench-quick: install
	OMP_NUM_THREADS=1 $(PY) -m benchmark.batch.bench_batch --quick
	OMP_NUM_THREADS=1 $(PY) -m benchmark.online.bench_online --quick
	OMP_NUM_THREADS=1 $(PY) -m benchmark.report
