# `make demo` and `make test` work on a fresh machine: they build .venv themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
EXTRAS ?= dev,transformers,math,pathology,surgery,remote-sensing,biomed,multiview,notebooks
STAMP := $(VENV)/.domainclip-installed

.PHONY: venv demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch and torchvision are pinned to the pair that open_clip and timm work with here.
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	# --overwrite: a second `make demo` replaces the first one's files (only domainclip's own)
	$(VENV)/bin/domainclip demo --overwrite

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check domainclip tests bench

bench: $(STAMP)
	$(PY) -m bench.run_all

clean:
	rm -rf $(VENV) build dist *.egg-info
