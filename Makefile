# lightly_matrix: the two commands a new user needs are `make demo` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_DIR ?= runs/demo-$(shell date +%Y%m%d-%H%M%S)

.PHONY: install test lint format typecheck demo docs bench lock clean-venv help

help:
	@echo "make demo      pretrain CorInfoMax on digits (DEMO_METHOD=matrix_ssl: Matrix-SSL), export, Mask R-CNN transfer on generated shapes"
	@echo "make test      install if needed, then ruff, mypy and the whole test suite (all but gpu tests; docs included)"
	@echo "make docs      build the manual into docs/_build/html (offline)"
	@echo "make check-install  wheel into fresh venvs, used from outside the checkout (also in make test)"
	@echo "make install   create/refresh .venv (idempotent; seconds when nothing changed)"
	@echo "make bench     loss benchmark table (benchmarks/bench_losses.py)"
	@echo "make bench-gpu GPU suite on a CUDA machine (gpu tests, tables); ARGS=\"--dry-run --out DIR\" on a CPU"
	@echo "make typecheck mypy on the package"
	@echo "make lock      re-pin requirements.lock from the current .venv"

install:
	@bash tools/install.sh

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: install
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

typecheck: install
	$(PY) -m mypy

# tests/docs builds the manual with -W -n, checks its links, runs its code blocks and the examples.
test: lint typecheck
	$(PY) -m pytest -m "not gpu" -p no:cacheprovider

docs: install
	$(PY) -m sphinx -b html -n docs docs/_build/html
	@echo "open docs/_build/html/index.html"

# The install check alone (tests/test_install_outside.py runs it in make test); KEEP=1 keeps its venv.
.PHONY: check-install
check-install: install
	@bash tools/check_install_outside.sh

demo: install
	@bash tools/demo.sh "$(DEMO_DIR)"

bench: install
	$(PY) benchmarks/bench_losses.py

# python -m benchmarks.gpu with the venv's Python, or python3 where there is none (a GPU image).
.PHONY: bench-gpu
bench-gpu:
	$(if $(wildcard $(PY)),$(PY),python3) -m benchmarks.gpu $(ARGS)

lock: install
	@{ echo "# Pinned versions of the whole stack, resolved together on Python 3.11 / x86_64 (tools/install.sh"; \
	   echo "# installs with -c requirements.lock). Regenerate with: make lock"; \
	   $(PY) -m pip freeze --all --exclude-editable 2>/dev/null | grep -v -i -e '^-e' -e 'lightly.matrix' -e '^pip=='; \
	 } > requirements.lock
	@echo "wrote requirements.lock"

clean-venv:
	rm -rf $(VENV)
