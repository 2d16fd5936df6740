# Two commands for a fresh machine:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --disable-pip-version-check -q
STAMP := $(VENV)/.dnax-installed
# the real S3 server the object-store tests (tests/s3) start on 127.0.0.1; needs Node.js (npm)
S3RVER := .cache/s3rver/node_modules/.bin/s3rver

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

test: $(STAMP) $(S3RVER)
	$(PY) -m pytest -q tests

$(S3RVER):
	@command -v npm >/dev/null || { echo "make test: the S3 tests need s3rver, installed with npm (Node.js): install nodejs and npm, or deselect them with pytest -m 'not s3'"; exit 1; }
	npm install --prefix .cache/s3rver --no-audit --no-fund --loglevel=error s3rver@3.7.1

bench: $(STAMP)
	$(PY) -m benchmarks.run

clean-venv:
	rm -rf $(VENV)
