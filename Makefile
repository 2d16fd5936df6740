# Two commands for a fresh machine:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --disable-pip-version-check -q
STAMP := $(VENV)/.dnax-installed

.PHONY: install demo test bench clean-venv

install: $(STAMP)

$(STAMP): requirements/cpu.lock requirements/dev.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) --no-deps -r requirements/cpu.lock -r requirements/dev.lock
	MAMBA_FORCE_BUILD=TRUE MAMBA_SKIP_CUDA_BUILD=TRUE CAUSAL_CONV1D_SKIP_CUDA_BUILD=TRUE \
	  $(PIP) --no-deps --no-build-isolation mamba-ssm==2.3.2.post1
	$(PY) -c "import torchvision" 2>/dev/null || $(PIP) --no-deps ./requirements/torchvision-stub
	$(PIP) --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m dnax.run experiments.hg38_xlstm sample

test: $(STAMP)
	$(PY) -m pytest -q tests

bench: $(STAMP)
	$(PY) -m benchmarks.run

clean-venv:
	rm -rf $(VENV)
